"""The staggered model and its local improvement: hand-computed shapes, moves and prunes,
and fewer devices than the square array where coverage sets the count; the swap search
that brings greedy covers down to the lower bound."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from helpers import make_room

from ceilgrid_assets.core.engine.grid import INVALID, Room
from ceilgrid_assets.core.engine.heuristics import (
    _fewest_covering,
    drop_and_shift,
    fewer_by_swaps,
    greedy_cover,
    outline_pieces,
    prune,
    shift_cover,
    staggered_shape,
    swap_cover,
)
from ceilgrid_assets.core.engine.models import (
    ArrayModel,
    GreedyCoverModel,
    StaggeredModel,
    default_models,
)
from ceilgrid_assets.core.engine.pipeline import evaluate
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, get_profile
from ceilgrid_assets.core.engine.stages import build_context, dense_coverage

NFPA = get_profile("nfpa72")


def test_staggered_shape_matches_the_hand_computed_array():
    # 8 m x 20 m, radius 5 m. One column (half spacing a = 4): a row reaches
    # h = sqrt(25 - 16) = 3 across, rows may be r + h = 8 apart, so
    # 2*3 + 2*8 = 22 >= 20 needs 3 rows: 1 + 2 + 1 = 4 devices. Two columns:
    # a = 2, h = sqrt(21), 3 rows again: 2 + 3 + 2 = 7. Row scale 20 / 22.
    nx, ny, scale = staggered_shape(8.0, 20.0, 5.0, max_columns=10)
    assert (nx, ny) == (1, 3)
    assert scale == pytest.approx(20 / 22)


def test_staggered_shape_covers_its_rectangle():
    # Rebuild the points the shape stands for and check every point of a fine
    # sample of the rectangle lies within the radius of one of them.
    width, height, radius = 23.4, 17.4, 3.46
    nx, ny, scale = staggered_shape(width, height, radius, max_columns=40)
    half = width / (2 * nx)
    reach = math.sqrt(radius**2 - half**2)
    rows = [scale * reach + j * scale * (radius + reach) for j in range(ny)]
    points = [
        ((2 * i + 1 - j % 2) * half, y) for j, y in enumerate(rows) for i in range(nx + j % 2)
    ]
    xs, ys = np.meshgrid(np.linspace(0, width, 120), np.linspace(0, height, 90))
    nearest = np.min([np.hypot(xs - px, ys - py) for px, py in points], axis=0)
    assert nearest.max() <= radius + 1e-9
    assert len(points) == nx * ny + ny // 2


def test_outline_pieces_cut_an_l_shape_into_two_rectangles():
    usable = np.ones((6, 8), dtype=bool)
    usable[:3, 4:] = False  # the missing quarter of an L
    usable[4, 1] = False  # an enclosed column: filled, no extra piece
    by_rows, by_columns = outline_pieces(usable)
    assert by_rows == [(0, 2, 0, 3), (3, 5, 0, 7)]
    assert by_columns == [(0, 5, 0, 3), (3, 5, 4, 7)]


def strip_context(component: str, devices: list[int], length: int = 21):
    """A one-tile-wide strip (0.6 m tiles) and new devices of ``component`` at ``x``."""
    room = make_room((length, 1))
    context = build_context(component, room, NFPA)
    added = np.zeros_like(context.allowed)
    added[0, devices] = True
    return context, added


def test_prune_drops_devices_whose_points_others_cover():
    # Detector radius 6.4 m reaches 10 tiles (6.0 m). x=10 covers the whole strip,
    # so x=3 goes first (flat order among equals); x=17 is then still redundant.
    context, added = strip_context("smoke_detector", [3, 10, 17])
    kept = np.flatnonzero(prune(context, added)[0]).tolist()
    assert kept == [10]


def test_prune_keeps_the_count_rule():
    context, added = strip_context("smoke_detector", [3, 10, 17])
    context = replace(context, required_count=2)
    assert np.flatnonzero(prune(context, added)[0]).tolist() == [10, 17]


@pytest.mark.parametrize("component", ["smoke_detector", "air_supply", "light"])
def test_the_fewest_covering_devices_by_erosion_equal_the_dense_count(component):
    # The minimum filter prune uses without a coverage relation gives, for every new
    # device, the count the (points x devices) matrix gives: rooms with columns,
    # an obstacle and devices on random allowed cells.
    rng = np.random.default_rng(7)
    for _ in range(6):
        cells = np.zeros(tuple(rng.integers(8, 40, size=2)), dtype=np.uint8)
        cells[rng.random(cells.shape) < 0.08] = INVALID
        context = build_context(component, Room("r", cells), NFPA)
        assert context.reach is None
        added = context.allowed & (rng.random(cells.shape) < 0.1)
        if not added.any():
            continue
        counts = context.coverage_counts(context.existing | added)[context.room.usable]
        reaches = dense_coverage(context.room.usable, added, context.disk)
        dense = np.where(reaches, counts[:, None], np.iinfo(np.int32).max).min(axis=0)
        assert np.array_equal(_fewest_covering(context, added), dense)


def test_shift_cover_moves_a_device_instead_of_adding_one():
    # 25 tiles; devices at x=2 (covers 0..12) and x=12 (covers 2..22): 23 and 24
    # are uncovered. x=12 must keep 13..22 and take 23: the nearest cell doing
    # so is 13; then 24 moves it on to 14, which covers 4..24.
    context, added = strip_context("smoke_detector", [2, 12], length=25)
    assert context.uncovered(added).any()
    shifted = shift_cover(context, added)
    assert np.flatnonzero(shifted[0]).tolist() == [2, 14]
    assert not context.uncovered(shifted).any()


def test_drop_and_shift_removes_a_device_its_neighbour_can_replace():
    # 21 tiles; x=3 covers 0..13 and x=17 covers 7..20, each alone on 7 points.
    # Dropping x=3 (first of the tie) leaves 0..6; x=17 must keep 7..20 and take
    # 0, which only x=10 does (10 tiles either way): one device is left.
    context, added = strip_context("smoke_detector", [3, 17])
    assert np.flatnonzero(drop_and_shift(context, added)[0]).tolist() == [10]
    counted = replace(context, required_count=2)  # the count rule leaves no spare device
    assert np.flatnonzero(drop_and_shift(counted, added)[0]).tolist() == [3, 17]


def test_staggered_beats_the_square_array_for_detectors_in_a_hall():
    # 60 m x 48 m (1.2 m tiles): coverage sets the detector count.
    room = make_room((50, 40), tile_size_m=1.2, ceiling_height_m=4.5, room_type="lobby")
    context = build_context("smoke_detector", room, NFPA)
    array = evaluate(context, "array", ArrayModel().place(context), 0.0)
    staggered = evaluate(context, "staggered", StaggeredModel().place(context), 0.0)
    assert array.compliant and staggered.compliant
    assert staggered.devices < array.devices


def test_staggered_reaches_the_supply_count_rule_in_an_open_plan():
    # 36 m x 24 m: the count rule asks ceil(864 * 5 / 120) = 36 supplies; the
    # square array needs 40 to cover, the staggered layout meets the count.
    room = make_room((60, 40))
    context = build_context("air_supply", room, NFPA)
    assert context.required_count == 36
    array = evaluate(context, "array", ArrayModel().place(context), 0.0)
    staggered = evaluate(context, "staggered", StaggeredModel().place(context), 0.0)
    assert staggered.compliant
    assert staggered.devices == 36 < array.devices


def test_staggered_is_offered_for_detectors_and_supplies_only():
    (model,) = [m for m in default_models() if m.name == "staggered"]
    assert model.components == ("air_supply", "smoke_detector")
    assert not model.exact
    context = build_context("air_return", make_room((10, 10)), NFPA)
    assert StaggeredModel().place(context) is None


def test_staggered_leaves_rooms_the_optimiser_covers_to_it():
    room = make_room((20, 20))  # 400 usable cells: the exact optimiser competes
    context = build_context("smoke_detector", room, NFPA)
    assert StaggeredModel().place(context) is None
    assert "exact optimiser" in context.notes["staggered"]
    assert StaggeredModel(min_cells=399).place(context) is not None
    (model,) = [m for m in default_models(optimiser_max_cells=100) if m.name == "staggered"]
    assert model.min_cells == 100


def test_swap_cover_finds_the_cover_greedy_misses():
    # Points 0-5. Site 2 covers the most (0, 1, 3, 4), so greedy takes it and
    # needs two more; sites 0 and 1 alone cover everything.
    sites = [{0, 1, 2}, {3, 4, 5}, {0, 1, 3, 4}, {5}]
    cover = np.array([[point in site for site in sites] for point in range(6)])
    found = swap_cover(cover, np.array([True, False, True, True]), size=2)
    assert found is not None
    assert found.tolist() == [True, True, False, False]


def test_swap_cover_gives_up_below_the_optimum():
    # Each point has a site of its own: no three sites cover four points.
    cover = np.eye(4, dtype=bool)
    assert swap_cover(cover, np.ones(4, dtype=bool), size=3) is None


@pytest.mark.parametrize("shape", [(18, 14), (16, 12)])
def test_swaps_bring_a_greedy_supply_cover_down_to_the_lower_bound(shape):
    context = build_context("air_supply", make_room(shape), get_profile(DEFAULT_PROFILE))
    greedy = greedy_cover(context.open_points, context.allowed, context.disk, context.reach)
    assert int(greedy.sum()) > context.lower_bound  # greedy alone misses it here
    fewer = fewer_by_swaps(context, greedy)
    assert int(fewer.sum()) == context.lower_bound
    assert not (fewer & ~context.allowed).any()
    assert not context.uncovered(fewer).any()
    # the model proposes it, so the exact step has nothing left to win
    proposal = GreedyCoverModel().place(context)
    assert proposal is not None and context.is_optimal(int(proposal.sum()))
