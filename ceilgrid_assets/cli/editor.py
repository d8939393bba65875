"""``ceilgrid editor``: open a room or building file in the browser editor.

The file is read and checked first, so a malformed file fails here with the
same one-line error (and exit code 2) as every other command; rooms the parser
rejects inside a good building are listed in the page instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ceilgrid_assets.cli.common import EXIT_OK
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, PROFILES

DEFAULT_PORT = 8710


def editor_command(args: argparse.Namespace) -> int:
    # Imported here: the other commands need neither Starlette nor uvicorn.
    from ceilgrid_assets.editor.server import LOOPBACK_HOSTS, Workspace, bind, create_app, serve

    workspace = Workspace.open(args.input, args.profile)
    loopback = args.host in LOOPBACK_HOSTS
    allowed = None if loopback else ["*"]
    if not loopback:
        print(
            f"warning: serving on {args.host}: anyone who can reach it can use the editor "
            "(it has no accounts)",
            file=sys.stderr,
        )
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"ceilgrid editor: http://{shown}:{port}/ ({args.input}, "
        f"{len(workspace.parsed.rooms)} rooms; Ctrl-C stops)",
        flush=True,
    )
    try:
        serve(create_app(workspace, allowed), sock)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def add_editor_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``editor`` on the ``ceilgrid`` parser."""
    editor = commands.add_parser("editor", help="open a room or building in the browser editor")
    editor.add_argument("input", type=Path, help="room or building JSON")
    editor.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    editor.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only)",
    )
    editor.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=DEFAULT_PROFILE,
        help=f"rulebook profile (default {DEFAULT_PROFILE})",
    )
    editor.set_defaults(handler=editor_command)
