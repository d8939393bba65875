"""The nginx proxy of the Docker deployment, in front of real Dagster webservers.

nginx (Debian package) runs the deployment's own template with a self-signed
certificate and users made by ``deploy/docker/secrets.sh``; behind it run one
``dagster-webserver --read-only`` (viewers) and one full webserver (operators).
Grafana cannot be installed here; ``/grafana/`` is checked against a plain HTTP
server standing in for it, which records what nginx forwards.
Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from dagster import DagsterInstance
from helpers import PROJECT_ROOT, load_module

DEPLOY = PROJECT_ROOT / "deploy" / "docker"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
        reason="nginx not installed (apt-get install nginx)",
    ),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed"),
]

JOB_FILE = """\
from dagster import Definitions, job, op


@op
def ping() -> str:
    return "pong"


@job
def ping_job() -> None:
    ping()


defs = Definitions(jobs=[ping_job])
"""

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""
RUN_STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
REPOSITORIES = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
LAUNCH_PARAMS = {
    "selector": {
        "repositoryLocationName": "proxytest",
        "repositoryName": "__repository__",
        "jobName": "ping_job",
    },
    "runConfigData": {},
}
PASSWORDS = {"vera": "viewer-pw-7f3a", "otto": "operator-pw-91c2"}


localrun = load_module("ceilgrid_deploy_localrun", DEPLOY / "localrun.py")


class _GrafanaStandIn(BaseHTTPRequestHandler):
    """Answers like Grafana's health endpoint; keeps the path and headers it got."""

    seen: list[dict[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append({"path": self.path, "authorization": self.headers["Authorization"]})
        body = b'{"database": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@dataclass
class Proxy:
    http: str
    https: str
    ca: Path
    grafana_seen: list[dict[str, str | None]] = field(default_factory=list)
    nginx_values: dict[str, str] = field(default_factory=dict)
    workdir: Path = Path()

    def gql(
        self, query: str, variables: dict | None = None, auth: tuple[str, str] | None = None
    ) -> requests.Response:
        return requests.post(
            f"{self.https}/graphql",
            json={"query": query, "variables": variables or {}},
            auth=auth,
            verify=str(self.ca),
            timeout=30,
        )


def _hand_to_nobody(path: Path) -> None:
    """nginx runs as ``nobody`` when the suite runs as root: let it read its files."""
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "nobody:nogroup", str(path)], check=True)


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    root = Path(tempfile.mkdtemp(prefix="ceilgrid-proxy-"))
    root.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    _GrafanaStandIn.seen = []
    grafana = ThreadingHTTPServer(("127.0.0.1", 0), _GrafanaStandIn)
    threading.Thread(target=grafana.serve_forever, daemon=True).start()
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
        _hand_to_nobody(secrets)

        home = root / "dagster_home"
        home.mkdir()
        # No daemon here: the operator webserver launches runs itself.
        (home / "dagster.yaml").write_text(
            "run_coordinator:\n  module: dagster._core.run_coordinator\n"
            "  class: DefaultRunCoordinator\n"
            "telemetry: {enabled: false}\nnux: {enabled: false}\n"
        )
        # Create the instance's storage once, before two processes race to migrate it.
        DagsterInstance.from_config(str(home)).dispose()
        (root / "defs.py").write_text(JOB_FILE)
        (root / "workspace.yaml").write_text(
            "load_from:\n  - python_file: {relative_path: defs.py, location_name: proxytest}\n"
        )

        viewer_port, operator_port = localrun.free_port(), localrun.free_port()
        viewer = localrun.start_webserver(
            viewer_port, root / "workspace.yaml", home, ["--read-only"], log=root / "viewer.log"
        )
        procs.append(viewer)
        operator = localrun.start_webserver(
            operator_port, root / "workspace.yaml", home, log=root / "operator.log"
        )
        procs.append(operator)

        http_port, https_port = localrun.free_port(), localrun.free_port()
        nginx_values = {
            "CEILGRID_SERVER_NAME": "localhost",
            "CEILGRID_HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "CEILGRID_HTTPS_LISTEN": f"127.0.0.1:{https_port}",
            "CEILGRID_HTTPS_PUBLIC_PORT": str(https_port),
            "CEILGRID_VIEWER_UPSTREAM": f"127.0.0.1:{viewer_port}",
            "CEILGRID_OPERATOR_UPSTREAM": f"127.0.0.1:{operator_port}",
            "CEILGRID_TLS_DIR": str(secrets / "tls"),
            "CEILGRID_AUTH_DIR": str(secrets / "auth"),
            "CEILGRID_GRAFANA_UPSTREAM": f"127.0.0.1:{grafana.server_port}",
            "CEILGRID_RESOLVER": "127.0.0.1",
        }
        nginx = localrun.start_nginx(root / "nginx", nginx_values)
        procs.append(nginx)

        for port, proc, log in (
            (viewer_port, viewer, "viewer.log"),
            (operator_port, operator, "operator.log"),
        ):
            localrun.wait_until(
                lambda p=port: requests.get(f"http://127.0.0.1:{p}/server_info", timeout=2).ok,
                90,
                f"dagster-webserver on {port}",
                proc,
                root / log,
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
        yield Proxy(
            http=f"http://localhost:{http_port}",
            https=f"https://localhost:{https_port}",
            ca=ca,
            grafana_seen=_GrafanaStandIn.seen,
            nginx_values=nginx_values,
            workdir=root,
        )
    finally:
        for proc in reversed(procs):
            localrun.stop(proc)
        grafana.shutdown()
        grafana.server_close()
        shutil.rmtree(root, ignore_errors=True)


def test_plain_http_redirects_to_https(proxy: Proxy) -> None:
    response = requests.get(f"{proxy.http}/runs?x=1", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"{proxy.https}/runs?x=1"


def test_no_or_wrong_credentials_get_401(proxy: Proxy) -> None:
    for auth in (None, ("vera", "wrong"), ("nobody", "x")):
        response = requests.get(
            f"{proxy.https}/server_info", auth=auth, verify=str(proxy.ca), timeout=10
        )
        assert response.status_code == 401, auth
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert proxy.gql(REPOSITORIES).status_code == 401


def test_tls_and_security_headers(proxy: Proxy) -> None:
    response = requests.get(
        f"{proxy.https}/server_info",
        auth=("vera", PASSWORDS["vera"]),
        verify=str(proxy.ca),
        timeout=10,
    )
    assert response.status_code == 200
    assert "dagster_webserver_version" in response.json()
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "nginx/" not in response.headers.get("Server", "")


def test_readyz_reaches_dagster_without_credentials(proxy: Proxy) -> None:
    # /healthz is nginx alone; /readyz is answered by the viewers' webserver itself.
    assert requests.get(f"{proxy.https}/healthz", verify=str(proxy.ca), timeout=10).text == "ok\n"
    ready = requests.get(f"{proxy.https}/readyz?x=1", verify=str(proxy.ca), timeout=10)
    assert ready.status_code == 200
    assert ready.json()["dagster_webserver_version"]
    posted = requests.post(
        f"{proxy.https}/readyz", data=b"{}", verify=str(proxy.ca), timeout=10
    )  # the method and body are not passed on
    assert posted.status_code == 200 and "dagster_version" in posted.json()


def test_viewer_reads_but_cannot_launch(proxy: Proxy) -> None:
    viewer = ("vera", PASSWORDS["vera"])
    repos = proxy.gql(REPOSITORIES, auth=viewer)
    assert repos.status_code == 200
    assert [n["name"] for n in repos.json()["data"]["repositoriesOrError"]["nodes"]] == [
        "__repository__"
    ]
    launch = proxy.gql(LAUNCH, {"params": LAUNCH_PARAMS}, auth=viewer).json()
    assert launch["data"]["launchRun"]["__typename"] == "UnauthorizedError"


def test_operator_launches_a_run_that_succeeds(proxy: Proxy) -> None:
    operator = ("otto", PASSWORDS["otto"])
    launch = proxy.gql(LAUNCH, {"params": LAUNCH_PARAMS}, auth=operator).json()
    result = launch["data"]["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    run_id = result["run"]["runId"]
    deadline = time.monotonic() + 90
    status = None
    while time.monotonic() < deadline:
        status = proxy.gql(RUN_STATUS, {"id": run_id}, auth=operator).json()["data"]["runOrError"][
            "status"
        ]
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            break
        time.sleep(1)
    assert status == "SUCCESS"


def test_grafana_is_served_under_its_sub_path_behind_the_login(proxy: Proxy) -> None:
    url = f"{proxy.https}/grafana/api/health"
    assert requests.get(url, verify=str(proxy.ca), timeout=10).status_code == 401
    assert proxy.grafana_seen == []  # refused before reaching Grafana
    response = requests.get(url, auth=("vera", PASSWORDS["vera"]), verify=str(proxy.ca), timeout=10)
    assert response.status_code == 200 and response.json() == {"database": "ok"}
    # The sub-path is kept (GF_SERVER_SERVE_FROM_SUB_PATH), the proxy's credentials are not.
    assert proxy.grafana_seen == [{"path": "/grafana/api/health", "authorization": None}]
    # Other paths still reach Dagster, not Grafana.
    info = requests.get(
        f"{proxy.https}/server_info",
        auth=("vera", PASSWORDS["vera"]),
        verify=str(proxy.ca),
        timeout=10,
    )
    assert "dagster_webserver_version" in info.json()


def test_nginx_starts_without_grafana_and_answers_502_there(proxy: Proxy) -> None:
    """The main compose file alone: the name "grafana" resolves nowhere."""
    https_port = localrun.free_port()
    values = {
        **proxy.nginx_values,
        "CEILGRID_HTTP_LISTEN": f"127.0.0.1:{localrun.free_port()}",
        "CEILGRID_HTTPS_LISTEN": f"127.0.0.1:{https_port}",
        "CEILGRID_GRAFANA_UPSTREAM": "grafana.invalid:3000",
    }
    nginx = localrun.start_nginx(proxy.workdir / "nginx-without-grafana", values)
    base = f"https://localhost:{https_port}"
    viewer = ("vera", PASSWORDS["vera"])
    try:
        localrun.wait_until(
            lambda: requests.get(f"{base}/healthz", verify=str(proxy.ca), timeout=2).ok,
            20,
            "nginx without grafana",
            nginx,
        )
        missing = requests.get(
            f"{base}/grafana/api/health", auth=viewer, verify=str(proxy.ca), timeout=60
        )
        assert missing.status_code == 502
        info = requests.get(f"{base}/server_info", auth=viewer, verify=str(proxy.ca), timeout=10)
        assert "dagster_webserver_version" in info.json()
    finally:
        localrun.stop(nginx)
