"""What every ``ceilgrid`` subcommand shares: exit codes, error lines, progress."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable

from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, PROFILES

#: Exit codes, for every subcommand: 0 all rooms compliant (or done), 1 a room
#: could not be made compliant, 2 bad input, 3 the server failed.
EXIT_OK, EXIT_NOT_COMPLIANT, EXIT_BAD_INPUT, EXIT_SERVER = 0, 1, 2, 3


def report_errors(errors: Iterable[InputError], prefix: str = "error") -> None:
    """One line on stderr per bad input: file, room, field and cell."""
    for error in errors:
        print(f"{prefix}: {error}", file=sys.stderr)


def progress_printer(enabled: bool) -> Callable[[int, int], None] | None:
    """A ``progress(done, total)`` callback that redraws one stderr line, or None."""
    if not enabled:
        return None

    def show(done: int, total: int) -> None:
        if done == total or done % max(1, total // 20) == 0:
            print(
                f"\rlaid out {done}/{total} rooms",
                end="\n" if done == total else "",
                file=sys.stderr,
                flush=True,
            )

    return show


def add_profile_argument(parser: argparse.ArgumentParser) -> None:
    """``--profile``, the rulebook a command lays out or checks against."""
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=DEFAULT_PROFILE,
        help=f"rulebook profile (default {DEFAULT_PROFILE})",
    )
