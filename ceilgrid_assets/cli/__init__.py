"""The ``ceilgrid`` command line: a thin shell over ``ceilgrid_assets.core``.

One module per command (``layout`` with ``validate``, ``export``, ``submit``,
``train``), each registering its parser; this module assembles them and turns
input errors into one line on stderr. Exit codes are in :mod:`.common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ceilgrid_assets.cli.common import EXIT_BAD_INPUT
from ceilgrid_assets.cli.export import add_export_parser
from ceilgrid_assets.cli.layout import add_layout_parsers
from ceilgrid_assets.cli.submit import add_submit_parser
from ceilgrid_assets.cli.train import add_train_parser
from ceilgrid_assets.core.engine.io import InputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ceilgrid", description="Complete and check suspended-ceiling layouts."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_layout_parsers(commands)
    add_export_parser(commands)
    add_submit_parser(commands)
    add_train_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
