"""``ceilgrid train``: generate the corpus, label it with the optimiser, fit the models.

Wired into the ``ceilgrid`` command line by :func:`add_train_parser`; the
subcommand writes one ``<component>.skops`` + ``<component>.json`` card per
component into ``--out`` (default ``.ceilgrid/models``, which ``ceilgrid layout``
uses only when named with ``--models`` or ``CEILGRID_MODELS_DIR``) and the label
table as ``labels.csv``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ceilgrid_assets.cli.common import EXIT_BAD_INPUT, EXIT_OK

# The heavy imports (scikit-learn, pandas) happen when the command runs, so that
# registering the subcommand keeps ``ceilgrid --help`` and ``ceilgrid layout`` fast;
# ``None`` defaults resolve to the constants of ``core.learned`` and ``core.labels``.


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``train`` on the ``ceilgrid`` parser; the handler is ``args.handler``."""
    parser = subparsers.add_parser(
        "train",
        help="train the learned placement models on a synthetic corpus",
        description="Generate a seeded synthetic corpus, label it with the exact optimiser "
        "and fit one scikit-learn model per component.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for models and cards (default .ceilgrid/models)",
    )
    parser.add_argument("--rooms", type=int, default=None, help="corpus size (default 300)")
    parser.add_argument("--seed", type=int, default=None, help="corpus seed (default 2026)")
    parser.add_argument(
        "--label-time",
        type=float,
        default=None,
        help="optimiser seconds per stage when labelling (default 2)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes/threads (default 2)")
    parser.set_defaults(handler=run_train)
    return parser


def run_train(args: argparse.Namespace) -> int:
    from ceilgrid_assets.core.engine.models import DEFAULT_MODELS_DIR
    from ceilgrid_assets.core.learning.corpus import CorpusSpec
    from ceilgrid_assets.core.learning.labels import DEFAULT_LABEL_TIME_S
    from ceilgrid_assets.core.learning.learned import MODEL_SUFFIX, save_model
    from ceilgrid_assets.core.learning.training import (
        DEFAULT_TRAIN_ROOMS,
        DEFAULT_TRAIN_SEED,
        train_models,
    )

    out = args.out or DEFAULT_MODELS_DIR
    rooms = args.rooms if args.rooms is not None else DEFAULT_TRAIN_ROOMS
    seed = args.seed if args.seed is not None else DEFAULT_TRAIN_SEED
    label_time = args.label_time if args.label_time is not None else DEFAULT_LABEL_TIME_S
    if rooms < 10:
        print("ceilgrid train: --rooms must be at least 10", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    run = train_models(CorpusSpec(seed, rooms), label_time_s=label_time, n_jobs=args.jobs)
    out.mkdir(parents=True, exist_ok=True)
    run.labels.to_csv(out / "labels.csv", index=False)
    for model in run.models:
        card_path = save_model(model, out)
        metrics = model.card["metrics"]
        print(
            f"{model.component:15s} devices/optimiser "
            f"{metrics['validation_devices_vs_optimiser']:.3f}"
            f"  compliant before repair {metrics['validation_compliant_before_repair']:.0%}"
            f"  -> {card_path.with_suffix(MODEL_SUFFIX)}"
        )
    print(
        f"trained {len(run.models)} models on {rooms} rooms (seed {seed}) in "
        f"{time.perf_counter() - started:.0f} s"
    )
    return EXIT_OK
