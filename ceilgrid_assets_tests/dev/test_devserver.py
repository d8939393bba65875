"""`make dev`: Postgres + dagster dev come up, lay out the examples, and Ctrl-C stops both.

No process of the instance may outlive a stop: ``dagster dev`` leaves its code
server and that server's gRPC child behind unless they are stopped explicitly.
The checks find them by their environment (``DAGSTER_HOME``), which every
process below ``dagster dev`` inherits, independently of how the fix finds them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import PROJECT_ROOT

from ceilgrid_assets.dev.postgres import PostgresServer, create_database, free_port
from ceilgrid_assets.dev.server import (
    instance_env,
    prepare_dagster_home,
    start_dagster_dev,
    stop,
    wait_for_webserver,
)

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def instance_processes(dagster_home: Path) -> dict[int, str]:
    """Living processes started for this instance: pid -> command line."""
    needle = f"DAGSTER_HOME={dagster_home}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
    return found


def assert_none_left(dagster_home: Path, within_s: float = 60.0) -> None:
    """No process of the instance within a minute (dagster's heartbeat alone takes 45 s)."""
    deadline = time.monotonic() + within_s
    while (left := instance_processes(dagster_home)) and time.monotonic() < deadline:
        time.sleep(1)
    try:
        assert left == {}, f"still running {within_s:.0f} s after the stop: {left}"
    finally:
        for pid in left:  # never leave them for the rest of the suite
            os.kill(pid, signal.SIGKILL)


def start_dev_server(home: Path, port: int, log_path: Path) -> subprocess.Popen:
    """``make dev`` as a terminal runs it: its own process group, output to ``log_path``."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ceilgrid_assets.dev.server",
                "--port",
                str(port),
                "--home",
                str(home),
            ],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def dev_base() -> Path:
    # Outside pytest's 0700 temp tree: as root, Postgres runs as another user.
    base = Path(tempfile.mkdtemp(prefix="ceilgrid-dev-"))
    base.chmod(0o755)
    return base


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_dev_server_lays_out_examples_and_stops_cleanly(tmp_path):
    base = dev_base()
    home = base / "home"
    port = free_port()
    log_path = tmp_path / "devserver.log"
    process = start_dev_server(home, port, log_path)
    layouts = [
        home / "storage" / "buildings" / name / "layout.json"
        for name in ("office-floor", "school-wing")
    ]
    try:
        deadline = time.monotonic() + 240
        while not all(path.exists() for path in layouts) and time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()[-3000:]
            time.sleep(1)
        assert all(path.exists() for path in layouts), log_path.read_text()[-3000:]
        postmaster = int((home / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        assert listening(port) and alive(postmaster)
        assert any(
            "code-server" in line for line in instance_processes(home / "dagster_home").values()
        )
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        returncode = process.wait(120)
    assert returncode == 0
    assert not listening(port)
    assert not alive(postmaster)
    assert not (home / "postgres" / "data" / "postmaster.pid").exists()
    assert_none_left(home / "dagster_home")
    shutil.rmtree(base)


def test_forced_stop_of_the_dev_server_leaves_no_process(tmp_path):
    """SIGKILL of ``make dev`` itself: nothing can clean up in it, the lifeline must."""
    base = dev_base()
    home = base / "home"
    port = free_port()
    log_path = tmp_path / "devserver.log"
    process = start_dev_server(home, port, log_path)
    try:
        deadline = time.monotonic() + 240
        while b"ready:" not in log_path.read_bytes() and time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()[-3000:]
            time.sleep(1)
        assert b"ready:" in log_path.read_bytes(), log_path.read_text()[-3000:]
        postmaster = int((home / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        assert len(instance_processes(home / "dagster_home")) >= 3  # dev, webserver, daemon, code
    finally:
        process.kill()  # the dev server only, not its children
        process.wait(30)
    try:
        assert_none_left(home / "dagster_home")
        deadline = time.monotonic() + 60
        while alive(postmaster) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not alive(postmaster), "Postgres still running a minute after the SIGKILL"
        assert not (home / "postgres" / "data" / "postmaster.pid").exists()  # shut down cleanly
    finally:
        if alive(postmaster):
            os.kill(postmaster, signal.SIGINT)
    shutil.rmtree(base, ignore_errors=True)


def test_stop_leaves_no_process_after_runs(
    postgres_server: PostgresServer, _dagster_schema_template: str, tmp_path: Path
):
    """What the suite's ``dagster_dev`` fixture does on teardown, with a run launched."""
    from ceilgrid_assets.cli.submit import launch_run

    database = "devserver_stop"
    create_database(postgres_server, database, template=_dagster_schema_template)
    home = tmp_path / "home"
    dagster_home = home / "dagster_home"
    prepare_dagster_home(PROJECT_ROOT, dagster_home)
    env = {**instance_env(postgres_server, home, dagster_home), "DAGSTER_POSTGRES_DB": database}
    port = free_port()
    process = start_dagster_dev(PROJECT_ROOT, env, port, tmp_path / "dagster-dev.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_webserver(url, process)
        text = (PROJECT_ROOT / "ceilgrid_assets" / "examples" / "office-floor.json").read_text()
        launch_run(url, text, "orphan-check")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            len(
                forked := [
                    line
                    for line in instance_processes(dagster_home).values()
                    # the launcher's template and the run worker forked from it
                    if "ceilgrid_assets.dev.launcher" in line
                ]
            )
            < 2
        ):
            time.sleep(0.05)
        assert len(forked) >= 2, "no run worker started"  # stopped while the run goes on
    finally:
        stop(process)
    assert process.lifeline.returncode == 0
    assert_none_left(dagster_home)
