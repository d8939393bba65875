"""Care of the Dagster metadata database: backup/restore and run retention.

Backup: real runs are written to the suite's Postgres, dumped with
``deploy/pg-backup.sh``, restored into a freshly initialised server, and read back
through an instance built from the deployment's own ``deploy/docker/dagster.yaml``.
Retention: ``deploy/docker/prune_runs.py`` deletes old finished runs and only those.
"""

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from helpers import PROJECT_ROOT, load_module

from ceilgrid_assets.dev.postgres import (
    PostgresServer,
    create_database,
    find_binaries,
    start_postgres,
)

SCRIPT = PROJECT_ROOT / "deploy" / "pg-backup.sh"


prune = load_module(
    "ceilgrid_deploy_prune_runs", PROJECT_ROOT / "deploy" / "docker" / "prune_runs.py"
)

pytestmark = pytest.mark.slow


@dg.asset(partitions_def=dg.DynamicPartitionsDefinition(name="buildings"))
def backed_up_layout(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"building": context.partition_key})


def _libpq_env(server: PostgresServer, database: str) -> dict[str, str]:
    env = server.env()
    return {
        "PGHOST": env["DAGSTER_POSTGRES_HOST"],
        "PGPORT": env["DAGSTER_POSTGRES_PORT"],
        "PGUSER": env["DAGSTER_POSTGRES_USER"],
        "PGPASSWORD": env["DAGSTER_POSTGRES_PASSWORD"],
        "PGDATABASE": database,
        "PG_BIN": str(find_binaries()),
        "PATH": "/usr/bin:/bin",
    }


@pytest.fixture
def fresh_server() -> Iterator[PostgresServer]:
    """A second, newly initialised server: the restore target."""
    base = Path(tempfile.mkdtemp(prefix="ceilgrid-pg-restore-"))
    server = start_postgres(base, durable=False)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_dump_restores_into_a_fresh_server_and_dagster_sees_old_runs(
    postgres_instance: dg.DagsterInstance,
    postgres_server: PostgresServer,
    postgres_database: str,
    fresh_server: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buildings = ["office-floor", "school-wing"]
    postgres_instance.add_dynamic_partitions("buildings", buildings)
    for key in buildings:
        assert dg.materialize(
            [backed_up_layout],
            instance=postgres_instance,
            partition_key=key,
            tags={"ceilgrid/workload": "serving"},
        ).success
    before = {run.run_id: run for run in postgres_instance.get_runs()}
    assert len(before) == 2
    events_before = {run_id: len(postgres_instance.all_logs(run_id)) for run_id in before}

    dump = tmp_path / "dagster.dump"
    subprocess.run(
        [str(SCRIPT), "dump", str(dump)],
        check=True,
        env=_libpq_env(postgres_server, postgres_database),
    )
    assert dump.stat().st_size > 0

    create_database(fresh_server, "dagster_restored")
    subprocess.run(
        [str(SCRIPT), "restore", str(dump)],
        check=True,
        env=_libpq_env(fresh_server, "dagster_restored"),
    )

    # The production instance configuration, pointed at the restored database.
    home = tmp_path / "restored_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "docker" / "dagster.yaml", home / "dagster.yaml")
    for name, value in {
        **fresh_server.env(),
        "DAGSTER_POSTGRES_DB": "dagster_restored",
        "CEILGRID_DAGSTER_STORAGE": str(tmp_path / "storage"),
        "CEILGRID_COMPUTE_LOGS": str(tmp_path / "logs"),
        "CEILGRID_IMAGE": "ceilgrid:restore-check",
        "CEILGRID_DOCKER_NETWORK": "ceilgrid",
    }.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as restored:
        restored.upgrade()  # what `dagster instance migrate` runs; a no-op on the same version
        after = {run.run_id: run for run in restored.get_runs()}
        assert after.keys() == before.keys()
        for run_id, run in after.items():
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.tags["ceilgrid/workload"] == "serving"
            assert run.tags["dagster/partition"] == before[run_id].tags["dagster/partition"]
            assert len(restored.all_logs(run_id)) == events_before[run_id]
        assert sorted(restored.get_dynamic_partitions("buildings")) == buildings
        materialized = restored.get_materialized_partitions(dg.AssetKey("backed_up_layout"))
        assert materialized == set(buildings)
        assert type(restored.run_launcher).__name__ == "DockerRunLauncher"
        assert type(restored.run_coordinator).__name__ == "QueuedRunCoordinator"


def test_prune_deletes_only_finished_runs_past_retention(
    postgres_instance: dg.DagsterInstance,
) -> None:
    postgres_instance.add_dynamic_partitions("buildings", ["old", "new"])
    for key in ("old", "new"):
        assert dg.materialize(
            [backed_up_layout], instance=postgres_instance, partition_key=key
        ).success
    runs = postgres_instance.get_runs()
    # A run still in progress is never pruned, however old.
    started = dg.DagsterRun(job_name="layout_building_job", status=dg.DagsterRunStatus.STARTED)
    postgres_instance.run_storage.add_run(started)
    now = datetime.now(UTC)
    week = timedelta(days=7)

    assert prune.prune_runs(postgres_instance, week, now=now) == []
    later = now + week + timedelta(hours=1)
    listed = prune.prune_runs(postgres_instance, week, now=later, dry_run=True)
    assert sorted(listed) == sorted(run.run_id for run in runs)
    assert len(postgres_instance.get_runs()) == 3

    deleted = prune.prune_runs(postgres_instance, week, now=later)
    assert sorted(deleted) == sorted(listed)
    assert [run.run_id for run in postgres_instance.get_runs()] == [started.run_id]
    assert all(not postgres_instance.all_logs(run_id) for run_id in deleted)
