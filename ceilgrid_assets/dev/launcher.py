"""A run launcher for one machine: each run is forked from a warm worker template.

Dagster's default launcher asks the code server to start every run in a new
interpreter (``multiprocessing`` spawn, not configurable): on the 2-core
development machine about 9 s of imports and code loading before the first step,
for a 5-room building that takes a second to lay out. :class:`ForkingRunLauncher`
keeps one *template* process (``python -m ceilgrid_assets.dev.launcher``)
that has imported Dagster and the run's code location and built its
definitions, and forks it once per run: the child runs what ``dagster api
execute_run`` runs (the body of :func:`dagster._cli.api.execute_run_command`), in
the same process group as the daemon that launched it.

- **Fresh code.** The template is started again when a file of the package
  changed since it started (size and modification time of every ``*.py``), so a
  run executes the code on disk when it starts, as with Dagster's own launcher.
- **Health.** The child tags its run with its pid and start time
  (``/proc/PID/stat``) before executing it; run monitoring asks
  :meth:`ForkingRunLauncher.check_run_worker_health`, which reports a worker gone
  (killed, machine restarted) or replaced by another process under the same pid
  as failed, so the run is marked failed and retried.
- **Termination.** SIGTERM to the child, which Dagster's interrupt handling turns
  into a cancelled run, as for a run in a container.

One machine only: pids mean nothing elsewhere. Deployments use Docker's or
Kubernetes' launchers (``deploy/``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from dagster import _check as check
from dagster._core.instance import DagsterInstance
from dagster._core.launcher import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import (
    ConfigurableClass,
    ConfigurableClassData,
    deserialize_value,
    serialize_value,
)
from dagster._utils.hosted_user_process import recon_job_from_origin

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PID_TAG = "ceilgrid/worker_pid"
START_TAG = "ceilgrid/worker_start"


def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """Size and modification time of every module of the package, as one string."""
    entries = []
    for path in sorted(package_dir.rglob("*.py")):
        stat = path.stat()
        entries.append(f"{path.relative_to(package_dir)}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(entries)


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22),
    or None when no such process runs; a zombie counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]


class ForkingRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a child forked from a warm template (see the module docstring)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self._lock = threading.Lock()
        self._template: subprocess.Popen | None = None
        self._fingerprint = ""
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]
    ) -> ForkingRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def _fork(self, run: DagsterRun, args: ExecuteRunArgs) -> int:
        """Hand a command to the template (started or restarted as needed); the child's pid."""
        with self._lock:
            fingerprint = code_fingerprint()
            template = self._template
            if template is None or template.poll() is not None or fingerprint != self._fingerprint:
                self._stop_template()
                self._template = subprocess.Popen(
                    [sys.executable, "-m", __name__],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                self._fingerprint = fingerprint
            template = check.not_none(self._template)
            assert template.stdin is not None and template.stdout is not None
            template.stdin.write(serialize_value(args) + "\n")
            template.stdin.flush()
            reply = template.stdout.readline()
        if not reply:
            raise RuntimeError(
                f"the run worker template exited (code {template.poll()}) before starting "
                f"run {run.run_id}"
            )
        return int(reply)

    def _stop_template(self) -> None:
        """Close the template's input: it exits; children it forked go on with their runs."""
        if self._template is not None:
            if self._template.stdin is not None:
                self._template.stdin.close()
            self._template.wait()
            self._template = None

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        args = ExecuteRunArgs(
            job_origin=check.not_none(context.job_code_origin),
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
        )
        pid = self._fork(run, args)
        self._instance.report_engine_event(
            f"Launching run in process {pid}, forked from the warm run worker template",
            run,
            cls=self.__class__,
        )

    def _worker(self, run: DagsterRun) -> int | None:
        """The run's worker pid while that very process still runs, else None."""
        pid = run.tags.get(PID_TAG)
        if pid is None or not pid.isdigit():
            return None
        started = process_start(int(pid))
        return int(pid) if started is not None and started == run.tags.get(START_TAG) else None

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if PID_TAG not in run.tags:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, msg="no worker pid tag on the run")
        if self._worker(run) is None:
            return CheckRunHealthResult(
                WorkerStatus.FAILED, msg=f"run worker process {run.tags[PID_TAG]} is gone"
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = self._worker(run)
        if pid is None:
            self._instance.report_engine_event(
                "no running worker process to send the termination request to",
                run,
                cls=self.__class__,
            )
            return False
        os.kill(pid, signal.SIGTERM)
        return True

    def dispose(self) -> None:
        with self._lock:
            self._stop_template()


def _run_child(args: str) -> int:
    """In the forked child: what ``dagster api execute_run`` runs, on one instance that
    also tags the run; the exit code."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._cli.utils import get_instance_for_cli
    from dagster._utils.interrupts import capture_interrupts

    parsed = deserialize_value(args, ExecuteRunArgs)
    with capture_interrupts(), get_instance_for_cli(instance_ref=parsed.instance_ref) as instance:
        # The worker tags its run itself, before the run's own updates: a tag written by
        # the launcher meanwhile could overwrite the run's status with an older one.
        pid = os.getpid()
        instance.add_run_tags(parsed.run_id, {PID_TAG: str(pid), START_TAG: process_start(pid)})
        return _execute_run_command_body(
            parsed.run_id,
            instance,
            lambda event: None,  # the events are in the event log; nobody reads a stream
            set_exit_code_on_failure=parsed.set_exit_code_on_failure or False,
        )


def _warm_up(first: str) -> None:
    """Open the instance of the first run's arguments once (its storage modules) and
    build its job's definitions, as the run worker would; the instance is closed
    before any fork, so no connection is shared."""
    args = deserialize_value(first, ExecuteRunArgs)
    with DagsterInstance.from_ref(check.not_none(args.instance_ref)):
        pass
    recon_job_from_origin(args.job_origin).get_definition()


def serve_template() -> None:
    """Fork a child per line of serialized run arguments on stdin, answering with its pid.

    The arguments come through the pipe, never the command line (the instance's
    settings are in them). The first line warms the template up first
    (:func:`_warm_up`). Children are reaped by the kernel (SIGCHLD ignored); a
    child leaves the command pipe to the template (its stdin is /dev/null, its
    output goes to the template's standard error, the daemon's log).
    """
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    warm = False
    for line in sys.stdin:
        if not warm:
            _warm_up(line.strip())
            warm = True
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                replies.close()
                code = _run_child(line.strip())
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
            except BaseException:  # the run is already marked failed in the event log
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        replies.write(f"{pid}\n")
        replies.flush()


if __name__ == "__main__":
    serve_template()
