"""The uniformity rule light.uniformity: calculation area, U0 by hand, pass and fail, repair."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from helpers import SAMPLE_PATH, make_room, only, reference_u0, rule_ids

from ceilgrid_assets.core.engine.heuristics import brighten
from ceilgrid_assets.core.engine.io import read_document
from ceilgrid_assets.core.engine.luminaires import luminaire_names
from ceilgrid_assets.core.engine.photometry import required_lights
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import (
    calculation_area,
    check_layout,
    layout_metrics,
    light_violations,
)
from ceilgrid_assets.core.engine.stages import build_context

NFPA = get_profile("nfpa72")
EXAMPLES = sorted((SAMPLE_PATH.parents[2] / "ceilgrid_assets" / "examples").glob("*.json"))
HM, TILE = 1.9, 0.6  # ceiling 2.7 m - work plane 0.8 m; tile 0.6 m


def lambertian_lux(dx: int, dy: int) -> float:
    """One default fitting (3600 lm, MF 0.8) at a tile offset: F MF cos^4 / (pi h^2)."""
    cos2 = HM**2 / (HM**2 + TILE**2 * (dx * dx + dy * dy))
    return 3600 * 0.8 * cos2**2 / (math.pi * HM**2)


def inner_points() -> list[tuple[int, int]]:
    """The calculation area of a 6 x 6 tile room: band min(0.5, 0.15 x 3.6) = 0.5 m."""
    return [(x, y) for y in range(1, 5) for x in range(1, 5)]


# ------------------------------------------------------------------ the calculation area


def test_the_wall_band_is_half_a_metre_in_a_large_room():
    # 10 x 10 tiles (6 m): band 0.5 m; the outer ring's centres are 0.3 m from the wall
    area = calculation_area(make_room((10, 10)), NFPA)
    expected = np.zeros((10, 10), dtype=bool)
    expected[1:9, 1:9] = True
    np.testing.assert_array_equal(area, expected)


def test_the_wall_band_is_15_percent_of_a_narrow_rooms_width():
    # 31 x 2 corridor, 1.2 m wide: band 0.15 x 1.2 = 0.18 m < 0.3 m, so every point counts
    assert calculation_area(make_room((31, 2), room_type="corridor"), NFPA).all()


def test_a_column_takes_its_edge_neighbours_out():
    # centre to centre 0.6 m - 0.3 m = 0.3 m < 0.5 m; diagonal 0.85 - 0.3 = 0.55 m stays in
    area = calculation_area(make_room((6, 6), invalid=[(3, 3)]), NFPA)
    out = {(3, 3), (2, 3), (4, 3), (3, 2), (3, 4)}
    assert {(int(x), int(y)) for y, x in np.argwhere(area)} == set(inner_points()) - out


def test_a_room_all_in_the_band_is_judged_on_every_point():
    # a ring one tile wide round a 3 x 3 block: every centre is 0.3 m from a wall
    room = make_room((5, 5), invalid=[(x, y) for x in range(1, 4) for y in range(1, 4)])
    np.testing.assert_array_equal(calculation_area(room, NFPA), room.usable)


# ------------------------------------------------------------------ U0 by hand


def test_a_room_lit_by_the_downlight_file_matches_the_hand_calculation():
    # 6 x 6 office, four downlights at (1,1) (4,1) (1,4) (4,4), Hm 1.9 m, MF 0.8.
    # The file's distribution is I = 1145.9 cd cos^2(gamma), so E = 1145.9 x 0.8 cos^5 / h^2.
    # Inner 4 x 4 points in three classes by symmetry (tile offsets to the four lights):
    # 4 corners 375.8 lx, 8 edges 386.8 lx, 4 middles 404.5 lx -> Eavg 388.5 lx, U0 0.967
    def lux(offsets: list[tuple[int, int]]) -> float:
        cos = [HM / math.hypot(HM, TILE * math.hypot(a, b)) for a, b in offsets]
        return sum(1145.9 * 0.8 * c**5 / HM**2 for c in cos)

    corner = lux([(0, 0), (3, 0), (0, 3), (3, 3)])
    edge = lux([(1, 0), (2, 0), (1, 3), (2, 3)])
    middle = lux([(1, 1), (2, 1), (1, 2), (2, 2)])
    average = (4 * corner + 8 * edge + 4 * middle) / 16
    assert (round(corner, 1), round(edge, 1), round(middle, 1)) == (375.8, 386.8, 404.5)
    lights = [(1, 1), (4, 1), (1, 4), (4, 4)]
    room = replace(make_room((6, 6), devices={"light": lights}), luminaire="generic-led-downlight")
    metrics = layout_metrics(room, NFPA)
    assert metrics["illuminance_avg_lx"] == pytest.approx(average, rel=0.05)
    assert metrics["uniformity_u0"] == pytest.approx(corner / average, rel=0.05)
    assert metrics["illuminance_avg_lx"] == pytest.approx(388.5, rel=0.005)  # measured: 0.1 %
    assert only(light_violations(room, NFPA), "light.uniformity") == []


def test_one_light_in_the_middle_passes_a_corridor_and_fails_an_office():
    # one default fitting at (2, 2) of a 6 x 6 room: over the inner 4 x 4 points
    # Emin = E(offset (2, 2)) = 78.6 lx, Eavg = 161.9 lx, U0 = 0.485: >= 0.40, < 0.60
    values = {p: lambertian_lux(p[0] - 2, p[1] - 2) for p in inner_points()}
    average = sum(values.values()) / len(values)
    u0 = min(values.values()) / average
    assert round(u0, 3) == 0.485
    room = make_room((6, 6), devices={"light": [(2, 2)]}, room_type="corridor")
    assert layout_metrics(room, NFPA)["uniformity_u0"] == pytest.approx(u0, abs=1e-3)
    assert only(light_violations(room, NFPA), "light.uniformity") == []
    office = replace(room, room_type="office")
    [violation] = only(light_violations(office, NFPA), "light.uniformity")
    assert violation.message.startswith("U0 = Emin/Eavg = 79/162 lx = 0.49 over 16 calculation")
    assert "at least 0.60 required in a room of type office (EN 12464-1)" in violation.message
    # the cells listed are the points darker than 0.6 x Eavg = 97.1 lx: only the far
    # corner (4, 4); the next darkest, offset (2, 1), gets 113.1 lx
    assert round(lambertian_lux(2, 1), 1) == 113.1
    assert violation.cells == [[4, 4]]


def test_the_targets_are_en_12464_1_values():
    targets = {room_type: NFPA.target_u0(room_type) for room_type in NFPA.room_types}
    assert targets == {
        "office": 0.6,
        "meeting": 0.6,
        "classroom": 0.6,
        "corridor": 0.4,
        "lobby": 0.4,
        "restroom": 0.4,
        "storage": 0.4,
    }


def test_without_lights_the_rule_is_silent():
    # the count and spacing rules report a dark room; U0 = 0 / 0 says nothing more
    found = rule_ids(light_violations(make_room((6, 6)), NFPA))
    assert found == {"light.count", "light.spacing"}


def test_the_validator_and_the_reference_agree_on_u0():
    rng = np.random.default_rng(3)
    for _ in range(5):
        lights = [(int(x), int(y)) for x, y in rng.integers(0, 8, size=(3, 2))]
        room = make_room((8, 7), invalid=[(4, 3)], devices={"light": lights})
        metrics = layout_metrics(room, NFPA)
        assert metrics["uniformity_u0"] == pytest.approx(reference_u0(room, NFPA), abs=6e-4)
        broken = "light.uniformity" in rule_ids(check_layout(room, NFPA))
        assert broken == (reference_u0(room, NFPA) < 0.6)


# ------------------------------------------------------------------ the engine meets it


def test_the_repair_adds_lights_until_u0_holds():
    room = make_room((6, 6))
    context = build_context("light", room, NFPA)
    corner = np.zeros((6, 6), dtype=bool)
    corner[0, 0] = True  # U0 over the inner points: 0.25
    added = brighten(context, corner)
    assert added[0, 0] and added.sum() > 1
    assert only(context.violations(added), "light.uniformity") == []
    # a proposal that already meets the rule gains nothing
    assert np.array_equal(brighten(context, added), added)


@pytest.mark.parametrize("luminaire", [None, *luminaire_names()])
def test_old_documents_lay_out_compliantly_with_u0_at_its_target(luminaire):
    config = EngineConfig.create()
    for path in [*EXAMPLES, SAMPLE_PATH]:
        for room in read_document(path).rooms:
            result = complete_room(replace(room, luminaire=luminaire), config)
            assert result.compliant, (path.name, room.grid_id, result.compliance)
            metrics = result.metrics
            assert metrics["uniformity_u0"] >= metrics["uniformity_target"]


def test_a_narrow_classroom_gets_the_light_its_uniformity_needs():
    # 13 x 2 classroom under a 2.4 m ceiling: the lumen method asks 2 lights, which
    # leave U0 below 0.60 along the 7.8 m room; the repair adds what the rule needs
    room = make_room((13, 2), ceiling_height_m=2.4, room_type="classroom")
    assert required_lights(room, NFPA) == 2  # 300 x 9.36 / 1728 = 1.6
    result = complete_room(room)
    assert result.compliant, result.compliance
    assert result.metrics["lights"] > 2 and result.metrics["uniformity_u0"] >= 0.6
