"""Run the deployment's proxy and webservers as plain processes on loopback.

The compose file runs nginx from the official image, which renders
``nginx/ceilgrid.conf.template`` with envsubst. This module renders the same
template the same way and runs the Debian ``nginx`` binary with it, so the proxy
configuration can be exercised (tests, trials) without a registry or containers.
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import requests

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "ceilgrid.conf.template"
_ENVSUBST = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``check`` until it holds; fail early (with the log's tail) if ``proc`` dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what}: not ready after {timeout_s:.0f} s")


def render_template(values: Mapping[str, str], template: Path = TEMPLATE) -> str:
    """Substitute ``${NAME}`` like envsubst; a missing value is an error, not ''."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{template.name}: no value for ${{{name}}}")
        return values[name]

    return _ENVSUBST.sub(value, template.read_text())


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """Terminate a process group started by this module."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=5)


def start_nginx(workdir: Path, values: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start nginx in the foreground with the rendered template under ``workdir``.

    As root, nginx is started as ``nobody`` (setpriv), so that no part of the proxy
    runs privileged; the files it reads must then be readable by that user.
    """
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ceilgrid.conf").write_text(render_template(values))
    (workdir / "nginx.conf").write_text(f"""\
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {workdir}/ceilgrid.conf;
}}
""")
    cmd: list[str] = [
        nginx,
        "-p",
        str(workdir),
        "-c",
        str(workdir / "nginx.conf"),
        "-e",
        str(workdir / "error.log"),
    ]
    if os.geteuid() == 0:
        shutil.chown(workdir, "nobody")
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    test = subprocess.run([*cmd, "-t"], capture_output=True, text=True, check=False)
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{test.stderr}")
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def start_webserver(
    port: int,
    workspace: Path,
    dagster_home: Path,
    extra_args: Sequence[str] = (),
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``dagster-webserver`` on 127.0.0.1 (its own process group, so it stops cleanly)."""
    exe = Path(sys.executable).parent / "dagster-webserver"
    binary = str(exe) if exe.exists() else "dagster-webserver"
    command = [
        binary,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workspace",
        str(workspace),
        *extra_args,
    ]
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    if log is None:
        return subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)
