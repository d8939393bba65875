"""The forking run launcher on a real Postgres instance: runs forked from a real template."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import badfiles
import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.launcher import WorkerStatus

from ceilgrid_assets.contract import BUILDINGS, LAYOUT_JOB
from ceilgrid_assets.dev import launcher as launcher_module
from ceilgrid_assets.dev.launcher import (
    PID_TAG,
    START_TAG,
    ForkingRunLauncher,
    code_fingerprint,
    process_start,
)

pytestmark = pytest.mark.slow

TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def test_code_fingerprint_follows_every_module(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    module = tmp_path / "sub" / "rules.py"
    module.write_text("LIMIT = 1\n")
    (tmp_path / "notes.txt").write_text("not code")
    before = code_fingerprint(tmp_path)
    (tmp_path / "notes.txt").write_text("still not code")
    assert code_fingerprint(tmp_path) == before
    module.write_text("LIMIT = 22\n")
    assert code_fingerprint(tmp_path) != before


def test_process_start_tells_a_live_process_from_a_gone_or_zombie_one() -> None:
    assert process_start(os.getpid()) == process_start(os.getpid()) is not None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while process_start(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # exited but not reaped: a zombie counts as gone
    assert process_start(child.pid) is None
    child.wait()
    assert process_start(child.pid) is None


def layout_run(instance: dg.DagsterInstance, key: str, rooms: int, size: int) -> dg.DagsterRun:
    """A run of the serving job for one building, as the daemon would find it queued."""
    document = badfiles.building(
        key,
        [badfiles.room(f"{key}-{n}", width=size + n, height=size) for n in range(rooms)],
    )
    repository = ReconstructableRepository.for_module(
        "ceilgrid_assets.definitions", "defs", working_directory=os.getcwd()
    )
    job = repository.get_reconstructable_job(LAYOUT_JOB)
    instance.add_dynamic_partitions(BUILDINGS, [key])
    return instance.create_run_for_job(
        job_def=job.get_definition(),
        run_config={"ops": {"submitted_building": {"config": {"document": json.dumps(document)}}}},
        tags={"dagster/partition": key},
        job_code_origin=job.get_python_origin(),
    )


def wait_for_status(instance, run_id: str, statuses, timeout_s: float = 300):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {instance.get_run_by_id(run_id).status}")


def test_runs_fork_from_one_warm_template_restarted_when_the_code_changes(
    postgres_instance, ceilgrid_home, monkeypatch
) -> None:
    launcher = postgres_instance.run_launcher
    assert isinstance(launcher, ForkingRunLauncher)
    try:
        first = layout_run(postgres_instance, "forked-a", rooms=2, size=8)
        postgres_instance.launch_run(first.run_id, workspace=None)
        template = launcher._template.pid
        done = wait_for_status(postgres_instance, first.run_id, TERMINAL)
        assert done.status == dg.DagsterRunStatus.SUCCESS
        # The worker tagged its run: a child of the template, gone once the run ended.
        pid = int(done.tags[PID_TAG])
        assert done.tags[START_TAG]
        # The run records SUCCESS just before its worker exits.
        deadline = time.monotonic() + 30
        while launcher.check_run_worker_health(done).status == WorkerStatus.RUNNING:
            assert time.monotonic() < deadline, "the worker outlived its run"
            time.sleep(0.05)
        assert launcher.check_run_worker_health(done).status == WorkerStatus.FAILED
        second = layout_run(postgres_instance, "forked-b", rooms=1, size=8)
        postgres_instance.launch_run(second.run_id, workspace=None)
        assert launcher._template.pid == template  # the same warm template
        assert wait_for_status(postgres_instance, second.run_id, TERMINAL).status.value == (
            "SUCCESS"
        )
        assert int(postgres_instance.get_run_by_id(second.run_id).tags[PID_TAG]) != pid
        # A module of the package changed: the next run forks from a new template.
        monkeypatch.setattr(launcher_module, "code_fingerprint", lambda: "edited")
        third = layout_run(postgres_instance, "forked-c", rooms=1, size=8)
        postgres_instance.launch_run(third.run_id, workspace=None)
        assert launcher._template.pid != template
        assert process_start(template) is None
        assert wait_for_status(postgres_instance, third.run_id, TERMINAL).status.value == (
            "SUCCESS"
        )
        layout = ceilgrid_home / "storage" / "buildings" / "forked-c" / "layout.json"
        assert json.loads(layout.read_bytes())["building_id"] == "forked-c"
    finally:
        launcher.dispose()


def test_a_running_worker_is_healthy_and_terminated_on_request(
    postgres_instance, ceilgrid_home
) -> None:
    launcher = postgres_instance.run_launcher
    try:
        run = layout_run(postgres_instance, "forked-long", rooms=8, size=40)
        postgres_instance.launch_run(run.run_id, workspace=None)
        started = wait_for_status(
            postgres_instance, run.run_id, {dg.DagsterRunStatus.STARTED, *TERMINAL}
        )
        assert started.status == dg.DagsterRunStatus.STARTED, "finished before the check"
        assert launcher.check_run_worker_health(started).status == WorkerStatus.RUNNING
        assert launcher.terminate(run.run_id)
        ended = wait_for_status(postgres_instance, run.run_id, TERMINAL)
        assert ended.status == dg.DagsterRunStatus.CANCELED
        deadline = time.monotonic() + 30
        while process_start(int(ended.tags[PID_TAG])) is not None:
            assert time.monotonic() < deadline, "the worker outlived its cancelled run"
            time.sleep(0.1)
        assert not launcher.terminate(run.run_id)  # finished: nothing to do
    finally:
        launcher.dispose()
