"""`make dev`: Postgres + dagster dev come up, lay out the examples, and Ctrl-C stops both."""

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

from ceilgrid_assets.dev.postgres import free_port

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_dev_server_lays_out_examples_and_stops_cleanly(tmp_path):
    # Outside pytest's 0700 temp tree: as root, Postgres runs as another user.
    base = Path(tempfile.mkdtemp(prefix="ceilgrid-dev-"))
    base.chmod(0o755)
    home = base / "home"
    port = free_port()
    log = open(tmp_path / "devserver.log", "wb")
    process = subprocess.Popen(
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
    layouts = [
        home / "storage" / "buildings" / name / "layout.json"
        for name in ("office-floor", "school-wing")
    ]
    try:
        deadline = time.monotonic() + 240
        while not all(path.exists() for path in layouts) and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "devserver.log").read_text()[-3000:]
            time.sleep(1)
        assert all(path.exists() for path in layouts), (tmp_path / "devserver.log").read_text()[
            -3000:
        ]
        postmaster = int((home / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        assert listening(port) and alive(postmaster)
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        returncode = process.wait(120)
        log.close()
    assert returncode == 0
    assert not listening(port)
    assert not alive(postmaster)
    assert not (home / "postgres" / "data" / "postmaster.pid").exists()
    shutil.rmtree(base)
