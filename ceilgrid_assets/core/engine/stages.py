"""What each placement stage needs: required count, coverage radius, allowed cells.

A stage places one component type. Its :class:`StageContext` is everything a
placement model may look at; the engine, not the model, enforces ``allowed``
and runs the shared :func:`repair`, so every model is judged on the same terms.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy import sparse

from ceilgrid_assets.core.engine.grid import AIR_SUPPLY, CODE, EMPTY, Room
from ceilgrid_assets.core.engine.inroom import reach_matrix
from ceilgrid_assets.core.engine.photometry import (
    fft_convolve,
    illuminance_map,
    illuminance_summary,
    required_lights,
)
from ceilgrid_assets.core.engine.profile import Profile
from ceilgrid_assets.core.engine.rules import (
    COMPONENT_CHECKS,
    EPSILON_M,
    Violation,
    calculation_area,
    device_layers,
    distance_to,
    forbidden_cells,
    narrow_cells,
    spacing_half_tiles,
    uncovered_points,
    wall_distance,
)


@dataclass(frozen=True)
class StageContext:
    """The state a placement model sees when it places one component type."""

    component: str
    room: Room  # the room with earlier stages placed
    profile: Profile
    allowed: np.ndarray  # (h, w) bool: cells where a new device of this type may go
    required_count: int  # devices of this type the room needs in total
    radius_m: float | None  # every coverage point within this of a device, or None

    @property
    def code(self) -> int:
        return CODE[self.component]

    @cached_property
    def judged(self) -> dict[bytes, Any]:
        """Outcomes of proposals already judged here, by proposal bytes (see ``evaluate``)."""
        return {}

    @cached_property
    def notes(self) -> dict[str, str]:
        """Why a model made no proposal here, by model name, when it has more to say
        than "skipped" (a spent work budget, the wall-clock safety net)."""
        return {}

    def best_judged(self) -> int | None:
        """Fewest devices (existing included) of a compliant proposal judged here so far."""
        counts = [outcome.devices for outcome in self.judged.values() if outcome.compliant]
        return min(counts) if counts else None

    @cached_property
    def existing(self) -> np.ndarray:
        return self.room.cells == self.code

    @cached_property
    def disk(self) -> np.ndarray | None:
        """Stencil of cell offsets within the coverage radius (a boolean disk).

        Every cell a device covers lies in its disk; with :attr:`reach` set,
        the disk is the outer bound of coverage, not coverage itself.
        """
        if self.radius_m is None:
            return None
        return disk_stencil(self.radius_m, self.room.tile_size_m)

    @cached_property
    def reach(self) -> sparse.csr_matrix | None:
        """Which sites cover which points when the disk alone does not say; see
        :func:`coverage_relation`. None on the fast path."""
        if self.radius_m is None:
            return None
        return coverage_relation(self.room, self.profile, self.component, self.radius_m)

    @cached_property
    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of every cell centre in metres, as two (h, w) arrays."""
        t = self.room.tile_size_m
        ys, xs = np.indices(self.room.cells.shape)
        return (xs + 0.5) * t, (ys + 0.5) * t

    @cached_property
    def wall_distance(self) -> np.ndarray:
        """Distance (m) from each cell centre to the nearest wall or invalid tile edge."""
        return wall_distance(self.room.usable, self.room.tile_size_m)

    @cached_property
    def open_points(self) -> np.ndarray:
        """Coverage points the input and earlier devices of this type leave uncovered
        (read-only: it is shared; copy it to update)."""
        points = self.uncovered(self.existing)
        points.flags.writeable = False
        return points

    @cached_property
    def open_cover(self) -> np.ndarray:
        """Dense (open points x allowed sites) coverage, read-only; for small problems only."""
        cover = dense_coverage(self.open_points, self.allowed, self.disk, self.reach)
        cover.flags.writeable = False
        return cover

    @cached_property
    def cheap_bound(self) -> tuple[int, str]:
        """The count rule or a disk-packing bound, and which: milliseconds at any size."""
        existing = int(np.count_nonzero(self.existing))
        bound, method = max(self.required_count, existing), "count rule"
        n_open = int(np.count_nonzero(self.open_points))
        if n_open and np.count_nonzero(self.allowed):
            gains = disk_counts(self.open_points, self.disk, self.reach)
            best = int(np.maximum.reduce(gains[self.allowed]))
            if best > 0 and existing + -(-n_open // best) > bound:
                bound, method = existing + -(-n_open // best), "disk packing"
        return bound, method

    @cached_property
    def bound(self) -> tuple[int, str]:
        """No layout of this stage has fewer devices, and why: :attr:`cheap_bound`, or
        on small problems a point-packing bound where it is stronger."""
        bound, method = self.cheap_bound
        n_open = int(np.count_nonzero(self.open_points))
        n_sites = int(np.count_nonzero(self.allowed))
        if n_open and n_sites and n_open * n_sites <= PACKING_MAX_PAIRS:
            packed = int(np.count_nonzero(self.existing)) + point_packing(self.open_cover)
            if packed > bound:
                bound, method = packed, "point packing"
        return bound, method

    @property
    def lower_bound(self) -> int:
        return self.bound[0]

    def is_optimal(self, devices: int) -> bool:
        """Whether ``devices`` of this type (existing included) is proved the fewest
        possible; the costlier bound is computed only when the cheap one falls short."""
        return devices <= self.cheap_bound[0] or devices <= self.lower_bound

    def uncovered(self, devices: np.ndarray) -> np.ndarray:
        """Coverage points out of reach of ``devices`` (all False without a radius)."""
        if self.radius_m is None:
            return np.zeros(devices.shape, dtype=bool)
        return uncovered_by(self.room, devices, self.radius_m, self.reach)

    def coverage_counts(self, devices: np.ndarray) -> np.ndarray:
        """How many ``devices`` cover each cell (int array; needs a radius)."""
        if self.reach is None:
            return disk_counts(devices, self.disk)
        return (self.reach @ devices.ravel().astype(np.int32)).reshape(devices.shape)

    def apply(self, added: np.ndarray) -> Room:
        """The room with this stage's devices on ``added``, cells of :attr:`allowed`."""
        cells = self.room.cells.copy()
        cells[added] = self.code
        return self.room.with_devices(cells)

    def violations(self, added: np.ndarray) -> list[Violation]:
        """Violations of this stage's own rules once ``added`` is placed."""
        return COMPONENT_CHECKS[self.component](self.apply(added), self.profile)


#: Up to this many (point, site) pairs the coverage matrix is built densely in one step.
DENSE_COVERAGE_PAIRS = 250_000
#: Up to this many (cell, disk offset) pairs, disk counts are one sparse product.
SPARSE_DISK_PAIRS = 50_000
#: Sparse disk operators are built for grids rounded up to this many tiles a side,
#: so that rooms of similar sizes share one.
OPERATOR_GRID_STEP = 8


#: Operator grids of at most this many cells keep a dense coverage table (1 MB at most,
#: one per grid and disk), from which a small room's coverage is one gather.
DISK_TABLE_MAX_CELLS = 1024


#: The point-packing bound is computed on problems of at most this many (point, site) pairs.
PACKING_MAX_PAIRS = 100_000


def point_packing(cover: np.ndarray) -> int:
    """How many points of a dense (points x sites) ``cover`` no one site covers two of.

    Each of them needs a device of its own, so every cover has at least that
    many; in small rooms (corners, alcoves, the ends of a narrow room) this is
    often the optimum itself. Greedy, hardest points (fewest covering sites)
    first, ties in flat order: deterministic, one vector step per point taken.
    """
    order = np.argsort(cover.sum(axis=1), kind="stable")
    free = np.ones(cover.shape[0], dtype=bool)
    packed = 0
    while True:
        remaining = order[free[order]]
        if remaining.size == 0:
            return packed
        point = remaining[0]
        packed += 1
        free[point] = False
        free &= ~cover[:, cover[point]].any(axis=1)


def stencil_window(
    shape: tuple[int, ...], y: int, x: int, reach: int
) -> tuple[slice, slice, slice, slice]:
    """Rows and columns of a grid of ``shape`` within ``reach`` cells of (y, x), and the
    matching rows and columns of a stencil of that reach centred on (y, x)."""
    y0, y1 = max(0, y - reach), min(shape[0], y + reach + 1)
    x0, x1 = max(0, x - reach), min(shape[1], x + reach + 1)
    return (
        slice(y0, y1),
        slice(x0, x1),
        slice(y0 - y + reach, y1 - y + reach),
        slice(x0 - x + reach, x1 - x + reach),
    )


def disk_counts(
    mask: np.ndarray, disk: np.ndarray, reach: sparse.csr_matrix | None = None
) -> np.ndarray:
    """For every cell, how many ``mask`` cells lie within the disk around it (int array).

    Small grids multiply by a memoised sparse (cells x cells) disk operator of
    a slightly larger grid (the extra cells are zero); larger ones use an FFT
    convolution (the disk is symmetric, so convolution equals correlation).
    With ``reach`` (see :func:`coverage_relation`): how many ``mask`` points a
    device on each cell would cover.
    """
    if reach is not None:
        counts = reach.T @ mask.ravel().astype(np.int32)
        return counts.astype(np.int32).reshape(mask.shape)
    height, width = mask.shape
    grid = operator_grid(mask.shape)
    if disk.size * grid[0] * grid[1] <= SPARSE_DISK_PAIRS:
        padded = np.zeros(grid, dtype=np.int32)
        padded[:height, :width] = mask
        operator = _disk_operator(grid, disk.tobytes(), disk.shape)
        return (operator @ padded.ravel()).reshape(grid)[:height, :width]
    reach = disk.shape[0] // 2
    full = fft_convolve(mask.astype(np.float64), disk.astype(np.float64))
    return np.rint(full[reach : reach + height, reach : reach + width]).astype(np.int32)


def operator_grid(shape: tuple[int, ...]) -> tuple[int, int]:
    """The grid a room of ``shape`` shares memoised operators on: sides rounded up to
    :data:`OPERATOR_GRID_STEP`."""
    height, width = shape
    step = OPERATOR_GRID_STEP
    return -(-height // step) * step, -(-width // step) * step


@functools.lru_cache(maxsize=64)
def _disk_operator(
    grid: tuple[int, ...], disk_bytes: bytes, disk_shape: tuple[int, ...]
) -> sparse.csr_matrix:
    """(cells x cells) matrix of a full grid: 1 where two cells are within the disk."""
    disk = np.frombuffer(disk_bytes, dtype=bool).reshape(disk_shape)
    every_cell = np.ones(grid, dtype=bool)
    return coverage_matrix(every_cell, every_cell, disk).astype(np.int32)


@functools.lru_cache(maxsize=64)
def _disk_table(
    grid: tuple[int, ...], disk_bytes: bytes, disk_shape: tuple[int, ...]
) -> np.ndarray:
    """Boolean (cells x cells) coverage of a whole grid, read-only."""
    disk = np.frombuffer(disk_bytes, dtype=bool).reshape(disk_shape)
    every_cell = np.ones(grid, dtype=bool)
    table = _stencil_coverage(every_cell, every_cell, disk)
    table.flags.writeable = False
    return table


def coverage_matrix(
    points: np.ndarray,
    sites: np.ndarray,
    disk: np.ndarray,
    reach: sparse.csr_matrix | None = None,
) -> sparse.csr_matrix:
    """Sparse (points x sites) matrix: 1 where a site is within the disk of a point.

    ``points`` and ``sites`` are (h, w) masks; rows and columns follow their
    flat order. Small problems go through :func:`dense_coverage`; large ones
    are built offset by offset from the stencil. With ``reach`` (see
    :func:`coverage_relation`), its rows and columns of ``points`` and ``sites``.
    """
    if reach is not None:
        return reach[np.flatnonzero(points)][:, np.flatnonzero(sites)].astype(np.float64)
    n_points, n_sites = int(points.sum()), int(sites.sum())
    if n_points * n_sites <= DENSE_COVERAGE_PAIRS:
        return sparse.csr_matrix(dense_coverage(points, sites, disk), dtype=np.float64)
    height, width = points.shape
    py, px = np.nonzero(points)
    reach = disk.shape[0] // 2
    point_index = np.full(points.size, -1, dtype=np.int64)
    point_index[points.ravel()] = np.arange(n_points)
    site_index = np.full(sites.size, -1, dtype=np.int64)
    site_index[sites.ravel()] = np.arange(n_sites)
    rows, cols = [], []
    for dy, dx in np.argwhere(disk) - reach:
        ty, tx = py + dy, px + dx
        inside = (ty >= 0) & (ty < height) & (tx >= 0) & (tx < width)
        site = np.full(py.shape, -1, dtype=np.int64)
        site[inside] = site_index[ty[inside] * width + tx[inside]]
        hit = site >= 0
        rows.append(point_index[py[hit] * width + px[hit]])
        cols.append(site[hit])
    row = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.empty(0, dtype=np.int64)
    return sparse.csr_matrix((np.ones(row.size), (row, col)), shape=(n_points, n_sites))


def dense_coverage(
    points: np.ndarray,
    sites: np.ndarray,
    disk: np.ndarray,
    reach: sparse.csr_matrix | None = None,
) -> np.ndarray:
    """Boolean (points x sites) matrix of :func:`coverage_matrix`, for small problems.

    Rooms whose operator grid has at most :data:`DISK_TABLE_MAX_CELLS` cells gather
    it from a memoised (cells x cells) table of that grid; larger ones compute it.
    """
    if reach is not None:
        return coverage_matrix(points, sites, disk, reach).toarray() > 0
    grid = operator_grid(points.shape)
    if grid[0] * grid[1] > DISK_TABLE_MAX_CELLS:
        return _stencil_coverage(points, sites, disk)
    py, px = np.nonzero(points)
    sy, sx = np.nonzero(sites)
    table = _disk_table(grid, disk.tobytes(), disk.shape)
    return table[np.ix_(py * grid[1] + px, sy * grid[1] + sx)]


def _stencil_coverage(points: np.ndarray, sites: np.ndarray, disk: np.ndarray) -> np.ndarray:
    """:func:`dense_coverage` from the stencil: every (point, site) offset indexes it at once."""
    py, px = np.nonzero(points)
    sy, sx = np.nonzero(sites)
    reach = disk.shape[0] // 2
    dy = sy[None, :] - py[:, None] + reach
    dx = sx[None, :] - px[:, None] + reach
    inside = (dy >= 0) & (dy <= 2 * reach) & (dx >= 0) & (dx <= 2 * reach)
    hit = np.zeros(inside.shape, dtype=bool)
    hit[inside] = disk[dy[inside], dx[inside]]
    return hit


def disk_stencil(radius_m: float, tile_size_m: float) -> np.ndarray:
    reach = int(np.floor(radius_m / tile_size_m + EPSILON_M))
    offsets = np.arange(-reach, reach + 1)
    r2 = (offsets[:, None] ** 2 + offsets[None, :] ** 2) * tile_size_m**2
    return r2 <= radius_m**2 + EPSILON_M


def coverage_relation(
    room: Room, profile: Profile, component: str, radius_m: float
) -> sparse.csr_matrix | None:
    """(points x sites) int matrix over flat cells: 1 where a device on the site covers
    the point; None when the disk stencil says it all (the fast path).

    Set in two cases. A room with ``void``: reach along in-room paths
    (:func:`~ceilgrid_assets.core.engine.inroom.reach_matrix`, the matrix the
    validator uses). Smoke detectors under the spacing method: a point outside
    corridor stretches must also lie in the site's S x S square, so a cover
    meets ``smoke.coverage`` and ``smoke.spacing`` at once.
    """
    spacing = component == "smoke_detector" and profile.detector_method == "spacing"
    if not (room.has_void or spacing):
        return None
    t = room.tile_size_m
    if room.has_void:
        reach = reach_matrix(room.inside, t, radius_m)
    else:
        every_cell = np.ones(room.cells.shape, dtype=bool)
        reach = coverage_matrix(every_cell, every_cell, disk_stencil(radius_m, t))
    if not spacing:
        return reach
    pairs = reach.tocoo()
    half = spacing_half_tiles(profile, t)
    (py, px), (sy, sx) = np.divmod(pairs.row, room.width), np.divmod(pairs.col, room.width)
    corridor = narrow_cells(room.inside, t, profile.corridor_width_m).ravel()
    keep = corridor[pairs.row] | ((np.abs(py - sy) <= half) & (np.abs(px - sx) <= half))
    return sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int32), (pairs.row[keep], pairs.col[keep])),
        shape=reach.shape,
    )


def uncovered_by(
    room: Room, devices: np.ndarray, radius_m: float, reach: sparse.csr_matrix | None
) -> np.ndarray:
    """Coverage points no device covers, in ``reach`` (:func:`coverage_relation`) or,
    when it is None, as the validator measures (``rules.uncovered_points``)."""
    if reach is None:
        return uncovered_points(room, devices, radius_m)
    covered = reach @ devices.ravel().astype(np.int32) > 0
    return room.usable & ~covered.reshape(devices.shape)


def build_context(
    component: str, room: Room, profile: Profile, detector_plan: np.ndarray | None = None
) -> StageContext:
    """The context of ``component``'s stage, given the room so far.

    Allowed cells are empty cells clear of every device the clearance table
    (:mod:`~ceilgrid_assets.core.engine.constraints`) keeps this type away
    from, input and placed alike. ``detector_plan`` (cells reserved for smoke
    detectors by a look-ahead) counts as placed detectors, so lights and
    diffusers keep out of their clearance zones and the last stage is not
    painted into a corner.
    """
    cells = room.cells
    layers = device_layers(cells)
    if detector_plan is not None:
        layers["smoke_detector"] = layers["smoke_detector"] | detector_plan
    area = room.area_m2
    if component == "light":
        required = required_lights(room, profile)
        radius = profile.light_radius_m(room.ceiling_height_m)
    elif component == "air_supply":
        required = profile.min_supplies(area)
        radius = profile.supply_radius_m
    elif component == "air_return":
        required = profile.min_returns(area, int(np.count_nonzero(layers["air_supply"])))
        radius = None
    elif component == "smoke_detector":
        required = 0
        radius = profile.smoke_radius_m
    else:
        raise ValueError(f"unknown component {component!r}")
    if not np.count_nonzero(room.usable):
        required, radius = 0, None
    allowed = (cells == EMPTY) & ~forbidden_cells(component, layers, profile, room.tile_size_m)
    return StageContext(component, room, profile, allowed, required, radius)


def quality_score(context: StageContext, added: np.ndarray) -> float:
    """Quality in [0, 1] beyond compliance: U0 for lights (the rule's area), reach for the rest."""
    room = context.room
    devices = context.existing | added
    usable = room.usable
    if not np.count_nonzero(usable) or not np.count_nonzero(devices):
        return 0.0
    if context.component == "light":
        lux = illuminance_map(room, context.profile, lights=devices)
        area = calculation_area(room, context.profile)
        return min(1.0, illuminance_summary(lux, area).uniformity_u0)
    if context.component == "air_return":
        supplies = room.cells == AIR_SUPPLY
        if not np.count_nonzero(supplies):
            return 1.0
        separation = distance_to(supplies, room.tile_size_m)[devices].min()
        return float(min(1.0, separation / (2 * context.profile.return_to_supply_m)))
    near = distance_to(devices, room.tile_size_m)[usable]
    reach = float(np.add.reduce(near)) / near.size  # its mean()
    return float(max(0.0, 1.0 - reach / (context.radius_m or 1.0)))
