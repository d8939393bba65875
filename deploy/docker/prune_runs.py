"""Delete finished runs, with their event logs, and compute-log files past retention.

Dagster purges sensor and schedule ticks itself (``retention`` in dagster.yaml) but
keeps runs, their logs and the steps' stdout/stderr files forever, so the metadata
database and the compute-log folder only grow. Run this daily against the instance
in ``$DAGSTER_HOME``:

- Docker host: the ``retention`` service of deploy/docker/docker-compose.yml does.
- Kubernetes: the CronJob in ``deploy/k8s/manifests/prune-runs.yaml``.

Compute-log files (``--compute-logs``, default ``$CEILGRID_COMPUTE_LOGS``; skipped
when neither is set) are deleted by age (last write), not by run: a file written
in the last ``--compute-log-days`` days is kept whichever run wrote it.

Asset materializations recorded by deleted runs disappear with them: keep the
retention longer than any freshness or lineage question you need answered.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def prune_runs(
    instance: DagsterInstance,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[str]:
    """Delete finished runs last updated before ``now - older_than``; return their ids."""
    cutoff = (now or datetime.now(UTC)) - older_than
    run_ids = list(
        instance.get_run_ids(filters=RunsFilter(statuses=FINISHED, updated_before=cutoff))
    )
    if not dry_run:
        for run_id in run_ids:
            instance.delete_run(run_id)
    return run_ids


def prune_compute_logs(
    base_dir: Path, older_than: timedelta, *, dry_run: bool = False, now: datetime | None = None
) -> list[Path]:
    """Delete files under ``base_dir`` last written before ``now - older_than``; return them.

    Folders left empty are removed too (never ``base_dir`` itself); symbolic links
    are neither followed nor deleted.
    """
    cutoff = ((now or datetime.now(UTC)) - older_than).timestamp()
    deleted = []
    for folder, _subfolders, files in os.walk(base_dir, topdown=False):
        for name in files:
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode) or info.st_mtime >= cutoff:
                continue
            deleted.append(path)
            if not dry_run:
                path.unlink()
        if not dry_run and Path(folder) != base_dir and not any(Path(folder).iterdir()):
            Path(folder).rmdir()
    return deleted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="keep runs this many days")
    parser.add_argument(
        "--compute-logs",
        type=Path,
        default=os.environ.get("CEILGRID_COMPUTE_LOGS") or None,
        help="compute-log folder (default $CEILGRID_COMPUTE_LOGS; unset: not pruned)",
    )
    parser.add_argument(
        "--compute-log-days", type=int, default=None, help="keep compute logs (default --days)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list, do not delete")
    args = parser.parse_args(argv)
    log_days = args.days if args.compute_log_days is None else args.compute_log_days
    if min(args.days, log_days) < 1:
        parser.error("--days and --compute-log-days must be at least 1")
    with DagsterInstance.get() as instance:
        run_ids = prune_runs(instance, timedelta(days=args.days), dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(run_ids)} runs finished more than {args.days} days ago")
    if args.compute_logs is not None and args.compute_logs.is_dir():
        files = prune_compute_logs(
            args.compute_logs, timedelta(days=log_days), dry_run=args.dry_run
        )
        print(f"{verb} {len(files)} compute-log files older than {log_days} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
