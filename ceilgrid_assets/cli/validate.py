"""``ceilgrid validate``: check a completed layout against the rulebook.

Its own module, so that checking never imports the layout engine's models; the
rules and the certificate are imported when the command runs, not for ``--help``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ceilgrid_assets.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_NOT_COMPLIANT,
    EXIT_OK,
    add_profile_argument,
    report_errors,
)


def certificate_line(certificate: dict[str, Any]) -> str:
    """``46 devices, lower bound 44, gap 2 (light 12/12, ...)``: placed/bound per component."""
    parts = ", ".join(
        f"{name} {entry['placed']}/{entry['lower_bound']}"
        for name, entry in certificate["components"].items()
    )
    return (
        f"{certificate['placed']} devices, lower bound {certificate['lower_bound']}, "
        f"gap {certificate['gap']} ({parts})"
    )


def validate_command(args: argparse.Namespace) -> int:
    from ceilgrid_assets.core.engine.certificate import layout_certificate
    from ceilgrid_assets.core.engine.io import read_document
    from ceilgrid_assets.core.engine.profile import get_profile
    from ceilgrid_assets.core.engine.rules import check_layout

    parsed = read_document(args.input)
    report_errors(parsed.errors)
    profile = get_profile(args.profile)
    failing = 0
    for room in parsed.rooms:
        violations = check_layout(room, profile)
        print(f"room {room.grid_id}: {certificate_line(layout_certificate(room, profile))}")
        if not violations:
            print(f"room {room.grid_id}: compliant ({profile.name})")
            continue
        failing += 1
        for violation in violations:
            cells = " ".join(f"({x},{y})" for x, y in violation.cells[:10])
            more = "" if len(violation.cells) <= 10 else f" +{len(violation.cells) - 10} more"
            print(
                f"room {room.grid_id}: {violation.rule}: {violation.message}"
                + (f" at {cells}{more}" if cells else "")
            )
    if parsed.errors:
        return EXIT_BAD_INPUT
    return EXIT_NOT_COMPLIANT if failing else EXIT_OK


def add_validate_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``validate`` on the ``ceilgrid`` parser."""
    validate = commands.add_parser("validate", help="check a completed layout against the rules")
    validate.add_argument("input", type=Path, help="completed room or building JSON")
    add_profile_argument(validate)
    validate.set_defaults(handler=validate_command)
