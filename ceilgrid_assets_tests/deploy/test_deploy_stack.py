"""The whole Docker-host stack, as shipped, driven from outside (``make stack-test``).

``deploy/docker/docker-compose.yml`` is brought up unchanged by ``docker compose``
on a real Docker engine, under a project name, network and data volume unique to
this run, with an ``.env`` filled in as deploy/README.md's first install says
(``openssl rand -hex 32`` for the database password, the docker group's id) and
users and a certificate made by ``deploy/docker/secrets.sh``. Every image is built
here: the ceilgrid image from the Dockerfile on a debootstrap base, and Postgres
and nginx from Debian's packages on the same base (``deploy/docker/images/``,
selected with POSTGRES_IMAGE and NGINX_IMAGE; no registry is reachable). nginx is
published on 127.0.0.1 only (CEILGRID_BIND_ADDRESS).

Then only the published port is used, as operators and viewers would: ``/healthz``,
the HTTP redirect, an operator's ``ceilgrid submit`` over TLS on both paths (its
own run, and the inbox sensor's batch) whose runs the daemon hands to
``DockerRunLauncher``, each in a container of its own; the layout comes back
through GraphQL and passes ``ceilgrid validate``; a viewer's launch is refused.
The last test takes the stack down with ``docker compose down -v`` and checks that
no container, volume or network of it is left; the module's teardown does the same
when a test failed first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from helpers import PROJECT_ROOT, example_building, load_module

from ceilgrid_assets.contract import CODE_LOCATION, LAYOUT_JOB, REPOSITORY

DEPLOY = PROJECT_ROOT / "deploy" / "docker"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
CEILGRID = str(Path(sys.executable).with_name("ceilgrid"))
IMAGE_USER = "10001:10001"
# Services with a health check that answers within the test (backup and retention
# check every 5 minutes: their checks are run by hand below).
QUICK_HEALTH = ("postgres", "code", "webserver-operator", "webserver-viewer", "daemon", "nginx")

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.stack]

engine = load_module("ceilgrid_deploy_engine", DEPLOY / "engine.py")
localrun = load_module("ceilgrid_deploy_localrun", DEPLOY / "localrun.py")


def _run(
    args: list[str], timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return _run(["docker", *args], timeout=timeout)


@dataclass
class Images:
    ceilgrid: str
    postgres: str
    nginx: str


@pytest.fixture(scope="module")
def images() -> Iterator[Images]:
    """All three images, built locally; the ceilgrid tag is this run's own."""
    if shutil.which("docker") is None or _run(["docker", "compose", "version"]).returncode:
        pytest.skip("docker compose not installed (scripts/install-system-deps.sh)")
    try:
        running = engine.ensure_engine()
    except engine.EngineUnavailable as exc:
        pytest.skip(f"no Docker engine can be started here: {exc}")
    tag = f"ceilgrid:stack-{uuid.uuid4().hex[:10]}"
    try:
        try:
            base = engine.ensure_base_image()
        except engine.EngineUnavailable as exc:
            pytest.skip(f"cannot build the base image: {exc}")
        started = time.monotonic()
        built = Images(
            ceilgrid=engine.build_image(tag, base),
            postgres=engine.build_service_image("postgres", base=base),
            nginx=engine.build_service_image("nginx", base=base),
        )
        print(f"images ready in {time.monotonic() - started:.1f} s")
        yield built
    finally:
        # Only this run's tag: the image stays if another tag (ceilgrid:test) shares it.
        _docker("rmi", tag)
        running.stop()


def _env_file(values: dict[str, str]) -> str:
    """deploy/docker/.env.example with every value filled in (unknown names refused)."""
    lines, seen = [], set()
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0] if line and not line.startswith("#") else None
        if name in values:
            line = f"{name}={values[name]}"
            seen.add(name)
        lines.append(line)
    extra = {name: value for name, value in values.items() if name not in seen}
    # The image variables are not in .env.example (they default to the official images).
    assert set(extra) <= {"POSTGRES_IMAGE", "NGINX_IMAGE"}, extra
    lines += [f"{name}={value}" for name, value in extra.items()]
    return "\n".join(lines) + "\n"


def _docker_gid() -> str:
    """As .env.example says: getent group docker | cut -d: -f3."""
    entry = _run(["getent", "group", "docker"]).stdout.strip()
    return entry.split(":")[2] if entry else str(os.stat("/var/run/docker.sock").st_gid)


@dataclass
class Stack:
    project: str
    env_file: Path
    network: str
    volume: str
    image: str
    http_port: int
    https_port: int
    ca: Path
    passwords: dict[str, str] = field(repr=False)
    root: Path = field(repr=False)
    down_done: bool = field(default=False)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run(
            [
                "docker",
                "compose",
                "--project-name",
                self.project,
                "--file",
                str(COMPOSE_FILE),
                "--env-file",
                str(self.env_file),
                *args,
            ],
            timeout=timeout,
            env=_compose_environment(),
        )

    def run_containers(self) -> list[str]:
        """Containers the run launcher started for this stack (they mount its volume)."""
        listed = _docker(
            "ps", "-aq", "--filter", "label=dagster/run_id", "--filter", f"volume={self.volume}"
        )
        return listed.stdout.split()

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        return {
            "containers": _docker("ps", "-aq", "--filter", label).stdout.split()
            + self.run_containers(),
            "volumes": _docker("volume", "ls", "-q", "--filter", label).stdout.split()
            + [v for v in _docker("volume", "ls", "-q").stdout.split() if v == self.volume],
            "networks": [
                n
                for n in _docker("network", "ls", "--format", "{{.Name}}").stdout.split()
                if n == self.network or n.startswith(f"{self.project}_")
            ],
        }

    def down(self) -> subprocess.CompletedProcess[str]:
        """Run containers first (compose does not know them; they hold the volume), then down -v."""
        for container in self.run_containers():
            _docker("rm", "-f", container)
        done = self.compose("down", "--volumes", "--timeout", "20", timeout=300)
        self.down_done = True
        return done


def _compose_environment() -> dict[str, str]:
    """The caller's environment without the stack's variables: the .env file decides."""
    names = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (DEPLOY / ".env.example").read_text(), re.M))
    names |= {"POSTGRES_IMAGE", "NGINX_IMAGE", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"}
    return {key: value for key, value in os.environ.items() if key not in names}


def _make_secrets(directory: Path) -> dict[str, str]:
    """deploy/README.md's first install, steps 2 and 3: a trial certificate and two users."""
    script = str(DEPLOY / "secrets.sh")
    subprocess.run([script, "tls", str(directory), "localhost"], check=True)
    passwords = {}
    for user, role in (("olga", "operator"), ("victor", "viewer")):
        environment = {k: v for k, v in os.environ.items() if k != "CEILGRID_NEW_PASSWORD"}
        made = subprocess.run(
            [script, "user", str(directory), user, role],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        passwords[user] = made.stdout.strip()  # printed once, as it is handed over
        assert passwords[user], made.stderr
    return passwords


@pytest.fixture(scope="module")
def stack(images: Images) -> Iterator[Stack]:
    suffix = uuid.uuid4().hex[:10]
    root = Path(tempfile.mkdtemp(prefix="ceilgrid-stack-"))  # mode 0700, as /etc/ceilgrid
    try:
        yield from _stack(images, root, suffix)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stack(images: Images, root: Path, suffix: str) -> Iterator[Stack]:
    secrets_dir = root / "secrets"
    passwords = _make_secrets(secrets_dir)
    http_port, https_port = localrun.free_port(), localrun.free_port()
    stack = Stack(
        project=f"ceilgrid-stack-{suffix}",
        env_file=root / ".env",
        network=f"ceilgrid-stack-{suffix}",
        volume=f"ceilgrid-stack-{suffix}-data",
        image=images.ceilgrid,
        http_port=http_port,
        https_port=https_port,
        ca=secrets_dir / "tls" / "tls.crt",
        passwords=passwords,
        root=root,
    )
    password = _run(["openssl", "rand", "-hex", "32"]).stdout.strip()
    assert len(password) == 64
    stack.env_file.write_text(
        _env_file(
            {
                "CEILGRID_IMAGE": images.ceilgrid,
                "POSTGRES_PASSWORD": password,
                "DOCKER_GID": _docker_gid(),
                "CEILGRID_SERVER_NAME": "localhost",
                "CEILGRID_HTTP_PORT": str(http_port),
                "CEILGRID_HTTPS_PORT": str(https_port),
                "CEILGRID_BIND_ADDRESS": "127.0.0.1",
                "CEILGRID_SECRETS_DIR": str(secrets_dir),
                "CEILGRID_NETWORK": stack.network,
                "CEILGRID_DATA_VOLUME": stack.volume,
                "POSTGRES_IMAGE": images.postgres,
                "NGINX_IMAGE": images.nginx,
            }
        )
    )
    stack.env_file.chmod(0o600)
    started = time.monotonic()
    try:
        # As the first install's step 5. compose waits for each health dependency
        # (postgres, then code, then both webservers) before it starts the next service.
        up = stack.compose("up", "--detach", timeout=600)
        assert up.returncode == 0, up.stderr[-4000:]
        localrun.wait_until(
            lambda: requests.get(f"{stack.url}/healthz", verify=str(stack.ca), timeout=3).ok,
            120,
            "nginx /healthz",
        )
        print(f"stack up in {time.monotonic() - started:.1f} s")
        yield stack
    finally:
        # Also after a failure or an interrupt (Ctrl-C) anywhere above or in a test.
        if not stack.down_done:
            logs = stack.compose("logs", "--no-color", "--tail", "40", timeout=60)
            print(logs.stdout[-12000:], logs.stderr[-2000:])
        stack.down()


def test_compose_refuses_to_start_while_a_secret_is_missing(tmp_path: Path) -> None:
    """First install, step 5: an .env without the database password is refused."""
    if shutil.which("docker") is None or _run(["docker", "compose", "version"]).returncode:
        pytest.skip("docker compose not installed (scripts/install-system-deps.sh)")
    env_file = tmp_path / ".env"
    env_file.write_text(
        _env_file(
            {
                "CEILGRID_IMAGE": "ceilgrid:unused",
                "DOCKER_GID": _docker_gid(),
                "CEILGRID_SERVER_NAME": "localhost",
                "CEILGRID_SECRETS_DIR": str(tmp_path / "secrets"),
            }
        )
    )
    refused = _run(
        [
            "docker",
            "compose",
            "--project-name",
            f"ceilgrid-stack-{uuid.uuid4().hex[:10]}",
            "--file",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            "up",
            "--detach",
        ],
        env=_compose_environment(),
    )
    assert refused.returncode != 0
    assert "set POSTGRES_PASSWORD (openssl rand -hex 32)" in refused.stderr, refused.stderr


def _ps(stack: Stack) -> list[dict[str, Any]]:
    listed = stack.compose("ps", "--all", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    text = listed.stdout.strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_service_runs_and_only_nginx_is_published_on_loopback(stack: Stack) -> None:
    services = {entry["Service"]: entry for entry in _ps(stack)}
    assert set(services) == set(yaml.safe_load(COMPOSE_FILE.read_text())["services"])
    for name, entry in services.items():
        assert entry["State"] == "running", (name, entry["State"], entry.get("Status"))
        published = [p for p in entry.get("Publishers") or [] if p.get("PublishedPort")]
        if name == "nginx":
            assert {(p["URL"], p["PublishedPort"], p["TargetPort"]) for p in published} == {
                ("127.0.0.1", stack.http_port, 8080),
                ("127.0.0.1", stack.https_port, 8443),
            }
        else:
            assert not published, (name, published)
    deadline = time.monotonic() + 120
    while True:
        health = {
            name: _docker(
                "inspect", "--format", "{{.State.Health.Status}}", services[name]["ID"]
            ).stdout.strip()
            for name in QUICK_HEALTH
        }
        if set(health.values()) == {"healthy"} or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert set(health.values()) == {"healthy"}, health


def test_health_endpoint_redirect_and_login(stack: Stack) -> None:
    healthz = requests.get(f"{stack.url}/healthz", verify=str(stack.ca), timeout=10)
    assert healthz.status_code == 200 and healthz.text == "ok\n"
    assert healthz.headers["Strict-Transport-Security"].startswith("max-age=")
    redirect = requests.get(
        f"http://localhost:{stack.http_port}/runs", allow_redirects=False, timeout=10
    )
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == f"https://localhost:{stack.https_port}/runs"
    anonymous = requests.get(f"{stack.url}/server_info", verify=str(stack.ca), timeout=10)
    assert anonymous.status_code == 401
    wrong = requests.get(
        f"{stack.url}/server_info", verify=str(stack.ca), auth=("olga", "wrong"), timeout=10
    )
    assert wrong.status_code == 401
    viewer = requests.get(
        f"{stack.url}/server_info",
        verify=str(stack.ca),
        auth=("victor", stack.passwords["victor"]),
        timeout=10,
    )
    assert viewer.ok and "dagster_webserver_version" in viewer.json()


def _submit(
    stack: Stack, user: str, path: Path, *extra: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``ceilgrid submit`` from outside: the published port, the user's credentials, the CA."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CEILGRID_USER", "CEILGRID_PASSWORD")
    }
    environment |= {
        "CEILGRID_USER": user,
        "CEILGRID_PASSWORD": stack.passwords[user],
        "REQUESTS_CA_BUNDLE": str(stack.ca),
    }
    return _run(
        [CEILGRID, "submit", str(path), "--url", stack.url, *extra],
        timeout=timeout,
        env=environment,
    )


def _check_run_container(stack: Stack, run_id: str) -> None:
    listed = _docker("ps", "-aq", "--filter", f"label=dagster/run_id={run_id}").stdout.split()
    assert len(listed) == 1, (run_id, listed)
    # The layout is reported before the run's last step (the report) ends.
    deadline = time.monotonic() + 240
    while True:
        inspected = json.loads(_docker("inspect", listed[0]).stdout)[0]
        if inspected["State"]["Status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert inspected["Config"]["Image"] == stack.image
    assert inspected["Config"]["User"] == IMAGE_USER
    assert inspected["Config"]["Labels"]["dagster/job_name"] == LAYOUT_JOB
    assert "com.docker.compose.project" not in inspected["Config"]["Labels"]
    assert set(inspected["NetworkSettings"]["Networks"]) == {stack.network}
    mounts = {m.get("Name"): m["Destination"] for m in inspected["Mounts"]}
    assert mounts == {stack.volume: "/var/lib/ceilgrid"}
    assert inspected["HostConfig"]["Memory"] == 4 * 1024**3
    assert inspected["State"]["Status"] == "exited" and inspected["State"]["ExitCode"] == 0


def _validate(layout: Path) -> None:
    checked = _run([CEILGRID, "validate", str(layout)])
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]


def test_operator_launches_a_run_that_gets_its_own_container(stack: Stack) -> None:
    path, building_id = example_building(stack.root, "stack-run", "office-floor.json")
    layout = stack.root / f"{building_id}-layout.json"
    done = _submit(stack, "olga", path, "--run", "--wait", "-o", str(layout), "--timeout", "420")
    assert done.returncode == 0, done.stderr[-3000:]
    assert stack.passwords["olga"] not in done.stdout + done.stderr
    (run_id,) = re.findall(r"launched run ([0-9a-f-]{36})", done.stderr)
    _check_run_container(stack, run_id)
    assert [(r["runId"], r["status"]) for r in _runs_for(stack, building_id)] == [
        (run_id, "SUCCESS")
    ]
    _validate(layout)
    rooms = json.loads(layout.read_text())["rooms"]
    assert rooms and all(room["compliance"]["compliant"] for room in rooms)
    # The layout the API returned is the file on the shared volume, byte for byte.
    code = next(entry["ID"] for entry in _ps(stack) if entry["Service"] == "code")
    stored = _docker(
        "exec", code, "cat", f"/var/lib/ceilgrid/data/buildings/{building_id}/layout.json"
    )
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.encode() == layout.read_bytes()


RUNS_QUERY = """
query Runs($key: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $key}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""


def _runs_for(stack: Stack, building_id: str) -> list[dict[str, Any]]:
    """The building's runs, asked of the operator's webserver through nginx."""
    answer = _graphql(stack, "olga", RUNS_QUERY, {"key": building_id})
    return answer["data"]["runsOrError"]["results"]


def _graphql(stack: Stack, user: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """One GraphQL request through nginx as ``user`` (the answer must be HTTP 200)."""
    answer = requests.post(
        f"{stack.url}/graphql",
        json={"query": query, "variables": variables},
        auth=(user, stack.passwords[user]),
        verify=str(stack.ca),
        timeout=30,
    )
    assert answer.ok, answer.text[:500]
    return answer.json()


def test_operator_submission_is_laid_out_by_the_inbox_sensor_in_a_run_container(
    stack: Stack,
) -> None:
    """The batch path of deploy/README.md's first install, step 6: the sensor's batch run."""
    path, building_id = example_building(stack.root, "stack-inbox", "office-floor.json")
    layout = stack.root / f"{building_id}-layout.json"
    done = _submit(stack, "olga", path, "--batch", "--wait", "-o", str(layout), "--timeout", "420")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"submitted building {building_id}" in done.stderr
    _validate(layout)
    (run,) = _runs_for(stack, building_id)
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert tags.get("ceilgrid/source") == "intake", tags
    _check_run_container(stack, run["runId"])
    assert [r["status"] for r in _runs_for(stack, building_id)] == ["SUCCESS"]


LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on UnauthorizedError { message }
    ... on LaunchRunSuccess { run { runId } }
  }
}"""


def test_viewer_is_refused_a_launch(stack: Stack) -> None:
    params = {
        "selector": {
            "repositoryLocationName": CODE_LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": LAYOUT_JOB,
        },
        "runConfigData": {},
    }
    answer = _graphql(stack, "victor", LAUNCH_RUN, {"params": params})
    assert answer["data"]["launchRun"]["__typename"] == "UnauthorizedError"
    path, _ = example_building(stack.root, "stack-viewer", "office-floor.json")
    refused = _submit(stack, "victor", path, "--run", timeout=120)
    assert refused.returncode == 3, refused.stderr
    assert "Unauthorized" in refused.stderr or "Authorization failed" in refused.stderr


def test_backup_and_retention_first_passes(stack: Stack) -> None:
    """Both daily services ran their first pass at start; their health checks pass now."""
    config = json.loads(stack.compose("config", "--format", "json").stdout)
    for name in ("backup", "retention"):
        check = config["services"][name]["healthcheck"]["test"]
        assert check[0] == "CMD-SHELL", check
        deadline = time.monotonic() + 120
        while True:
            passed = stack.compose("exec", "-T", name, "sh", "-c", check[1], timeout=60)
            if passed.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert passed.returncode == 0, (name, passed.stdout, passed.stderr)
    newest = stack.compose("exec", "-T", "backup", "pg-backup.sh", "newest", "/backups")
    assert re.fullmatch(r"/backups/dagster-\d{8}T\d{6}Z\.dump", newest.stdout.strip()), newest


def test_down_leaves_nothing(stack: Stack) -> None:
    """Last: ``docker compose down -v`` leaves nothing of the stack.

    The run containers above are not compose's and hold the data volume even when
    exited (``auto_remove: false``), so they are removed first, as deploy/README.md says.
    Every service stops on its stop signal: none is killed when the timeout runs out.
    """
    stopped = stack.compose("stop", "--timeout", "30")
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    exit_codes = {entry["Service"]: entry["ExitCode"] for entry in _ps(stack)}
    assert len(exit_codes) == 8 and 137 not in exit_codes.values(), exit_codes
    done = stack.down()
    assert done.returncode == 0, done.stderr[-3000:]
    assert stack.leftovers() == {"containers": [], "volumes": [], "networks": []}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.url}/healthz", verify=str(stack.ca), timeout=5)
