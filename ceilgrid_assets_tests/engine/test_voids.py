"""``void`` cells: outside the room, no device, no coverage needed, no coverage through.

Hand-computed distances use 1 m tiles where the picture is small. In the
3 x 3 U-shaped room below, void tiles (1, 0) and (1, 1) separate the two top
corners; the in-room path from (0, 0) to (2, 0) goes down the left arm, brushes
the void's lower corner twice and comes up the right arm: 1 + sqrt(2) +
sqrt(2) + 1 = 4.828 m between tile centres, while the straight line is 2 m.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import make_room, only, rect, room_from_picture, rule_ids
from scipy.sparse.csgraph import dijkstra

from ceilgrid_assets.core.engine.grid import CODE, COMPONENTS, VOID, Room
from ceilgrid_assets.core.engine.inroom import _memoised_reach, move_graph, reach_matrix
from ceilgrid_assets.core.engine.io import dump_document, parse_document, room_to_document
from ceilgrid_assets.core.engine.optimiser import solve_stage
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room
from ceilgrid_assets.core.engine.profile import Profile, get_profile
from ceilgrid_assets.core.engine.rules import (
    MAX_LISTED_CELLS,
    compliance_report,
    light_violations,
    placement_violations,
    smoke_violations,
    supply_violations,
)
from ceilgrid_assets.core.engine.stages import build_context

NFPA = get_profile("nfpa72")
U_ROOM = """
D ~ .
. ~ .
. . .
"""
AROUND_M = 2 + 2 * math.sqrt(2)  # 4.828 m, the in-room path from (0, 0) to (2, 0)


def u_room(tile_size_m: float = 1.0) -> Room:
    return room_from_picture(U_ROOM, tile_size_m=tile_size_m)


def l_room(width: int = 30, height: int = 30, cut: int = 15, **kwargs) -> Room:
    """An L: the top-right ``cut`` x ``cut`` tiles are outside the room."""
    return make_room((width, height), **kwargs).with_cells(_l_cells(width, height, cut))


def _l_cells(width: int, height: int, cut: int) -> np.ndarray:
    cells = np.zeros((height, width), dtype=np.uint8)
    cells[:cut, width - cut :] = VOID
    return cells


# ------------------------------------------------------------------ format


def test_void_is_appended_so_the_older_codes_keep_their_values():
    assert COMPONENTS[:6] == (
        "empty",
        "invalid",
        "light",
        "air_supply",
        "air_return",
        "smoke_detector",
    )
    assert CODE["void"] == VOID == 6


def test_a_room_with_void_cells_loads_and_dumps_back_the_same():
    room = u_room()
    document = room_to_document(room)
    assert [cell["component"] for cell in document["cells"][:3]] == [
        "smoke_detector",
        "void",
        "empty",
    ]
    again = parse_document(dump_document(document)).rooms[0]
    assert np.array_equal(again.cells, room.cells)


def test_unknown_cell_value_names_file_room_field_and_cell_and_lists_void():
    document = room_to_document(u_room())
    document["cells"][4]["component"] = "outside"
    with pytest.raises(ValueError) as caught:
        parse_document(json.dumps(document), "rooms/u.json")
    assert str(caught.value) == (
        "rooms/u.json: room room: field 'component': cell (1, 1): unknown value 'outside'; "
        "allowed: empty, invalid, light, air_supply, air_return, smoke_detector, void"
    )


def test_void_cells_are_neither_coverage_points_nor_area():
    room = u_room(tile_size_m=0.6)
    assert int(room.usable.sum()) == 7  # 9 tiles, 2 void
    assert room.area_m2 == pytest.approx(7 * 0.36)
    invalid = room_from_picture(U_ROOM.replace("~", "#"), tile_size_m=0.6)
    assert invalid.area_m2 == room.area_m2  # invalid tiles are not area either
    assert not invalid.has_void and room.has_void


def test_placing_a_device_on_void_breaks_the_placement_rule():
    room = u_room()
    cells = room.cells.copy()
    cells[0, 1] = CODE["light"]
    assert rule_ids(placement_violations(room, room.with_cells(cells))) == {"placement"}


def test_no_stage_may_place_on_void():
    room = u_room()
    for component in ("light", "air_supply", "air_return", "smoke_detector"):
        assert not build_context(component, room, NFPA).allowed[room.cells == VOID].any()


# ------------------------------------------------------------------ in-room distance


def test_in_room_path_around_the_void_is_hand_computed():
    room = u_room()
    distance = dijkstra(move_graph(room.inside, 1.0), directed=False, indices=[0])[0]
    distance = distance.reshape(3, 3)
    assert distance[0, 2] == pytest.approx(AROUND_M)  # (x=2, y=0): around the void
    assert distance[1, 2] == pytest.approx(1 + 2 * math.sqrt(2))  # (2, 1)
    assert distance[2, 2] == pytest.approx(2 + math.sqrt(2))  # (2, 2)
    assert np.isinf(distance[0, 1]) and np.isinf(distance[1, 1])  # void: never reached
    # the true shortest in-room path hugs the void's corners (1, 2) and (2, 2) in metres:
    true_m = 2 * math.hypot(0.5, 1.5) + 1.0
    assert distance[0, 2] >= true_m  # conservative


def test_a_diagonal_may_not_slip_between_two_void_tiles_meeting_at_a_corner():
    inside = np.array([[True, False], [False, True]])
    distance = dijkstra(move_graph(inside, 1.0), directed=False, indices=[0])[0]
    assert np.isinf(distance[3])


def test_open_floor_paths_are_at_most_2_75_percent_longer_than_straight_lines():
    inside = np.ones((41, 41), dtype=bool)
    distance = dijkstra(move_graph(inside, 0.6), directed=False, indices=[20 * 41 + 20])[0]
    ys, xs = np.divmod(np.arange(41 * 41), 41)
    straight = 0.6 * np.hypot(ys - 20, xs - 20)
    ratio = distance[straight > 0] / straight[straight > 0]
    assert ratio.min() >= 1 - 1e-12  # never shorter than the straight line
    assert ratio.max() == pytest.approx(1.0275, abs=5e-4)


def test_reach_matrix_blocks_match_one_run_over_the_whole_room():
    # A room bigger than one block (16 tiles) with an irregular void: the
    # block-by-block windows give the same pairs as plain Dijkstra on the room.
    rng = np.random.default_rng(7)
    inside = rng.random((24, 37)) > 0.15
    radius = 3.1
    distance = dijkstra(move_graph(inside, 0.6), directed=False)
    expected = (distance <= radius + 1e-9) & inside.ravel()[:, None] & inside.ravel()[None, :]
    assert np.array_equal(reach_matrix(inside, 0.6, radius).toarray() > 0, expected.T)


# ------------------------------------------------------------------ the rules


def test_smoke_coverage_straight_line_passes_in_room_fails():
    # radius 4.0 m: the straight line to (2, 0) is 2 m, the in-room path 4.828 m
    profile = Profile(name="r4", smoke_radius_m=4.0)
    room = u_room()
    straight = room_from_picture(U_ROOM.replace("~", "#"), tile_size_m=1.0)
    assert only(smoke_violations(straight, profile), "smoke.coverage") == []
    [violation] = only(smoke_violations(room, profile), "smoke.coverage")
    assert violation.cells == [[2, 0]]
    # 4.9 m reaches round the corner: no blind zone left
    assert (
        only(smoke_violations(room, Profile(name="r49", smoke_radius_m=4.9)), "smoke.coverage")
        == []
    )


def test_supply_and_light_coverage_do_not_cross_the_void_either():
    # supply radius sqrt(120/5)/sqrt(2) = 3.464 m; light radius at 2.7 m: 2.015 m
    supply_room = room_from_picture(U_ROOM.replace("D", "S"), tile_size_m=1.0)
    [supply] = only(supply_violations(supply_room, NFPA), "supply.coverage")
    assert supply.cells == [[2, 0], [2, 1]]  # in-room 4.83 m and 3.83 m; (2, 2) is 3.41 m
    light_room = room_from_picture(U_ROOM.replace("D", "L"), tile_size_m=0.6)
    [light] = only(light_violations(light_room, NFPA), "light.spacing")
    # 0.6 m tiles: (2, 2) is 0.6 * (2 + sqrt 2) = 2.05 m > 2.015 m in-room, 1.70 m straight
    assert light.cells == [[2, 0], [2, 1], [2, 2]]


def test_blind_zones_are_listed_per_coverage_rule_with_their_cells():
    room = u_room()
    report = compliance_report(room, Profile(name="r4", smoke_radius_m=4.0))
    zones = {zone["rule"]: zone for zone in report["blind_zones"]}
    assert zones["smoke.coverage"] == {"rule": "smoke.coverage", "points": 1, "cells": [[2, 0]]}
    # no light, no supply anywhere: every one of the 7 points is blind for them
    assert zones["light.spacing"]["points"] == 7 and len(zones["light.spacing"]["cells"]) == 7
    assert set(zones) == {"smoke.coverage", "light.spacing", "supply.coverage"}


def test_blind_zone_cells_are_bounded_and_the_count_is_complete():
    room = l_room(40, 40, 20)
    report = compliance_report(room, NFPA)
    zone = next(z for z in report["blind_zones"] if z["rule"] == "smoke.coverage")
    assert zone["points"] == 40 * 40 - 20 * 20
    assert len(zone["cells"]) == MAX_LISTED_CELLS


# ------------------------------------------------------------------ placement


def test_a_room_without_void_keeps_the_straight_line_fast_path():
    room = make_room((12, 9))
    for component in ("light", "air_supply", "smoke_detector"):
        assert build_context(component, room, NFPA).reach is None


def test_l_shaped_room_is_laid_out_compliantly_with_in_room_coverage():
    room = l_room()
    result = complete_room(room, EngineConfig.create("nfpa72", optimiser_max_cells=0))
    assert result.compliance["compliant"], result.compliance["violations"]
    assert np.array_equal(result.room.cells == VOID, room.cells == VOID)
    # and the layout meets coverage along in-room paths, checked independently:
    t = room.tile_size_m
    distance = dijkstra(move_graph(room.inside, t), directed=False)
    usable = room.usable.ravel()
    for name, radius in (
        ("smoke_detector", NFPA.smoke_radius_m),
        ("air_supply", NFPA.supply_radius_m),
        ("light", NFPA.light_radius_m(room.ceiling_height_m)),
    ):
        devices = np.flatnonzero((result.room.cells == CODE[name]).ravel())
        nearest = distance[devices].min(axis=0)
        assert (nearest[usable] <= radius + 1e-9).all(), name


TALL_U = "\n".join([". ~ ."] * 6 + [". . ."])


def test_the_optimiser_covers_around_the_corner_not_across_it():
    # 1 m tiles, two 1-tile arms 7 m long joined at the bottom, radius 4.0 m.
    # Straight-line, (0, 3) reaches every point (farthest: (2, 0) at sqrt(13) =
    # 3.61 m). In-room, a detector in one arm reaches the other arm's top only
    # round the bottom (at least 6.41 m), so the minimum is two.
    profile = Profile(name="r4", smoke_radius_m=4.0)
    as_invalid = room_from_picture(TALL_U.replace("~", "#"), tile_size_m=1.0)
    as_void = room_from_picture(TALL_U, tile_size_m=1.0)
    straight = solve_stage(build_context("smoke_detector", as_invalid, profile), 10.0)
    in_room = solve_stage(build_context("smoke_detector", as_void, profile), 10.0)
    assert (straight.status, int(straight.added.sum())) == ("optimal", 1)
    assert (in_room.status, int(in_room.added.sum())) == ("optimal", 2)
    context = build_context("smoke_detector", as_void, profile)
    assert only(context.violations(in_room.added), "smoke.coverage") == []
    assert only(context.violations(straight.added), "smoke.coverage") != []


def test_old_documents_still_load_and_lay_out_compliantly():
    room = make_room((10, 8), invalid=rect(4, 3, 6, 5))
    document = room_to_document(room)
    assert "void" not in {cell["component"] for cell in document["cells"]}
    parsed = parse_document(dump_document(document)).rooms[0]
    assert not parsed.has_void
    result = complete_room(parsed, EngineConfig.create("nfpa72"))
    assert result.compliance["compliant"]
    assert "blind_zones" not in result.compliance  # only rooms with blind zones list them


def test_void_rooms_lay_out_the_same_with_and_without_the_memoised_reach():
    room = l_room(24, 20, 10)
    config = EngineConfig.create("nfpa72", optimiser_max_cells=0)
    first = complete_room(room, config)
    _memoised_reach.cache_clear()
    second = complete_room(room, config)
    assert np.array_equal(first.room.cells, second.room.cells)
    assert first.compliance == second.compliance


def test_a_stage_applied_keeps_the_rooms_masks_as_computed_afresh():
    """``StageContext.apply`` carries the room's usable mask, void flag and area over
    to the room with the stage's devices (``Room.with_devices``): they must be what
    that room would compute itself."""
    cells = np.zeros((7, 9), dtype=np.uint8)
    cells[0, :3] = VOID
    cells[4, 4] = CODE["invalid"]
    room = Room("apply", cells)
    assert room.has_void and room.usable.sum() == 59  # computed, then carried over
    context = build_context("light", room, get_profile("nfpa72"))
    applied = context.apply(context.allowed & (np.indices(cells.shape).sum(axis=0) % 3 == 0))
    afresh = Room("apply", applied.cells.copy())
    assert applied.count("light") > 0
    assert applied.usable.tobytes() == afresh.usable.tobytes()
    assert (applied.has_void, applied.area_m2) == (afresh.has_void, afresh.area_m2)
