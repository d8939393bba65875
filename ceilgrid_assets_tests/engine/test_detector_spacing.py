"""The NFPA 72 smooth-ceiling spacing method (profile ``nfpa72-spacing``, rule ``smoke.spacing``).

Hand-computed with 0.6 m tiles and S = 9.14 m: a tile counts as inside a
detector's square when all of it lies within S/2 = 4.57 m along both axes, i.e.
``|offset| * 0.6 + 0.3 <= 4.57``, so ``|offset| <= 7`` tiles (4.2 m + 0.3 m =
4.5 m; 8 tiles would be 5.1 m). One detector thus serves a 15 x 15 tile square
(9.0 m), and two squares that meet put their detectors 15 tiles = 9.0 m <= S apart.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import make_room, only, rect

from ceilgrid_assets.core.engine.grid import CODE, VOID
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room
from ceilgrid_assets.core.engine.profile import PROFILES, get_profile
from ceilgrid_assets.core.engine.rules import (
    narrow_cells,
    smoke_violations,
    spacing_half_tiles,
)

SPACING = get_profile("nfpa72-spacing")
RADIUS = get_profile("nfpa72")


def detectors(room, *cells):
    out = room.cells.copy()
    for x, y in cells:
        out[y, x] = CODE["smoke_detector"]
    return room.with_cells(out)


def test_profile_numbers_and_their_hand_computed_consequences():
    assert "nfpa72-spacing" in PROFILES
    assert SPACING.detector_method == "spacing" and RADIUS.detector_method == "radius"
    assert SPACING.listed_spacing_m == pytest.approx(9.144, abs=0.01)  # 30 ft
    assert SPACING.smoke_radius_m == pytest.approx(0.7 * 9.14, abs=0.01)  # 0.7 S = 6.40 m
    assert spacing_half_tiles(SPACING, 0.6) == 7
    assert spacing_half_tiles(SPACING, 1.0) == 4  # 4 m + 0.5 m <= 4.57 m; 5 m + 0.5 m is not
    # corridor allowance: along a 10 ft corridor the 0.7 S circle spans
    # 2 sqrt((0.7 S)^2 - (W/2)^2) = 12.43 m = 40.8 ft, the annex figure's 41 ft
    along = 2 * math.sqrt(
        (0.7 * SPACING.listed_spacing_m) ** 2 - (SPACING.corridor_width_m / 2) ** 2
    )
    assert along / 0.3048 == pytest.approx(41, abs=0.5)


def test_one_detector_serves_a_15_tile_square_room():
    room = detectors(make_room((15, 15)), (7, 7))
    assert smoke_violations(room, SPACING) == []


def test_a_16_tile_room_passes_the_radius_and_fails_the_spacing_method():
    # 9.6 m x 9.0 m, detector at (7, 7): farthest point (15, 0) is 0.6 * sqrt(8^2 + 7^2)
    # = 6.378 m <= 6.40 m, so the radius holds; but column 15 is 8 tiles from the
    # detector (its far wall 5.1 m away, more than S/2 = 4.57 m).
    room = detectors(make_room((16, 15)), (7, 7))
    assert smoke_violations(room, RADIUS) == []
    [violation] = smoke_violations(room, SPACING)
    assert violation.rule == "smoke.spacing"
    assert violation.cells == [[15, y] for y in range(15)]
    assert violation.message.startswith("15 coverage points")


def test_detectors_more_than_s_apart_leave_a_gap_between_their_squares():
    # 32 x 15 tiles: detectors at x = 7 and 23 are 16 tiles = 9.6 m > S apart;
    # their squares cover x 0..14 and 16..30, leaving columns 15 and 31.
    room = detectors(make_room((32, 15)), (7, 7), (23, 7))
    [violation] = only(smoke_violations(room, SPACING), "smoke.spacing")
    assert {x for x, _ in violation.cells} == {15, 31}
    # 15 tiles = 9.0 m apart (x = 7 and 22, and a third for column 30..31 at 29): compliant
    room = detectors(make_room((32, 15)), (7, 7), (22, 7), (29, 7))
    assert only(smoke_violations(room, SPACING), "smoke.spacing") == []


def test_corridor_allowance_lets_detectors_stand_farther_than_s_apart():
    # 40 x 5 tiles = 24 m x 3.0 m (narrower than 3.05 m: a corridor). Detectors at
    # x = 10 and 29, 19 tiles = 11.4 m apart (> S = 9.14 m). The 0.7 S radius
    # holds: the worst points are 0.6 * sqrt(10^2 + 2^2) = 6.12 m from a detector.
    corridor = detectors(make_room((40, 5)), (10, 2), (29, 2))
    assert smoke_violations(corridor, SPACING) == []
    # 6 tiles = 3.6 m wide is no corridor: columns 0..2, 18..21 and 37..39 fall
    # outside both squares (x 3..17 and 22..36).
    wide = detectors(make_room((40, 6)), (10, 2), (29, 2))
    [violation] = only(smoke_violations(wide, SPACING), "smoke.spacing")
    assert {x for x, _ in violation.cells} == {0, 1, 2, 18, 19, 20, 21, 37, 38, 39}


def test_narrow_cells_follow_the_arm_not_the_bounding_box():
    # An L of 0.6 m tiles: a 20 x 20 block with a 5-tile (3.0 m) wide arm below
    # it, 20 tiles long; the rest of the lower part is outside the room.
    cells = np.zeros((40, 20), dtype=np.uint8)
    cells[20:, 5:] = VOID
    narrow = narrow_cells(cells != VOID, 0.6, 3.05)
    assert narrow[20:, :5].all()  # the arm: rows 5 tiles wide
    assert not narrow[:20].any()  # the block: 20 tiles both ways
    assert not narrow[20:, 5:].any()  # outside the room


def test_radius_profile_never_reports_the_spacing_rule():
    room = detectors(make_room((40, 6)), (10, 2), (29, 2))
    assert only(smoke_violations(room, RADIUS), "smoke.spacing") == []


def test_the_detector_stage_meets_the_spacing_method():
    # the 16 x 15 room above: one detector meets the radius, the spacing method needs two
    room = make_room((16, 15))
    radius = complete_room(room, EngineConfig.create("nfpa72"))
    spaced = complete_room(room, EngineConfig.create("nfpa72-spacing"))
    assert radius.compliance["compliant"] and spaced.compliance["compliant"]
    assert (radius.room.count("smoke_detector"), spaced.room.count("smoke_detector")) == (1, 2)


def test_spacing_method_in_an_l_shaped_room_with_void_and_a_column():
    room = make_room((30, 30), invalid=rect(5, 20, 7, 22))
    cells = room.cells.copy()
    cells[:15, 15:] = VOID
    result = complete_room(room.with_cells(cells), EngineConfig.create("nfpa72-spacing"))
    assert result.compliance["compliant"], result.compliance["violations"]
