"""The ceiling grid as a compact numpy array, and the building that holds rooms.

A room's tiles live in a ``(height, width)`` ``uint8`` array indexed ``[y, x]``;
each value is a component code. Everything downstream (rules, photometry,
features, placement) works on these arrays and on the tile-centre coordinates
returned by :func:`cell_centres`, never on per-cell Python objects.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Component names in code order: the array value is the index in this tuple.
COMPONENTS: tuple[str, ...] = (
    "empty",
    "invalid",
    "light",
    "air_supply",
    "air_return",
    "smoke_detector",
    "void",  # appended last so the older codes keep their values
)
CODE: dict[str, int] = {name: code for code, name in enumerate(COMPONENTS)}
EMPTY, INVALID, LIGHT, AIR_SUPPLY, AIR_RETURN, SMOKE_DETECTOR, VOID = range(len(COMPONENTS))

#: Components the engine places, in series order.
DEVICE_COMPONENTS: tuple[str, ...] = ("light", "air_supply", "air_return", "smoke_detector")

#: Tolerance for "within" and "at least" comparisons of float distances.
EPSILON_M = 1e-9
DEFAULT_TILE_SIZE_M = 0.6
DEFAULT_CEILING_HEIGHT_M = 2.7
DEFAULT_ROOM_TYPE = "office"


@dataclass(frozen=True)
class Room:
    """One room: its tile array plus the physical parameters the rules need.

    ``extra`` keeps any top-level keys of the input that ceilgrid does not
    interpret, so that a document round-trips without losing information.
    """

    grid_id: str
    cells: np.ndarray  # (height, width) uint8 component codes, indexed [y, x]
    tile_size_m: float = DEFAULT_TILE_SIZE_M
    ceiling_height_m: float = DEFAULT_CEILING_HEIGHT_M
    room_type: str = DEFAULT_ROOM_TYPE
    extra: dict[str, Any] = field(default_factory=dict)
    luminaire: str | None = None  # a shipped luminaire's name; None: the profile's own

    @property
    def height(self) -> int:
        return int(self.cells.shape[0])

    @property
    def width(self) -> int:
        return int(self.cells.shape[1])

    @functools.cached_property
    def usable(self) -> np.ndarray:
        """Boolean mask of coverage points: every cell that is neither ``invalid`` nor ``void``.

        Computed once per room (every check asks for it; a room's cells are never
        changed in place: :meth:`with_cells` makes a new room); read-only.
        """
        usable = (self.cells != INVALID) & (self.cells != VOID)
        usable.flags.writeable = False
        return usable

    @property
    def inside(self) -> np.ndarray:
        """Boolean mask of the room itself (not ``void``): where coverage may travel."""
        return self.cells != VOID

    @functools.cached_property
    def has_void(self) -> bool:
        """Whether part of the grid lies outside the room (distances then follow in-room paths)."""
        return bool(np.count_nonzero(self.cells == VOID))

    @functools.cached_property
    def area_m2(self) -> float:
        """Ceiling area A of the rulebook: coverage points times tile area."""
        return float(np.count_nonzero(self.usable)) * self.tile_size_m**2

    def with_cells(self, cells: np.ndarray) -> Room:
        """This room with other cells (the engine makes thousands a second: no ``replace``)."""
        return Room(
            self.grid_id,
            cells,
            self.tile_size_m,
            self.ceiling_height_m,
            self.room_type,
            self.extra,
            self.luminaire,
        )

    def with_devices(self, cells: np.ndarray) -> Room:
        """:meth:`with_cells` for ``cells`` that only place devices on empty cells: what
        is usable, void and the area stay the same, so they are carried over rather
        than computed again for each candidate judged."""
        room = self.with_cells(cells)
        for name in _KEPT_WITH_DEVICES:
            if name in self.__dict__:
                room.__dict__[name] = self.__dict__[name]
        return room

    def count(self, component: str) -> int:
        return int(np.count_nonzero(self.cells == CODE[component]))


#: Cached properties of a room that placing devices on empty cells does not change.
_KEPT_WITH_DEVICES = ("usable", "has_void", "area_m2")


def cell_centres(shape: tuple[int, int], tile_size_m: float) -> np.ndarray:
    """Centres in metres of every cell, shape ``(height*width, 2)`` as ``(x, y)``.

    Row-major order matches ``cells.ravel()``, so flat index ``i`` of a mask
    is row ``i`` here.
    """
    height, width = shape
    ys, xs = np.divmod(np.arange(height * width), width)
    return np.column_stack(((xs + 0.5) * tile_size_m, (ys + 0.5) * tile_size_m))


def flat_to_xy(flat_indices: np.ndarray, width: int) -> list[list[int]]:
    """Flat array indices to ``[[x, y], ...]`` as used in violations."""
    ys, xs = np.divmod(np.asarray(flat_indices, dtype=np.int64), width)
    return np.column_stack((xs, ys)).tolist()
