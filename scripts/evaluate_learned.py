"""Evaluate the learned models against the optimiser; prints the README table.

    python scripts/evaluate_learned.py [--models DIR] [--rooms 300] [--seed 9001] [--jobs 2]

Held-out rooms come from a seed the models were not trained on (the card's
corpus seed is checked); the hand-made awkward rooms are added as a second set.
Writes the per-stage rows to ``DIR/evaluation.csv`` and the summary to
``DIR/evaluation.md``. First it times loading the model set as serving does:
in a fresh interpreter with the engine imported, the import of the model
reader plus ``load_models`` (median of 5 processes).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ceilgrid_assets.core.engine.models import DEFAULT_MODELS_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--rooms", type=int, default=300)
    parser.add_argument("--seed", type=int, default=9001)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    # The learning stack (pandas, the evaluation) takes a second to import: after --help.
    import pandas as pd

    from ceilgrid_assets.core.learning.corpus import CorpusSpec, generate_rooms
    from ceilgrid_assets.core.learning.evaluation import awkward_rooms, evaluate_models, summarise
    from ceilgrid_assets.core.learning.learned import load_models

    models = load_models(args.models)
    trained_on = {model.card.get("corpus", {}).get("seed") for model in models}
    if args.seed in trained_on:
        print(
            f"seed {args.seed} is the training corpus seed: choose a held-out seed", file=sys.stderr
        )
        return 2
    print(f"loading the {len(models)} models: {load_seconds(args.models):.3f} s (median of 5)")
    started = time.perf_counter()
    held_out = generate_rooms(CorpusSpec(args.seed, args.rooms, prefix="holdout"))
    report = pd.concat(
        [
            evaluate_models(held_out, models, room_set="held-out", n_jobs=args.jobs),
            evaluate_models(awkward_rooms(), models, room_set="awkward", n_jobs=args.jobs),
        ],
        ignore_index=True,
    )
    summary = summarise(report)
    report.to_csv(args.models / "evaluation.csv", index=False)
    table = summary.to_markdown(index=False) if _has_tabulate() else summary.to_string(index=False)
    (args.models / "evaluation.md").write_text(table + "\n")
    print(table)
    print(f"\n{report['grid_id'].nunique()} rooms in {time.perf_counter() - started:.0f} s")
    return 0


LOAD_PROBE = """
import sys, time
import ceilgrid_assets.core.engine.pipeline
started = time.perf_counter()
from ceilgrid_assets.core.learning.learned import load_models
load_models(sys.argv[1])
print(time.perf_counter() - started)
"""


def load_seconds(directory: Path, repeats: int = 5) -> float:
    """Seconds to import the model reader and load every model, in fresh interpreters."""
    runs = [
        subprocess.run(
            [sys.executable, "-c", LOAD_PROBE, str(directory)],
            capture_output=True,
            text=True,
            check=True,
        )
        for _ in range(repeats)
    ]
    return statistics.median(float(run.stdout) for run in runs)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
