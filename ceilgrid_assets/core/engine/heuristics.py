"""Rule-based placement: square arrays, greedy set cover, wall-aware spreading.

These are the building blocks the models and the shared repair step use. All
work on whole arrays: greedy gains are a correlation of the uncovered mask with
the coverage disk, updated only in the window around each pick.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, sparse

from ceilgrid_assets.core.engine.photometry import fft_convolve, illuminance_map, light_contribution
from ceilgrid_assets.core.engine.rules import EPSILON_M, shortfall_of
from ceilgrid_assets.core.engine.stages import (
    StageContext,
    dense_coverage,
    disk_counts,
    stencil_window,
)

#: A greedy round takes cells whose gain is at least this share of the best gain.
GREEDY_ROUND_SHARE = 1.0
#: Greedy gains are updated around each pick while the windows touched stay under
#: this share of the grid; beyond, one FFT recounts the whole grid (same result).
LOCAL_UPDATE_SHARE = 1.0
#: ... counting each pick's update as this many cells more than its window: the
#: fixed cost of a small FFT call, so a round of thousands of picks in a large room
#: is one recount instead of thousands of calls (2.9 s of 9 s in a 500x500 room).
PICK_UPDATE_CELLS = 4_096


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
    picked = np.zeros(candidates.shape, dtype=bool)
    open_sites = candidates.copy()
    counts = disk_counts(uncovered, disk, covers)
    while np.count_nonzero(uncovered):
        gains = np.where(open_sites, counts, 0)
        best = int(np.maximum.reduce(gains, axis=None))
        if best == 0:
            return picked
        sites = (gains >= max(1, math.ceil(GREEDY_ROUND_SHARE * best))).ravel().nonzero()[0]
        sites = sites[(-gains.ravel()[sites]).argsort(kind="stable")]
        blocked = np.zeros(candidates.shape, dtype=bool)
        picks: list[tuple[int, int]] = []
        for flat in sites.tolist():
            y, x = divmod(flat, width)
            if blocked[y, x]:
                continue
            picked[y, x] = True
            open_sites[y, x] = False
            blocked[
                max(0, y - 2 * reach) : y + 2 * reach + 1, max(0, x - 2 * reach) : x + 2 * reach + 1
            ] = True
            picks.append((y, x))
        if covers is not None:
            for y, x in picks:
                start, end = covers.indptr[y * width + x], covers.indptr[y * width + x + 1]
                uncovered.flat[covers.indices[start:end]] = False
            counts = disk_counts(uncovered, disk, covers)
        elif (
            len(picks) * ((4 * reach + 1) ** 2 + PICK_UPDATE_CELLS)
            < LOCAL_UPDATE_SHARE * uncovered.size
        ):
            # Few picks: update the counts around each (disks of a round are disjoint).
            for y, x in picks:
                take_disk_points(uncovered, counts, disk, y, x)
        else:
            for y, x in picks:
                take_disk_points(uncovered, None, disk, y, x)
            counts = disk_counts(uncovered, disk)
    return picked


#: Swap moves :func:`swap_cover` may make to find a cover one site smaller (its
#: deterministic work budget), moves a removed site stays out, and the largest
#: (open points x allowed sites) problem it takes on (a dense matrix).
SWAP_MAX_MOVES = 60
SWAP_TABU_MOVES = 3
SWAP_MAX_PAIRS = 250_000


def swap_cover(cover: np.ndarray, chosen: np.ndarray, size: int) -> np.ndarray | None:
    """``size`` sites (columns) covering every row of a dense ``cover``, or None.

    Point-weighted local search from the sites ``chosen``: the chosen site
    covering the least weight alone goes until ``size`` are left; then each move
    swaps the chosen and free site that leave the least weight uncovered, and
    every point still uncovered gains weight, so the search leaves plateaus
    instead of circling. A site just removed stays out for ``SWAP_TABU_MOVES``
    moves. Deterministic: ties go to the lowest indices. Finds in a millisecond
    the covers at the count rule that greedy misses by a device or two.
    """
    columns = np.asarray(cover, dtype=np.float32)  # no copy when the caller converted it
    weight = np.ones(cover.shape[0], dtype=np.float32)
    chosen = chosen.copy()
    times = columns @ chosen.astype(np.float32)
    while np.count_nonzero(chosen) > size:
        alone = (weight * (times == 1)) @ columns
        site = int(chosen.nonzero()[0][alone[chosen].argmin()])
        chosen[site] = False
        times -= columns[:, site]
    back_at = np.zeros(cover.shape[1], dtype=np.int64)  # a removed site may return from this move
    for move in range(SWAP_MAX_MOVES):
        uncovered = times == 0
        if not np.count_nonzero(uncovered):
            return chosen
        inside = chosen.nonzero()[0]
        # Weight each free site would cover, and for each chosen site the weight
        # only it covers and how much of that each free site would take over.
        gain = (weight * uncovered) @ columns
        lone = columns[:, inside] * (weight * (times == 1))[:, None]
        net = gain[None, :] + lone.T @ columns - np.add.reduce(lone, axis=0)[:, None]
        net[:, chosen | (back_at > move)] = -np.inf
        if not np.count_nonzero(np.isfinite(net)):
            return None
        out, site = divmod(int(net.argmax()), cover.shape[1])
        chosen[inside[out]], chosen[site] = False, True
        times += columns[:, site] - columns[:, inside[out]]
        back_at[inside[out]] = move + 1 + SWAP_TABU_MOVES
        weight[times == 0] += 1
    return chosen if not np.count_nonzero(times == 0) else None


def fewer_by_swaps(context: StageContext, added: np.ndarray) -> np.ndarray:
    """``added`` (a cover of the open points) made smaller one device at a time by
    :func:`swap_cover`, down to the stage's lower bound, while swaps find one.

    Stages whose coverage problem is larger than ``SWAP_MAX_PAIRS`` pairs, or
    with points no allowed cell reaches, are returned unchanged.
    """
    existing = int(np.count_nonzero(context.existing))
    n_open = int(np.count_nonzero(context.open_points))
    n_sites = int(np.count_nonzero(context.allowed))
    if context.radius_m is None or not n_open or n_open * n_sites > SWAP_MAX_PAIRS:
        return added
    if context.is_optimal(existing + int(np.count_nonzero(added))):  # the cheap bound first
        return added
    if not context.open_cover.any(axis=1).all():
        return added
    cover = context.open_cover.astype(np.float32)  # once for every size tried
    floor = context.lower_bound - existing
    chosen = added[context.allowed]
    while np.count_nonzero(chosen) > floor:
        smaller = swap_cover(cover, chosen, int(np.count_nonzero(chosen)) - 1)
        if smaller is None:
            break
        chosen = smaller
    result = np.zeros_like(added)
    result[context.allowed] = chosen
    return result


#: Up to this many points taken by one pick, their disks are subtracted one by one;
#: more, by one small FFT convolution (which costs a quarter of a millisecond).
STAMPED_POINTS = 24


def take_disk_points(
    uncovered: np.ndarray, counts: np.ndarray | None, disk: np.ndarray, y: int, x: int
) -> None:
    """Mark the uncovered points in the disk around (y, x) covered and take them off
    ``counts`` (uncovered points within the disk of each cell), in a window only.

    Equal to recounting with :func:`~.stages.disk_counts`, at the cost of the
    window: how a one-at-a-time cover (greedy, a learned decoder) keeps its gains.
    """
    reach = disk.shape[0] // 2
    rows, cols, s_rows, s_cols = stencil_window(uncovered.shape, y, x, reach)
    stencil = disk[s_rows, s_cols]
    taken = uncovered[rows, cols] & stencil
    uncovered[rows, cols] &= ~stencil
    if counts is None or not np.count_nonzero(taken):
        return
    # Each taken point leaves the count of every cell within the disk around it:
    # a few are stamped one by one, more at once by one convolution (same counts).
    taken_y, taken_x = np.nonzero(taken)
    if taken_y.size <= STAMPED_POINTS:
        for py, px in zip(
            (taken_y + rows.start).tolist(), (taken_x + cols.start).tolist(), strict=True
        ):
            c_rows, c_cols, d_rows, d_cols = stencil_window(counts.shape, py, px, reach)
            counts[c_rows, c_cols] -= disk[d_rows, d_cols]
        return
    height, width = uncovered.shape
    delta = np.rint(fft_convolve(taken.astype(np.float64), disk.astype(np.float64)))
    top, left = rows.start - reach, cols.start - reach  # the cell of delta[0, 0]
    cy0, cx0 = max(0, top), max(0, left)
    cy1, cx1 = min(height, top + delta.shape[0]), min(width, left + delta.shape[1])
    counts[cy0:cy1, cx0:cx1] -= delta[cy0 - top : cy1 - top, cx0 - left : cx1 - left].astype(
        counts.dtype
    )


class BlockArgmax:
    """``np.argmax`` of a 2-D array that changes in windows, without a full scan per query.

    Keeps, for every ``BLOCK`` x ``BLOCK`` block, its maximum and the flat
    index of its first maximum; a query takes the smallest such index among
    the blocks holding the top value. That is exactly ``np.argmax`` (first in
    row-major order: row-major order inside a block agrees with the whole
    array's). Spreading thousands of lights in a 500x500-tile room no longer
    scans the room per light.
    """

    BLOCK = 16
    #: Grids up to this many cells are simply scanned (cheaper than keeping blocks).
    SCAN_CELLS = 4_096

    def __init__(self, values: np.ndarray) -> None:
        self.values = values  # the caller's array: call refresh() after changing a window
        height, width = values.shape
        b = self.BLOCK
        blocks = (-(-height // b), -(-width // b))
        self.padded = np.full((blocks[0] * b, blocks[1] * b), -np.inf)
        self.block_max = np.full(blocks, -np.inf)
        self.block_first = np.zeros(blocks, dtype=np.int64)
        self.refresh(slice(0, height), slice(0, width))

    def refresh(self, rows: slice, cols: slice) -> None:
        """Take in ``values[rows, cols]`` again (slices with non-negative starts)."""
        if self.values.size <= self.SCAN_CELLS:
            return
        b = self.BLOCK
        height, width = self.values.shape
        by0, by1 = rows.start // b, -(-min(rows.stop, height) // b)
        bx0, bx1 = cols.start // b, -(-min(cols.stop, width) // b)
        y0, y1 = by0 * b, min(by1 * b, height)
        x0, x1 = bx0 * b, min(bx1 * b, width)
        self.padded[y0:y1, x0:x1] = self.values[y0:y1, x0:x1]
        blocks = (
            self.padded[by0 * b : by1 * b, bx0 * b : bx1 * b]
            .reshape(by1 - by0, b, bx1 - bx0, b)
            .transpose(0, 2, 1, 3)
            .reshape(by1 - by0, bx1 - bx0, b * b)
        )
        local = blocks.argmax(axis=2)
        self.block_max[by0:by1, bx0:bx1] = blocks.max(axis=2)
        row = np.arange(by0, by1)[:, None] * b + local // b
        col = np.arange(bx0, bx1)[None, :] * b + local % b
        self.block_first[by0:by1, bx0:bx1] = row * width + col

    def max(self) -> float:
        if self.values.size <= self.SCAN_CELLS:
            return float(self.values.max())
        return float(self.block_max.max())

    def argmax(self) -> int:
        """Flat index of the first maximum of ``values``."""
        if self.values.size <= self.SCAN_CELLS:
            return int(self.values.argmax())
        return int(self.block_first[self.block_max == self.block_max.max()].min())


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
    column_xs, row_ys = xs_m[0], ys_m[:, 0]
    nearest = (
        ndimage.distance_transform_edt(~devices, sampling=t)
        if np.count_nonzero(devices)
        else np.full(devices.shape, np.inf)
    )
    wall = wall_weight * context.wall_distance + t  # + t: toward the middle in tiny rooms
    added = np.zeros_like(devices)
    open_cells = candidates & ~devices
    radius = context.radius_m if until_covered else None
    merit = np.where(open_cells, np.minimum(nearest, wall), -np.inf)
    best_merit = BlockArgmax(merit)

    def place(y: int, x: int, reach_m: float) -> None:
        added[y, x] = True
        open_cells[y, x] = False
        reach = int(min(max(height, width), math.ceil(reach_m / t))) + 1
        rows, cols = (
            slice(max(0, y - reach), y + reach + 1),
            slice(max(0, x - reach), x + reach + 1),
        )
        # Centres along one row and one column, broadcast: the same values as the grids'.
        step = np.hypot(column_xs[cols] - column_xs[x], (row_ys[rows] - row_ys[y])[:, None])
        near, window_merit = nearest[rows, cols], merit[rows, cols]  # views, updated in place
        np.minimum(near, step, out=near)
        np.minimum(near, wall[rows, cols], out=window_merit)
        window_merit[~open_cells[rows, cols]] = -np.inf
        best_merit.refresh(rows, cols)

    for _ in range(max(0, count - int(np.count_nonzero(devices)))):
        flat = best_merit.argmax()
        best = float(merit.flat[flat])
        if not math.isfinite(best):
            break
        place(*divmod(flat, width), max(best, radius or 0.0))
    if radius is None:
        return added
    uncovered = room.usable & (nearest > radius + EPSILON_M)
    near_y = near_x = None
    while np.count_nonzero(uncovered) and np.count_nonzero(open_cells):
        flat = int(np.argmax(np.where(uncovered, np.minimum(nearest, wall), -np.inf)))
        py, px = divmod(flat, width)
        if near_y is None or not open_cells[near_y[py, px], near_x[py, px]]:
            # Nearest free candidate of every cell; refreshed only when a pick used it up.
            _, (near_y, near_x) = ndimage.distance_transform_edt(~open_cells, return_indices=True)
        y, x = int(near_y[py, px]), int(near_x[py, px])
        if np.hypot(xs_m[y, x] - xs_m[py, px], ys_m[y, x] - ys_m[py, px]) > radius + EPSILON_M:
            uncovered[py, px] = False  # no free candidate reaches this point
            continue
        place(y, x, max(radius, best_merit.max()))
        uncovered &= nearest > radius + EPSILON_M
    return added


_LARGEST = np.finfo(np.float64).max


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
        squareness = np.abs(np.log((width_m / nx) / (height_m / ny)))
    # As np.nan_to_num(nan=inf) would (an infinite ratio counts as the largest finite
    # one, undefined as worse still), in a third of its time.
    squareness = np.where(np.isnan(squareness), np.inf, np.minimum(squareness, _LARGEST))
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
    if not np.count_nonzero(allowed) or not np.count_nonzero(usable):
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
    # Non-negative already: the array lies inside the usable extent.
    gyy = np.minimum((py / t).astype(int), room.height - 1)[:, None]
    gxx = np.minimum((px / t).astype(int), room.width - 1)[None, :]
    distance, (near_y, near_x) = ndimage.distance_transform_edt(
        ~allowed, sampling=t, return_indices=True
    )
    reach = max((x_hi - x_lo) / nx, (y_hi - y_lo) / ny) / 2
    keep = usable[gyy, gxx] | (distance[gyy, gxx] <= reach)
    placed[near_y[gyy, gxx][keep], near_x[gyy, gxx][keep]] = True
    return placed


def staggered_shape(
    width_m: float, height_m: float, radius_m: float, max_columns: int
) -> tuple[int, int, float] | None:
    """Columns, rows and row scale of the staggered array with fewest devices covering the extent.

    Rows alternate ``nx`` devices at the centres of equal column bands and
    ``nx + 1`` devices on the band edges (the first and last on the walls): a
    hexagonal pattern when the spacing allows. With half a column spacing ``a``,
    ``h = sqrt(r^2 - a^2)`` is how far a row reaches across: the outer rows may
    sit ``h`` from the walls and rows ``r + h`` apart (a point between two rows
    is then within ``r`` of the triangle around it). ``width_m`` and
    ``height_m`` run between the outermost coverage points. Every column count
    is tried at once; the row scale (at most 1) spreads the slack evenly.
    """
    nx = np.arange(1, max(1, max_columns) + 1, dtype=np.float64)
    half = width_m / (2 * nx)
    with np.errstate(invalid="ignore"):
        reach = np.sqrt(radius_m**2 - half**2)
    fits = reach > 0
    if not fits.any():
        return None
    nx, reach = nx[fits], reach[fits]
    ny = np.where(
        height_m <= 2 * reach,
        1.0,
        np.ceil((height_m - 2 * reach) / (radius_m + reach) - 1e-9) + 1,
    )
    devices = nx * ny + np.floor(ny / 2)
    best = int(np.lexsort((nx, devices))[0])
    span = 2 * reach[best] + (ny[best] - 1) * (radius_m + reach[best])
    return int(nx[best]), int(ny[best]), float(min(1.0, height_m / span))


#: Radius margins (in tiles) the staggered layouts leave: snapping a point to a cell
#: centre moves it up to half a tile along each axis; wider margins give denser
#: arrays, which suit stages whose count rule asks for more devices than coverage.
STAGGER_MARGINS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
#: Rooms whose outline splits into at most this many rectangles also get one
#: staggered array per rectangle (L and U shapes); more pieces waste too much at seams.
STAGGER_MAX_PIECES = 4


def staggered_points(
    box: tuple[int, int, int, int], radius_m: float, tile_size_m: float
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Cells (rows, columns) of the staggered array covering ``box`` and half its column spacing.

    ``box`` is (first row, last row, first column, last column), inclusive;
    rows run along whichever axis needs fewer devices (ties: along x).
    """
    t = tile_size_m
    first_row, last_row, first_col, last_col = box
    options = []
    for transposed, (lo_a, hi_a, lo_c, hi_c) in enumerate(
        ((first_col, last_col, first_row, last_row), (first_row, last_row, first_col, last_col))
    ):
        extent_a, extent_c = (hi_a - lo_a) * t, (hi_c - lo_c) * t
        shape = staggered_shape(extent_a, extent_c, radius_m, hi_a - lo_a + 1)
        if shape is not None:
            nx, ny, scale = shape
            options.append(
                (nx * ny + ny // 2, transposed, nx, ny, scale, lo_a, lo_c, extent_a, extent_c)
            )
    if not options:
        return None
    _, transposed, nx, ny, scale, lo_a, lo_c, extent_a, extent_c = min(options)
    half = extent_a / (2 * nx)
    reach = math.sqrt(radius_m**2 - half**2)
    first = extent_c / 2 if ny == 1 else scale * reach
    step = scale * (radius_m + reach)
    along = np.concatenate([(2 * np.arange(nx + j % 2) + 1 - j % 2) * half for j in range(ny)])
    across = np.concatenate([np.full(nx + j % 2, first + j * step) for j in range(ny)])
    along = np.rint(along / t).astype(int) + lo_a
    across = np.rint(across / t).astype(int) + lo_c
    return (along, across, half) if transposed else (across, along, half)


def outline_pieces(usable: np.ndarray) -> list[list[tuple[int, int, int, int]]]:
    """Ways to cut the room's outline into rectangles: by bands of rows, by bands of columns.

    The outline is the usable area with enclosed holes (columns) filled. Rows
    with the same runs of cells form a band, each run a rectangle. Cuts into
    one piece or more than ``STAGGER_MAX_PIECES`` are left out.
    """
    outline = ndimage.binary_fill_holes(usable)
    cuts = []
    for transposed, mask in enumerate((outline, outline.T)):
        padded = np.pad(mask, ((0, 0), (1, 1))).astype(np.int8)
        edges = np.diff(padded, axis=1)
        runs = [tuple(np.flatnonzero(row).tolist()) for row in edges]
        pieces = []
        start = 0
        for index in range(1, len(runs) + 1):
            if index < len(runs) and runs[index] == runs[start]:
                continue
            bounds = runs[start]
            for lo, hi in zip(bounds[::2], bounds[1::2], strict=True):
                box = (start, index - 1, lo, hi - 1)
                pieces.append((box[2], box[3], box[0], box[1]) if transposed else box)
            start = index
        if 1 < len(pieces) <= STAGGER_MAX_PIECES:
            cuts.append(pieces)
    return cuts


def staggered_layouts(context: StageContext) -> list[np.ndarray]:
    """Staggered (hexagonal) arrays, snapped to allowed cells: one per margin and cut.

    For each radius margin of ``STAGGER_MARGINS``: one array over the usable
    extent, and one per rectangle of each cut of :func:`outline_pieces`.
    Lattice points off the usable area are kept when an allowed cell is within
    half a column spacing (an L-shaped room's inner corner), else dropped.
    Distinct layouts only; none without a coverage radius.
    """
    room, allowed = context.room, context.allowed
    if context.radius_m is None or not allowed.any():
        return []
    t = room.tile_size_m
    rows, cols = np.nonzero(room.usable)
    extent = (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max()))
    cuts = [[extent], *outline_pieces(room.usable)]
    distance, (near_y, near_x) = ndimage.distance_transform_edt(
        ~allowed, sampling=t, return_indices=True
    )
    layouts: dict[bytes, np.ndarray] = {}
    for margin in STAGGER_MARGINS:
        for pieces in cuts:
            placed = np.zeros_like(allowed)
            for box in pieces:
                points = staggered_points(box, context.radius_m - margin * t, t)
                if points is None:
                    continue
                gy = np.clip(points[0], 0, room.height - 1)
                gx = np.clip(points[1], 0, room.width - 1)
                keep = room.usable[gy, gx] | (distance[gy, gx] <= points[2])
                placed[near_y[gy[keep], gx[keep]], near_x[gy[keep], gx[keep]]] = True
            if placed.any():
                layouts.setdefault(placed.tobytes(), placed)
    return list(layouts.values())


#: Stray points :func:`shift_cover` may try to cover in one stage (its deterministic
#: work budget): a layout far from covering is left to the repair.
SHIFT_MAX_TRIES = 24
#: ... trying at most this many devices (the nearest) for each stray point.
SHIFT_TRIED_DEVICES = 4


def shift_cover(
    context: StageContext, added: np.ndarray, tries: int = SHIFT_MAX_TRIES
) -> np.ndarray:
    """Cover stray points by moving a nearby new device instead of adding one.

    Local improvement for snapped arrays: for the first uncovered point (flat
    order), the ``SHIFT_TRIED_DEVICES`` new devices nearest to it (within two
    radii) are tried in turn; one moves to the allowed cell nearest to it whose
    disk holds the point and every point only that device covered. Coverage
    counts are updated in the two disks a move touches. Stops when all is
    covered, no move helps any point, or after ``tries`` points (default
    ``SHIFT_MAX_TRIES``); what is left goes to the repair.
    """
    if context.radius_m is None:
        return added
    disk, allowed, usable = context.disk, context.allowed, context.room.usable
    reach = disk.shape[0] // 2
    height, width = added.shape
    added = added.copy()
    covered = context.coverage_counts(context.existing | added)
    stuck = ~usable
    columns = context.reach.tocsc() if context.reach is not None else None

    def covers_of(y: int, x: int) -> np.ndarray:
        """Points a device at (y, x) covers: its disk, or its column of the coverage relation."""
        points = np.zeros_like(added)
        if columns is None:
            oy, ox, sy, sx = stencil_window(added.shape, y, x, reach)
            points[oy, ox] = disk[sy, sx]
        else:
            flat = y * width + x
            points.flat[columns.indices[columns.indptr[flat] : columns.indptr[flat + 1]]] = True
        return points

    for _ in range(tries):
        stray = np.flatnonzero(((covered == 0) & ~stuck).ravel())
        if stray.size == 0:
            break
        py, px = divmod(int(stray[0]), width)
        gy, gx, _, _ = stencil_window(added.shape, py, px, 2 * reach)
        dy, dx = np.nonzero(added[gy, gx])
        dy, dx = dy + gy.start, dx + gx.start
        order = np.argsort((dy - py) ** 2 + (dx - px) ** 2, kind="stable")[:SHIFT_TRIED_DEVICES]
        # A new site must reach the stray point: only cells of its disk qualify.
        sites = np.zeros_like(added)
        qy, qx, ry, rx = stencil_window(added.shape, py, px, reach)
        sites[qy, qx] = disk[ry, rx] & allowed[qy, qx] & ~(context.existing | added)[qy, qx]
        site_y, site_x = np.nonzero(sites)
        moved = False
        for y, x in zip(dy[order].tolist(), dx[order].tolist(), strict=True):
            need = covers_of(y, x) & usable & (covered == 1)
            need[py, px] = True
            holds = dense_coverage(need, sites, disk, context.reach).all(axis=0)
            if not holds.any():
                continue
            ty, tx = site_y[holds], site_x[holds]
            pick = int(np.argmin((ty - y) ** 2 + (tx - x) ** 2))
            ty, tx = int(ty[pick]), int(tx[pick])
            added[y, x], added[ty, tx] = False, True
            covered = context.coverage_counts(context.existing | added)
            moved = True
            break
        if not moved:
            stuck[py, px] = True
    return added


#: New devices :func:`drop_and_shift` tries to remove in one stage, and stray
#: points it lets :func:`shift_cover` try for each (its deterministic work budget).
DROP_MAX_TRIES = 8
DROP_SHIFT_TRIES = 8


def drop_and_shift(context: StageContext, added: np.ndarray) -> np.ndarray:
    """Remove new devices whose points neighbours can take by moving, while the count allows.

    Local improvement after pruning: the ``DROP_MAX_TRIES`` new devices that
    cover the fewest points alone are tried, fewest first; one goes when
    :func:`shift_cover` (at most ``DROP_SHIFT_TRIES`` points) re-covers
    everything without it.
    """
    if context.radius_m is None:
        return added
    spare = int((context.existing | added).sum()) - context.required_count
    if spare <= 0 or not added.any():
        return added
    usable = context.room.usable
    covered = context.coverage_counts(context.existing | added)[usable]
    alone = (
        dense_coverage(usable, added, context.disk, context.reach) & (covered == 1)[:, None]
    ).sum(axis=0)
    flats = np.flatnonzero(added.ravel())
    for flat in flats[np.argsort(alone, kind="stable")][:DROP_MAX_TRIES].tolist():
        if spare <= 0:
            break
        if not added.flat[flat]:  # moved by an earlier removal
            continue
        trial = added.copy()
        trial.flat[flat] = False
        trial = shift_cover(context, trial, DROP_SHIFT_TRIES)
        if not context.uncovered(context.existing | trial).any():
            added = trial
            spare -= 1
    return added


def prune(context: StageContext, added: np.ndarray) -> np.ndarray:
    """Drop new devices whose every covered point is covered twice, while the count allows.

    Local improvement after a construction: a device is redundant when the
    fewest devices covering any point of its disk is at least two. Redundant
    devices are removed in batches whose disks do not overlap (so each stays
    removable), most redundant first, until none is left or the count rule
    would break. Deterministic: ties in flat-index order.
    """
    if context.radius_m is None:
        return added
    disk = context.disk
    reach = disk.shape[0] // 2
    width = added.shape[1]
    added = added.copy()
    spare = int((context.existing | added).sum()) - context.required_count
    while spare > 0 and added.any():
        least = _fewest_covering(context, added)
        flats = np.flatnonzero(added.ravel())
        redundant = flats[least >= 2]
        if redundant.size == 0:
            break
        redundant = redundant[np.argsort(-least[least >= 2], kind="stable")]
        blocked = np.zeros_like(added)
        for flat in redundant.tolist():
            y, x = divmod(flat, width)
            if blocked[y, x] or spare == 0:
                continue
            added[y, x] = False
            spare -= 1
            blocked[
                max(0, y - 2 * reach) : y + 2 * reach + 1, max(0, x - 2 * reach) : x + 2 * reach + 1
            ] = True
    return added


def _fewest_covering(context: StageContext, added: np.ndarray) -> np.ndarray:
    """For each new device (flat order), the fewest devices covering any point it covers.

    With the disk alone, a minimum filter of the coverage counts over the disk
    (points outside the room count as covered without end); with a coverage
    relation, over the (points x new devices) matrix.
    """
    usable, never = context.room.usable, np.iinfo(np.int32).max
    counts = context.coverage_counts(context.existing | added)
    if context.reach is None:
        counts = np.where(usable, counts, never).astype(np.int32)
        eroded = ndimage.grey_erosion(counts, footprint=context.disk, mode="constant", cval=never)
        return eroded[added]
    reaches = dense_coverage(usable, added, context.disk, context.reach)
    return np.where(reaches, counts[usable][:, None], never).min(axis=0)


def best_staggered(
    context: StageContext, layouts: list[np.ndarray], in_hand: int | None = None
) -> np.ndarray | None:
    """The polished staggered layout with the fewest devices (:func:`staggered_layouts`).

    Fewest devices first, denser first among equals (fewer points left to the
    repair). Moves and pruning never add devices, so a layout that starts with
    no fewer than ``in_hand`` (devices, existing included, of a layout already
    found) cannot win, nor can any after it: None when none starts below it.
    """
    existing = int(context.existing.sum())

    def devices(added: np.ndarray) -> int:
        """Devices after the repair at least: the count rule fills up to its minimum."""
        return max(existing + int(np.count_nonzero(added)), context.required_count)

    best = None
    for layout in sorted(layouts, key=lambda layout: (devices(layout), -layout.sum())):
        if in_hand is not None and devices(layout) >= in_hand:
            break
        added = polish(context, layout)
        if best is None or devices(added) < devices(best):
            best = added
            in_hand = devices(added) if in_hand is None else min(in_hand, devices(added))
        if context.is_optimal(devices(best)):
            break  # nothing can have fewer
    return best


def polish(context: StageContext, layout: np.ndarray) -> np.ndarray:
    """A proposed layout made compliant and lean: the local moves every proposer shares.

    Stray points are taken by moving a device (:func:`shift_cover`), the repair
    adds what is still missing, then redundant devices go (:func:`prune`) and
    devices whose points neighbours can take by moving (:func:`drop_and_shift`).
    Never more devices than the repair alone would leave.
    """
    return drop_and_shift(context, prune(context, repair(context, shift_cover(context, layout))))


def repair(context: StageContext, added: np.ndarray) -> np.ndarray:
    """Add devices until this stage's coverage and count hold (where cells allow).

    Coverage first by greedy set cover, then the count by spreading. Used after
    every model, so a learned model's near miss becomes a compliant layout.
    """
    added = added & context.allowed
    if context.radius_m is not None:
        uncovered = context.uncovered(context.existing | added)
        if np.count_nonzero(uncovered):
            added = added | greedy_cover(
                uncovered, context.allowed & ~added, context.disk, context.reach
            )
    devices = context.existing | added
    if np.count_nonzero(devices) < context.required_count:
        added = added | spread(context, devices, context.allowed, context.required_count)
    if context.component == "light":
        added = brighten(context, added)
    return added


def brighten(context: StageContext, added: np.ndarray) -> np.ndarray:
    """Add lights at the free cell nearest the darkest point until U0 meets its target.

    A light there usually lifts Emin more than Eavg; the loop ends when the rule
    holds or no free cell is left, so it always terminates. Free cells only get
    fewer, so a nearest free cell found earlier is still the nearest while it is
    free: the distance transform is redone only when the one it names was taken.
    """
    room, profile = context.room, context.profile
    added = added.copy()
    free = context.allowed & ~added
    lux = None
    nearest = None
    while np.count_nonzero(free):
        if lux is None:
            lux = illuminance_map(room, profile, context.existing | added)
        dark = shortfall_of(room, profile, lux)
        if dark is None:
            break
        # np.nanargmin, without its wrapper (dark has points of the calculation area)
        darkest = np.unravel_index(int(np.where(np.isnan(dark), np.inf, dark).argmin()), dark.shape)
        if nearest is None or not free[nearest[0][darkest], nearest[1][darkest]]:
            _, nearest = ndimage.distance_transform_edt(~free, return_indices=True)
        y, x = int(nearest[0][darkest]), int(nearest[1][darkest])
        added[y, x] = True
        free[y, x] = False
        lux = lux + light_contribution(room, profile, y, x)
    return added
