"""Seeded synthetic room corpus: realistic rooms for labelling, training and evaluation.

Every room comes from ``numpy.random.default_rng([seed, index])``, so room ``i``
of a corpus is the same whatever ``n`` is and a corpus is reproducible from its
seed alone. The distributions (also in docs/learned-models.md):

- **Room type** (weights): office 0.26, corridor 0.16, meeting 0.14,
  classroom 0.10, storage 0.12, restroom 0.10, lobby 0.12.
- **Size** (metres, uniform within the range per type, then rounded to tiles):

  ====================  ===============  ===============
  type                  side a (m)       side b (m)
  ====================  ===============  ===============
  storage               1.8 - 4.8        1.8 - 6.0       (3x3-tile closets up)
  restroom              2.4 - 6.0        2.4 - 9.0
  office (cellular 60%) 3.0 - 7.2        3.0 - 9.0
  office (open plan)    9.0 - 36.0       9.0 - 60.0
  meeting               3.6 - 9.0        4.2 - 15.0
  classroom             6.6 - 10.2       7.2 - 12.0
  lobby / hall          7.2 - 30.0       7.2 - 60.0
  corridor              1 - 3 tiles      4.8 - 60.0
  ====================  ===============  ===============

  Sides are at least 3 tiles (corridors: 1-3 tiles wide) and a room is at most
  100 tiles long. The orientation is random (a corridor runs along x or y).
- **Tile size**: 0.6 m (70 %) or 0.61 m (30 %, imperial 2 ft grid).
- **Ceiling height** (m, uniform, rounded to 0.05): storage/restroom/corridor
  2.4 - 3.0; office/meeting 2.5 - 3.6; classroom 2.7 - 3.6; lobby 3.0 - 6.0.
- **Shape**: rooms whose sides are both >= 6 tiles are rectangles (65 %), L
  shapes (20 %: one corner cut, 25-55 % of each side) or U shapes (15 %: a
  notch of 25-45 % of the width, 30-60 % of the depth, cut from the middle of one
  side). Cut-away cells are ``invalid``.
- **Structure**: rooms with both sides >= 10 m get a column grid with
  probability 0.5 (1x1 or 2x2 tiles, bays 6-9 m, offset at random); rooms with a
  side >= 6 m get one beam row (a full line of invalid tiles, 1 tile deep, across
  the short side, away from the walls) with probability 0.15.
- **Pre-existing components** (25 % of rooms with >= 12 usable cells): one or two
  devices among smoke detector, light and air supply, placed one after the other
  on empty cells that keep every clearance rule of the profile, so the input is
  itself legal.

The generator never checks that a compliant completion exists: that is the
engine's job, and rooms where it cannot are what the evaluation is for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ceilgrid_assets.core.engine.grid import (
    AIR_SUPPLY,
    CODE,
    EMPTY,
    INVALID,
    LIGHT,
    SMOKE_DETECTOR,
    Room,
)
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, Profile, get_profile
from ceilgrid_assets.core.engine.rules import EPSILON_M, distance_to

ROOM_TYPE_WEIGHTS: dict[str, float] = {
    "office": 0.26,
    "corridor": 0.16,
    "meeting": 0.14,
    "classroom": 0.10,
    "storage": 0.12,
    "restroom": 0.10,
    "lobby": 0.12,
}
#: (side a range, side b range) in metres per room type; corridors use tiles for width.
SIZE_RANGES_M: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "storage": ((1.8, 4.8), (1.8, 6.0)),
    "restroom": ((2.4, 6.0), (2.4, 9.0)),
    "office": ((3.0, 7.2), (3.0, 9.0)),
    "open_plan": ((9.0, 36.0), (9.0, 60.0)),
    "meeting": ((3.6, 9.0), (4.2, 15.0)),
    "classroom": ((6.6, 10.2), (7.2, 12.0)),
    "lobby": ((7.2, 30.0), (7.2, 60.0)),
    "corridor": ((1.0, 3.0), (4.8, 60.0)),
}
OPEN_PLAN_SHARE = 0.4
CEILING_RANGES_M: dict[str, tuple[float, float]] = {
    "storage": (2.4, 3.0),
    "restroom": (2.4, 3.0),
    "corridor": (2.4, 3.0),
    "office": (2.5, 3.6),
    "meeting": (2.5, 3.6),
    "classroom": (2.7, 3.6),
    "lobby": (3.0, 6.0),
}
TILE_SIZES_M: tuple[float, ...] = (0.6, 0.61)
TILE_WEIGHTS: tuple[float, ...] = (0.7, 0.3)
SHAPE_WEIGHTS: dict[str, float] = {"rect": 0.65, "L": 0.20, "U": 0.15}
MIN_SIDE_TILES = 3
MAX_SIDE_TILES = 100
COLUMN_PROBABILITY = 0.5
BEAM_PROBABILITY = 0.15
PREEXISTING_PROBABILITY = 0.25
CEILING_BOUNDS_M = (2.4, 6.0)


@dataclass(frozen=True)
class CorpusSpec:
    """What identifies a corpus: enough to regenerate it and to check a model card."""

    seed: int
    n_rooms: int
    prefix: str = "synth"


def generate_room(
    seed: int, index: int, prefix: str = "synth", profile: Profile | str = DEFAULT_PROFILE
) -> Room:
    """Room ``index`` of the corpus with ``seed``; independent of the corpus size."""
    rng = np.random.default_rng([seed, index])
    profile = get_profile(profile)
    room_type = str(rng.choice(list(ROOM_TYPE_WEIGHTS), p=list(ROOM_TYPE_WEIGHTS.values())))
    tile = float(rng.choice(TILE_SIZES_M, p=TILE_WEIGHTS))
    low, high = CEILING_RANGES_M[room_type]
    ceiling = round(float(rng.uniform(low, high)) * 20) / 20
    height, width = _size_tiles(rng, room_type, tile)
    cells = np.zeros((height, width), dtype=np.uint8)
    if room_type != "corridor" and min(height, width) >= 6:
        _cut_shape(rng, cells)
    _add_structure(rng, cells, tile)
    room = Room(
        grid_id=f"{prefix}-{seed}-{index:05d}",
        cells=cells,
        tile_size_m=tile,
        ceiling_height_m=ceiling,
        room_type=room_type,
    )
    if np.count_nonzero(cells == EMPTY) >= 12 and rng.random() < PREEXISTING_PROBABILITY:
        room = room.with_cells(_preexisting(rng, cells, tile, profile))
    return room


def generate_rooms(spec: CorpusSpec, profile: Profile | str = DEFAULT_PROFILE) -> list[Room]:
    """The whole corpus of ``spec``, in index order."""
    return [generate_room(spec.seed, index, spec.prefix, profile) for index in range(spec.n_rooms)]


def corpus_hash(rooms: list[Room]) -> str:
    """SHA-256 over every room's parameters and cells: a model card names its exact corpus."""
    digest = hashlib.sha256()
    for room in rooms:
        digest.update(
            f"{room.grid_id}|{room.cells.shape}|{room.tile_size_m}|"
            f"{room.ceiling_height_m}|{room.room_type}|".encode()
        )
        digest.update(np.ascontiguousarray(room.cells).tobytes())
    return digest.hexdigest()


def room_digest(room: Room) -> str:
    """SHA-256 of what labelling sees (cells, tile, height, type); ids and other keys excluded."""
    digest = hashlib.sha256(
        f"{room.cells.shape}|{room.tile_size_m}|{room.ceiling_height_m}|{room.room_type}|".encode()
    )
    digest.update(np.ascontiguousarray(room.cells).tobytes())
    return digest.hexdigest()


def served_corpus(
    rooms: Iterable[Room], max_rooms: int, max_side: int = MAX_SIDE_TILES
) -> list[Room]:
    """Rooms of submitted buildings as training data.

    Deduplicated by content (the same room submitted twice counts once), stripped
    of ids and unknown keys (``grid_id`` becomes ``served-<digest>``), rooms longer
    than the synthetic corpus allows skipped (labelling cost), and at most
    ``max_rooms``: those with the smallest digests, so the choice depends on the
    set of rooms, not on the order they arrived in.
    """
    unique: dict[str, Room] = {}
    for room in rooms:
        if max(room.cells.shape) <= max_side:
            unique.setdefault(room_digest(room), room)
    return [
        Room(
            grid_id=f"served-{digest[:16]}",
            cells=unique[digest].cells.copy(),
            tile_size_m=unique[digest].tile_size_m,
            ceiling_height_m=unique[digest].ceiling_height_m,
            room_type=unique[digest].room_type,
        )
        for digest in sorted(unique)[:max_rooms]
    ]


def _size_tiles(rng: np.random.Generator, room_type: str, tile: float) -> tuple[int, int]:
    """(height, width) in tiles, orientation random."""
    if room_type == "corridor":
        (w_lo, w_hi), (l_lo, l_hi) = SIZE_RANGES_M["corridor"]
        short = int(rng.integers(int(w_lo), int(w_hi) + 1))
        long = _tiles(rng.uniform(l_lo, l_hi), tile)
    else:
        key = "open_plan" if room_type == "office" and rng.random() < OPEN_PLAN_SHARE else room_type
        (a_lo, a_hi), (b_lo, b_hi) = SIZE_RANGES_M[key]
        short = _tiles(rng.uniform(a_lo, a_hi), tile)
        long = _tiles(rng.uniform(b_lo, b_hi), tile)
    return (short, long) if rng.random() < 0.5 else (long, short)


def _tiles(metres: float, tile: float) -> int:
    return int(np.clip(round(metres / tile), MIN_SIDE_TILES, MAX_SIDE_TILES))


def _cut_shape(rng: np.random.Generator, cells: np.ndarray) -> None:
    """Make an L (corner cut) or a U (notch in one side) by marking cells invalid."""
    shape = str(rng.choice(list(SHAPE_WEIGHTS), p=list(SHAPE_WEIGHTS.values())))
    height, width = cells.shape
    if shape == "L":
        ch = max(2, int(height * rng.uniform(0.25, 0.55)))
        cw = max(2, int(width * rng.uniform(0.25, 0.55)))
        rows = slice(0, ch) if rng.random() < 0.5 else slice(height - ch, height)
        cols = slice(0, cw) if rng.random() < 0.5 else slice(width - cw, width)
        cells[rows, cols] = INVALID
    elif shape == "U":
        view = cells if rng.random() < 0.5 else cells.T  # notch from the top or the left
        h, w = view.shape
        nw = max(2, int(w * rng.uniform(0.25, 0.45)))
        depth = max(2, int(h * rng.uniform(0.30, 0.60)))
        x0 = (w - nw) // 2
        rows = slice(0, depth) if rng.random() < 0.5 else slice(h - depth, h)
        view[rows, x0 : x0 + nw] = INVALID


def _add_structure(rng: np.random.Generator, cells: np.ndarray, tile: float) -> None:
    """Column grids and a beam row as invalid tiles, never on the outer walls."""
    height, width = cells.shape
    if min(height, width) * tile >= 10.0 and rng.random() < COLUMN_PROBABILITY:
        bay = max(2, round(float(rng.uniform(6.0, 9.0)) / tile))
        size = int(rng.integers(1, 3))
        oy, ox = (int(rng.integers(bay // 2, bay)) for _ in range(2))
        for y in range(oy, height - size, bay):
            for x in range(ox, width - size, bay):
                cells[y : y + size, x : x + size] = INVALID
    if (
        max(height, width) * tile >= 6.0
        and min(height, width) >= 3
        and rng.random() < BEAM_PROBABILITY
    ):
        view = cells if height >= width else cells.T  # the beam spans the short side
        row = int(rng.integers(2, view.shape[0] - 2))
        view[row, :] = INVALID


def _preexisting(
    rng: np.random.Generator, cells: np.ndarray, tile: float, profile: Profile
) -> np.ndarray:
    """One or two existing devices placed so every clearance rule already holds."""
    cells = cells.copy()
    kinds = rng.choice(
        ["smoke_detector", "light", "air_supply"], size=int(rng.integers(1, 3)), replace=False
    )
    for kind in kinds:
        ok = cells == EMPTY
        detectors = cells == SMOKE_DETECTOR
        if kind == "smoke_detector":
            ok &= distance_to(cells == LIGHT, tile) >= profile.smoke_to_light_m - EPSILON_M
            ok &= distance_to(cells == AIR_SUPPLY, tile) >= profile.smoke_to_air_m - EPSILON_M
        elif kind == "light":
            ok &= distance_to(detectors, tile) >= profile.smoke_to_light_m - EPSILON_M
        else:
            ok &= distance_to(detectors, tile) >= profile.smoke_to_air_m - EPSILON_M
        choices = np.flatnonzero(ok)
        if choices.size:
            cells.flat[int(rng.choice(choices))] = CODE[kind]
    return cells


def size_summary(rooms: list[Room]) -> dict[str, float]:
    """Corpus statistics for cards and docs: how big and varied the rooms are."""
    sides = np.array([[room.height, room.width] for room in rooms])
    return {
        "rooms": len(rooms),
        "min_side_tiles": int(sides.min()),
        "max_side_tiles": int(sides.max()),
        "rooms_ge_40x40": int(np.count_nonzero(sides.min(axis=1) >= 40)),
        "mean_usable_cells": float(np.mean([np.count_nonzero(r.usable) for r in rooms])),
        "max_area_m2": float(max(r.area_m2 for r in rooms)),
        "ceiling_min_m": float(min(r.ceiling_height_m for r in rooms)),
        "ceiling_max_m": float(max(r.ceiling_height_m for r in rooms)),
        "with_preexisting": int(
            sum(bool(np.isin(r.cells, [LIGHT, AIR_SUPPLY, SMOKE_DETECTOR]).any()) for r in rooms)
        ),
    }
