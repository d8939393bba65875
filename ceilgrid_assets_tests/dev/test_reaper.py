"""The lifeline that stops what ``dagster dev`` leaves behind, on plain processes (fast).

The orphans are made the way dagster dev makes them: a child in a session of its
own whose parent has exited, so that it was reparented and no process-group
signal reaches it.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

from ceilgrid_assets.dev.reaper import GRACE_S, MARKER, marked_processes

ORPHAN_MAKER = """
import subprocess, sys
child = subprocess.Popen(
    [sys.executable, "-c", sys.argv[1]],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    start_new_session=True,
)
print(child.pid, flush=True)
"""
SLEEPER = "import time; time.sleep(600)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def orphan(token: str, code: str) -> int:
    """Start ``code`` as an orphan carrying ``token``; its pid once it runs."""
    made = subprocess.run(
        [sys.executable, "-c", ORPHAN_MAKER, code],
        env={**os.environ, MARKER: token},
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(made.stdout)
    deadline = time.monotonic() + 10
    while pid not in marked_processes(token) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the exec is done and the environment readable
    return pid


def lifeline(token: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ceilgrid_assets.dev.reaper", token],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_closing_the_lifeline_stops_every_orphan_with_the_token():
    token, other = secrets.token_hex(8), secrets.token_hex(8)
    orphans = [orphan(token, SLEEPER) for _ in range(2)]
    bystander = orphan(other, SLEEPER)  # another instance's: never touched
    try:
        assert sorted(marked_processes(token)) == sorted(orphans)
        watcher = lifeline(token)
        time.sleep(0.5)
        assert marked_processes(token), "the lifeline acted before its pipe closed"
        watcher.stdin.close()
        assert watcher.wait(30) == 0
        assert marked_processes(token) == []
        assert b"stopped 2 processes" in watcher.stderr.read()
        assert marked_processes(other) == [bystander]
    finally:
        for pid in [*orphans, bystander]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_the_starter_dying_by_sigkill_is_enough():
    token = secrets.token_hex(8)
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-m', 'ceilgrid_assets.dev.reaper', {token!r}],"
            " stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)\n"
            "time.sleep(600)",
        ]
    )
    stuck = orphan(token, SLEEPER)
    try:
        time.sleep(1)
        starter.kill()
        starter.wait()
        deadline = time.monotonic() + 30
        while marked_processes(token) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marked_processes(token) == []
    finally:
        try:
            os.kill(stuck, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period():
    token = secrets.token_hex(8)
    stubborn = orphan(token, STUBBORN)
    try:
        time.sleep(0.3)  # its SIGTERM handler is installed
        watcher = lifeline(token)
        started = time.monotonic()
        watcher.stdin.close()
        assert watcher.wait(GRACE_S + 30) == 0
        assert time.monotonic() - started >= GRACE_S - 1
        time.sleep(0.5)
        assert marked_processes(token) == []
    finally:
        try:
            os.kill(stubborn, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_interrupt_targets_get_sigint_after_the_sweep():
    """What make dev passes for its Postgres: SIGINT (fast shutdown), not SIGTERM or SIGKILL."""
    token = secrets.token_hex(8)
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            # Its own SIGINT handler: a child of a background job inherits SIGINT ignored.
            "import signal, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "try:\n    time.sleep(600)\nexcept KeyboardInterrupt:\n    raise SystemExit(7)",
        ]
    )
    time.sleep(0.5)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "ceilgrid_assets.dev.reaper", token, "--interrupt", str(server.pid)],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        time.sleep(0.5)
        assert server.poll() is None
        watcher.stdin.close()
        assert server.wait(30) == 7  # exited through its SIGINT handling
        assert watcher.wait(30) == 0
    finally:
        server.kill()
