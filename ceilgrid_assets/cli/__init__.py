"""The ``ceilgrid`` command line: a thin shell over ``ceilgrid_assets.core``.

One module per command (``layout``, ``validate``, ``export``, ``submit``,
``probe``, ``train``, ``models``), each registering its parser; this module assembles them and
turns input errors into one line on stderr. Exit codes are in :mod:`.common`.

Only the module of the command being run is imported (every one for ``--help``
or an unknown command), so that ``ceilgrid validate`` never loads the layout
engine's optimiser and ``ceilgrid layout`` no HTTP client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ceilgrid_assets.cli.common import EXIT_BAD_INPUT
from ceilgrid_assets.core.engine.errors import InputError

#: Each command's module and the function there that registers its parser, in help order.
COMMANDS = {
    "layout": ("ceilgrid_assets.cli.layout", "add_layout_parser"),
    "validate": ("ceilgrid_assets.cli.validate", "add_validate_parser"),
    "export": ("ceilgrid_assets.cli.export", "add_export_parser"),
    "submit": ("ceilgrid_assets.cli.submit", "add_submit_parser"),
    "probe": ("ceilgrid_assets.cli.probe", "add_probe_parser"),
    "train": ("ceilgrid_assets.cli.train", "add_train_parser"),
    "models": ("ceilgrid_assets.cli.models", "add_models_parser"),
    "editor": ("ceilgrid_assets.cli.editor", "add_editor_parser"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``ceilgrid`` parser with ``command`` only, or with every command (None, unknown)."""
    parser = argparse.ArgumentParser(
        prog="ceilgrid", description="Complete and check suspended-ceiling layouts."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, register) in COMMANDS.items():
        if command not in COMMANDS or command == name:
            getattr(importlib.import_module(module), register)(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
