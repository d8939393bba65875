"""``make dev``: a local Postgres and ``dagster dev`` on 127.0.0.1, examples in the inbox.

Everything lives under ``.ceilgrid/`` in the working directory (the project):
``postgres/`` (data, log, generated password), ``dagster_home/`` (instance
config copied from the top-level dagster.yaml, run storage, compute logs),
``inbox/``, ``quarantine/``, ``storage/`` (inputs, layouts, reports) and
``model-store/``. Ctrl-C (or SIGTERM) stops ``dagster dev`` first, with every process it
started, then Postgres; after a SIGKILL of this process the lifeline of
:mod:`ceilgrid_assets.dev.reaper` does the same.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from ceilgrid_assets.dev.postgres import PostgresServer, start_postgres
from ceilgrid_assets.dev.reaper import MARKER

PROJECT_FILES = ("dagster.yaml", "workspace.yaml")
EXAMPLES = ("office-floor.json", "school-wing.json")
READY_TIMEOUT_S = 180.0


def instance_env(server: PostgresServer, home: Path, dagster_home: Path) -> dict[str, str]:
    """The variables dagster.yaml and the ceilgrid resources read."""
    return {
        **server.env(),
        "DAGSTER_HOME": str(dagster_home),
        "CEILGRID_HOME": str(home),
        "CEILGRID_DAGSTER_STORAGE": str(dagster_home / "storage"),
        "CEILGRID_COMPUTE_LOGS": str(dagster_home / "logs"),
    }


def prepare_dagster_home(project: Path, dagster_home: Path) -> None:
    """DAGSTER_HOME gets the project's dagster.yaml afresh on every start."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(project / "dagster.yaml", dagster_home / "dagster.yaml")


def _default_signals() -> None:
    # A parent started in the background ignores SIGINT; the webserver must not inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DagsterDevProcess(subprocess.Popen):
    """``dagster dev`` with its tree token and the lifeline that stops the tree.

    The lifeline (:mod:`ceilgrid_assets.dev.reaper`) reads a pipe that only this
    process holds: when it is closed by :func:`stop`, or by the kernel because
    this process died (even by SIGKILL), every process carrying the token is
    stopped, wherever it was reparented.
    """

    def __init__(self, args: list[str], token: str, lifeline: subprocess.Popen, **kwargs) -> None:
        super().__init__(args, **kwargs)
        self.token = token
        self.lifeline = lifeline


def start_dagster_dev(
    project: Path,
    env: Mapping[str, str],
    port: int,
    log_path: Path | None = None,
    interrupt_after: Sequence[int] = (),
) -> DagsterDevProcess:
    """``dagster dev`` on 127.0.0.1:port in its own session (stopped by :func:`stop`).

    ``interrupt_after``: pids the lifeline interrupts once dagster dev's processes
    are gone (``make dev`` passes its Postgres, so a SIGKILL of it stops that too).
    """
    token = secrets.token_hex(16)
    interrupts = [arg for pid in interrupt_after for arg in ("--interrupt", str(pid))]
    lifeline = subprocess.Popen(
        [sys.executable, "-m", "ceilgrid_assets.dev.reaper", token, *interrupts],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # outside the terminal's process group: Ctrl-C spares it
    )
    output = open(log_path, "ab") if log_path is not None else None
    try:
        return DagsterDevProcess(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(project / "workspace.yaml"),
            ],
            token,
            lifeline,
            cwd=project,
            env={**os.environ, **env, MARKER: token},
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_signals,
            start_new_session=True,
        )
    except BaseException:
        lifeline.stdin.close()
        lifeline.wait()
        raise
    finally:
        if output is not None:
            output.close()


def wait_for_webserver(
    url: str, process: subprocess.Popen, timeout_s: float = READY_TIMEOUT_S
) -> None:
    """Until the webserver answers and the code location has loaded."""
    deadline = time.monotonic() + timeout_s
    query = json.dumps(
        {
            "query": "{ workspaceOrError { ... on Workspace { locationEntries "
            "{ name locationOrLoadError { __typename } } } } }"
        }
    ).encode()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with code {process.returncode}")
        try:
            request = urllib.request.Request(
                f"{url}/graphql", data=query, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                if b'"RepositoryLocation"' in response.read():
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")
        time.sleep(0.5)


def stop(process: DagsterDevProcess, timeout_s: float = 30.0) -> None:
    """SIGINT to the session (dagster dev stops its webserver and daemon), SIGKILL if it hangs,
    then the lifeline stops what dagster dev left behind (code servers, run workers)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.lifeline.poll() is None:
        process.lifeline.stdin.close()
        process.lifeline.wait()


def copy_examples(inbox: Path) -> list[Path]:
    inbox.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in EXAMPLES:
        data = resources.files("ceilgrid_assets.examples").joinpath(name).read_bytes()
        target = inbox / name
        target.write_bytes(data)
        copied.append(target)
    return copied


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("CEILGRID_DEV_PORT", 3000)))
    parser.add_argument(
        "--home", type=Path, default=Path(os.environ.get("CEILGRID_HOME", ".ceilgrid"))
    )
    args = parser.parse_args(argv)
    project = Path.cwd()
    missing = [name for name in PROJECT_FILES if not (project / name).is_file()]
    if missing:
        print(
            f"error: run from the project folder ({', '.join(missing)} not found)", file=sys.stderr
        )
        return 2
    home = args.home.absolute()
    dagster_home = home / "dagster_home"
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    server = dagster = None
    try:
        print(f"starting Postgres (data in {home / 'postgres'})", flush=True)
        server = start_postgres(home / "postgres")
        prepare_dagster_home(project, dagster_home)
        env = instance_env(server, home, dagster_home)
        marker = home / ".examples-copied"
        if not marker.exists():
            for path in copy_examples(home / "inbox"):
                print(f"example building in the inbox: {path}", flush=True)
            marker.touch()
        url = f"http://127.0.0.1:{args.port}"
        print(f"starting dagster dev on {url}", flush=True)
        dagster = start_dagster_dev(project, env, args.port, interrupt_after=[server.process.pid])
        wait_for_webserver(url, dagster)
        print(f"ready: open {url}/asset-groups (Ctrl-C stops everything)", flush=True)
        return dagster.wait()
    except _Stop:
        print("stopping", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        if dagster is not None:
            stop(dagster)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
