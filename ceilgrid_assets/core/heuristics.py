"""Rule-based placement: square arrays, greedy set cover, wall-aware spreading.

These are the building blocks the models and the shared repair step use. All
work on whole arrays: greedy gains are a correlation of the uncovered mask with
the coverage disk, updated only in the window around each pick.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .stages import StageContext


def greedy_cover(uncovered: np.ndarray, candidates: np.ndarray, disk: np.ndarray) -> np.ndarray:
    """Greedy set cover: repeatedly take the candidate cell covering most uncovered points.

    Returns the mask of picked cells. Points no candidate reaches stay uncovered
    (the caller's validation reports them). Ties go to the lowest flat index,
    so the result is deterministic.
    """
    uncovered = uncovered.copy()
    picked = np.zeros_like(candidates)
    reach = disk.shape[0] // 2
    height, width = uncovered.shape
    gains = ndimage.correlate(uncovered.astype(np.int32), disk.astype(np.int32), mode="constant")
    gains[~candidates] = -1
    while True:
        flat = int(np.argmax(gains))
        if gains.flat[flat] <= 0:
            return picked
        y, x = divmod(flat, width)
        picked[y, x] = True
        # Points this pick covers.
        y0, y1 = max(0, y - reach), min(height, y + reach + 1)
        x0, x1 = max(0, x - reach), min(width, x + reach + 1)
        stencil = disk[y0 - y + reach:y1 - y + reach, x0 - x + reach:x1 - x + reach]
        uncovered[y0:y1, x0:x1] &= ~stencil
        # Gains change only within twice the reach of the pick.
        gy0, gy1 = max(0, y - 2 * reach), min(height, y + 2 * reach + 1)
        gx0, gx1 = max(0, x - 2 * reach), min(width, x + 2 * reach + 1)
        iy0, iy1 = max(0, gy0 - reach), min(height, gy1 + reach)
        ix0, ix1 = max(0, gx0 - reach), min(width, gx1 + reach)
        local = ndimage.correlate(uncovered[iy0:iy1, ix0:ix1].astype(np.int32),
                                  disk.astype(np.int32), mode="constant")
        window = local[gy0 - iy0:gy1 - iy0, gx0 - ix0:gx1 - ix0]
        gains[gy0:gy1, gx0:gx1] = np.where(candidates[gy0:gy1, gx0:gx1] & ~picked[gy0:gy1, gx0:gx1],
                                           window, -1)


def spread(context: StageContext, devices: np.ndarray, candidates: np.ndarray,
           count: int, until_covered: bool = False) -> np.ndarray:
    """Add devices one at a time where they are farthest from others and from walls.

    The merit of a cell is ``min(distance to nearest device, 2 x distance to wall)``,
    which makes an even array with half a spacing at the walls. Adds until the
    type has ``count`` devices and, with ``until_covered``, until coverage holds.
    """
    room = context.room
    height, width = room.cells.shape
    t = room.tile_size_m
    ys, xs = np.indices((height, width))
    xs_m, ys_m = (xs + 0.5) * t, (ys + 0.5) * t
    nearest = ndimage.distance_transform_edt(~devices, sampling=t) if devices.any() else np.full(
        devices.shape, np.inf)
    wall = 2 * context.wall_distance + t  # tie-break toward the middle in tiny rooms
    added = np.zeros_like(devices)
    total = int(devices.sum())
    open_cells = candidates & ~devices
    radius = context.radius_m
    uncovered = context.uncovered(devices) if until_covered and radius is not None else None
    while open_cells.any() and (
        total < count or (uncovered is not None and uncovered.any())
    ):
        merit = np.where(open_cells, np.minimum(nearest, wall), -np.inf)
        if uncovered is not None and total >= count:
            # Only cells that reach an uncovered point help now.
            reaches = ndimage.binary_dilation(uncovered, structure=context.disk)
            merit = np.where(reaches, merit, -np.inf)
            if not np.isfinite(merit).any():
                break
        flat = int(np.argmax(merit))
        y, x = divmod(flat, width)
        added[y, x] = True
        open_cells[y, x] = False
        total += 1
        step = np.hypot(xs_m - xs_m[y, x], ys_m - ys_m[y, x])
        nearest = np.minimum(nearest, step)
        if uncovered is not None:
            uncovered &= step > radius
    return added


def array_layout(context: StageContext, count: int) -> np.ndarray:
    """A square array over the usable extent, snapped to the nearest allowed cells.

    The spacing is the smaller of what coverage needs (radius x sqrt 2 covers a
    square lattice) and what the count needs (sqrt(area / count)).
    """
    room = context.room
    usable, allowed = room.usable, context.allowed
    if not allowed.any() or not usable.any():
        return np.zeros_like(allowed)
    t = room.tile_size_m
    spacings = []
    if context.radius_m is not None:
        spacings.append(context.radius_m * math.sqrt(2))
    if count > 0:
        spacings.append(math.sqrt(room.area_m2 / count))
    if not spacings:
        return np.zeros_like(allowed)
    spacing = max(min(spacings), t)
    rows, cols = np.nonzero(usable)
    x_lo, x_hi = cols.min() * t, (cols.max() + 1) * t
    y_lo, y_hi = rows.min() * t, (rows.max() + 1) * t
    nx = max(1, math.ceil((x_hi - x_lo) / spacing - 1e-9))
    ny = max(1, math.ceil((y_hi - y_lo) / spacing - 1e-9))
    px = x_lo + (np.arange(nx) + 0.5) * (x_hi - x_lo) / nx
    py = y_lo + (np.arange(ny) + 0.5) * (y_hi - y_lo) / ny
    gx = np.clip((px / t).astype(int), 0, room.width - 1)
    gy = np.clip((py / t).astype(int), 0, room.height - 1)
    gyy, gxx = np.meshgrid(gy, gx, indexing="ij")
    distance, (near_y, near_x) = ndimage.distance_transform_edt(
        ~allowed, sampling=t, return_indices=True)
    keep = usable[gyy, gxx] | (distance[gyy, gxx] <= spacing / 2)
    placed = np.zeros_like(allowed)
    placed[near_y[gyy, gxx][keep], near_x[gyy, gxx][keep]] = True
    return placed


def repair(context: StageContext, added: np.ndarray) -> np.ndarray:
    """Add devices until this stage's coverage and count hold (where cells allow).

    Coverage first by greedy set cover, then the count by spreading. Used after
    every model, so a learned model's near miss becomes a compliant layout.
    """
    added = added & context.allowed
    if context.radius_m is not None:
        uncovered = context.uncovered(context.existing | added)
        if uncovered.any():
            added = added | greedy_cover(uncovered, context.allowed & ~added, context.disk)
    devices = context.existing | added
    if int(devices.sum()) < context.required_count:
        added = added | spread(context, devices, context.allowed, context.required_count)
    return added
