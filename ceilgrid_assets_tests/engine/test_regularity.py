"""The regularity measure on layouts whose values are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ceilgrid_assets.core.engine.regularity import regularity


def mask(shape: tuple[int, int], cells: list[tuple[int, int]]) -> np.ndarray:
    """(height, width) mask with devices at ``(x, y)``."""
    devices = np.zeros(shape, dtype=bool)
    for x, y in cells:
        devices[y, x] = True
    return devices


def test_a_full_grid_at_an_even_pitch_is_perfectly_regular():
    grid = mask((9, 9), [(x, y) for x in (1, 4, 7) for y in (1, 4, 7)])
    measured = regularity(grid)
    assert measured.aligned == 1.0 and measured.spacing_cv == 0.0 and measured.score == 1.0


def test_a_single_line_is_as_aligned_as_a_corridor_allows():
    line = mask((2, 20), [(0, 0), (5, 0), (10, 0), (15, 0)])
    assert regularity(line).score == 1.0


def test_uneven_pitch_along_a_row():
    # Gaps 2 and 6 on one row: mean 4, population std 2, cv 0.5.
    row = mask((3, 12), [(0, 1), (2, 1), (8, 1)])
    measured = regularity(row)
    assert measured.aligned == 1.0
    assert measured.spacing_cv == pytest.approx(0.5)
    assert measured.score == pytest.approx(0.5)


def test_scattered_devices_share_few_lines():
    # (0,0) and (4,0) share row 0; (0,0) and (0,3) share column 0; (2,5) shares nothing.
    scattered = mask((6, 6), [(0, 0), (4, 0), (0, 3), (2, 5)])
    measured = regularity(scattered)
    assert measured.aligned == pytest.approx((2 / 4 + 2 / 4) / 2)
    # Row 0: gap 4; column 0: gap 3 -> mean 3.5, std 0.5.
    assert measured.spacing_cv == pytest.approx(0.5 / 3.5)


def test_fewer_than_two_devices_are_regular():
    assert regularity(mask((4, 4), [])).score == 1.0
    assert regularity(mask((4, 4), [(2, 2)])).score == 1.0


GRID = mask((9, 9), [(x, y) for x in (1, 4, 7) for y in (1, 4, 7)])  # score 1.0
SCATTERED = mask((6, 6), [(0, 0), (4, 0), (0, 3), (2, 5)])  # score 0.5 x (1 - 1/7)


def outcome(model: str, score: float, placed: np.ndarray, devices: int = 4):
    from ceilgrid_assets.core.engine.pipeline import CandidateOutcome

    added = np.ones((2, 2), dtype=bool)
    return CandidateOutcome(
        model, added, compliant=True, devices=devices, score=score, placed=placed
    )


def test_the_selector_prefers_the_regular_layout_at_equal_devices_and_quality():
    from ceilgrid_assets.core.engine.pipeline import select

    scattered, aligned = outcome("scattered", 0.712, SCATTERED), outcome("aligned", 0.709, GRID)
    assert aligned.regularity == 1.0 and scattered.regularity == pytest.approx(3 / 7)
    assert select([scattered, aligned]).model == "aligned"  # U0 equal to 0.01
    better_lit = outcome("better-lit", 0.80, SCATTERED)
    assert select([better_lit, aligned]).model == "better-lit"
    fewer = outcome("fewer", 0.5, SCATTERED, devices=3)
    assert select([aligned, fewer]).model == "fewer"  # devices first, always


def test_the_tie_break_order_is_a_profile_setting():
    from ceilgrid_assets.core.engine.pipeline import select

    better_lit, aligned = outcome("better-lit", 0.80, SCATTERED), outcome("aligned", 0.70, GRID)
    assert select([better_lit, aligned], ("quality", "regularity")).model == "better-lit"
    assert select([better_lit, aligned], ("regularity", "quality")).model == "aligned"


def test_metrics_report_regularity_per_device_type():
    from helpers import make_room

    from ceilgrid_assets.core.engine.profile import get_profile
    from ceilgrid_assets.core.engine.rules import layout_metrics

    room = make_room((12, 3), devices={"light": [(0, 1), (2, 1), (8, 1)]})
    metrics = layout_metrics(room, get_profile("nfpa72"))
    assert metrics["regularity"]["light"] == pytest.approx(0.5)
    assert metrics["regularity"]["smoke_detector"] == 1.0
