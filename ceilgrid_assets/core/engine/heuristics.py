"""Rule-based placement: square arrays, greedy set cover, wall-aware spreading.

These are the building blocks the models and the shared repair step use. All
work on whole arrays: greedy gains are a correlation of the uncovered mask with
the coverage disk, updated only in the window around each pick.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, sparse

from ceilgrid_assets.core.engine.rules import EPSILON_M, uniformity_shortfall
from ceilgrid_assets.core.engine.stages import StageContext, disk_counts

#: A greedy round takes cells whose gain is at least this share of the best gain.
GREEDY_ROUND_SHARE = 1.0


def greedy_cover(
    uncovered: np.ndarray,
    candidates: np.ndarray,
    disk: np.ndarray,
    reach: sparse.csr_matrix | None = None,
) -> np.ndarray:
    """Greedy set cover: take the candidate cells that cover the most uncovered points.

    Batched: each round computes all gains with one correlation and takes, in
    order of gain, every cell within ``GREEDY_ROUND_SHARE`` of the best gain whose
    disk overlaps no other pick of the round (so its gain is still exact when
    taken). Points no candidate reaches stay uncovered; validation reports them.
    Deterministic: equal gains are taken in flat-index order. With ``reach``
    (``StageContext.reach``: in-room or spacing-method coverage, never beyond
    the disk) a pick clears the points it covers in that relation.
    """
    covers = reach.tocsc() if reach is not None else None
    reach = disk.shape[0] // 2
    height, width = uncovered.shape
    uncovered = uncovered.copy()
    picked = np.zeros_like(candidates)
    open_sites = candidates.copy()
    while uncovered.any():
        gains = disk_counts(uncovered, disk, covers)
        gains[~open_sites] = 0
        best = int(gains.max())
        if best == 0:
            return picked
        sites = np.flatnonzero(gains >= max(1, math.ceil(GREEDY_ROUND_SHARE * best)))
        sites = sites[np.argsort(-gains.ravel()[sites], kind="stable")]
        blocked = np.zeros_like(candidates)
        for flat in sites.tolist():
            y, x = divmod(flat, width)
            if blocked[y, x]:
                continue
            picked[y, x] = True
            open_sites[y, x] = False
            blocked[
                max(0, y - 2 * reach) : y + 2 * reach + 1, max(0, x - 2 * reach) : x + 2 * reach + 1
            ] = True
            if covers is not None:
                start, end = covers.indptr[flat], covers.indptr[flat + 1]
                uncovered.flat[covers.indices[start:end]] = False
                continue
            y0, x0 = max(0, y - reach), max(0, x - reach)
            y1, x1 = min(height, y + reach + 1), min(width, x + reach + 1)
            uncovered[y0:y1, x0:x1] &= ~disk[
                y0 - y + reach : y1 - y + reach, x0 - x + reach : x1 - x + reach
            ]
    return picked


#: Default weight of the wall distance in spreading: 2 would put devices half a
#: spacing from walls; a little more brings them closer, which lifts Emin at walls.
SPREAD_WALL_WEIGHT = 2.5


def spread(
    context: StageContext,
    devices: np.ndarray,
    candidates: np.ndarray,
    count: int,
    until_covered: bool = False,
    wall_weight: float = SPREAD_WALL_WEIGHT,
) -> np.ndarray:
    """Add devices one at a time where they are farthest from others and from walls.

    The merit of a cell is ``min(distance to nearest device, wall_weight x distance
    to wall)``, which makes an even array with about half a spacing at the walls. Adds until the
    type has ``count`` devices; with ``until_covered``, then keeps adding at the
    candidate cell nearest the worst-served uncovered point until coverage holds.

    A pick only changes cells closer to it than the best merit (or the coverage
    radius), so each update touches a window, not the whole room.
    """
    room = context.room
    height, width = room.cells.shape
    t = room.tile_size_m
    xs_m, ys_m = context.centres
    nearest = (
        ndimage.distance_transform_edt(~devices, sampling=t)
        if devices.any()
        else np.full(devices.shape, np.inf)
    )
    wall = wall_weight * context.wall_distance + t  # + t: toward the middle in tiny rooms
    added = np.zeros_like(devices)
    open_cells = candidates & ~devices
    radius = context.radius_m if until_covered else None
    merit = np.where(open_cells, np.minimum(nearest, wall), -np.inf)

    def place(y: int, x: int, reach_m: float) -> None:
        added[y, x] = True
        open_cells[y, x] = False
        reach = int(min(max(height, width), math.ceil(reach_m / t))) + 1
        window = (slice(max(0, y - reach), y + reach + 1), slice(max(0, x - reach), x + reach + 1))
        step = np.hypot(xs_m[window] - xs_m[y, x], ys_m[window] - ys_m[y, x])
        nearest[window] = np.minimum(nearest[window], step)
        merit[window] = np.where(
            open_cells[window], np.minimum(nearest[window], wall[window]), -np.inf
        )

    for _ in range(max(0, count - int(devices.sum()))):
        flat = int(np.argmax(merit))
        best = float(merit.flat[flat])
        if not np.isfinite(best):
            break
        place(*divmod(flat, width), max(best, radius or 0.0))
    if radius is None:
        return added
    uncovered = room.usable & (nearest > radius + EPSILON_M)
    near_y = near_x = None
    while uncovered.any() and open_cells.any():
        flat = int(np.argmax(np.where(uncovered, np.minimum(nearest, wall), -np.inf)))
        py, px = divmod(flat, width)
        if near_y is None or not open_cells[near_y[py, px], near_x[py, px]]:
            # Nearest free candidate of every cell; refreshed only when a pick used it up.
            _, (near_y, near_x) = ndimage.distance_transform_edt(~open_cells, return_indices=True)
        y, x = int(near_y[py, px]), int(near_x[py, px])
        if np.hypot(xs_m[y, x] - xs_m[py, px], ys_m[y, x] - ys_m[py, px]) > radius + EPSILON_M:
            uncovered[py, px] = False  # no free candidate reaches this point
            continue
        place(y, x, max(radius, float(np.max(merit))))
        uncovered &= nearest > radius + EPSILON_M
    return added


def array_shape(
    width_m: float, height_m: float, radius_m: float | None, count: int, max_columns: int
) -> tuple[int, int] | None:
    """Columns x rows of the smallest regular array meeting coverage and count.

    An array of ``nx`` x ``ny`` devices at the centres of equal cells covers the
    extent when the half-diagonal of a cell is within the radius. Every column
    count is tried at once; ties go to the most nearly square spacing. None when
    neither coverage nor a count asks for anything.
    """
    if radius_m is None and count <= 0:
        return None
    nx = np.arange(1, max(1, max_columns) + 1, dtype=np.float64)
    half_width = width_m / (2 * nx)
    if radius_m is None:
        rows_for_cover = np.ones_like(nx)
    else:
        slack = radius_m**2 - half_width**2
        with np.errstate(divide="ignore", invalid="ignore"):
            rows_for_cover = np.where(
                slack > 0, np.ceil(height_m / (2 * np.sqrt(slack)) - 1e-9), np.inf
            )
    ny = np.maximum(np.maximum(rows_for_cover, np.ceil(count / nx - 1e-9)), 1)
    devices = nx * ny
    with np.errstate(divide="ignore", invalid="ignore"):
        squareness = np.nan_to_num(np.abs(np.log((width_m / nx) / (height_m / ny))), nan=np.inf)
    best = np.lexsort((squareness, devices))[0]
    if not np.isfinite(devices[best]):
        return None
    return int(nx[best]), int(ny[best])


def array_layout(context: StageContext, count: int) -> np.ndarray:
    """The smallest regular array over the usable extent, snapped to the nearest allowed cells.

    The lumen-method array for lights; square-ish arrays for diffusers and detectors.
    """
    room = context.room
    usable, allowed = room.usable, context.allowed
    placed = np.zeros_like(allowed)
    if not allowed.any() or not usable.any():
        return placed
    t = room.tile_size_m
    rows, cols = np.nonzero(usable)
    x_lo, x_hi = cols.min() * t, (cols.max() + 1) * t
    y_lo, y_hi = rows.min() * t, (rows.max() + 1) * t
    shape = array_shape(
        x_hi - x_lo,
        y_hi - y_lo,
        context.radius_m,
        count,
        max_columns=int(cols.max() - cols.min() + 1),
    )
    if shape is None:
        return placed
    nx, ny = shape
    px = x_lo + (np.arange(nx) + 0.5) * (x_hi - x_lo) / nx
    py = y_lo + (np.arange(ny) + 0.5) * (y_hi - y_lo) / ny
    gx = np.clip((px / t).astype(int), 0, room.width - 1)
    gy = np.clip((py / t).astype(int), 0, room.height - 1)
    gyy, gxx = np.meshgrid(gy, gx, indexing="ij")
    distance, (near_y, near_x) = ndimage.distance_transform_edt(
        ~allowed, sampling=t, return_indices=True
    )
    reach = max((x_hi - x_lo) / nx, (y_hi - y_lo) / ny) / 2
    keep = usable[gyy, gxx] | (distance[gyy, gxx] <= reach)
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
            added = added | greedy_cover(
                uncovered, context.allowed & ~added, context.disk, context.reach
            )
    devices = context.existing | added
    if int(devices.sum()) < context.required_count:
        added = added | spread(context, devices, context.allowed, context.required_count)
    if context.component == "light":
        added = brighten(context, added)
    return added


def brighten(context: StageContext, added: np.ndarray) -> np.ndarray:
    """Add lights at the free cell nearest the darkest point until U0 meets its target.

    A light there usually lifts Emin more than Eavg; the loop ends when the rule
    holds or no free cell is left, so it always terminates.
    """
    added = added.copy()
    free = context.allowed & ~added
    while free.any():
        lux = uniformity_shortfall(context.room, context.profile, context.existing | added)
        if lux is None:
            break
        darkest = np.unravel_index(int(np.nanargmin(lux)), lux.shape)
        _, nearest = ndimage.distance_transform_edt(~free, return_indices=True)
        y, x = int(nearest[0][darkest]), int(nearest[1][darkest])
        added[y, x] = True
        free[y, x] = False
    return added
