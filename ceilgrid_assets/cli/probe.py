"""``ceilgrid probe --url URL``: an end-to-end uptime check for monitors.

Submits a tiny building through the same GraphQL calls as ``ceilgrid submit``
(the inbox sensor's batch, or its own run with ``--run``), waits for its layout
and checks it with the rulebook, the placement rule included. Every probe uses
the one building id ``ceilgrid-probe`` (one partition, not one per check) and a
room id unique to the probe, so an earlier probe's layout can never answer for
this one.

Exit codes: 0 the layout came back and is compliant, 1 it came back but is not
(the engine or the rulebook is broken), 3 the server failed (unreachable, run
failed, or no layout within ``--timeout``). One line on stdout says which.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from typing import Any

from ceilgrid_assets.cli.common import EXIT_NOT_COMPLIANT, EXIT_OK, EXIT_SERVER
from ceilgrid_assets.cli.submit import (
    GraphQL,
    ServerError,
    latest_timestamp,
    launch_run,
    layout_events,
    submit,
    wait_for_layout,
)
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, get_profile

PROBE_BUILDING = "ceilgrid-probe"
PROBE_SIZE = 6


def probe_document(room_id: str) -> dict[str, Any]:
    """A 6 x 6 empty office: laid out in well under a second, yet every rule applies."""
    cells = [
        {"x": x, "y": y, "component": "empty"} for y in range(PROBE_SIZE) for x in range(PROBE_SIZE)
    ]
    room = {"grid_id": room_id, "width": PROBE_SIZE, "height": PROBE_SIZE, "cells": cells}
    return {"building_id": PROBE_BUILDING, "rooms": [room]}


def layout_problems(document_text: str, layout: bytes) -> list[str]:
    """What is wrong with the returned layout: missing rooms, rule violations."""
    from ceilgrid_assets.core.engine.io import parse_document  # numpy: not for `--help`
    from ceilgrid_assets.core.engine.rules import check_layout

    original = {room.grid_id: room for room in parse_document(document_text, "probe").rooms}
    try:
        completed = parse_document(layout, "layout")
    except InputError as error:
        return [f"layout unreadable: {error}"]
    problems = [f"layout unreadable: {error}" for error in completed.errors]
    returned = {room.grid_id for room in completed.rooms}
    problems += [f"room {grid_id} missing" for grid_id in sorted(set(original) - returned)]
    profile = get_profile(DEFAULT_PROFILE)
    for room in completed.rooms:
        for violation in check_layout(room, profile, original.get(room.grid_id)):
            problems.append(f"room {room.grid_id}: {violation.rule}: {violation.message}")
    return problems


def probe_command(args: argparse.Namespace) -> int:
    from ceilgrid_assets.core.engine.io import content_hash

    started = time.monotonic()
    text = json.dumps(probe_document(f"probe-{secrets.token_hex(6)}"))
    try:
        since = latest_timestamp(layout_events(GraphQL(args.url), PROBE_BUILDING))
        if args.run:
            launch_run(args.url, text, PROBE_BUILDING)
        else:
            submit(args.url, text, PROBE_BUILDING)
        layout = wait_for_layout(
            args.url, PROBE_BUILDING, content_hash(text.encode()), since, args.timeout, poll_s=1.0
        )
    except ServerError as error:
        print(f"fail: {' '.join(str(error).split())}")
        return EXIT_SERVER
    seconds = time.monotonic() - started
    problems = layout_problems(text, layout)
    if problems:
        print(f"fail: layout not compliant after {seconds:.1f} s: {'; '.join(problems[:5])}")
        return EXIT_NOT_COMPLIANT
    print(f"ok: laid out and validated in {seconds:.1f} s")
    return EXIT_OK


def add_probe_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "probe",
        help="end-to-end check of a webserver: submit a tiny building, wait, validate "
        "(exit 0 ok, 1 not compliant, 3 server failed)",
    )
    parser.add_argument("--url", required=True, help="webserver, e.g. http://127.0.0.1:3000")
    parser.add_argument(
        "--run",
        action="store_true",
        help="lay the probe out in a run of its own instead of the sensor's next batch",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the layout before failing (default 300)",
    )
    parser.set_defaults(handler=probe_command)
    return parser
