"""Luminaire photometry: intensity tables from EULUMDAT (.ldt) and IES LM-63 (.ies) files.

Files are read with maintained readers (``eulumdat-py`` for LDT, ``eulumdat-ies``
to bring IES into the same model), imported only when a file is read, so that
commands which never read one start as fast as before. A table is held in
candela (the file's cd/klm times its lamp kilolumens) over the full circle of
C planes, and :meth:`Luminaire.intensity` interpolates it for whole arrays of
directions at once.

Documents name luminaires from the shipped catalogue (the files in
``luminaire_files/``), never by path: see :func:`luminaire_names`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The shipped catalogue: every ``.ldt`` and ``.ies`` file here, named by its stem.
LUMINAIRE_DIR = Path(__file__).with_name("luminaire_files")
SUFFIXES = (".ldt", ".ies")
#: Declared and integrated luminaire flux may differ by this share (tabulation).
FLUX_TOLERANCE = 0.02


@dataclass(frozen=True, eq=False)  # identity hash: tables are memoised per name
class Luminaire:
    """An intensity table ``candela[c, gamma]`` in cd, and the luminaire flux.

    ``c_deg`` ascends within [0, 360) (C0 lies along the grid's x axis, C90
    along y); ``gamma_deg`` ascends from 0 (straight down). Directions beyond
    the last gamma get 0 cd. ``flux_lm`` is the file's declared luminaire flux
    (lamp flux x light output ratio), which the lumen method uses.
    """

    name: str
    c_deg: np.ndarray
    gamma_deg: np.ndarray
    candela: np.ndarray
    flux_lm: float

    def intensity(self, c_deg: np.ndarray, gamma_deg: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of the table (periodic in C), for arrays of directions."""
        c = np.mod(np.asarray(c_deg, dtype=np.float64), 360.0)
        gamma = np.asarray(gamma_deg, dtype=np.float64)
        planes = np.append(self.c_deg, self.c_deg[0] + 360.0)
        table = np.vstack((self.candela, self.candela[:1]))
        ci = np.clip(np.searchsorted(planes, c, side="right") - 1, 0, planes.size - 2)
        ct = (c - planes[ci]) / (planes[ci + 1] - planes[ci])
        g = self.gamma_deg
        if g.size == 1:
            gi, gt = np.zeros(gamma.shape, dtype=np.int64), np.zeros(gamma.shape)
            table = np.hstack((table, table))
        else:
            gi = np.clip(np.searchsorted(g, gamma, side="right") - 1, 0, g.size - 2)
            gt = np.clip((gamma - g[gi]) / (g[gi + 1] - g[gi]), 0.0, 1.0)
        low = table[ci, gi] * (1 - gt) + table[ci, gi + 1] * gt
        high = table[ci + 1, gi] * (1 - gt) + table[ci + 1, gi + 1] * gt
        value = low * (1 - ct) + high * ct
        return np.where((gamma < g[0]) | (gamma > g[-1]), 0.0, value)

    def integrated_flux_lm(self) -> float:
        """The table integrated over the sphere (sum of I dOmega), on a fine grid of
        the interpolated table: the flux of exactly what the illuminance uses.
        """
        gamma = np.linspace(0.0, 180.0, 3601)
        c = self.c_deg
        # Periodic trapezoid weights of the C planes (2 pi for a single plane).
        gaps = np.diff(np.append(c, c[0] + 360.0))
        weights = np.radians((gaps + np.roll(gaps, 1)) / 2)
        rings = self.intensity(c[:, None], gamma[None, :]) * np.sin(np.radians(gamma))
        return float(weights @ np.trapezoid(rings, np.radians(gamma), axis=1))


@functools.lru_cache(maxsize=8)
def lambertian(flux_lm: float) -> Luminaire:
    """A Lambertian downlighter of ``flux_lm``: I = (F / pi) cos(gamma).

    Tabulated every 0.1 degrees, so interpolation changes it by under 1e-6.
    """
    gamma = np.linspace(0.0, 90.0, 901)
    candela = flux_lm / math.pi * np.cos(np.radians(gamma))
    candela[-1] = 0.0
    return Luminaire(f"lambertian {flux_lm:g} lm", np.zeros(1), gamma, candela[None, :], flux_lm)


@functools.lru_cache(maxsize=1)  # the shipped folder does not change while running
def luminaire_names() -> tuple[str, ...]:
    """Names a document may give in its ``luminaire`` field: the shipped files' stems."""
    return tuple(sorted(path.stem for path in _catalogue_files()))


def _catalogue_files() -> list[Path]:
    return [path for path in LUMINAIRE_DIR.iterdir() if path.suffix.lower() in SUFFIXES]


@functools.lru_cache(maxsize=16)
def load_luminaire(name: str) -> Luminaire:
    """The shipped luminaire ``name``; ``KeyError`` listing the catalogue otherwise.

    Only names found in the catalogue folder are opened, so a document's value
    never becomes a path.
    """
    matches = [path for path in _catalogue_files() if path.stem == name]
    if len(matches) != 1:
        raise KeyError(f"unknown luminaire {name!r}; choose one of {', '.join(luminaire_names())}")
    return read_luminaire(matches[0])


def read_luminaire(path: Path) -> Luminaire:
    """Read an ``.ldt`` or ``.ies`` file; a malformed one raises ``ValueError`` naming it."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".ldt":
            from pyldt import LdtReader

            ldt = LdtReader.read(path)
        elif suffix == ".ies":
            from eulumdat_ies import ies_to_ldt

            ldt = ies_to_ldt(path)
        else:
            raise ValueError(f"not a photometric file (expected {' or '.join(SUFFIXES)})")
        header = ldt.header
        # cd/klm of the lamps' total flux (EULUMDAT lists a negative count for
        # absolute photometry, hence abs), times the file's intensity factor.
        lamps = zip(header.num_lamps, header.lamp_flux, strict=True)
        lamp_klm = sum(abs(count) * flux for count, flux in lamps)
        scale = lamp_klm / 1000.0 * (header.conv_factor or 1.0)
        declared = lamp_klm * header.lorl / 100.0
        c_deg = np.asarray(header.c_angles[: len(ldt.intensities)], dtype=np.float64)
        candela = np.asarray(ldt.intensities, dtype=np.float64) * scale
        gamma = np.asarray(header.g_angles, dtype=np.float64)
        c_deg, candela = _full_circle(c_deg, candela)
        if candela.shape != (c_deg.size, gamma.size) or gamma.size == 0:
            raise ValueError(
                f"intensity table is {candela.shape}, expected {c_deg.size} C planes x "
                f"{gamma.size} gamma angles"
            )
        if np.any(np.diff(gamma) <= 0) or np.any(np.diff(c_deg) <= 0) or gamma[0] < 0:
            raise ValueError("angles must ascend, gamma from 0")
        if not np.all(np.isfinite(candela)) or np.any(candela < 0):
            raise ValueError("intensities must be finite and not negative")
        luminaire = Luminaire(path.stem, c_deg, gamma, candela, declared)
        integrated = luminaire.integrated_flux_lm()
        # The lumen method takes the declared flux, the illuminance the table:
        # they must tell the same story (an absolute IES file without lamp
        # lumens, or a wrong light output ratio, would not).
        if not abs(integrated - declared) <= FLUX_TOLERANCE * declared:
            raise ValueError(
                f"declared flux {declared:.0f} lm (lamps x light output ratio), but the "
                f"intensity table integrates to {integrated:.0f} lm"
            )
    except (ValueError, IndexError, OSError) as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    return luminaire


def _full_circle(c_deg: np.ndarray, candela: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C planes of an IES table's symmetry (LM-63: last angle 0, 90, 180) over [0, 360).

    EULUMDAT tables already come expanded by the reader and pass unchanged.
    """
    if c_deg.size == 0 or c_deg[0] != 0.0 or c_deg[-1] not in (90.0, 180.0):
        return c_deg, candela
    if c_deg[-1] == 90.0:  # quadrant symmetry: mirror into 90-180, then 180-360
        c_deg = np.concatenate((c_deg, 180.0 - c_deg[-2::-1]))
        candela = np.vstack((candela, candela[-2::-1]))
    mirrored = 360.0 - c_deg[-2:0:-1]  # bilateral about the C0-C180 plane
    return np.concatenate((c_deg, mirrored)), np.vstack((candela, candela[-2:0:-1]))
