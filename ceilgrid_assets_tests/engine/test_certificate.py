"""The certificate: a lower bound per component that no compliant layout beats.

Checked against brute force on rooms small enough to enumerate, against the
joint optimiser's proven optimum, and against every compliant layout the
engine makes on seeded varied rooms.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import building_document, make_room, room_document

from ceilgrid_assets.core.engine import optimiser
from ceilgrid_assets.core.engine.building import complete_building
from ceilgrid_assets.core.engine.certificate import (
    EXACT_MAX_GAP,
    METHODS,
    component_bound,
    layout_certificate,
    relaxation_contexts,
    room_certificate,
)
from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, EMPTY, Room
from ceilgrid_assets.core.engine.io import parse_object
from ceilgrid_assets.core.engine.optimiser import solve_joint
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.stages import point_packing

NFPA = get_profile("nfpa72")
CONFIG = EngineConfig()


def corridor(seed: int) -> Room:
    """A narrow corridor (100 lx: one light by the count rule) where coverage sets the count."""
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(9, 15)), int(rng.integers(1, 3))
    invalid = [(int(rng.integers(width)), int(rng.integers(height))) for _ in range(2)]
    return make_room((width, height), invalid, room_type="corridor")


def brute_force_lights(room: Room) -> int:
    """Fewest lights on the cells the engine allows covering every point, by enumeration.

    Distances are computed here from the cell centres, not by the engine.
    """
    context = relaxation_contexts(room, NFPA)["light"]
    ys, xs = np.nonzero(room.usable)
    sy, sx = np.nonzero(context.allowed)
    t = room.tile_size_m
    distance = np.hypot((xs[:, None] - sx[None, :]) * t, (ys[:, None] - sy[None, :]) * t)
    reach = distance <= NFPA.light_radius_m(room.ceiling_height_m) + 1e-9
    for size in range(context.required_count, len(sx) + 1):
        for chosen in itertools.combinations(range(len(sx)), size):
            if reach[:, list(chosen)].any(axis=1).all():
                return size
    raise AssertionError("no cover at all")


@pytest.mark.parametrize("seed", range(8))
def test_bound_is_the_relaxation_optimum_where_it_can_be_enumerated(seed):
    room = corridor(seed)
    expected = brute_force_lights(room)
    bound, method = component_bound(relaxation_contexts(room, NFPA)["light"], placed=10**6)
    assert bound == expected
    assert method in METHODS


@pytest.mark.parametrize("seed", range(8))
def test_the_point_packing_bound_never_exceeds_the_enumerated_optimum(seed):
    """Points no one cell covers two of each need their own light; in a corridor
    (its two ends) the packing is often the optimum itself."""
    room = corridor(seed)
    context = relaxation_contexts(room, NFPA)["light"]
    packed = point_packing(context.open_cover)
    assert 1 <= packed <= brute_force_lights(room)
    assert context.lower_bound >= packed


def test_point_packing_counts_points_that_share_no_covering_site():
    # three points; sites cover {0, 1} and {2}: points 0 and 1 share a site, so 2 is the most
    cover = np.array([[1, 0], [1, 0], [0, 1]], dtype=bool)
    assert point_packing(cover) == 2
    # one site covering all: one device, one packed point
    assert point_packing(np.ones((4, 1), dtype=bool)) == 1
    # a point no site reaches still counts (the room then has no compliant layout)
    assert point_packing(np.array([[1], [0]], dtype=bool)) == 2


def varied_room(seed: int) -> Room:
    """Seeded rooms from closets to open offices, with columns and existing devices."""
    rng = np.random.default_rng(1000 + seed)
    width, height = int(rng.integers(3, 26)), int(rng.integers(3, 20))
    cells = np.full((height, width), EMPTY, dtype=np.uint8)
    for _ in range(int(rng.integers(0, 3))):
        x, y = int(rng.integers(width)), int(rng.integers(height))
        cells[y : y + 2, x : x + 2] = CODE["invalid"]
    if rng.random() < 0.5:
        x, y = int(rng.integers(width)), int(rng.integers(height))
        if cells[y, x] == EMPTY:
            cells[y, x] = CODE[str(rng.choice(DEVICE_COMPONENTS))]
    return Room(
        f"room-{seed}",
        cells,
        tile_size_m=float(rng.choice([0.6, 0.6, 1.2])),
        ceiling_height_m=float(rng.choice([2.4, 2.7, 3.0, 4.5])),
        room_type=str(rng.choice(["office", "corridor", "meeting", "storage"])),
    )


@pytest.mark.parametrize("seed", range(24))
def test_no_compliant_layout_beats_the_bound(seed):
    room = varied_room(seed)
    result = complete_room(room, CONFIG)
    certificate = result.certificate
    for name, entry in certificate["components"].items():
        assert entry["placed"] == result.room.count(name)
        assert entry["gap"] == entry["placed"] - entry["lower_bound"]
        if result.compliant:
            assert entry["lower_bound"] <= entry["placed"], name
    assert certificate["lower_bound"] == sum(
        entry["lower_bound"] for entry in certificate["components"].values()
    )


@pytest.mark.parametrize("seed", range(24))
def test_the_engine_s_certificate_equals_one_computed_afresh(seed):
    """The engine hands the detector look-ahead's context to the certificate as that
    component's relaxation; a certificate built from scratch must agree."""
    room = varied_room(seed)
    result = complete_room(room, CONFIG)
    assert result.certificate == room_certificate(room, result.room, CONFIG.profile)


@pytest.mark.parametrize("seed", range(12))
def test_bound_never_exceeds_the_proven_optimum_and_meets_it_in_small_rooms(seed):
    rng = np.random.default_rng(seed)
    room = make_room((int(rng.integers(3, 9)), int(rng.integers(3, 7))), room_type="corridor")
    joint = solve_joint(room, NFPA, time_limit_s=60.0)
    assert joint.status == "optimal"
    optimum = int((joint.added > 0).sum())
    bound = room_certificate(room, room, NFPA)["lower_bound"]
    assert bound <= optimum
    # In rooms this small the clearances between components never bind, so the
    # per-component optima add up to the joint optimum and the bound is reached.
    assert bound == optimum


def test_a_layout_file_certificate_is_no_higher_than_the_engine_s():
    room = make_room((14, 9), devices={"light": [(0, 0), (13, 8)], "smoke_detector": [(7, 4)]})
    result = complete_room(room, CONFIG)
    from_file = layout_certificate(result.room, NFPA)
    for name in DEVICE_COMPONENTS:
        engine = result.certificate["components"][name]
        assert from_file["components"][name]["placed"] == engine["placed"]
        assert from_file["components"][name]["lower_bound"] <= engine["lower_bound"]


def test_every_output_room_carries_its_certificate_also_when_carried_over():
    rooms = [room_document((12, 8), grid_id="a"), room_document((12, 8), grid_id="b")]
    parsed = parse_object(building_document(rooms), "test.json")
    result = complete_building(parsed, CONFIG, memo=None)
    first, second = result.document["rooms"]
    assert first["certificate"] == second["certificate"]
    assert first["certificate"] is not second["certificate"]
    assert first["certificate"]["placed"] == sum(
        first["metrics"][key] for key in ("lights", "air_supply", "air_return", "smoke_detector")
    )


def test_a_sampled_lp_tightens_the_bound_of_a_large_room_and_stays_valid():
    room = make_room((40, 30), [(20, 15), (21, 15)])
    result = complete_room(room, CONFIG)
    assert result.compliant
    context = relaxation_contexts(room, NFPA)["smoke_detector"]
    placed = result.room.count("smoke_detector")
    cheap, cheap_method = component_bound(context, placed)
    sampled, sampled_method = component_bound(context, placed, sample_pairs=100_000)
    assert cheap_method == "disk packing"  # too large for the serving LP
    assert sampled_method == "LP" and cheap < sampled <= placed


def test_the_integer_step_runs_only_when_the_lp_bound_is_near_the_placed_count(monkeypatch):
    """Lights under a 2.0 m ceiling cover a 1.3 m radius: many small disks, where a
    branch and bound's root alone can take seconds. Far above the LP bound it is
    not run and the LP bound stands; within EXACT_MAX_GAP it runs."""
    room = make_room((8, 8), ceiling_height_m=2.0, room_type="storage")  # coverage binds
    context = relaxation_contexts(room, NFPA)["light"]
    calls = []
    real = optimiser.solve_stage

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(optimiser, "solve_stage", counted)
    lp_bound, method = component_bound(context, 10**6)
    assert method == "LP" and calls == []
    assert component_bound(context, lp_bound + EXACT_MAX_GAP + 1) == (lp_bound, "LP")
    assert calls == []
    near, near_method = component_bound(context, lp_bound + 1)
    assert len(calls) == 1 and (near, near_method) == (lp_bound + 1, "set-cover optimum")


def test_in_a_u_shaped_room_the_bound_follows_paths_inside_the_room():
    # 17 x 9 tiles of 1 m with the top middle outside the room (void): two arms
    # joined at the bottom. Across the void one detector pair would do; inside
    # the room three are needed, and the certificate proves it.
    cells = np.zeros((9, 17), dtype=np.uint8)
    cells[0:6, 3:14] = CODE["void"]
    room = Room("u", cells, tile_size_m=1.0)
    across = Room("u", np.where(cells == CODE["void"], CODE["invalid"], cells), tile_size_m=1.0)
    # Against one device more than the optimum, so that the integer step runs (it
    # does when the cheaper bounds are within EXACT_MAX_GAP of the placed count).
    in_room, method = component_bound(relaxation_contexts(room, NFPA)["smoke_detector"], 4)
    straight, _ = component_bound(relaxation_contexts(across, NFPA)["smoke_detector"], 3)
    assert (in_room, method) == (3, "set-cover optimum") and straight == 2
    result = complete_room(room, CONFIG)
    assert result.compliant and result.certificate["components"]["smoke_detector"]["gap"] == 0


@pytest.mark.parametrize("shape", [(13, 10), (20, 6)])
def test_the_exhaustive_search_settles_a_small_relaxation_before_any_lp(monkeypatch, shape):
    """Supplies in a 13 x 10 office: the count rule asks for 2, coverage needs 3. The
    search for covers of a few devices proves 3 without an LP solve."""
    context = relaxation_contexts(make_room(shape), NFPA)["air_supply"]
    assert context.lower_bound == context.required_count == 2
    lp_calls = []
    monkeypatch.setattr(optimiser, "lp_relaxation", lambda *args: lp_calls.append(args))
    assert component_bound(context, placed=10**6) == (3, "set-cover optimum")
    assert lp_calls == []
    # By enumeration, distances from the cell centres: no two cells cover every point.
    room = context.room
    ys, xs = np.nonzero(room.usable)
    distance = np.hypot(xs[:, None] - xs[None, :], ys[:, None] - ys[None, :]) * room.tile_size_m
    reach = distance <= NFPA.supply_radius_m + 1e-9
    pairs = itertools.combinations(range(len(xs)), 2)
    assert not any((reach[:, i] | reach[:, j]).all() for i, j in pairs)
