"""Care of the Dagster metadata database: backup/restore and run retention.

Backup: real runs are written to the suite's Postgres and backed up by the
compose ``backup`` service's daily loop (its shell text from the compose file,
run here directly: no compose CLI on these machines) calling
``deploy/pg-backup.sh rotate``; the newest dump is restored into a freshly
initialised server and read back through an instance built from the
deployment's own ``deploy/docker/dagster.yaml``.
Retention: ``deploy/docker/prune_runs.py`` deletes old finished runs and only
those, and compute-log files by age on a real instance's compute-log folder.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
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


@dg.asset
def backed_up_layout_plain() -> None:
    return None


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


def run_daily_once(command: list[str], env: dict[str, str], workdir: Path) -> None:
    """The compose file's daily loop (``x-daily``), stopped after its first pass succeeded."""
    compose = yaml.safe_load(
        (PROJECT_ROOT / "deploy" / "docker" / "docker-compose.yml").read_text()
    )
    loop = compose["x-daily"].replace("$$", "$")  # what compose's interpolation does
    workdir.mkdir()
    process = subprocess.Popen(
        ["/bin/sh", "-c", loop, "daily", *command],
        env={**env, "TMPDIR": str(workdir)},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (workdir / "last-success").exists() and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.2)
        assert (workdir / "last-success").exists(), "the daily pass did not succeed"
        assert process.poll() is None  # now sleeping until the next day
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


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

    backups = tmp_path / "backups"
    backups.mkdir()
    expired, kept = backups / "dagster-20200101T000000Z.dump", backups / "dagster-recent.dump"
    for path, days in ((expired, 20), (kept, 2)):
        path.write_bytes(b"an earlier backup")
        os.utime(path, (time.time() - days * 86400,) * 2)
    run_daily_once(
        [str(SCRIPT), "rotate", str(backups), "14"],
        _libpq_env(postgres_server, postgres_database),
        tmp_path / "daily",
    )
    dumps = sorted(path.name for path in backups.iterdir())
    assert not expired.exists() and kept.exists() and len(dumps) == 2, dumps
    dump = Path(
        subprocess.run(
            [str(SCRIPT), "newest", str(backups)], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    assert dump.name != kept.name and dump.name.startswith("dagster-2")
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


def test_compute_log_pruning_deletes_only_old_files(
    postgres_instance: dg.DagsterInstance, dagster_home: Path
) -> None:
    """Files the instance's own compute log manager wrote, aged by hand, then pruned."""

    @dg.asset
    def noisy() -> None:
        print("stdout of a step")

    for _ in range(2):
        assert dg.materialize([noisy], instance=postgres_instance).success
    logs = Path(os.environ["CEILGRID_COMPUTE_LOGS"])
    written = sorted(path for path in logs.rglob("*") if path.is_file())
    assert len(written) >= 4  # stdout and stderr (and more) per run
    old_run = postgres_instance.get_runs()[-1].run_id  # the first run
    old = [path for path in written if old_run in str(path)]
    assert old and len(old) < len(written)
    month_ago = time.time() - 31 * 86400
    for path in old:
        os.utime(path, (month_ago, month_ago))
    outside = logs.parent / "not-logs.txt"  # next to the folder: never touched
    outside.write_text("x")
    os.utime(outside, (month_ago, month_ago))

    listed = prune.prune_compute_logs(logs, timedelta(days=30), dry_run=True)
    assert sorted(listed) == sorted(old) and all(path.exists() for path in old)
    deleted = prune.prune_compute_logs(logs, timedelta(days=30))
    assert sorted(deleted) == sorted(old)
    left = sorted(path for path in logs.rglob("*") if path.is_file())
    assert left == sorted(set(written) - set(old)) and outside.exists()
    assert not any(old_run in str(path) for path in logs.rglob("*"))  # empty folders gone
    assert logs.is_dir()


def test_prune_command_prunes_runs_and_compute_logs(
    postgres_instance: dg.DagsterInstance, dagster_home: Path, tmp_path: Path
) -> None:
    """The retention service's command line, against the same real instance."""
    assert dg.materialize([backed_up_layout_plain], instance=postgres_instance).success
    logs = Path(os.environ["CEILGRID_COMPUTE_LOGS"])
    stale = logs / "stale" / "step.out"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    os.utime(stale, (time.time() - 40 * 86400,) * 2)
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "deploy" / "docker" / "prune_runs.py"),
            "--days",
            "90",
            "--compute-log-days",
            "30",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "deleted 0 runs finished more than 90 days ago" in result.stdout
    assert "deleted 1 compute-log files older than 30 days" in result.stdout
    assert not stale.exists() and len(postgres_instance.get_runs()) == 1
