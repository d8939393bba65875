"""Point-by-point illuminance at the work plane.

Each fitting is a Lambertian source of flux F at mounting height h = Hm above
the work plane: E = F * cos^4(theta) / (pi * h^2), times the maintenance factor.
Fittings sit on tile centres, so the illuminance map is the convolution of the
light mask with that kernel: summed directly for a few fittings, with an FFT
in O(n log n) beyond.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import fft

from ceilgrid_assets.core.engine.grid import LIGHT, Room
from ceilgrid_assets.core.engine.profile import Profile


def fft_convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Full linear convolution of two real 2-D arrays via real FFTs.

    Kept here rather than importing ``scipy.signal`` (seconds of import time for
    every CLI start); callers crop the ``valid`` or ``same`` part they need.
    """
    shape = [image.shape[i] + kernel.shape[i] - 1 for i in range(2)]
    fast = [fft.next_fast_len(n, real=True) for n in shape]
    product = fft.rfft2(image, fast) * fft.rfft2(kernel, fast)
    return fft.irfft2(product, fast)[: shape[0], : shape[1]]


@functools.lru_cache(maxsize=16)
def point_kernel(
    shape: tuple[int, int], tile_size_m: float, mounting_height_m: float, flux_lm: float
) -> np.ndarray:
    """Illuminance (lx) from one fitting at every offset, shape ``(2h-1, 2w-1)``."""
    height, width = shape
    dy = np.arange(-(height - 1), height) * tile_size_m
    dx = np.arange(-(width - 1), width) * tile_size_m
    r2 = dy[:, None] ** 2 + dx[None, :] ** 2
    h2 = mounting_height_m**2
    cos4 = (h2 / (h2 + r2)) ** 2
    kernel = flux_lm * cos4 / (np.pi * h2)
    kernel.setflags(write=False)  # memoised: shared by every room of this size and height
    return kernel


#: Up to this many (fitting, cell) pairs the map is summed directly, beyond by FFT.
DIRECT_ILLUMINANCE_PAIRS = 20_000


def illuminance_map(room: Room, profile: Profile, lights: np.ndarray | None = None) -> np.ndarray:
    """Maintained illuminance (lx) at each cell centre; NaN on ``invalid`` cells.

    ``lights`` overrides the room's own light mask, so candidates can be scored
    without building a Room for each.
    """
    mask = room.cells == LIGHT if lights is None else lights
    usable = room.usable
    if not mask.any():
        return np.where(usable, 0.0, np.nan)
    kernel = point_kernel(
        room.cells.shape,
        room.tile_size_m,
        profile.mounting_height_m(room.ceiling_height_m),
        profile.lamp_flux_lm * profile.maintenance_factor,
    )
    height, width = mask.shape
    ly, lx = np.nonzero(mask)
    if ly.size * mask.size <= DIRECT_ILLUMINANCE_PAIRS:
        # Kernel index of (cell - fitting) offsets, one plane per fitting, summed.
        rows = (height - 1) + np.arange(height)[:, None, None] - ly
        cols = (width - 1) + np.arange(width)[None, :, None] - lx
        lux = kernel[rows, cols].sum(axis=-1)
    else:
        # The kernel spans every offset, so the "valid" part is exactly the room.
        lux = fft_convolve(mask.astype(np.float64), kernel)[
            height - 1 : 2 * height - 1, width - 1 : 2 * width - 1
        ]
        lux = np.clip(lux, 0.0, None)
    return np.where(usable, lux, np.nan)


@dataclass(frozen=True)
class Illuminance:
    average_lx: float
    minimum_lx: float
    uniformity_u0: float


def illuminance_summary(lux: np.ndarray) -> Illuminance:
    """Average, minimum and U0 = Emin / Eavg over the coverage points."""
    values = lux[~np.isnan(lux)]
    if values.size == 0:
        return Illuminance(0.0, 0.0, 0.0)
    average = float(values.mean())
    minimum = float(values.min())
    return Illuminance(average, minimum, minimum / average if average > 0 else 0.0)
