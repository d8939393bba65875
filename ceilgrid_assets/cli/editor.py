"""``ceilgrid editor``: open a room or building in the browser editor.

The building comes from a file, from the platform's storage on this machine
(``--building ID``, under ``--storage`` or the platform's default root), or
from a platform webserver (``--url URL --building ID``: the latest layout of
that partition of ``completed_layout``, through the same GraphQL call as
``ceilgrid submit --wait``). It is read and checked first, so a malformed
document fails here with the same one-line error (and exit code 2) as every
other command, and an unreachable server with exit code 3; rooms the parser
rejects inside a good building are listed in the page instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ceilgrid_assets.cli.common import EXIT_BAD_INPUT, EXIT_OK, EXIT_SERVER, add_profile_argument
from ceilgrid_assets.cli.layout import resolve_models_dir
from ceilgrid_assets.contract import LAYOUT_METADATA_KEY, building_partition_key

DEFAULT_PORT = 8710


def platform_layout(url: str, building_id: str) -> bytes:
    """The newest stored layout of ``building_id`` on the platform at ``url``."""
    from ceilgrid_assets.cli.submit import GraphQL, ServerError, layout_events

    key = building_partition_key(building_id, "--building")
    for event in layout_events(GraphQL(url), key):
        if event["__typename"] != "MaterializationEvent":
            continue
        entries = {entry["label"]: entry.get("text") for entry in event["metadataEntries"]}
        if entries.get(LAYOUT_METADATA_KEY) is not None:
            return entries[LAYOUT_METADATA_KEY].encode()
    raise ServerError(f"{url}: no layout of building {key} (submit it first)")


def platform_submitter(url: str) -> Callable[[bytes, str], None]:
    """Send a building to the platform at ``url`` as ``ceilgrid submit`` does (no wait)."""
    from ceilgrid_assets.cli.submit import ServerError, submit
    from ceilgrid_assets.editor.server import SubmitError

    def send(data: bytes, key: str) -> None:
        try:
            submit(url, data.decode("utf-8"), key)
        except ServerError as error:  # server text may span lines: one line
            raise SubmitError(" ".join(str(error).split())) from None

    return send


def editor_command(args: argparse.Namespace) -> int:
    # Imported here: the other commands need neither Starlette nor uvicorn.
    from ceilgrid_assets.cli.submit import ServerError
    from ceilgrid_assets.core.engine.io import parse_document
    from ceilgrid_assets.editor.server import LOOPBACK_HOSTS, Workspace, bind, create_app, serve
    from ceilgrid_assets.editor.sources import default_storage_root, stored_building

    if (args.input is None) == (args.building is None):
        print("error: give a FILE or --building ID (not both)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.url and args.building is None:
        print("error: --url needs --building ID", file=sys.stderr)
        return EXIT_BAD_INPUT
    extra_models = []
    models_dir = resolve_models_dir(args.models, args.no_models)
    if models_dir is not None:  # as `ceilgrid layout`: --models, else $CEILGRID_MODELS_DIR
        from ceilgrid_assets.core.learning.learned import load_models

        extra_models = load_models(models_dir)
    if args.url:
        try:
            data = platform_layout(args.url, args.building)
        except ServerError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_SERVER
        source = f"{args.url.rstrip('/')} building {args.building}"
        parsed = parse_document(data, source)
        workspace = Workspace.from_parsed(source, data, parsed, args.profile, extra_models)
    elif args.building is not None:
        root = args.storage or default_storage_root()
        path = stored_building(root, args.building)
        workspace = Workspace.open(path, args.profile, extra_models)
    else:
        workspace = Workspace.open(args.input, args.profile, extra_models)
    opened = args.input or workspace.source
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
        f"ceilgrid editor: http://{shown}:{port}/ ({opened}, "
        f"{len(workspace.parsed.rooms)} rooms; Ctrl-C stops)",
        flush=True,
    )
    try:
        submitter = platform_submitter(args.url) if args.url else None
        serve(create_app(workspace, allowed, submitter), sock)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def add_editor_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``editor`` on the ``ceilgrid`` parser."""
    editor = commands.add_parser("editor", help="open a room or building in the browser editor")
    editor.add_argument("input", type=Path, nargs="?", help="room or building JSON")
    editor.add_argument(
        "--building",
        metavar="ID",
        help="open this building from the platform: its stored layout (else input) under "
        "--storage, or its latest layout on --url",
    )
    editor.add_argument(
        "--storage",
        type=Path,
        metavar="DIR",
        help="the platform's storage root (default $CEILGRID_STORAGE_ROOT, else "
        "$CEILGRID_HOME/storage, else .ceilgrid/storage)",
    )
    editor.add_argument(
        "--url", metavar="URL", help="a platform webserver to fetch --building from"
    )
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
    add_profile_argument(editor)
    editor.add_argument(
        "--models",
        type=Path,
        default=None,
        help="directory of trained learned models to add to the candidates of Complete "
        "(default: $CEILGRID_MODELS_DIR, else none)",
    )
    editor.add_argument("--no-models", action="store_true", help="built-in models only in Complete")
    editor.set_defaults(handler=editor_command)
