"""``ceilgrid submit`` (both paths) through the deployment's real nginx proxy.

nginx runs the Docker deployment's template with a certificate and users made
by ``deploy/docker/secrets.sh``; operators reach the suite's ``dagster dev``
(webserver + daemon: the sensor and the run launcher are real), viewers a
``dagster-webserver --read-only`` on the same instance. Credentials come from
the URL or from CEILGRID_USER / CEILGRID_PASSWORD; a viewer cannot submit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from helpers import PROJECT_ROOT, example_building, load_module

DEPLOY = PROJECT_ROOT / "deploy" / "docker"
CEILGRID = str(Path(sys.executable).with_name("ceilgrid"))
PASSWORDS = {"vera": "viewer-pw-7f3a", "otto": "op:pw@91/c2"}  # URL-special characters

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
        reason="nginx not installed (apt-get install nginx)",
    ),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed"),
]

localrun = load_module("ceilgrid_deploy_localrun", DEPLOY / "localrun.py")


@dataclass
class Proxy:
    port: int
    ca: Path

    def url(self, user: str | None = None) -> str:
        if user is None:
            return f"https://localhost:{self.port}"
        from urllib.parse import quote

        return f"https://{user}:{quote(PASSWORDS[user], safe='')}@localhost:{self.port}"


@pytest.fixture(scope="module")
def proxy(dagster_dev) -> Iterator[Proxy]:
    root = Path(tempfile.mkdtemp(prefix="ceilgrid-submit-proxy-"))
    root.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        secrets = root / "secrets"
        script = str(DEPLOY / "secrets.sh")
        subprocess.run([script, "tls", str(secrets), "localhost"], check=True)
        for user, role in (("vera", "viewer"), ("otto", "operator")):
            subprocess.run(
                [script, "user", str(secrets), user, role],
                check=True,
                env={**os.environ, "CEILGRID_NEW_PASSWORD": PASSWORDS[user]},
            )
        if os.geteuid() == 0:  # nginx runs as nobody
            subprocess.run(["chown", "-R", "nobody:nogroup", str(secrets)], check=True)
        viewer_port = localrun.free_port()
        with pytest.MonkeyPatch.context() as patch:
            for name, value in dagster_dev.env.items():
                patch.setenv(name, value)
            viewer = localrun.start_webserver(
                viewer_port,
                PROJECT_ROOT / "workspace.yaml",
                Path(dagster_dev.env["DAGSTER_HOME"]),
                ["--read-only"],
                log=root / "viewer.log",
            )
        procs.append(viewer)
        operator = dagster_dev.url.removeprefix("http://")
        http_port, https_port = localrun.free_port(), localrun.free_port()
        nginx = localrun.start_nginx(
            root / "nginx",
            {
                "CEILGRID_SERVER_NAME": "localhost",
                "CEILGRID_HTTP_LISTEN": f"127.0.0.1:{http_port}",
                "CEILGRID_HTTPS_LISTEN": f"127.0.0.1:{https_port}",
                "CEILGRID_HTTPS_PUBLIC_PORT": str(https_port),
                "CEILGRID_VIEWER_UPSTREAM": f"127.0.0.1:{viewer_port}",
                "CEILGRID_OPERATOR_UPSTREAM": operator,
                "CEILGRID_TLS_DIR": str(secrets / "tls"),
                "CEILGRID_AUTH_DIR": str(secrets / "auth"),
                # Not used by these tests (the template's Grafana location).
                "CEILGRID_GRAFANA_UPSTREAM": f"127.0.0.1:{localrun.free_port()}",
                "CEILGRID_RESOLVER": "127.0.0.1",
            },
        )
        procs.append(nginx)
        localrun.wait_until(
            lambda: requests.get(f"http://127.0.0.1:{viewer_port}/server_info", timeout=2).ok,
            120,
            "read-only webserver",
            viewer,
            root / "viewer.log",
        )
        ca = secrets / "tls" / "tls.crt"
        localrun.wait_until(
            lambda: (
                requests.get(
                    f"https://localhost:{https_port}/healthz", verify=str(ca), timeout=2
                ).ok
            ),
            20,
            "nginx",
            nginx,
        )
        yield Proxy(https_port, ca)
    finally:
        for proc in reversed(procs):
            localrun.stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def building(tmp_path: Path, name: str) -> tuple[Path, str]:
    return example_building(tmp_path, name, "school-wing.json")


def submit(
    proxy: Proxy, path: Path, url: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CEILGRID_USER", "CEILGRID_PASSWORD")
    }
    return subprocess.run(
        [CEILGRID, "submit", str(path), "--url", url, *extra],
        env={**environment, "REQUESTS_CA_BUNDLE": str(proxy.ca), **(env or {})},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


def assert_secret_kept(done: subprocess.CompletedProcess[str]) -> None:
    for password in PASSWORDS.values():
        assert password not in done.stdout + done.stderr


def test_operator_submits_through_the_proxy_with_url_credentials(proxy, tmp_path, dagster_dev):
    path, building_id = building(tmp_path, "proxy-url")
    out = tmp_path / "layout.json"
    done = submit(proxy, path, proxy.url("otto"), "--wait", "-o", str(out), "--timeout", "300")
    assert done.returncode == 0, done.stderr
    assert_secret_kept(done)
    stored = dagster_dev.home / "storage" / "buildings" / building_id / "layout.json"
    assert out.read_bytes() == stored.read_bytes()


def test_operator_run_path_keeps_env_credentials(proxy, tmp_path, dagster_dev):
    path, building_id = building(tmp_path, "proxy-run")
    out = tmp_path / "layout.json"
    credentials = {"CEILGRID_USER": "otto", "CEILGRID_PASSWORD": PASSWORDS["otto"]}
    done = submit(
        proxy,
        path,
        proxy.url(),
        "--run",
        "--wait",
        "-o",
        str(out),
        "--timeout",
        "300",
        env=credentials,
    )
    assert done.returncode == 0, done.stderr
    assert "launched run " in done.stderr
    assert_secret_kept(done)
    stored = dagster_dev.home / "storage" / "buildings" / building_id / "layout.json"
    assert out.read_bytes() == stored.read_bytes()


@pytest.mark.parametrize("run", [False, True])
def test_viewer_cannot_submit(proxy, tmp_path, dagster_dev, run):
    path, building_id = building(tmp_path, "proxy-viewer")
    done = submit(proxy, path, proxy.url("vera"), *(["--run"] if run else []))
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Authorization failed" in done.stderr or "Unauthorized" in done.stderr, done.stderr
    assert_secret_kept(done)
    assert not (dagster_dev.home / "storage" / "buildings" / building_id).exists()


def test_missing_or_wrong_credentials_are_one_line(proxy, tmp_path):
    path, _ = building(tmp_path, "proxy-none")
    done = submit(proxy, path, proxy.url())
    assert done.returncode == 3 and "HTTP 401: credentials needed" in done.stderr
    assert done.stderr.count("\n") == 1
    wrong = proxy.url().replace("https://", "https://otto:nope@")
    done = submit(proxy, path, wrong)
    assert done.returncode == 3 and "HTTP 401: credentials refused" in done.stderr
    assert "nope" not in done.stderr


def test_proxy_refuses_bodies_larger_than_any_api_submission(proxy):
    """64m: twice the largest API document passes the proxy, a 70 MB body does not."""

    def post(size: int) -> int:
        return requests.post(
            proxy.url() + "/graphql",
            data=b" " * size,
            auth=("otto", PASSWORDS["otto"]),
            headers={"Content-Type": "application/json"},
            verify=str(proxy.ca),
            timeout=120,
        ).status_code

    assert post(2 * 16 * 1024 * 1024) != 413  # reaches the webserver (which finds no query)
    assert post(70 * 1024 * 1024) == 413
