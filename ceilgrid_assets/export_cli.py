"""``ceilgrid export``: DXF, PNG, HTML and CSV from a completed layout JSON.

The command line itself lives in :mod:`ceilgrid_assets.cli` (which imports this
module only when ``export`` runs, keeping matplotlib out of every start-up);
:func:`write_exports` serves both the command and the assets, so both produce
the same files the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .core.export import Layout, load_layout, write_boq_csv, write_dxf, write_pngs
from .core.grid import Room
from .core.io import InputError
from .core.report_html import write_report_html

#: Exit codes, as for ``ceilgrid layout``: 2 bad input, 0 done.
EXIT_OK, EXIT_INPUT = 0, 2

PathLike = str | os.PathLike[str]


def write_exports(
    layout: Layout,
    *,
    dxf_dir: PathLike | None = None,
    png_dir: PathLike | None = None,
    html: PathLike | None = None,
    csv: PathLike | None = None,
    stages: Mapping[str, Sequence[Room]] | None = None,
) -> dict[str, list[Path]]:
    """Write the requested exports; returns the written paths by kind."""
    written: dict[str, list[Path]] = {}
    if dxf_dir is not None:
        written["dxf"] = write_dxf(layout, dxf_dir)
    if png_dir is not None:
        written["png"] = write_pngs(layout, png_dir, stages)
    if html is not None:
        written["html"] = [write_report_html(layout, html, stages=stages)]
    if csv is not None:
        written["csv"] = [write_boq_csv(layout, csv)]
    return written


def export_command(
    layout_path: PathLike,
    dxf_dir: PathLike | None = None,
    png_dir: PathLike | None = None,
    html: PathLike | None = None,
    csv: PathLike | None = None,
) -> int:
    """Run ``ceilgrid export``: one summary line per kind on stdout, input errors on stderr."""
    if dxf_dir is None and png_dir is None and html is None and csv is None:
        print("ceilgrid export: nothing to do; give --dxf DIR, --png DIR, --html FILE or --csv FILE",
              file=sys.stderr)
        return EXIT_INPUT
    try:
        layout = load_layout(layout_path)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    for error in layout.errors:
        print(f"skipped: {error}", file=sys.stderr)
    written = write_exports(layout, dxf_dir=dxf_dir, png_dir=png_dir, html=html, csv=csv)
    targets = {"dxf": dxf_dir, "png": png_dir, "html": html, "csv": csv}
    for kind, paths in written.items():
        print(f"{kind}: wrote {len(paths)} file(s) to {targets[kind]}")
    return EXIT_INPUT if layout.errors else EXIT_OK
