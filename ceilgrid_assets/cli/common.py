"""What every ``ceilgrid`` subcommand shares: exit codes, error lines, progress."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from ceilgrid_assets.core.engine.io import InputError

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
