"""The shortcuts that keep very large rooms fast give the answers of the plain computation."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_room
from scipy import ndimage

from ceilgrid_assets.core.engine import heuristics, photometry, stages
from ceilgrid_assets.core.engine.heuristics import BlockArgmax, greedy_cover
from ceilgrid_assets.core.engine.photometry import illuminance_map, light_contribution, room_kernel
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import shortfall_of
from ceilgrid_assets.core.engine.stages import build_context, dense_coverage, disk_stencil


def test_block_argmax_is_numpy_argmax_under_window_updates(monkeypatch):
    monkeypatch.setattr(BlockArgmax, "SCAN_CELLS", 0)  # blocks even on small grids
    rng = np.random.default_rng(1)
    for _ in range(100):
        height, width = (int(n) for n in rng.integers(1, 60, size=2))
        # few distinct values: ties across blocks are the common case
        values = np.round(rng.random((height, width)) * 3)
        values[rng.random((height, width)) < 0.3] = -np.inf
        tracker = BlockArgmax(values)
        for _ in range(20):
            assert tracker.argmax() == int(np.argmax(values))
            assert tracker.max() == float(values.max())
            y, x, r = int(rng.integers(height)), int(rng.integers(width)), int(rng.integers(5))
            window = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
            fresh = np.round(rng.random(values[window].shape) * 3)
            values[window] = np.where(rng.random(fresh.shape) < 0.5, -np.inf, fresh)
            tracker.refresh(*window)


@pytest.mark.parametrize("stamped_points", [0, 10**9])  # always by FFT, always one by one
@pytest.mark.parametrize("radius_m", [1.3, 3.46, 6.4])
def test_greedy_cover_updates_gains_locally_as_a_full_recount_would(
    monkeypatch, radius_m, stamped_points
):
    rng = np.random.default_rng(7)
    disk = disk_stencil(radius_m, 0.6)
    for _ in range(15):
        height, width = (int(n) for n in rng.integers(5, 90, size=2))
        uncovered = rng.random((height, width)) < rng.random()
        candidates = rng.random((height, width)) < 0.8
        with monkeypatch.context() as patch:  # every round it can, updates around each pick
            patch.setattr(heuristics, "PICK_UPDATE_CELLS", 0)
            patch.setattr(heuristics, "STAMPED_POINTS", stamped_points)
            local = greedy_cover(uncovered, candidates, disk)
        with monkeypatch.context() as patch:  # every round recounts over the whole grid
            patch.setattr(heuristics, "LOCAL_UPDATE_SHARE", 0.0)
            full = greedy_cover(uncovered, candidates, disk)
        np.testing.assert_array_equal(local, full)


def test_one_more_light_adds_its_contribution_to_the_map():
    profile = get_profile("nfpa72")
    room = make_room((40, 30))
    lights = np.zeros(room.cells.shape, dtype=bool)
    lights[5::6, 4::6] = True
    before = illuminance_map(room, profile, lights)
    lights[13, 17] = True
    after = illuminance_map(room, profile, lights)
    np.testing.assert_allclose(before + light_contribution(room, profile, 13, 17), after, rtol=1e-9)


def test_brightening_reuses_its_distance_transform_and_places_the_same_lights(monkeypatch):
    """The nearest free cell stays the nearest while it is free (free cells only get
    fewer), so fewer transforms give the lights a fresh transform per light gives."""
    profile = get_profile("nfpa72")
    room = make_room((30, 22), invalid=[(7, 5), (19, 5), (7, 15), (19, 15)])
    context = build_context("light", room, profile)
    start = np.zeros(room.cells.shape, dtype=bool)
    start[11, 15] = True
    transforms = []
    real = ndimage.distance_transform_edt

    def counted(*args, **kwargs):
        transforms.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(heuristics.ndimage, "distance_transform_edt", counted)
    added = heuristics.brighten(context, start)
    monkeypatch.undo()
    # the loop as written before: one fresh transform for every light it adds
    reference, free = start.copy(), context.allowed & ~start
    while free.any():
        lux = illuminance_map(room, profile, context.existing | reference)
        dark = shortfall_of(room, profile, lux)
        if dark is None:
            break
        darkest = np.unravel_index(int(np.nanargmin(dark)), dark.shape)
        _, nearest = ndimage.distance_transform_edt(~free, return_indices=True)
        y, x = int(nearest[0][darkest]), int(nearest[1][darkest])
        reference[y, x], free[y, x] = True, False
    np.testing.assert_array_equal(added, reference)
    assert int(added.sum() - start.sum()) > len(transforms) > 0


@pytest.mark.parametrize("radius_m", [1.3, 3.46, 6.4])
def test_small_rooms_gather_coverage_from_the_grid_table_as_the_stencil_gives_it(radius_m):
    rng = np.random.default_rng(3)
    disk = disk_stencil(radius_m, 0.6)
    for _ in range(40):
        shape = tuple(int(n) for n in rng.integers(1, 33, size=2))
        points, sites = rng.random(shape) < 0.6, rng.random(shape) < 0.5
        gathered = dense_coverage(points, sites, disk)
        assert gathered.dtype == bool and gathered.flags.writeable
        assert np.array_equal(gathered, stages._stencil_coverage(points, sites, disk))


def test_memoised_illuminance_maps_equal_a_fresh_computation_and_are_read_only():
    profile = get_profile("nfpa72")
    rng = np.random.default_rng(5)
    room = make_room((14, 9), invalid=[(3, 3), (10, 5)])
    kernel = room_kernel(room, profile)
    for _ in range(3):  # the second and third rounds are served from the memo
        for _ in range(20):
            lights = (rng.random(room.cells.shape) < 0.1) & room.usable
            if not lights.any():
                continue
            served = illuminance_map(room, profile, lights)
            assert not served.flags.writeable
            fresh = photometry._illuminance(kernel, lights, room.usable)
            np.testing.assert_array_equal(served, fresh)
        rng = np.random.default_rng(5)
