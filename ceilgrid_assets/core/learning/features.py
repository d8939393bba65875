"""Per-cell feature table of a placement stage, for training and inference alike.

:func:`feature_matrix` looks only at the :class:`StageContext` (the room with
earlier stages placed, the allowed cells, the required count and radius),
never at a label, so the table a model trains on is the table it predicts on.
One row per allowed cell (the only cells a model may propose), in flat cell
order; every column is computed for all cells at once with distance
transforms, filters and array arithmetic. :func:`cell_features` is the same
table as a DataFrame for training (pandas is imported only there: serving
scores the plain matrix).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ceilgrid_assets.core.engine.grid import (
    AIR_RETURN,
    AIR_SUPPLY,
    EMPTY,
    INVALID,
    LIGHT,
    SMOKE_DETECTOR,
)
from ceilgrid_assets.core.engine.io import ROOM_TYPES
from ceilgrid_assets.core.engine.stages import StageContext, disk_counts

if TYPE_CHECKING:
    import pandas as pd

#: Distances to absent things (no device yet, no inner obstacle) are capped here (m).
FAR_M = 60.0
DEVICE_CODES = {
    "light": LIGHT,
    "air_supply": AIR_SUPPLY,
    "air_return": AIR_RETURN,
    "smoke_detector": SMOKE_DETECTOR,
}

FEATURES: tuple[str, ...] = (
    # position
    "wall_m",
    "wall_sp",
    "inner_invalid_m",
    "outer_edge_m",
    "left_m",
    "right_m",
    "up_m",
    "down_m",
    "row_span_m",
    "col_span_m",
    "left_phase",
    "up_phase",
    "row_end_sp",
    "col_end_sp",
    "rel_x",
    "rel_y",
    "axis_u",
    "axis_v",
    "abs_u",
    "abs_v",
    # room
    "room_width_m",
    "room_height_m",
    "area_m2",
    "usable_fraction",
    "aspect",
    "major_extent_m",
    "minor_extent_m",
    "room_type",
    "ceiling_height_m",
    "tile_size_m",
    # neighbourhood
    "usable_density_5",
    "usable_in_radius",
    "allowed_in_radius",
    "uncovered_in_radius",
    "forbidden_m",
    # earlier stages
    "light_m",
    "air_supply_m",
    "air_return_m",
    "smoke_detector_m",
    "own_m",
    # stage
    "radius_m",
    "radius_tiles",
    "required",
    "need",
    "need_per_100m2",
    "spacing_m",
    "cells_per_need",
    "existing",
)


def stage_spacing_m(context: StageContext) -> float:
    """Spacing of an ideal array: the tighter of coverage (R*sqrt 2) and count (sqrt(A/n))."""
    room = context.room
    spacings = []
    if context.radius_m is not None:
        spacings.append(context.radius_m * math.sqrt(2))
    need = context.required_count
    if need > 0 and room.area_m2 > 0:
        spacings.append(math.sqrt(room.area_m2 / need))
    return max(min(spacings), room.tile_size_m) if spacings else room.tile_size_m


def cell_features(context: StageContext) -> pd.DataFrame:
    """:func:`feature_matrix` as a DataFrame: columns :data:`FEATURES`, index = flat cell index."""
    import pandas as pd

    flat, matrix = feature_matrix(context)
    return pd.DataFrame(matrix, columns=list(FEATURES), index=pd.Index(flat, name="cell"))


def feature_matrix(context: StageContext) -> tuple[np.ndarray, np.ndarray]:
    """(flat indices of the allowed cells, float32 (cells x :data:`FEATURES`) matrix)."""
    room = context.room
    cells, t = room.cells, room.tile_size_m
    height, width = cells.shape
    usable = room.usable
    allowed = context.allowed
    flat = np.flatnonzero(allowed)
    if flat.size == 0:
        return flat, np.empty((0, len(FEATURES)), dtype=np.float32)
    ys, xs = np.divmod(flat, width)
    spacing = stage_spacing_m(context)
    radius = context.radius_m or 0.0
    existing = int(context.existing.sum())
    need = max(0, context.required_count - existing)
    area = room.area_m2

    def at(grid: np.ndarray) -> np.ndarray:
        return grid.ravel()[flat]

    def capped(mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.full(flat.size, FAR_M)
        return np.minimum(at(ndimage.distance_transform_edt(~mask, sampling=t)), FAR_M)

    left, right = _run_lengths(usable)
    up, down = (run.T for run in _run_lengths(usable.T))
    left, right, up, down = (at(run) * t for run in (left, right, up, down))
    outer = np.minimum.reduce([xs, ys, width - 1 - xs, height - 1 - ys]) * t + t / 2

    rows, cols = np.nonzero(usable)
    cx, cy = cols.mean(), rows.mean()
    coords = np.column_stack((cols - cx, rows - cy)) * t
    axes = _principal_axes(coords)
    extent = np.abs(coords @ axes).max(axis=0) + t / 2
    uv = (np.column_stack((xs - cx, ys - cy)) * t) @ axes / extent
    x_lo, x_hi, y_lo, y_hi = cols.min(), cols.max(), rows.min(), rows.max()

    disk = context.disk if context.disk is not None else np.ones((1, 1), dtype=bool)
    disk_n = float(disk.sum())
    uncovered = context.open_points

    columns: dict[str, np.ndarray | float] = {
        "wall_m": at(context.wall_distance),
        "wall_sp": at(context.wall_distance) / spacing,
        "inner_invalid_m": capped(cells == INVALID),
        "outer_edge_m": outer,
        "left_m": left,
        "right_m": right,
        "up_m": up,
        "down_m": down,
        "row_span_m": left + right + t,
        "col_span_m": up + down + t,
        "left_phase": np.mod(left / spacing, 1.0),
        "up_phase": np.mod(up / spacing, 1.0),
        "row_end_sp": np.minimum(left, right) / spacing,
        "col_end_sp": np.minimum(up, down) / spacing,
        "rel_x": (xs - x_lo + 0.5) / (x_hi - x_lo + 1),
        "rel_y": (ys - y_lo + 0.5) / (y_hi - y_lo + 1),
        "axis_u": uv[:, 0],
        "axis_v": uv[:, 1],
        "abs_u": np.abs(uv[:, 0]),
        "abs_v": np.abs(uv[:, 1]),
        "room_width_m": width * t,
        "room_height_m": height * t,
        "area_m2": area,
        "usable_fraction": rows.size / cells.size,
        "aspect": max(extent) / min(extent),
        "major_extent_m": 2 * max(extent),
        "minor_extent_m": 2 * min(extent),
        "room_type": float(ROOM_TYPES.index(room.room_type)),
        "ceiling_height_m": room.ceiling_height_m,
        "tile_size_m": t,
        "usable_density_5": at(
            ndimage.uniform_filter(usable.astype(np.float32), 5, mode="constant")
        ),
        "usable_in_radius": at(disk_counts(usable, disk)) / disk_n,
        "allowed_in_radius": at(disk_counts(allowed, disk)) / disk_n,
        "uncovered_in_radius": at(disk_counts(uncovered, disk)) / disk_n,
        "forbidden_m": capped((cells == EMPTY) & ~allowed),
        "own_m": capped(context.existing),
        "radius_m": radius,
        "radius_tiles": radius / t,
        "required": float(context.required_count),
        "need": float(need),
        "need_per_100m2": 100.0 * need / area if area else 0.0,
        "spacing_m": spacing,
        "cells_per_need": flat.size / max(need, 1),
        "existing": float(existing),
    }
    for name, code in DEVICE_CODES.items():
        columns[f"{name}_m"] = capped(cells == code)
    matrix = np.empty((flat.size, len(FEATURES)), dtype=np.float32)
    for position, name in enumerate(FEATURES):
        matrix[:, position] = columns[name]
    return flat, matrix


def _run_lengths(open_cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Open cells to the left and right of each cell along its row, up to a blocked cell."""
    height, width = open_cells.shape
    index = np.broadcast_to(np.arange(width), (height, width))
    blocked_left = np.where(~open_cells, index, -1)
    last_block = np.maximum.accumulate(blocked_left, axis=1)
    left = index - last_block - 1
    blocked_right = np.where(~open_cells, index, width)
    next_block = np.minimum.accumulate(blocked_right[:, ::-1], axis=1)[:, ::-1]
    right = next_block - index - 1
    return left, right


def _principal_axes(coords: np.ndarray) -> np.ndarray:
    """Unit eigenvectors of the usable cells' covariance, major axis first, sign-fixed."""
    if coords.shape[0] < 2:
        return np.eye(2)
    _, vectors = np.linalg.eigh(np.cov(coords.T) + 1e-12 * np.eye(2))
    axes = vectors[:, ::-1]
    return axes * np.where(axes.sum(axis=0) < 0, -1.0, 1.0)
