"""``ceilgrid export``: DXF, PNG, HTML, CSV and IFC from a completed layout JSON.

The outputs (matplotlib, ezdxf, ifcopenshell) are imported only when ``export``
runs, which keeps them out of every other command's start-up.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ceilgrid_assets.cli.common import EXIT_BAD_INPUT, EXIT_OK, report_errors
from ceilgrid_assets.core.engine.errors import InputError

if TYPE_CHECKING:
    from ceilgrid_assets.core.engine.grid import Room
    from ceilgrid_assets.core.outputs.export import Layout

PathLike = str | os.PathLike[str]


def write_exports(
    layout: Layout,
    *,
    dxf_dir: PathLike | None = None,
    png_dir: PathLike | None = None,
    html: PathLike | None = None,
    csv: PathLike | None = None,
    ifc: PathLike | None = None,
    stages: Mapping[str, Sequence[Room]] | None = None,
) -> dict[str, list[Path]]:
    """Write the requested exports; returns the written paths by kind."""
    from ceilgrid_assets.core.outputs.export import write_boq_csv, write_dxf, write_pngs
    from ceilgrid_assets.core.outputs.report_html import write_report_html

    written: dict[str, list[Path]] = {}
    if dxf_dir is not None:
        written["dxf"] = write_dxf(layout, dxf_dir)
    if png_dir is not None:
        written["png"] = write_pngs(layout, png_dir, stages)
    if html is not None:
        written["html"] = [write_report_html(layout, html, stages=stages)]
    if csv is not None:
        written["csv"] = [write_boq_csv(layout, csv)]
    if ifc is not None:
        from ceilgrid_assets.core.outputs.ifc import write_ifc

        written["ifc"] = [write_ifc(layout, ifc)]
    return written


def export_command(
    layout_path: PathLike,
    dxf_dir: PathLike | None = None,
    png_dir: PathLike | None = None,
    html: PathLike | None = None,
    csv: PathLike | None = None,
    ifc: PathLike | None = None,
) -> int:
    """Run ``ceilgrid export``: one summary line per kind on stdout, input errors on stderr."""
    targets = {"dxf": dxf_dir, "png": png_dir, "html": html, "csv": csv, "ifc": ifc}
    if all(target is None for target in targets.values()):
        print(
            "ceilgrid export: nothing to do; give --dxf DIR, --png DIR, --html FILE, "
            "--csv FILE or --ifc FILE",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    from ceilgrid_assets.core.outputs.export import load_layout

    try:
        layout = load_layout(layout_path)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report_errors(layout.errors, prefix="skipped")
    written = write_exports(layout, dxf_dir=dxf_dir, png_dir=png_dir, html=html, csv=csv, ifc=ifc)
    for kind, paths in written.items():
        print(f"{kind}: wrote {len(paths)} file(s) to {targets[kind]}")
    return EXIT_BAD_INPUT if layout.errors else EXIT_OK


def export_handler(args: argparse.Namespace) -> int:
    return export_command(
        args.layout, dxf_dir=args.dxf, png_dir=args.png, html=args.html, csv=args.csv, ifc=args.ifc
    )


def add_export_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="DXF plans, PNG renders, HTML report, bill of quantities and IFC model of a layout",
    )
    export.add_argument("layout", type=Path, help="completed layout JSON (from 'ceilgrid layout')")
    export.add_argument("--dxf", type=Path, metavar="DIR", help="one DXF per room into DIR")
    export.add_argument("--png", type=Path, metavar="DIR", help="PNG renders into DIR")
    export.add_argument("--html", type=Path, metavar="FILE", help="HTML report to FILE")
    export.add_argument("--csv", type=Path, metavar="FILE", help="bill of quantities to FILE")
    export.add_argument("--ifc", type=Path, metavar="FILE", help="IFC4 model to FILE")
    export.set_defaults(handler=export_handler)
