"""In-room distances: coverage measured along paths that stay inside the room.

A room drawn with ``void`` cells (outside the room: L-, U- and irregular
shapes) must not be covered across the void. Paths here are chains of straight
moves between tile centres on a 16-neighbour grid (the 8 king's moves and the
8 knight's moves). A move is allowed only when every tile its segment passes
through is inside the room; a diagonal move, whose segment passes through the
corner where its two side tiles meet, may brush the corner of one void tile
(hugging a wall's corner) but not slip between two. Every path is therefore a
real in-room path, never shorter than the true shortest in-room path
(conservative: no point is called covered that a true path would not reach). In
open floor the 16-neighbour length is at most 2.75 % longer than the straight
line; around a corner a path must also pass through tile centres, which adds up
to about a tile (both measured in ``ceilgrid_assets_tests/engine/test_voids.py``).

Validation and placement share one memoised relation, :func:`reach_matrix`,
so the optimiser never proposes a cover the validator rejects. Rooms without
void never come here: they keep the straight-line distance transform.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import sparse

from ceilgrid_assets.core.engine.grid import EPSILON_M

#: Sources are taken in square blocks of this many tiles a side; each block's
#: shortest paths run on a window reaching one radius beyond it (a path no
#: longer than the radius never leaves that window), so work grows with the
#: room's area, not its square.
BLOCK_TILES = 16
#: Each move (dy, dx) of the grid graph, the tiles (dy, dx) from its start that
#: must all be inside the room, and the side tiles of which one must be.
Offset = tuple[int, int]
MOVES: tuple[tuple[Offset, tuple[Offset, ...], tuple[Offset, ...]], ...] = (
    ((0, 1), ((0, 0), (0, 1)), ()),
    ((1, 0), ((0, 0), (1, 0)), ()),
    ((1, 1), ((0, 0), (1, 1)), ((0, 1), (1, 0))),
    ((1, -1), ((0, 0), (1, -1)), ((0, -1), (1, 0))),
    ((1, 2), ((0, 0), (0, 1), (1, 1), (1, 2)), ()),
    ((2, 1), ((0, 0), (1, 0), (1, 1), (2, 1)), ()),
    ((1, -2), ((0, 0), (0, -1), (1, -1), (1, -2)), ()),
    ((2, -1), ((0, 0), (1, 0), (1, -1), (2, -1)), ()),
)


def move_graph(inside: np.ndarray, tile_size_m: float) -> sparse.csr_matrix:
    """(cells x cells) graph of allowed moves, one direction each, weighted in metres."""
    height, width = inside.shape
    ys, xs = np.nonzero(inside)
    starts, ends, weights = [], [], []

    def all_inside(tiles: tuple[Offset, ...]) -> np.ndarray:
        ok = np.ones(ys.shape, dtype=bool)
        for ty, tx in tiles:
            y, x = ys + ty, xs + tx
            ok &= (y >= 0) & (y < height) & (x >= 0) & (x < width)
            ok[ok] = inside[y[ok], x[ok]]
        return ok

    for (dy, dx), tiles, sides in MOVES:
        ok = all_inside(tiles)
        if sides:
            ok &= all_inside(sides[:1]) | all_inside(sides[1:])
        starts.append(ys[ok] * width + xs[ok])
        ends.append((ys[ok] + dy) * width + xs[ok] + dx)
        weights.append(np.full(int(ok.sum()), tile_size_m * float(np.hypot(dy, dx))))
    return sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(starts), np.concatenate(ends))),
        shape=(inside.size, inside.size),
    )


def reach_matrix(inside: np.ndarray, tile_size_m: float, radius_m: float) -> sparse.csr_matrix:
    """(points x sites) int32 matrix over flat cells: 1 where an in-room path of at most
    ``radius_m`` joins the two tile centres. Memoised and read-only."""
    return _memoised_reach(
        inside.astype(bool, copy=False).tobytes(), inside.shape, tile_size_m, radius_m
    )


@functools.lru_cache(maxsize=16)
def _memoised_reach(
    inside_bytes: bytes, shape: tuple[int, ...], tile_size_m: float, radius_m: float
) -> sparse.csr_matrix:
    # Imported here: only rooms with voids need paths, and scipy.sparse.csgraph
    # (with scipy.linalg) would add a tenth of a second to every command's start.
    from scipy.sparse.csgraph import dijkstra

    inside = np.frombuffer(inside_bytes, dtype=bool).reshape(shape)
    height, width = inside.shape
    limit = radius_m + EPSILON_M
    margin = int(np.floor(radius_m / tile_size_m + EPSILON_M)) + 1
    points, sites = [], []
    for y0 in range(0, height, BLOCK_TILES):
        for x0 in range(0, width, BLOCK_TILES):
            by, bx = np.nonzero(inside[y0 : y0 + BLOCK_TILES, x0 : x0 + BLOCK_TILES])
            if by.size == 0:
                continue
            wy0, wx0 = max(0, y0 - margin), max(0, x0 - margin)
            window = inside[wy0 : y0 + BLOCK_TILES + margin, wx0 : x0 + BLOCK_TILES + margin]
            window_width = window.shape[1]
            local = (by + y0 - wy0) * window_width + (bx + x0 - wx0)
            distance = dijkstra(
                move_graph(window, tile_size_m), directed=False, indices=local, limit=limit
            )
            source, target = np.nonzero(distance <= limit)
            ty, tx = np.divmod(target, window_width)
            points.append((ty + wy0) * width + tx + wx0)
            sites.append((by[source] + y0) * width + bx[source] + x0)
    row = np.concatenate(points) if points else np.empty(0, dtype=np.int64)
    col = np.concatenate(sites) if sites else np.empty(0, dtype=np.int64)
    matrix = sparse.csr_matrix(
        (np.ones(row.size, dtype=np.int32), (row, col)), shape=(inside.size, inside.size)
    )
    for array in (matrix.data, matrix.indices, matrix.indptr):
        array.setflags(write=False)
    return matrix


def reached(
    devices: np.ndarray, inside: np.ndarray, tile_size_m: float, radius_m: float
) -> np.ndarray:
    """(h, w) bool: cells an in-room path of at most ``radius_m`` joins to a ``devices`` cell."""
    counts = reach_matrix(inside, tile_size_m, radius_m) @ devices.ravel().astype(np.int32)
    return (counts > 0).reshape(devices.shape)
