"""Point-by-point illuminance at the work plane.

Each fitting is a point source at mounting height h = Hm above the work plane
with an intensity table I(C, gamma) (:mod:`~ceilgrid_assets.core.engine.luminaires`):
the room's named luminaire file, or by default a Lambertian source of the
profile's lamp flux, I = F cos(gamma) / pi. A point at horizontal offset r gets
E = I(C, gamma) cos^3(gamma) / h^2, times the maintenance factor (for the
Lambertian default, F cos^4(theta) / (pi h^2)). Fittings sit on tile centres,
so the illuminance map is the convolution of the light mask with that kernel:
summed directly for a few fittings, with an FFT in O(n log n) beyond.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from scipy import fft

from ceilgrid_assets.core.engine.grid import LIGHT, Room
from ceilgrid_assets.core.engine.luminaires import Luminaire, lambertian, load_luminaire
from ceilgrid_assets.core.engine.profile import Profile


def fft_convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Full linear convolution of two real 2-D arrays via real FFTs.

    Kept here rather than importing ``scipy.signal`` (seconds of import time for
    every CLI start); callers crop the ``valid`` or ``same`` part they need.
    The kernel's spectrum is memoised: every candidate of a room convolves
    with the same kernel, which saves a third of the transforms.
    """
    shape = [image.shape[i] + kernel.shape[i] - 1 for i in range(2)]
    fast = (fft.next_fast_len(shape[0], real=True), fft.next_fast_len(shape[1], real=True))
    product = fft.rfft2(image, fast) * _spectrum(kernel, fast)
    return fft.irfft2(product, fast)[: shape[0], : shape[1]]


#: Kernel spectra kept (a 500x500-tile room's light kernel spectrum is about 8 MB).
SPECTRA_KEPT = 8
#: Kernels up to this many cells are keyed by content (hashing them costs little).
CONTENT_KEYED_CELLS = 10_000
_spectra: OrderedDict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()


def _spectrum(kernel: np.ndarray, fast: tuple[int, int]) -> np.ndarray:
    """``rfft2(kernel, fast)``, memoised by content for small kernels (disk stencils)
    and by identity for read-only large ones (the memoised light kernels; the
    entry holds the array, so its identity cannot pass to another)."""
    by_content = kernel.size <= CONTENT_KEYED_CELLS
    if by_content:
        key: tuple[object, ...] = (kernel.tobytes(), kernel.shape, kernel.dtype.str, fast)
    elif not kernel.flags.writeable:
        key = (id(kernel), fast)
    else:
        return fft.rfft2(kernel, fast)
    entry = _spectra.get(key)
    if entry is not None and (by_content or entry[0] is kernel):
        _spectra.move_to_end(key)
        return entry[1]
    spectrum = fft.rfft2(kernel, fast)
    _spectra[key] = (kernel, spectrum)
    while len(_spectra) > SPECTRA_KEPT:
        _spectra.popitem(last=False)
    return spectrum


#: Kernels of grids up to this many tiles a side are cut from one kernel of this side.
SHARED_KERNEL_SIDE = 64


@functools.lru_cache(maxsize=16)
def point_kernel(
    shape: tuple[int, int],
    tile_size_m: float,
    mounting_height_m: float,
    luminaire: Luminaire,
    factor: float,
) -> np.ndarray:
    """Illuminance (lx) from one fitting at every offset, shape ``(2h-1, 2w-1)``.

    Row ``dy``, column ``dx`` (cell minus fitting) lies in the plane
    C = atan2(dy, dx) at gamma = atan(r / h); ``factor`` scales the intensity
    (the maintenance factor). Each value depends on its offset alone, so the
    kernel of a grid of at most :data:`SHARED_KERNEL_SIDE` tiles a side is the
    middle of that grid's, computed once: rooms of every size share it.
    """
    height, width = shape
    side = SHARED_KERNEL_SIDE
    if max(height, width) <= side:
        shared = _offset_kernel(side, side, tile_size_m, mounting_height_m, luminaire, factor)
        kernel = shared[side - height : side + height - 1, side - width : side + width - 1].copy()
    else:
        kernel = _offset_kernel(height, width, tile_size_m, mounting_height_m, luminaire, factor)
    kernel.setflags(write=False)  # memoised: shared by every room of this size and height
    return kernel


@functools.lru_cache(maxsize=4)
def _offset_kernel(
    height: int,
    width: int,
    tile_size_m: float,
    mounting_height_m: float,
    luminaire: Luminaire,
    factor: float,
) -> np.ndarray:
    """:func:`point_kernel` of a ``height`` x ``width`` grid, computed."""
    dy = np.arange(-(height - 1), height)[:, None] * tile_size_m
    dx = np.arange(-(width - 1), width)[None, :] * tile_size_m
    r = np.hypot(dy, dx)
    h = mounting_height_m
    gamma = np.degrees(np.arctan2(r, h))
    c_plane = np.degrees(np.arctan2(dy, dx))
    cos3 = (h / np.hypot(r, h)) ** 3
    kernel = factor * luminaire.intensity(c_plane, gamma) * cos3 / h**2
    kernel.setflags(write=False)
    return kernel


def room_kernel(room: Room, profile: Profile) -> np.ndarray:
    """The room's :func:`point_kernel`: its size, mounting height, luminaire and maintenance."""
    return point_kernel(
        room.cells.shape,
        room.tile_size_m,
        profile.mounting_height_m(room.ceiling_height_m),
        luminaire_of(room, profile),
        profile.maintenance_factor,
    )


def luminaire_of(room: Room, profile: Profile) -> Luminaire:
    """The room's own luminaire, else the profile's, else a Lambertian one of its lamp flux."""
    name = room.luminaire or profile.luminaire
    return lambertian(profile.lamp_flux_lm) if name is None else load_luminaire(name)


def required_lights(room: Room, profile: Profile) -> int:
    """Lumen-method light count with the flux of the room's luminaire."""
    return profile.min_lights(room.area_m2, room.room_type, luminaire_of(room, profile).flux_lm)


#: Up to this many (fitting, cell) pairs the map is summed directly, beyond by FFT.
DIRECT_ILLUMINANCE_PAIRS = 20_000


#: Maps of rooms of at most this many cells are memoised, the most recent first: a
#: light candidate's repair, validation and score each ask for the same map.
MEMOISED_MAP_CELLS = 10_000
MEMOISED_MAPS = 32
_maps: OrderedDict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()


def illuminance_map(room: Room, profile: Profile, lights: np.ndarray | None = None) -> np.ndarray:
    """Maintained illuminance (lx) at each cell centre; NaN on ``invalid`` cells.

    ``lights`` overrides the room's own light mask, so candidates can be scored
    without building a Room for each. Small rooms' maps are memoised and come
    back read-only (every caller derives new arrays from them).
    """
    mask = room.cells == LIGHT if lights is None else lights
    usable = room.usable
    if not np.count_nonzero(mask):
        return np.where(usable, 0.0, np.nan)
    kernel = room_kernel(room, profile)
    if mask.size > MEMOISED_MAP_CELLS:
        return _illuminance(kernel, mask, usable)
    # The entry holds the kernel, so a kernel's identity cannot pass to another.
    key = (id(kernel), mask.astype(bool, copy=False).tobytes(), usable.tobytes())
    entry = _maps.get(key)
    if entry is not None and entry[0] is kernel:
        _maps.move_to_end(key)
        return entry[1]
    lux = _illuminance(kernel, mask, usable)
    lux.setflags(write=False)
    _maps[key] = (kernel, lux)
    while len(_maps) > MEMOISED_MAPS:
        _maps.popitem(last=False)
    return lux


def _illuminance(kernel: np.ndarray, mask: np.ndarray, usable: np.ndarray) -> np.ndarray:
    height, width = mask.shape
    ly, lx = np.nonzero(mask)
    if ly.size * mask.size <= DIRECT_ILLUMINANCE_PAIRS:
        # Kernel index of (cell - fitting) offsets, one plane per fitting, summed.
        rows = (height - 1) + np.arange(height)[:, None, None] - ly
        cols = (width - 1) + np.arange(width)[None, :, None] - lx
        lux = np.add.reduce(kernel[rows, cols], axis=-1)  # sum(axis=-1)
    else:
        # The kernel spans every offset, so the "valid" part is exactly the room.
        lux = fft_convolve(mask.astype(np.float64), kernel)[
            height - 1 : 2 * height - 1, width - 1 : 2 * width - 1
        ]
        lux = np.clip(lux, 0.0, None)
    return np.where(usable, lux, np.nan)


def light_contribution(room: Room, profile: Profile, y: int, x: int) -> np.ndarray:
    """Illuminance (lx) one more fitting on cell (y, x) adds at every cell.

    Adding it to a map is exact (the map is a sum over fittings), so a loop
    placing lights one by one updates its map instead of convolving again.
    """
    kernel = room_kernel(room, profile)
    height, width = room.cells.shape
    return kernel[height - 1 - y : 2 * height - 1 - y, width - 1 - x : 2 * width - 1 - x]


@dataclass(frozen=True)
class Illuminance:
    average_lx: float
    minimum_lx: float
    uniformity_u0: float


def illuminance_summary(lux: np.ndarray, points: np.ndarray | None = None) -> Illuminance:
    """Average, minimum and U0 = Emin / Eavg over the cells of ``points`` (a mask of
    usable cells: the calculation area), else over every cell that is not NaN."""
    values = lux[~np.isnan(lux)] if points is None else lux[points]
    if values.size == 0:
        return Illuminance(0.0, 0.0, 0.0)
    # The sum over the count and the minimum reduction are what mean() and min() compute.
    average = float(np.add.reduce(values)) / values.size
    minimum = float(np.minimum.reduce(values))
    return Illuminance(average, minimum, minimum / average if average > 0 else 0.0)
