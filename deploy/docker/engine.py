"""Docker engine helper shared by the test suite, CI and operators.

No image registry is reachable from CI machines, so everything an image needs is
produced locally: a Docker engine started on demand, a Debian bookworm base image
made with ``debootstrap`` and ``docker import`` (cached as a tarball under
``.ceilgrid/docker`` so repeat runs skip it), and the code location image built on
top of it from a minimal build context. The compose stack's Postgres and nginx
images are built the same way, from Debian's packages on that base
(``deploy/docker/images/``), and selected with POSTGRES_IMAGE and NGINX_IMAGE.

A dockerd started here is shared: every user (a test module, a concurrent test
suite, the command line) holds a lease on it, and it is stopped only when the last
lease is released. An engine this helper did not start is never stopped.

Command line::

    python deploy/docker/engine.py engine          # start dockerd unless one answers
    python deploy/docker/engine.py base            # build/import the base image
    python deploy/docker/engine.py image [TAG]     # build the code location image
    python deploy/docker/engine.py postgres [TAG]  # Debian Postgres image for compose
    python deploy/docker/engine.py nginx [TAG]     # Debian nginx image for compose
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".ceilgrid" / "docker"
BASE_TAG = "ceilgrid-base:bookworm"
IMAGE_TAG = "ceilgrid:dev"
# The compose stack's other images when no registry is reachable (built from
# deploy/docker/images/NAME on the base); rebuilt in seconds from the build cache.
SERVICE_IMAGES = {
    "postgres": "ceilgrid-postgres:15-bookworm",
    "nginx": "ceilgrid-nginx:bookworm",
}
IMAGES_DIR = Path(__file__).resolve().parent / "images"
# Machine-wide, not per checkout: concurrent suites from different clones share one engine.
LEASE_DIR = Path(tempfile.gettempdir()) / "ceilgrid-docker-engine"
DEBIAN_MIRROR = os.environ.get("CEILGRID_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Preinstalled in the base so the Dockerfile's apt step is a no-op here; a
# registry base (debian:bookworm-slim, python:3.11-slim) gets them in the build.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# The only paths the image needs; everything else (.venv, .git, caches) stays out.
CONTEXT_PATHS = ("ceilgrid_assets", "deploy/docker")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DOCKERD_FLAGS = (
    "--storage-driver=overlay2",
    "--iptables=false",
    "--ip6tables=false",
    "--bridge=none",
)


class EngineUnavailable(RuntimeError):
    """No Docker engine answers and none can be started on this machine."""


@contextmanager
def _lease_lock() -> Iterator[Path]:
    """Serialise lease changes and engine start/stop between processes."""
    (LEASE_DIR / "leases").mkdir(parents=True, exist_ok=True)
    with open(LEASE_DIR / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield LEASE_DIR
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _live_leases() -> list[Path]:
    """Lease files whose process still runs (files of dead processes are removed)."""
    live = []
    for lease in (LEASE_DIR / "leases").iterdir():
        try:
            pid = int(lease.name.split("-", 1)[0])
        except ValueError:
            continue
        if _running(pid):
            live.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return live


def _started_dockerd() -> int | None:
    """The pid of the dockerd a helper started and that still runs, else None."""
    try:
        pid = int((LEASE_DIR / "dockerd.pid").read_text())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "dockerd" else None


@dataclass
class Engine:
    """A reachable Docker engine held through a lease; ``process`` when this helper started it."""

    process: subprocess.Popen[bytes] | None = None
    lease: Path | None = None

    def stop(self) -> None:
        """Release the lease; the last holder stops a dockerd that a helper started.

        An engine found running without a helper's pid file (systemd, an operator)
        is never stopped.
        """
        with _lease_lock():
            if self.lease is not None:
                self.lease.unlink(missing_ok=True)
                self.lease = None
            if _live_leases():
                return
            pid = _started_dockerd()
            if pid is None:
                return
            (LEASE_DIR / "dockerd.pid").unlink(missing_ok=True)
            _terminate(pid, self.process)

    def detach(self) -> None:
        """Keep the engine running for good: no helper will stop it (command line use)."""
        with _lease_lock():
            if self.process is not None and _started_dockerd() == self.process.pid:
                (LEASE_DIR / "dockerd.pid").unlink(missing_ok=True)
            if self.lease is not None:
                self.lease.unlink(missing_ok=True)
                self.lease = None


def _running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie of another parent is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _terminate(pid: int, process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 30 s; reaps the process when it is this one's child."""
    own = process is not None and process.pid == pid
    os.kill(pid, 15)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (process.poll() is not None) if own else not _running(pid):
            return
        time.sleep(0.2)
    os.kill(pid, 9)
    if own:
        process.wait(timeout=10)


def docker(
    *args: str, check: bool = True, capture: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI."""
    return subprocess.run(
        ["docker", *args],
        check=check,
        text=True,
        timeout=timeout,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )


def engine_answers() -> bool:
    """True when ``docker info`` reaches a daemon."""
    if shutil.which("docker") is None:
        return False
    try:
        return (
            docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def ensure_engine(timeout_s: float = 60.0) -> Engine:
    """Return a reachable engine under a lease, starting ``dockerd`` (as root) when none answers.

    The flags are the ones that work without iptables or a bridge device: no default
    bridge (``docker run`` uses ``--network host``) and no NAT, but user-defined
    networks (the compose stack's) work between containers, and ports published
    on 127.0.0.1 are forwarded by docker-proxy. Release with ``Engine.stop()``.
    """
    if os.geteuid() != 0:  # no lease: this process could not start or stop dockerd anyway
        if engine_answers():
            return Engine()
        raise EngineUnavailable("no Docker engine answers and starting dockerd needs root")
    with _lease_lock():
        lease = LEASE_DIR / "leases" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        lease.touch()
        try:
            if engine_answers():
                return Engine(lease=lease)
            process = _start_dockerd(timeout_s)
        except BaseException:
            lease.unlink(missing_ok=True)
            raise
        (LEASE_DIR / "dockerd.pid").write_text(str(process.pid))
        return Engine(process=process, lease=lease)


def _start_dockerd(timeout_s: float) -> subprocess.Popen[bytes]:
    if shutil.which("docker") is None or shutil.which("dockerd") is None:
        raise EngineUnavailable("docker/dockerd not installed (apt-get install docker.io)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "dockerd.log", "ab") as log:
        proc = subprocess.Popen(
            ["dockerd", *DOCKERD_FLAGS],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineUnavailable(
                f"dockerd exited with {proc.returncode}; see {CACHE_DIR / 'dockerd.log'}"
            )
        if engine_answers():
            return proc
        time.sleep(0.5)
    _terminate(proc.pid, proc)
    raise EngineUnavailable(f"dockerd did not answer within {timeout_s:.0f} s")


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def ensure_base_image(tag: str = BASE_TAG) -> str:
    """Import the debootstrap base image, building its tarball only once per machine."""
    if image_exists(tag):
        return tag
    tarball = CACHE_DIR / "bookworm-minbase.tar"
    if not tarball.exists():
        if shutil.which("debootstrap") is None:
            raise EngineUnavailable("debootstrap not installed (apt-get install debootstrap)")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
            rootfs = Path(tmp) / "rootfs"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    "bookworm",
                    str(rootfs),
                    DEBIAN_MIRROR,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (rootfs / cache).glob("*"):
                    if item.is_file():
                        item.unlink()
            partial = tarball.with_suffix(".partial")
            subprocess.run(
                ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], check=True
            )
            partial.rename(tarball)
    docker("import", "--change", 'CMD ["/bin/bash"]', str(tarball), tag)
    return tag


def stage_context(dest: Path) -> Path:
    """Copy the files the image needs into ``dest``, plus the host CA bundle.

    The CA bundle lets pip/uv inside the build trust a TLS-intercepting egress proxy;
    it is used only in the builder stage and never reaches the final image.
    """
    for rel in CONTEXT_PATHS:
        src = REPO_ROOT / rel
        if src.is_dir():
            shutil.copytree(
                src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build-ca")
            )
        elif src.exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    ca_dir = dest / "deploy" / "docker" / "build-ca"
    ca_dir.mkdir(parents=True, exist_ok=True)
    if HOST_CA_BUNDLE.exists():
        shutil.copy2(HOST_CA_BUNDLE, ca_dir / "ca-bundle.crt")
    return dest


def build_image(tag: str = IMAGE_TAG, base: str | None = None) -> str:
    """Build the code location image from ``deploy/docker/Dockerfile`` on the local base."""
    base = base or ensure_base_image()
    with tempfile.TemporaryDirectory(prefix="ceilgrid-ctx-") as tmp:
        ctx = stage_context(Path(tmp))
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        subprocess.run(
            [
                "docker",
                "build",
                "--network",
                "host",
                "--build-arg",
                f"BASE_IMAGE={base}",
                "-f",
                str(ctx / "deploy" / "docker" / "Dockerfile"),
                "-t",
                tag,
                str(ctx),
            ],
            check=True,
            env=env,
        )
    return tag


def build_service_image(name: str, tag: str | None = None, base: str | None = None) -> str:
    """Build the compose stack's ``postgres`` or ``nginx`` image from Debian packages.

    ``deploy/docker/images/NAME`` on the local base; a stand-in for the official
    image the compose file names, with the interface the compose file uses.
    """
    tag = tag or SERVICE_IMAGES[name]
    base = base or ensure_base_image()
    subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            tag,
            str(IMAGES_DIR / name),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    return tag


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"engine", "base", "image", *SERVICE_IMAGES}:
        print(__doc__)
        return 2
    ensure_engine().detach()  # started from the command line: it keeps running
    if argv[0] == "base":
        print(ensure_base_image())
    elif argv[0] == "image":
        print(build_image(argv[1] if len(argv) > 1 else IMAGE_TAG))
    elif argv[0] in SERVICE_IMAGES:
        print(build_service_image(argv[0], argv[1] if len(argv) > 1 else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
