"""How regular a layout looks: devices on shared rows and columns, evenly spaced.

A designer draws fittings in aligned rows and columns at a steady pitch; two
layouts with the same devices and compliance are not equally good if one is
scattered. :func:`regularity` measures that for one device type:

- ``aligned``: the mean of the share of devices sharing their row with another
  device of the type and the share sharing their column (1.0: a full grid, or a
  single line of devices, as in a corridor; near 0: scattered);
- ``spacing_cv``: the coefficient of variation of the gaps between neighbours
  along rows and columns (0.0: a perfectly even pitch);
- ``score`` = aligned x (1 - min(1, spacing_cv)), in [0, 1].

Vectorised over devices; a layout with fewer than two devices is regular.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Regularity:
    aligned: float
    spacing_cv: float

    @property
    def score(self) -> float:
        return self.aligned * (1.0 - min(1.0, self.spacing_cv))


def _shared(lines: np.ndarray) -> np.ndarray:
    """For each device, whether another device lies on the same line (row or column index)."""
    return np.bincount(lines)[lines] > 1


def _gaps(along: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Gaps between consecutive devices on each line; devices sorted by line, then position."""
    return np.diff(along)[lines[1:] == lines[:-1]]


def regularity(devices: np.ndarray) -> Regularity:
    """The regularity of one device type's ``(h, w)`` mask."""
    ys, xs = np.nonzero(devices)  # row-major: sorted by row, then column
    if ys.size < 2:
        return Regularity(1.0, 0.0)
    # A single row (or column) is as aligned as that direction allows.
    by_row = _shared(ys) if xs.min() != xs.max() else np.ones(ys.size, dtype=bool)
    by_column = _shared(xs) if ys.min() != ys.max() else np.ones(xs.size, dtype=bool)
    aligned = float((by_row.mean() + by_column.mean()) / 2)
    column_xs, column_ys = np.nonzero(devices.T)  # sorted by column, then row
    gaps = np.concatenate([_gaps(xs, ys), _gaps(column_ys, column_xs)]).astype(np.float64)
    if gaps.size == 0 or gaps.mean() == 0:
        return Regularity(aligned, 0.0)
    return Regularity(aligned, float(gaps.std() / gaps.mean()))
