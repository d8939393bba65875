"""``ceilgrid layout``: complete the rooms of a room or building file.

The engine (numpy, scipy) is imported when the command runs, not when the
parser is built, so ``ceilgrid --help`` and the other commands start without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ceilgrid_assets.cli.common import add_profile_argument, progress_printer, report_errors
from ceilgrid_assets.core.engine.budgets import (
    DEFAULT_OPTIMISER_MAX_CELLS,
    DEFAULT_OPTIMISER_TIME_S,
)


def resolve_models_dir(explicit: Path | None, disabled: bool) -> Path | None:
    """--models, else $CEILGRID_MODELS_DIR, else none.

    Never the working folder's ``.ceilgrid/models`` by itself: a folder someone
    else prepared (a checkout, a download) must not decide which model files a
    plain ``ceilgrid layout`` loads.
    """
    if disabled:
        return None
    if explicit is not None:
        return explicit
    configured = os.environ.get("CEILGRID_MODELS_DIR")
    return Path(configured) if configured else None


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def layout_command(args: argparse.Namespace) -> int:
    from ceilgrid_assets.core.engine.building import complete_building, default_jobs
    from ceilgrid_assets.core.engine.io import read_document, write_atomic
    from ceilgrid_assets.core.engine.pipeline import EngineConfig
    from ceilgrid_assets.observability import telemetry

    telemetry.get()  # spans and metrics when the environment asks for them
    parsed = read_document(args.input)
    report_errors(parsed.errors)
    extra_models = []
    models_dir = resolve_models_dir(args.models, args.no_models)
    if models_dir is not None:
        from ceilgrid_assets.core.learning.learned import load_models

        extra_models = load_models(models_dir)
        if args.models is None and sys.stderr.isatty():  # the output records them anyway
            print(
                f"using learned models from {models_dir} (--no-models to leave them out)",
                file=sys.stderr,
            )
    config = EngineConfig.create(
        args.profile,
        extra_models=extra_models,
        optimiser_max_cells=args.optimiser_cells,
        optimiser_time_s=args.optimiser_time,
    )
    show_progress = args.progress or (len(parsed.rooms) > 50 and sys.stderr.isatty())
    result = complete_building(
        parsed, config, progress=progress_printer(show_progress), jobs=args.jobs or default_jobs()
    )
    write_atomic(args.output, result.dump())
    for room in result.rooms:
        if not room.compliant:
            rules = sorted({v["rule"] for v in room.compliance["violations"]})
            print(f"not compliant: room {room.room.grid_id}: {', '.join(rules)}", file=sys.stderr)
    compliant = sum(room.compliant for room in result.rooms)
    print(
        f"{args.output}: {len(result.rooms)} rooms laid out, {compliant} compliant"
        + (f", {len(parsed.errors)} rejected" if parsed.errors else ""),
        file=sys.stderr,
    )
    return result.exit_code


def add_layout_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``layout`` on the ``ceilgrid`` parser."""
    layout = commands.add_parser("layout", help="complete a room or building JSON file")
    layout.add_argument("input", type=Path, help="room or building JSON")
    layout.add_argument("-o", "--output", type=Path, required=True, help="completed layout JSON")
    add_profile_argument(layout)
    layout.add_argument(
        "--models",
        type=Path,
        default=None,
        help="directory of trained learned models to add to the candidates "
        "(default: $CEILGRID_MODELS_DIR, else none; `ceilgrid train` writes .ceilgrid/models)",
    )
    layout.add_argument(
        "--no-models",
        action="store_true",
        help="built-in models only, even where trained models exist",
    )
    layout.add_argument(
        "--optimiser-cells",
        type=int,
        default=DEFAULT_OPTIMISER_MAX_CELLS,
        metavar="N",
        help="let the exact optimiser compete in rooms of at most N "
        f"usable cells (default {DEFAULT_OPTIMISER_MAX_CELLS}; 0 disables it)",
    )
    layout.add_argument(
        "--optimiser-time",
        type=float,
        default=DEFAULT_OPTIMISER_TIME_S,
        metavar="S",
        help=f"optimiser time limit per stage in seconds (default {DEFAULT_OPTIMISER_TIME_S:g})",
    )
    layout.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="lay rooms out in N processes (default: one per available core; "
        "1: in this process); the output is the same for every N",
    )
    layout.add_argument("--progress", action="store_true", help="print progress on stderr")
    layout.set_defaults(handler=layout_command)
