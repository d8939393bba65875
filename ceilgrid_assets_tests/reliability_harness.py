"""Real servers for the fault and load tests: Postgres, ``dagster-daemon``, ``dagster-webserver``.

Each process can be stopped, killed and restarted on its own, which
``dagster dev`` (one process tree) does not allow. Everything lives under one
folder; the instance is the project's ``dagster.yaml``. Used by
``test_reliability_platform.py`` and ``scripts/load_test.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from helpers import PROJECT_ROOT

from ceilgrid_assets.cli.submit import ServerError, launch_run, submit
from ceilgrid_assets.dev.postgres import PostgresServer, free_port, start_postgres

BIN = Path(sys.executable).parent


@dataclass
class Platform:
    """A Dagster deployment on real processes; ``env`` is what every process sees."""

    root: Path
    postgres: PostgresServer
    port: int
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def inbox(self) -> Path:
        return self.root / "ceilgrid" / "inbox"

    @property
    def quarantine(self) -> Path:
        return self.root / "ceilgrid" / "quarantine"

    @property
    def storage(self) -> Path:
        return self.root / "ceilgrid" / "storage"

    def layout_path(self, key: str) -> Path:
        return self.storage / "buildings" / key / "layout.json"

    # ---------------------------------------------------------------- processes

    def start(self, name: str) -> subprocess.Popen:
        """Start ``daemon`` or ``webserver`` (its own process group, log in the root)."""
        workspace = ["-w", str(PROJECT_ROOT / "workspace.yaml")]
        command = {
            "daemon": [str(BIN / "dagster-daemon"), "run", *workspace],
            "webserver": [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                *workspace,
            ],
        }[name]
        log = open(self.root / f"{name}.log", "ab")
        process = subprocess.Popen(
            command,
            env=self.env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        if name == "webserver":
            self._wait_webserver(process)
        return process

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60) -> None:
        """Signal the process group (the daemon's code server and run workers go too)."""
        process = self.processes.pop(name, None)
        if process is None:
            return
        deadline = time.monotonic() + timeout_s
        try:  # the leader may be dead already while its children live on
            os.killpg(process.pid, sig)
            while time.monotonic() < deadline:
                process.poll()
                os.killpg(process.pid, 0)
                time.sleep(0.2)
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def _wait_webserver(self, process: subprocess.Popen, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"webserver exited: {self.log_tail('webserver')}")
            try:
                if requests.get(f"{self.url}/server_info", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"webserver not ready: {self.log_tail('webserver')}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def restart_postgres(self) -> None:
        self.postgres = start_postgres(self.postgres.base_dir, self.postgres.port, durable=False)

    # ---------------------------------------------------------------- GraphQL

    def graphql(self, query: str, variables: dict[str, Any], timeout_s: float = 60) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=timeout_s
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(json.dumps(body["errors"])[:500])
        return body["data"]

    def submit(self, key: str, document: bytes) -> None:
        """Submit as ``ceilgrid submit`` does: the inbox sensor batches it into a run."""
        submit(self.url, document.decode(), key)

    def launch(self, key: str, document: bytes, attempts: int = 5) -> str:
        """Add the building partition and launch a run of its own; returns the run id.

        After a Postgres restart the webserver's pooled connections are dead and
        its first requests fail (OperationalError): a client retries those.
        """
        for _ in range(attempts - 1):
            try:
                return launch_run(self.url, document.decode(), key)
            except ServerError as error:
                if "OperationalError" not in str(error):
                    raise
                time.sleep(1)
        return launch_run(self.url, document.decode(), key)


def _reachable_temp_dir(prefix: str) -> Path:
    """A folder outside pytest's 0700 tree: the unprivileged Postgres user must reach it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


@contextmanager
def running_platform(
    extra_env: dict[str, str] | None = None, keep: bool = False
) -> Iterator[Platform]:
    """Postgres plus webserver and daemon, on a fresh database and fresh folders."""
    root = _reachable_temp_dir("ceilgrid-platform-")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    (root / "ceilgrid" / "inbox").mkdir(parents=True)
    postgres = start_postgres(root / "postgres", durable=False)
    env = {
        **os.environ,
        **postgres.env(),
        "DAGSTER_HOME": str(home),
        "CEILGRID_DAGSTER_STORAGE": str(home / "storage"),
        "CEILGRID_COMPUTE_LOGS": str(home / "logs"),
        "CEILGRID_HOME": str(root / "ceilgrid"),
        **(extra_env or {}),
    }
    for name in (
        "CEILGRID_STORAGE_ROOT",
        "CEILGRID_INBOX",
        "CEILGRID_QUARANTINE",
        "CEILGRID_MODEL_STORE",
    ):
        env.pop(name, None)
    platform = Platform(root, postgres, free_port(), env)
    try:
        platform.start("webserver")
        platform.start("daemon")
        yield platform
    finally:
        for name in list(platform.processes):
            platform.stop(name)
        platform.postgres.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def instance_of(platform: Platform):
    """A DagsterInstance on the platform's Postgres, for checking runs from the test."""
    from dagster import DagsterInstance

    saved = {name: os.environ.get(name) for name in platform.env}
    os.environ.update(platform.env)
    try:
        with DagsterInstance.from_config(platform.env["DAGSTER_HOME"]) as instance:
            yield instance
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
