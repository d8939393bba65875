"""The rulebook validator (docs/rulebook.md) against hand-computed cases.

Defaults used throughout unless a test says otherwise: tile t = 0.6 m, ceiling
2.7 m so Hm = 1.9 m, profile nfpa72. Distances are between tile centres, so two
cells dx, dy tiles apart are t * sqrt(dx^2 + dy^2) metres apart.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import make_room, only, rect, reference_rule_ids, room_from_picture, rule_ids

from ceilgrid_assets.core.engine import photometry
from ceilgrid_assets.core.engine.grid import CODE
from ceilgrid_assets.core.engine.photometry import illuminance_map
from ceilgrid_assets.core.engine.profile import PROFILES, Profile, get_profile
from ceilgrid_assets.core.engine.rules import (
    RULE_IDS,
    check_layout,
    compliance_report,
    layout_metrics,
    light_violations,
    placement_violations,
    return_violations,
    smoke_violations,
    supply_violations,
)

NFPA = get_profile("nfpa72")
BS = get_profile("bs5839")


# ------------------------------------------------------------------ profile numbers


def test_rule_ids_are_the_nine_of_the_rulebook():
    assert set(RULE_IDS) == {
        "placement",
        "smoke.coverage",
        "smoke.spacing",
        "smoke.clearance",
        "light.count",
        "light.spacing",
        "light.uniformity",
        "supply.count",
        "supply.coverage",
        "return.count",
        "return.separation",
    }


def test_light_radius_is_2_02_m_at_a_2_7_m_ceiling():
    # SHR * Hm / sqrt(2) = 1.5 * 1.9 / 1.41421 = 2.01525 m
    assert NFPA.light_radius_m(2.7) == pytest.approx(2.01525, abs=1e-5)
    # 3.0 m ceiling: 1.5 * 2.2 / 1.41421 = 2.33345 m
    assert NFPA.light_radius_m(3.0) == pytest.approx(2.33345, abs=1e-5)


def test_supply_radius_is_3_46_m():
    # sqrt(120 / 5) / sqrt(2) = sqrt(12) = 3.4641 m
    assert NFPA.supply_radius_m == pytest.approx(3.46410, abs=1e-5)


def test_smoke_radius_differs_between_profiles():
    assert NFPA.smoke_radius_m == pytest.approx(6.40)  # 0.7 x 9.14 m
    assert BS.smoke_radius_m == pytest.approx(7.50)
    assert set(PROFILES) >= {"nfpa72", "bs5839"}


def test_unknown_profile_lists_known_ones():
    with pytest.raises(KeyError, match="nfpa72.*bs5839"):
        get_profile("iso9999")


@pytest.mark.parametrize(
    ("area_m2", "room_type", "expected"),
    [
        # F * UF * MF = 3600 * 0.6 * 0.8 = 1728 lm per fitting
        (36.0, "office", 11),  # 500 * 36 / 1728 = 10.42
        (36.0, "classroom", 7),  # 300 * 36 / 1728 = 6.25
        (36.0, "corridor", 3),  # 100 * 36 / 1728 = 2.08
        (36.0, "lobby", 5),  # 200 * 36 / 1728 = 4.17
        (17.28, "office", 5),  # 500 * 17.28 / 1728 = 5.0 exactly: not 6
        (3.24, "storage", 1),  # 100 * 3.24 / 1728 = 0.19
    ],
)
def test_lumen_method_count(area_m2, room_type, expected):
    assert NFPA.min_lights(area_m2, room_type) == expected


@pytest.mark.parametrize(
    ("area_m2", "expected"),
    [(0.36, 1), (24.0, 1), (25.0, 2), (36.0, 2), (48.0, 2), (48.5, 3)],  # ceil(A / 24), >= 1
)
def test_supply_count_formula(area_m2, expected):
    assert NFPA.min_supplies(area_m2) == expected


def test_no_supply_required_without_area():
    assert NFPA.min_supplies(0.0) == 0


@pytest.mark.parametrize(
    ("area_m2", "supplies", "expected"),
    [(8.99, 3, 0), (9.0, 1, 1), (9.0, 2, 1), (9.0, 3, 2), (36.0, 4, 2), (36.0, 5, 3)],
)
def test_return_count_formula(area_m2, supplies, expected):
    assert NFPA.min_returns(area_m2, supplies) == expected


# ------------------------------------------------------------------ placement


def test_placement_accepts_new_devices_on_empty_cells():
    original = make_room((4, 3), invalid=[(0, 0)], devices={"light": [(3, 2)]})
    completed = make_room(
        (4, 3), invalid=[(0, 0)], devices={"light": [(3, 2), (1, 1)], "smoke_detector": [(3, 0)]}
    )
    assert placement_violations(original, completed) == []


def test_placement_flags_a_removed_input_device():
    original = make_room((4, 3), devices={"air_supply": [(2, 1)]})
    completed = make_room((4, 3))
    [violation] = placement_violations(original, completed)
    assert violation.rule == "placement"
    assert violation.cells == [[2, 1]]


def test_placement_flags_a_replaced_input_device():
    original = make_room((4, 3), devices={"air_supply": [(2, 1)]})
    completed = make_room((4, 3), devices={"light": [(2, 1)]})
    assert placement_violations(original, completed)[0].cells == [[2, 1]]


def test_placement_flags_a_device_on_an_invalid_cell():
    original = make_room((4, 3), invalid=[(1, 2)])
    completed = make_room((4, 3), devices={"light": [(1, 2)]})
    assert placement_violations(original, completed)[0].cells == [[1, 2]]


def test_placement_flags_a_new_invalid_cell():
    original = make_room((4, 3))
    completed = make_room((4, 3), invalid=[(3, 0)])
    assert placement_violations(original, completed)[0].cells == [[3, 0]]


def test_placement_flags_a_different_grid_size():
    [violation] = placement_violations(make_room((4, 3)), make_room((3, 4)))
    assert violation.rule == "placement"
    assert "3x4" in violation.message and "4x3" in violation.message


def test_check_layout_applies_placement_only_with_an_original():
    original = make_room((3, 3), devices={"light": [(0, 0)]})
    completed = make_room((3, 3))
    assert "placement" in rule_ids(check_layout(completed, NFPA, original))
    assert "placement" not in rule_ids(check_layout(completed, NFPA))


# ------------------------------------------------------------------ smoke.coverage


@pytest.mark.parametrize(
    ("width", "profile", "uncovered"),
    [
        # tile 0.8 m, detector at x = 0; the cell at x = k is 0.8 k m away
        (9, NFPA, []),  # farthest x = 8: 6.4 m, exactly the radius
        (10, NFPA, [[9, 0]]),  # x = 9: 7.2 m > 6.4 m
        (10, BS, []),  # 7.2 m <= 7.5 m
        (11, BS, [[10, 0]]),  # x = 10: 8.0 m > 7.5 m
        (11, NFPA, [[9, 0], [10, 0]]),
    ],
)
def test_smoke_coverage_along_a_row(width, profile, uncovered):
    room = make_room((width, 1), devices={"smoke_detector": [(0, 0)]}, tile_size_m=0.8)
    found = only(smoke_violations(room, profile), "smoke.coverage")
    assert [v.cells for v in found] == ([uncovered] if uncovered else [])


def test_bs5839_radius_exactly_at_7_5_m():
    # tile 0.75 m: x = 10 is 7.5 m from the detector (covered), x = 11 is 8.25 m
    covered = make_room((11, 1), devices={"smoke_detector": [(0, 0)]}, tile_size_m=0.75)
    assert only(smoke_violations(covered, BS), "smoke.coverage") == []
    assert only(smoke_violations(covered, NFPA), "smoke.coverage")  # 7.5 m > 6.4 m
    beyond = make_room((12, 1), devices={"smoke_detector": [(0, 0)]}, tile_size_m=0.75)
    [violation] = only(smoke_violations(beyond, BS), "smoke.coverage")
    assert violation.cells == [[11, 0]]


def test_smoke_coverage_in_two_dimensions():
    # 12x12 at 0.6 m, detector at (0, 0): (dx^2 + dy^2) * 0.36 > 40.96 <=> dx^2 + dy^2 > 113.8
    room = make_room((12, 12), devices={"smoke_detector": [(0, 0)]})
    expected = sorted([x, y] for x in range(12) for y in range(12) if x * x + y * y > 113.77)
    [violation] = only(smoke_violations(room, NFPA), "smoke.coverage")
    assert sorted(violation.cells) == expected
    assert [11, 11] in expected and [10, 5] in expected  # 10^2 + 5^2 = 125 > 113.8
    assert [8, 7] not in expected  # 64 + 49 = 113 -> 6.38 m, covered


def test_no_detector_leaves_every_point_uncovered():
    room = make_room((3, 2), invalid=[(0, 0)])
    [violation] = only(smoke_violations(room, NFPA), "smoke.coverage")
    assert len(violation.cells) == 5  # invalid cells are not coverage points


def test_invalid_cells_need_no_coverage():
    room = make_room(
        (11, 1), invalid=[(10, 0), (9, 0)], devices={"smoke_detector": [(0, 0)]}, tile_size_m=0.8
    )
    assert only(smoke_violations(room, NFPA), "smoke.coverage") == []


# ------------------------------------------------------------------ smoke.clearance


@pytest.mark.parametrize(
    ("component", "x", "ok"),
    [
        # tile 0.5 m, detector at x = 0: device at x is 0.5 x metres away
        ("light", 1, False),  # 0.5 m < 1.0 m
        ("light", 2, True),  # 1.0 m, exactly the limit
        ("air_supply", 2, False),  # 1.0 m < 1.5 m
        ("air_supply", 3, True),  # 1.5 m, exactly the limit
        ("air_return", 2, False),
        ("air_return", 3, True),
    ],
)
def test_smoke_clearance_distances(component, x, ok):
    room = make_room(
        (8, 1), devices={"smoke_detector": [(0, 0)], component: [(x, 0)]}, tile_size_m=0.5
    )
    found = only(smoke_violations(room, NFPA), "smoke.clearance")
    if ok:
        assert found == []
    else:
        [violation] = found
        assert violation.cells == [[0, 0]]  # the detector is the offending cell


def test_smoke_clearance_diagonals():
    # tile 0.6: (1, 1) is 0.85 m from a light (< 1.0); (2, 1) is 1.34 m from a supply (< 1.5)
    near_light = make_room((5, 5), devices={"smoke_detector": [(0, 0)], "light": [(1, 1)]})
    assert only(smoke_violations(near_light, NFPA), "smoke.clearance")
    near_supply = make_room((5, 5), devices={"smoke_detector": [(0, 0)], "air_supply": [(2, 1)]})
    assert only(smoke_violations(near_supply, NFPA), "smoke.clearance")
    # (2, 2) is 1.70 m from a supply and (2, 0) 1.2 m from a light: both fine
    fine = make_room(
        (5, 5), devices={"smoke_detector": [(0, 0)], "air_supply": [(2, 2)], "light": [(2, 0)]}
    )
    assert only(smoke_violations(fine, NFPA), "smoke.clearance") == []


def test_smoke_clearance_reports_both_distances_separately():
    room = make_room(
        (8, 1),
        devices={"smoke_detector": [(3, 0)], "light": [(4, 0)], "air_supply": [(1, 0)]},
        tile_size_m=0.5,
    )
    found = only(smoke_violations(room, NFPA), "smoke.clearance")
    assert len(found) == 2
    messages = " | ".join(v.message for v in found)
    assert "1.50 m" in messages and "1.00 m" in messages


# ------------------------------------------------------------------ light.count


def test_light_count_fails_one_short_and_passes_at_the_count():
    # 8x6 at 0.6 m: 48 cells * 0.36 = 17.28 m2 -> 500 * 17.28 / 1728 = 5 lights exactly
    four = make_room((8, 6), devices={"light": [(1, 1), (6, 1), (1, 4), (6, 4)]})
    [violation] = only(light_violations(four, NFPA), "light.count")
    assert "4 lights" in violation.message and "5 required" in violation.message
    five = make_room((8, 6), devices={"light": [(1, 1), (6, 1), (1, 4), (6, 4), (3, 3)]})
    assert only(light_violations(five, NFPA), "light.count") == []


def test_light_count_depends_on_room_type():
    # 10x10 at 0.6 m = 36 m2: corridor needs ceil(100 * 36 / 1728) = 3
    lights = {"light": [(1, 1), (5, 5), (8, 8)]}
    corridor = make_room((10, 10), devices=lights, room_type="corridor")
    office = make_room((10, 10), devices=lights, room_type="office")
    assert only(light_violations(corridor, NFPA), "light.count") == []
    [violation] = only(light_violations(office, NFPA), "light.count")
    assert "11 required" in violation.message


def test_invalid_cells_do_not_count_towards_the_area():
    # 10x10 with a 5x10 invalid half: 50 * 0.36 = 18 m2 -> ceil(500 * 18 / 1728) = 6
    room = make_room(
        (10, 10),
        invalid=rect(5, 0, 10, 10),
        devices={"light": [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (0, 9)]},
    )
    assert room.area_m2 == pytest.approx(18.0)
    assert only(light_violations(room, NFPA), "light.count") == []


# ------------------------------------------------------------------ light.spacing


def test_light_spacing_square_of_uncovered_corners():
    # light at (0, 0), radius 2.015 m = 3.36 tiles: uncovered iff dx^2 + dy^2 > 11.28
    room = make_room((4, 4), devices={"light": [(0, 0)]})
    [violation] = only(light_violations(room, NFPA), "light.spacing")
    assert sorted(violation.cells) == [[2, 3], [3, 2], [3, 3]]


def test_light_spacing_ignores_invalid_points():
    room = make_room((4, 4), invalid=[(2, 3), (3, 2), (3, 3)], devices={"light": [(0, 0)]})
    assert only(light_violations(room, NFPA), "light.spacing") == []


@pytest.mark.parametrize(("width", "ok"), [(5, True), (6, False)])
def test_light_spacing_exactly_at_the_radius(width, ok):
    # ceiling chosen so that the radius is 2.4 m = 4 tiles of 0.6 m:
    # Hm = 2.4 * sqrt(2) / 1.5 = 2.2627, ceiling = 3.0627 m
    ceiling = 0.8 + 2.4 * math.sqrt(2) / 1.5
    room = make_room((width, 1), devices={"light": [(0, 0)]}, ceiling_height_m=ceiling)
    assert NFPA.light_radius_m(ceiling) == pytest.approx(2.4)
    found = only(light_violations(room, NFPA), "light.spacing")
    assert (found == []) is ok
    if not ok:
        assert found[0].cells == [[5, 0]]


def test_higher_ceiling_widens_light_spacing():
    # x = 4 is 2.4 m away: beyond 2.02 m at 2.7 m, within 2.68 m at 3.325 m (Hm 2.525)
    low = make_room((5, 1), devices={"light": [(0, 0)]}, ceiling_height_m=2.7)
    high = make_room((5, 1), devices={"light": [(0, 0)]}, ceiling_height_m=3.325)
    assert only(light_violations(low, NFPA), "light.spacing")[0].cells == [[4, 0]]
    assert only(light_violations(high, NFPA), "light.spacing") == []


# ------------------------------------------------------------------ supply.count / coverage


def test_supply_count_exactly_24_m2_needs_one():
    # tile 1.0 m: 6x4 = 24 m2 -> 5 * 24 / 120 = 1.0 -> 1 supply; 5x5 = 25 m2 -> 2
    one = make_room((6, 4), devices={"air_supply": [(2, 2)]}, tile_size_m=1.0)
    assert only(supply_violations(one, NFPA), "supply.count") == []
    short = make_room((5, 5), devices={"air_supply": [(2, 2)]}, tile_size_m=1.0)
    [violation] = only(supply_violations(short, NFPA), "supply.count")
    assert "1 air supplies" in violation.message and "2 required" in violation.message


def test_tiny_room_still_needs_a_supply():
    room = make_room((1, 1))
    [violation] = only(supply_violations(room, NFPA), "supply.count")
    assert "at least 1" in violation.message


@pytest.mark.parametrize(("width", "uncovered"), [(5, []), (6, [[5, 0]])])
def test_supply_coverage_exactly_at_the_radius(width, uncovered):
    # tile = sqrt(12) / 4 = 0.866 m, so x = 4 is exactly 3.4641 m from the supply at x = 0
    room = make_room((width, 1), devices={"air_supply": [(0, 0)]}, tile_size_m=math.sqrt(12) / 4)
    found = only(supply_violations(room, NFPA), "supply.coverage")
    assert [v.cells for v in found] == ([uncovered] if uncovered else [])


def test_supply_coverage_at_standard_tiles():
    # tile 0.6: x = 5 is 3.0 m (covered), x = 6 is 3.6 m (not)
    room = make_room((7, 1), devices={"air_supply": [(0, 0)]})
    assert only(supply_violations(room, NFPA), "supply.coverage")[0].cells == [[6, 0]]


# ------------------------------------------------------------------ return.count


def test_return_needed_from_exactly_9_m2():
    # 5x5 at 0.6 m = 25 * 0.36 = 9.0 m2: one supply -> ceil(1 / 2) = 1 return
    room = make_room((5, 5), devices={"air_supply": [(0, 0)]})
    assert room.area_m2 == pytest.approx(9.0)
    [violation] = only(return_violations(room, NFPA), "return.count")
    assert "0 air returns" in violation.message and "1 required" in violation.message
    with_return = make_room((5, 5), devices={"air_supply": [(0, 0)], "air_return": [(4, 4)]})
    assert only(return_violations(with_return, NFPA), "return.count") == []


def test_no_return_needed_below_9_m2():
    # one invalid cell: 24 * 0.36 = 8.64 m2 < 9
    room = make_room((5, 5), invalid=[(2, 2)], devices={"air_supply": [(0, 0)]})
    assert only(return_violations(room, NFPA), "return.count") == []


def test_return_count_is_half_the_supplies_rounded_up():
    # 10x10 at 0.6 m = 36 m2, 3 supplies -> 2 returns
    supplies = {"air_supply": [(0, 0), (9, 0), (0, 9)]}
    one = make_room((10, 10), devices={**supplies, "air_return": [(9, 9)]})
    [violation] = only(return_violations(one, NFPA), "return.count")
    assert "2 required" in violation.message
    two = make_room((10, 10), devices={**supplies, "air_return": [(9, 9), (5, 5)]})
    assert only(return_violations(two, NFPA), "return.count") == []


# ------------------------------------------------------------------ return.separation


@pytest.mark.parametrize(
    ("tile", "return_at", "ok"),
    [
        (0.6, (3, 0), True),  # 1.8 m, exactly the limit
        (0.6, (2, 2), False),  # 0.6 * sqrt(8) = 1.70 m
        (0.6, (2, 1), False),  # 1.34 m
        (0.6, (3, 1), True),  # 0.6 * sqrt(10) = 1.90 m
        (0.9, (2, 0), True),  # 1.8 m
        (0.9, (1, 1), False),  # 1.27 m
    ],
)
def test_return_separation(tile, return_at, ok):
    room = make_room(
        (4, 3), devices={"air_supply": [(0, 0)], "air_return": [return_at]}, tile_size_m=tile
    )
    found = only(return_violations(room, NFPA), "return.separation")
    if ok:
        assert found == []
    else:
        assert found[0].cells == [list(return_at)]


# ------------------------------------------------------------------ whole layouts

COMPLIANT_5X5 = """
    L . . . S
    . . . . .
    . . D . L
    . . . . .
    R L . . .
"""
# 5x5 at 0.6 m = 9 m2 office: lights >= ceil(500 * 9 / 1728) = 3, supplies >= 1,
# returns >= ceil(1 / 2) = 1 because A >= 9 m2.
# Light spacing: radius 2.015 m = 3.36 tiles, so a point is covered when
# dx^2 + dy^2 <= 11.28 for some light. Row by row, (0, 0) covers x <= 3 in rows 0-1,
# (4, 2) covers x >= 2 in rows 0 and 4 and x >= 1 in rows 1-3, (1, 4) covers rows 3-4.
# Supply (4, 0) reaches the far corner (0, 4) at 0.6 * sqrt(32) = 3.39 m <= 3.46 m.
# Return (0, 4) is 3.39 m from the supply (>= 1.8 m).
# Detector (2, 2): 1.70 m from supply and return (>= 1.5), >= 1.2 m from every light
# (>= 1.0), and no point is farther than 1.70 m from it.


def test_a_hand_made_layout_is_compliant():
    room = room_from_picture(COMPLIANT_5X5)
    assert check_layout(room, NFPA) == []
    assert check_layout(room, BS) == []
    report = compliance_report(room, NFPA)
    assert report == {"compliant": True, "profile": "nfpa72", "violations": []}


@pytest.mark.parametrize(
    ("change", "broken"),
    [
        # detector moved next to the light at (4, 2) and 1.34 m from the supply
        (lambda p: p.replace(". . D . L", ". . . D L"), {"smoke.clearance"}),
        # without the return the 9 m2 room lacks one
        (lambda p: p.replace("R L", ". L"), {"return.count"}),
        # return moved to (2, 0), 1.2 m from the supply and 1.2 m from the detector
        (
            lambda p: p.replace("R L", ". L").replace("L . . . S", "L . R . S"),
            {"return.separation", "smoke.clearance"},
        ),
        # without the light at (4, 2): 2 < 3 lights, (4, 0) is 2.4 m from (0, 0), and
        # U0 over the inner 3 x 3 points falls from 0.91 to 0.58 < 0.60 (dark at (3, 1))
        (
            lambda p: p.replace(". . D . L", ". . D . ."),
            {"light.count", "light.spacing", "light.uniformity"},
        ),
        # without the detector
        (lambda p: p.replace("D", "."), {"smoke.coverage"}),
        # without the supply: count, coverage, and 0 supplies need 0 returns
        (lambda p: p.replace("L . . . S", "L . . . ."), {"supply.count", "supply.coverage"}),
    ],
)
def test_breaking_a_compliant_layout_breaks_exactly_the_expected_rules(change, broken):
    room = room_from_picture(change(COMPLIANT_5X5))
    assert rule_ids(check_layout(room, NFPA)) == broken


def test_compliance_report_of_a_bad_layout():
    room = room_from_picture("""
        D L .
        . . .
    """)
    report = compliance_report(room, BS)
    assert report["compliant"] is False and report["profile"] == "bs5839"
    rules = rule_ids(report["violations"])
    # 6 cells * 0.36 = 2.16 m2: one light suffices, no return needed
    assert rules == {"smoke.clearance", "supply.count", "supply.coverage"}
    for violation in report["violations"]:
        assert set(violation) == {"rule", "message", "cells"}
        assert "\n" not in violation["message"]


def test_room_without_coverage_points_is_trivially_compliant():
    room = make_room((4, 4), invalid=rect(0, 0, 4, 4))
    assert check_layout(room, NFPA) == []
    assert check_layout(room, NFPA, original=room) == []


def test_violation_cell_lists_are_capped():
    # 40x40 without devices: 1600 uncovered points, at most 200 listed
    room = make_room((40, 40))
    [violation] = only(smoke_violations(room, NFPA), "smoke.coverage")
    assert len(violation.cells) == 200
    assert "1600" in violation.message


@pytest.mark.parametrize("seed", range(6))
def test_validator_agrees_with_a_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    width, height = rng.integers(1, 15, size=2)
    cells = rng.choice(6, size=(height, width), p=[0.6, 0.1, 0.1, 0.08, 0.06, 0.06])
    room = make_room(
        (int(width), int(height)),
        tile_size_m=float(rng.choice([0.5, 0.6, 1.2])),
        room_type=str(rng.choice(["office", "corridor", "storage"])),
    )
    room = room.with_cells(cells.astype(np.uint8))
    for profile in (NFPA, BS):
        assert rule_ids(check_layout(room, profile)) == reference_rule_ids(room, profile)


def test_profile_is_one_object_and_parameters_flow_through():
    # A custom profile with a larger detector radius changes the verdict without code changes.
    wide = Profile(name="wide", smoke_radius_m=9.0)
    room = make_room((12, 1), devices={"smoke_detector": [(0, 0)]}, tile_size_m=0.8)
    assert only(smoke_violations(room, NFPA), "smoke.coverage")  # 8.8 m > 6.4 m
    assert only(smoke_violations(room, wide), "smoke.coverage") == []  # 8.8 m <= 9.0 m


# ------------------------------------------------------------------ photometry


def _direct(hm: float, flux: float = 3600.0, mf: float = 0.8) -> float:
    return flux * mf / (math.pi * hm * hm)


def test_illuminance_directly_below_a_single_fitting():
    # E = F * MF / (pi * h^2) = 2880 / (pi * 1.9^2) = 253.94 lx
    room = make_room((1, 1), devices={"light": [(0, 0)]})
    lux = illuminance_map(room, NFPA)
    assert _direct(1.9) == pytest.approx(253.94, abs=0.01)
    assert lux[0, 0] == pytest.approx(253.94, abs=0.01)


def test_illuminance_off_axis_uses_cos4():
    # one tile (0.6 m) aside: cos^2 = 3.61 / (3.61 + 0.36) = 0.90932, cos^4 = 0.82686
    room = make_room((2, 1), devices={"light": [(0, 0)]})
    lux = illuminance_map(room, NFPA)
    assert lux[0, 1] == pytest.approx(253.94 * 0.82686, rel=1e-4)  # 209.97 lx


def test_illuminance_adds_up_and_skips_invalid_cells():
    room = make_room((3, 1), invalid=[(2, 0)], devices={"light": [(0, 0), (1, 0)]})
    lux = illuminance_map(room, NFPA)
    assert lux[0, 0] == pytest.approx(lux[0, 1])  # symmetric pair
    assert lux[0, 0] == pytest.approx(253.94 + 209.97, abs=0.05)
    assert np.isnan(lux[0, 2])


def test_illuminance_at_a_higher_ceiling():
    # ceiling 3.8 m: Hm = 3.0 m, E = 2880 / (9 pi) = 101.86 lx
    room = make_room((1, 1), devices={"light": [(0, 0)]}, ceiling_height_m=3.8)
    assert illuminance_map(room, NFPA)[0, 0] == pytest.approx(101.86, abs=0.01)


def test_illuminance_direct_sum_and_fft_agree(monkeypatch):
    rng = np.random.default_rng(5)
    invalid = [(int(x), int(y)) for x, y in rng.integers(0, 12, size=(10, 2))]
    lights = [(int(x), int(y)) for x, y in rng.integers(0, 12, size=(25, 2))]
    room = make_room(
        (12, 12),
        invalid=invalid,
        devices={"light": [cell for cell in lights if cell not in invalid]},
    )
    direct = illuminance_map(room, NFPA)
    monkeypatch.setattr(photometry, "DIRECT_ILLUMINANCE_PAIRS", 0)
    by_fft = illuminance_map(room, NFPA)
    np.testing.assert_allclose(direct, by_fft, rtol=1e-9, atol=1e-9)  # NaNs in the same cells


def test_metrics_average_and_uniformity():
    # 2x1 room, one light: 253.94 and 209.97 lx -> average 231.95, U0 = 209.97 / 231.95
    room = make_room((2, 1), devices={"light": [(0, 0)], "air_supply": [(1, 0)]})
    metrics = layout_metrics(room, NFPA)
    assert metrics["lights"] == 1 and metrics["air_supply"] == 1
    assert metrics["air_return"] == 0 and metrics["smoke_detector"] == 0
    assert metrics["illuminance_avg_lx"] == pytest.approx(231.95, abs=0.1)
    assert metrics["uniformity_u0"] == pytest.approx(0.9052, abs=0.001)
    assert metrics["uniformity_target"] == pytest.approx(0.6)
    assert metrics["area_m2"] == pytest.approx(0.72)


def test_metrics_without_lights_and_uniformity_targets():
    room = make_room((3, 3), room_type="corridor")
    metrics = layout_metrics(room, NFPA)
    assert metrics["illuminance_avg_lx"] == 0 and metrics["uniformity_u0"] == 0
    assert metrics["uniformity_target"] == pytest.approx(0.4)
    assert NFPA.target_u0("meeting") == pytest.approx(0.6)


def test_component_codes_match_the_format():
    assert [
        CODE[n] for n in ("empty", "invalid", "light", "air_supply", "air_return", "smoke_detector")
    ] == [0, 1, 2, 3, 4, 5]
