"""Docker engine helper shared by the test suite, CI and operators.

No image registry is reachable from CI machines, so everything an image needs is
produced locally: a Docker engine started on demand, a Debian bookworm base image
made with ``debootstrap`` and ``docker import`` (cached as a tarball under
``.ceilgrid/docker`` so repeat runs skip it), and the code location image built on
top of it from a minimal build context.

Command line::

    python deploy/docker/engine.py engine        # start dockerd unless one answers
    python deploy/docker/engine.py base          # build/import the base image
    python deploy/docker/engine.py image [TAG]   # build the code location image
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".ceilgrid" / "docker"
BASE_TAG = "ceilgrid-base:bookworm"
IMAGE_TAG = "ceilgrid:dev"
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


@dataclass
class Engine:
    """A reachable Docker engine; ``process`` is set when this helper started it."""

    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop the daemon only if this helper started it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


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
    """Return a reachable engine, starting ``dockerd`` (as root) when none answers.

    The flags are the ones that work without iptables or a bridge device; containers
    therefore use ``--network host``.
    """
    if engine_answers():
        return Engine()
    if shutil.which("docker") is None or shutil.which("dockerd") is None:
        raise EngineUnavailable("docker/dockerd not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers and starting dockerd needs root")
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
            return Engine(process=proc)
        time.sleep(0.5)
    Engine(process=proc).stop()
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


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"engine", "base", "image"}:
        print(__doc__)
        return 2
    ensure_engine()
    if argv[0] == "base":
        print(ensure_base_image())
    elif argv[0] == "image":
        print(build_image(argv[1] if len(argv) > 1 else IMAGE_TAG))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
