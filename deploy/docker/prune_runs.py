"""Delete finished runs, with their event logs, older than a retention period.

Dagster purges sensor and schedule ticks itself (``retention`` in dagster.yaml) but
keeps runs and their logs forever, so the metadata database only grows. Run this
daily against the instance in ``$DAGSTER_HOME``:

- Docker host (cron): ``docker compose -f deploy/docker/docker-compose.yml run --rm
  daemon python /opt/dagster/bin/prune_runs.py --days 90``
- Kubernetes: the CronJob in ``deploy/k8s/manifests/prune-runs.yaml``.

Asset materializations recorded by deleted runs disappear with them: keep the
retention longer than any freshness or lineage question you need answered.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="keep runs this many days")
    parser.add_argument("--dry-run", action="store_true", help="list, do not delete")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    with DagsterInstance.get() as instance:
        run_ids = prune_runs(instance, timedelta(days=args.days), dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(run_ids)} runs finished more than {args.days} days ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
