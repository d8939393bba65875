"""``ceilgrid models``: the model versions (list, show, compare, promote, rollback, history).

Acts on the model store on disk (``--store``, default as the platform's:
``CEILGRID_MODEL_STORE`` or ``.ceilgrid/model-store``), or with ``--url``
(default ``CEILGRID_STORAGE_URL``, as the platform) on the bucket's registry,
``--store`` then being the local cache versions are downloaded into. Serving
picks up a promotion or rollback on its next run, as it reads the pointer then.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ceilgrid_assets.cli.common import EXIT_OK


def add_models_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``models`` on the ``ceilgrid`` parser; the handler is ``args.handler``."""
    parser = subparsers.add_parser(
        "models",
        help="list, inspect, promote or roll back learned model versions",
        description="The model registry: every promotion is a version with its lineage.",
    )
    parser.add_argument("--store", type=Path, default=None, help="model store directory")
    parser.add_argument(
        "--url",
        default=os.environ.get("CEILGRID_STORAGE_URL", ""),
        help="s3://BUCKET[/PREFIX]: the bucket's registry, as the platform's pods share it "
        "(default: $CEILGRID_STORAGE_URL, else the store on disk)",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every version, oldest first; * marks the one serving")
    show = actions.add_parser("show", help="a version's lineage record (JSON)")
    show.add_argument("version")
    compare = actions.add_parser("compare", help="two versions' evaluations side by side (JSON)")
    compare.add_argument("old")
    compare.add_argument("new")
    promote = actions.add_parser("promote", help="serve an existing version")
    promote.add_argument("version")
    actions.add_parser("rollback", help="serve the version before the current one")
    actions.add_parser(
        "history", help="every promotion and rollback, oldest first (a JSON line each)"
    )
    parser.set_defaults(handler=run_models)
    return parser


def run_models(args: argparse.Namespace) -> int:
    from ceilgrid_assets.core.learning import registry  # numpy: not for `ceilgrid --help`
    from ceilgrid_assets.core.storage import open_blobs

    store = args.store or registry.default_store()
    try:
        remote = open_blobs(args.url, str(store)) if args.url else None
    except ValueError as error:  # not an s3:// URL
        raise registry.RegistryError(str(error)) from None
    if args.action == "history":
        lines = registry.history(store) if remote is None else registry.remote_history(remote)
        for line in lines:
            print(json.dumps(line))
        return EXIT_OK
    if remote is not None:  # the bucket is the registry: cache its versions first
        registry.pull_all(remote, store)
    if args.action == "list":
        serving = (
            registry.current(store) if remote is None else registry.remote_current(remote, store)
        )
        for version in registry.versions(store):
            mark = "*" if serving is not None and version.id == serving.id else " "
            print(mark, json.dumps(version.summary()))
    elif args.action == "show":
        print(json.dumps(registry.get_version(store, args.version).record, indent=1))
    elif args.action == "compare":
        old, new = (registry.get_version(store, name) for name in (args.old, args.new))
        print(json.dumps(registry.compare(old, new), indent=1))
    elif args.action == "promote":
        if remote is None:
            version = registry.activate(store, args.version, "promote")
        else:
            version = registry.remote_activate(remote, store, args.version, "promote")
        print(f"serving {version.id}")
    else:
        version = (
            registry.rollback(store) if remote is None else registry.remote_rollback(remote, store)
        )
        print(f"serving {version.id}")
    return EXIT_OK
