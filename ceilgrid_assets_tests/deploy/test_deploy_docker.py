"""A real layout run through DockerRunLauncher on a real Docker engine.

The image is built from ``deploy/docker/Dockerfile`` on a locally made Debian base
(``deploy/docker/engine.py``), the code location runs from it in a container
(read-only root filesystem, as in the compose file), and the instance is the
deployment's ``dagster.yaml`` against a real Postgres. Two adaptations for a
single test machine: runs are launched directly (DefaultRunCoordinator, no
daemon), and containers use the host network because this engine runs without a
bridge. The run must succeed in its own container and write a compliant layout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from helpers import PROJECT_ROOT, load_module

from ceilgrid_assets.dev.postgres import PostgresServer, create_database

DEPLOY = PROJECT_ROOT / "deploy" / "docker"
IMAGE_TAG = "ceilgrid:test"
IMAGE_USER = 10001
BUILDING = PROJECT_ROOT / "ceilgrid_assets" / "examples" / "office-floor.json"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


engine = load_module("ceilgrid_deploy_engine", DEPLOY / "engine.py")
localrun = load_module("ceilgrid_deploy_localrun", DEPLOY / "localrun.py")


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The code location image, built on a reachable (or freshly started) engine."""
    try:
        running = engine.ensure_engine()
    except engine.EngineUnavailable as exc:
        pytest.skip(f"no Docker engine can be started here: {exc}")
    try:
        try:
            engine.ensure_base_image()
        except engine.EngineUnavailable as exc:
            pytest.skip(f"cannot build the base image: {exc}")
        started = time.monotonic()
        engine.build_image(IMAGE_TAG)
        print(f"image {IMAGE_TAG} ready in {time.monotonic() - started:.1f} s")
        yield IMAGE_TAG
    finally:
        running.stop()


@pytest.fixture(scope="module")
def postgres_env(postgres_server: PostgresServer) -> dict[str, str]:
    """The suite's Postgres with a database of its own, as dagster.yaml reads it."""
    create_database(postgres_server, "deploy_docker")
    return {**postgres_server.env(), "DAGSTER_POSTGRES_DB": "deploy_docker"}


@dataclass
class Deployment:
    instance: DagsterInstance
    data: Path
    code_port: int
    env: dict[str, str]


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def _instance_config(data: Path) -> dict:
    """deploy/docker/dagster.yaml with the two single-machine adaptations."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    config["run_coordinator"] = {
        "module": "dagster._core.run_coordinator",
        "class": "DefaultRunCoordinator",
    }
    config["run_launcher"]["config"]["container_kwargs"]["volumes"] = {
        str(data): {"bind": str(data), "mode": "rw"}
    }
    return config


@pytest.fixture(scope="module")
def deployment(image: str, postgres_env: dict[str, str]) -> Iterator[Deployment]:
    data = Path(tempfile.mkdtemp(prefix="ceilgrid-docker-"))
    home = data / "dagster_home"
    env = {
        **postgres_env,
        "DAGSTER_HOME": str(home),
        "CEILGRID_IMAGE": image,
        "CEILGRID_DOCKER_NETWORK": "host",
        "CEILGRID_DAGSTER_STORAGE": str(data / "dagster-storage"),
        "CEILGRID_COMPUTE_LOGS": str(data / "compute-logs"),
        "CEILGRID_STORAGE_ROOT": str(data / "storage"),
        "CEILGRID_HOME": str(data),
        # Passed through to run containers; empty (telemetry and alerts off) as compose does.
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "CEILGRID_UI_URL": "",
        "CEILGRID_ALERT_WEBHOOK_URL": "",
    }
    for sub in ("dagster_home", "dagster-storage", "compute-logs", "storage/incoming"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(_instance_config(data)))
    code_name = f"ceilgrid-test-code-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        instance = DagsterInstance.get()
        # Containers run as the image's unprivileged user; the volume must be theirs.
        subprocess.run(["chown", "-R", f"{IMAGE_USER}:{IMAGE_USER}", str(data)], check=True)
        port = localrun.free_port()
        env_args = [arg for key in env if key != "DAGSTER_HOME" for arg in ("-e", key)]
        started = _docker(
            "run",
            "-d",
            "--name",
            code_name,
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "-v",
            f"{data}:{data}",
            "-e",
            f"DAGSTER_CURRENT_IMAGE={image}",
            *env_args,
            image,
            "dagster",
            "code-server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--module-name",
            "ceilgrid_assets.definitions",
            "--location-name",
            "ceilgrid",
        )
        assert started.returncode == 0, started.stderr
        try:
            localrun.wait_until(
                lambda: (
                    _docker(
                        "exec",
                        code_name,
                        "dagster",
                        "api",
                        "grpc-health-check",
                        "--port",
                        str(port),
                    ).returncode
                    == 0
                ),
                180,
                "code server container",
            )
            yield Deployment(instance=instance, data=data, code_port=port, env=env)
        finally:
            logs = _docker("logs", "--tail", "40", code_name)
            print(logs.stdout[-4000:], logs.stderr[-4000:])
            _docker("rm", "-f", code_name)
            instance.dispose()
            shutil.rmtree(data, ignore_errors=True)


def _run_containers(run_id: str) -> list[str]:
    listed = _docker("ps", "-aq", "--filter", f"label=dagster/run_id={run_id}")
    return listed.stdout.split()


def test_layout_run_succeeds_in_its_own_container(deployment: Deployment, image: str) -> None:
    instance = deployment.instance
    key = "docker-office-floor"
    incoming = deployment.data / "storage" / "incoming" / f"{key}.json"
    shutil.copy(BUILDING, incoming)
    os.chown(incoming, IMAGE_USER, IMAGE_USER)
    instance.add_dynamic_partitions("buildings", [key])

    run_id = str(uuid.uuid4())
    launched = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "job",
            "launch",
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(deployment.code_port),
            "--job",
            "layout_building_job",
            "--run-id",
            run_id,
            "--tags",
            json.dumps({"dagster/partition": key}),
        ],
        env={**os.environ, **deployment.env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    try:
        deadline = time.monotonic() + 300
        run = instance.get_run_by_id(run_id)
        while time.monotonic() < deadline:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.is_finished:
                break
            time.sleep(2)
        assert run is not None
        if run.status != DagsterRunStatus.SUCCESS:
            errors = [
                e.message
                for e in instance.all_logs(run_id)
                if e.message and ("error" in e.message.lower() or "fail" in e.message.lower())
            ]
            pytest.fail(f"run {run.status}: {errors[-5:]}")

        container_id = run.tags.get("docker/container_id")
        assert container_id, run.tags
        inspected = json.loads(_docker("inspect", container_id).stdout)[0]
        assert inspected["Config"]["Image"] == image
        assert inspected["Config"]["User"] == f"{IMAGE_USER}:{IMAGE_USER}"
        assert inspected["State"]["ExitCode"] == 0
        assert inspected["HostConfig"]["Memory"] == 4 * 1024**3

        layout = json.loads(
            (deployment.data / "storage" / "buildings" / key / "layout.json").read_text()
        )
        assert layout["rooms"], layout
        for room in layout["rooms"]:
            assert room["compliance"]["compliant"], (room["grid_id"], room["compliance"])

        event = instance.get_latest_materialization_event(AssetKey("completed_layout"))
        assert event is not None and event.run_id == run_id
        assert event.dagster_event.partition == key
    finally:
        for container in _run_containers(run_id):
            _docker("rm", "-f", container)


WORKSPACE_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name
    locationOrLoadError { __typename ... on RepositoryLocation { repositories { jobs { name } } } }
} } } }
"""


def test_read_only_webserver_container_serves_the_code_location(
    deployment: Deployment, image: str
) -> None:
    """The compose file's webserver: image's instance config, read-only root fs, gRPC workspace."""
    workspace = deployment.data / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "grpc_server": {
                            "host": "127.0.0.1",
                            "port": deployment.code_port,
                            "location_name": "ceilgrid",
                        }
                    }
                ]
            }
        )
    )
    os.chown(workspace, IMAGE_USER, IMAGE_USER)
    port = localrun.free_port()
    name = f"ceilgrid-test-web-{uuid.uuid4().hex[:8]}"
    env_args = [arg for key in deployment.env if key != "DAGSTER_HOME" for arg in ("-e", key)]
    started = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges:true",
            "-v",
            f"{deployment.data}:{deployment.data}",
            *env_args,
            image,
            "dagster-webserver",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--read-only",
            "--workspace",
            str(workspace),
        ],
        env={**os.environ, **deployment.env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        localrun.wait_until(
            lambda: requests.get(f"http://127.0.0.1:{port}/server_info", timeout=3).ok,
            120,
            "webserver container",
        )
        reply = requests.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": WORKSPACE_QUERY}, timeout=60
        ).json()
        (entry,) = reply["data"]["workspaceOrError"]["locationEntries"]
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        jobs = {job["name"] for repo in location["repositories"] for job in repo["jobs"]}
        assert "layout_building_job" in jobs
    finally:
        logs = _docker("logs", "--tail", "30", name)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        _docker("rm", "-f", name)
