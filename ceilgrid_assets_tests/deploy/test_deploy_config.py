"""Static guarantees of the Docker deployment files: no open doors, no committed secrets,
and the compose file, instance config, nginx template and .env.example agree.

Here the compose file is checked as data; test_deploy_stack brings it up whole
with ``docker compose``, and test_deploy_docker (image, code server, run launcher)
and test_deploy_proxy (nginx in front of webservers) exercise its parts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_docker import DockerRunLauncher
from helpers import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "deploy" / "docker"
REQUIRED = re.compile(r"\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}")
ANY_VAR = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)")  # "$${...}" is a literal "${...}"
SECRET_NAMES = ("POSTGRES_PASSWORD", "DAGSTER_POSTGRES_PASSWORD")


@pytest.fixture(scope="module")
def compose_text() -> str:
    """The compose file without its comment lines."""
    lines = (DOCKER / "docker-compose.yml").read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def instance_yaml() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "dagster.yaml").read_text())


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            pairs[name] = value
    return pairs


def test_secrets_are_required_from_the_environment(
    compose: dict[str, Any], compose_text: str
) -> None:
    required = set(REQUIRED.findall(compose_text))
    assert {"POSTGRES_PASSWORD", "CEILGRID_IMAGE", "CEILGRID_SECRETS_DIR"} <= required
    for name in SECRET_NAMES:
        for match in re.finditer(rf"\b{name}: (.+)", compose_text):
            assert REQUIRED.fullmatch(match.group(1).strip()), match.group(0)
    # A secret never has a default ("${VAR:-...}"); optional ones default to empty (off).
    assert not re.search(r"(PASSWORD|ROUTING_KEY|WEBHOOK_URL):-[^}]", compose_text)


def test_env_example_documents_every_variable_without_secret_values(compose_text: str) -> None:
    example = _env_example()
    assert set(ANY_VAR.findall(compose_text)) - {"POSTGRES_IMAGE", "NGINX_IMAGE"} <= example.keys()
    assert example["POSTGRES_PASSWORD"] == ""
    text = (DOCKER / ".env.example").read_text()
    assert "openssl rand" in text and "openssl passwd -apr1" in text


def test_only_nginx_publishes_ports_and_postgres_is_internal(compose: dict[str, Any]) -> None:
    services = compose["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"nginx"}
    # Every host address by default; CEILGRID_BIND_ADDRESS narrows it (the stack test: loopback).
    for port in services["nginx"]["ports"]:
        assert port["host_ip"] == "${CEILGRID_BIND_ADDRESS:-}", port
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "pgdata" in compose["volumes"]


@pytest.fixture(scope="module")
def observability() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "docker-compose.observability.yml").read_text())


LONG_RUNNING = (
    "postgres",
    "backup",
    "retention",
    "code",
    "webserver-operator",
    "webserver-viewer",
    "daemon",
    "nginx",
)


def test_every_long_running_service_has_a_health_check(
    compose: dict[str, Any], observability: dict[str, Any]
) -> None:
    services = compose["services"]
    assert set(LONG_RUNNING) == services.keys()
    for name in set(LONG_RUNNING) - {"code"}:
        assert services[name].get("healthcheck", {}).get("test"), name
    # The collector image has no shell or HTTP client to run a check with.
    for name, service in observability["services"].items():
        if "image" in service and name != "otel-collector":
            assert service.get("healthcheck", {}).get("test"), name
    # The code server's health check is the image's HEALTHCHECK (gRPC health check).
    assert "HEALTHCHECK" in (DOCKER / "Dockerfile").read_text()
    assert services["code"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def _memory_bytes(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg])", text).groups()
    return int(number) * 1024 ** "kmg".index(unit) * 1024


def test_every_long_running_service_has_cpu_and_memory_limits(
    compose: dict[str, Any], observability: dict[str, Any]
) -> None:
    services = dict(compose["services"])
    services.update({name: s for name, s in observability["services"].items() if "image" in s})
    for name, service in services.items():
        limits = service["deploy"]["resources"]["limits"]
        assert 0 < float(limits["cpus"]) <= 2, name
        assert 64 * 2**20 <= _memory_bytes(limits["memory"]) <= 4 * 2**30, name


def test_backups_and_retention_run_daily_with_the_shipped_scripts(
    compose: dict[str, Any], compose_text: str
) -> None:
    services = compose["services"]
    backup, retention = services["backup"], services["retention"]
    # pg_dump from the server's own image: the client is never older than the server.
    assert backup["image"] == services["postgres"]["image"]
    assert "../pg-backup.sh:/usr/local/bin/pg-backup.sh:ro" in backup["volumes"]
    assert backup["command"][:3] == ["pg-backup.sh", "rotate", "/backups"]
    assert "pg-backups:/backups" in backup["volumes"] and "pg-backups" in compose["volumes"]
    assert backup["environment"]["PGHOST"] == "postgres"
    assert (
        backup["entrypoint"]
        == retention["entrypoint"]
        == ["/bin/sh", "-c", compose["x-daily"], "daily"]
    )
    assert "sleep 86400" in compose["x-daily"]
    # A shell as PID 1 ignores SIGTERM; the init process stops the loop at once.
    assert backup["init"] is True and retention["init"] is True
    assert backup["stop_signal"] == "SIGTERM"  # the postgres image's own is SIGINT
    assert retention["command"][:2] == ["python", "/opt/dagster/bin/prune_runs.py"]
    assert {"--days", "--compute-log-days"} <= set(retention["command"])
    assert "ceilgrid-data:/var/lib/ceilgrid" in retention["volumes"]
    assert retention["environment"]["CEILGRID_COMPUTE_LOGS"].startswith("/var/lib/ceilgrid/")
    assert (
        "COPY deploy/docker/prune_runs.py /opt/dagster/bin/prune_runs.py"
        in (DOCKER / "Dockerfile").read_text()
    )
    for service in (backup, retention):
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert "ports" not in service


def test_viewer_webserver_is_read_only_and_operator_is_not(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "--read-only" in services["webserver-viewer"]["command"]
    assert "--read-only" not in services["webserver-operator"]["command"]
    # Only the processes that start or stop run containers get the Docker socket.
    with_socket = {
        name
        for name, service in services.items()
        if any("docker.sock" in str(v) for v in service.get("volumes", []))
    }
    assert with_socket == {"webserver-operator", "daemon"}


def test_dagster_services_run_hardened(compose: dict[str, Any]) -> None:
    for name in ("code", "webserver-operator", "webserver-viewer", "daemon", "retention"):
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)
    assert dockerfile.index("ARG BASE_IMAGE") < dockerfile.index("FROM ${BASE_IMAGE}")


def test_instance_config_is_valid_for_dagster(
    instance_yaml: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    launcher = instance_yaml["run_launcher"]["config"]
    monkeypatch.setenv("CEILGRID_IMAGE", "registry.example.com/ceilgrid:0.1.0")
    monkeypatch.setenv("CEILGRID_DOCKER_NETWORK", "ceilgrid")
    result = process_config(DockerRunLauncher.config_type(), launcher)
    assert result.success, [error.message for error in result.errors]
    assert result.value["image"] == "registry.example.com/ceilgrid:0.1.0"
    assert instance_yaml["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance_yaml["concurrency"]["runs"]["max_concurrent_runs"] > 0
    assert instance_yaml["concurrency"]["pools"] == {"granularity": "run", "default_limit": 2}
    assert instance_yaml["run_monitoring"]["enabled"] and instance_yaml["run_retries"]["enabled"]
    assert instance_yaml["retention"]["sensor"]["purge_after_days"]["skipped"] > 0


def test_instance_config_matches_the_compose_stack(
    instance_yaml: dict[str, Any], compose: dict[str, Any]
) -> None:
    launcher = instance_yaml["run_launcher"]["config"]
    dagster_env = compose["x-dagster-env"]
    # Run containers receive every variable the instance config and the code read.
    used = set(re.findall(r"env: ([A-Z_]+)", (DOCKER / "dagster.yaml").read_text()))
    passed = set(launcher["env_vars"]) | {"CEILGRID_IMAGE", "CEILGRID_DOCKER_NETWORK"}
    assert used <= passed
    assert set(launcher["env_vars"]) <= dagster_env.keys()
    network = "${CEILGRID_NETWORK:-ceilgrid}"
    assert dagster_env["CEILGRID_DOCKER_NETWORK"] == compose["networks"]["ceilgrid"]["name"]
    assert compose["networks"]["ceilgrid"]["name"] == network
    # Run containers mount the data volume by its configured name: the code server's
    # container context replaces dagster.yaml's default (the same volume, same mount).
    ((volume, mount),) = launcher["container_kwargs"]["volumes"].items()
    configured = "${CEILGRID_DATA_VOLUME:-" + volume + "}"
    assert compose["volumes"][volume]["name"] == configured
    context = json.loads(compose["services"]["code"]["environment"]["DAGSTER_CONTAINER_CONTEXT"])
    assert context == {"docker": {"container_kwargs": {"volumes": {configured: mount}}}}
    for name in ("code", "webserver-operator", "webserver-viewer", "daemon", "retention"):
        assert f"{volume}:{mount['bind']}" in compose["services"][name]["volumes"], name


def test_nginx_template_gets_every_value_from_compose(compose: dict[str, Any]) -> None:
    template = (DOCKER / "nginx" / "ceilgrid.conf.template").read_text()
    wanted = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", template))
    assert wanted <= compose["services"]["nginx"]["environment"].keys()


def test_no_secrets_are_tracked() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "deploy", ".env*"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for path in tracked:
        name = Path(path).name
        assert name not in {".env", "users.htpasswd", "operators.map"}, path
        assert not name.endswith((".key", ".crt", ".pem", ".dump")), path
    ignored = subprocess.run(
        ["git", "check-ignore", "deploy/docker/.env", "deploy/docker/build-ca/ca-bundle.crt"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert len(ignored.stdout.split()) == 2


def test_image_dependencies_are_locked_with_hashes() -> None:
    lock = (DOCKER / "requirements.lock").read_text()
    requirements = [line for line in lock.splitlines() if line and line[0].isalnum()]
    assert requirements and all("==" in line for line in requirements)
    assert lock.count("--hash=sha256:") >= len(requirements)
    assert "dagster==1.13.27" in lock and "dagster-docker==0.29.27" in lock


def test_the_ci_image_is_built_on_a_base_image_pinned_by_digest(tmp_path: Path) -> None:
    """The image job resolves the base tag to its digest before the build and builds
    and labels from that digest, never from the moving tag (the job itself runs on
    GitHub only; its shell step is checked here)."""
    workflow = yaml.safe_load((PROJECT_ROOT / ".github/workflows/ci.yml").read_text())
    steps = workflow["jobs"]["image"]["steps"]
    names = [step.get("name", "") for step in steps]
    resolve = steps[names.index("Resolve the base image's digest")]
    build = steps[names.index("Build and push ghcr.io/<repo>:<sha>")]
    assert names.index("Resolve the base image's digest") < names.index(
        "Build and push ghcr.io/<repo>:<sha>"
    )
    assert "imagetools inspect" in resolve["run"]
    assert "BASE_IMAGE=$BASE_TAG@$digest" in resolve["run"] and "sha256:*" in resolve["run"]
    assert build["with"]["build-args"].strip() == "BASE_IMAGE=${{ env.BASE_IMAGE }}"
    assert "org.opencontainers.image.base.name=${{ env.BASE_IMAGE }}" in build["with"]["labels"]
    lookup = (
        """docker buildx imagetools inspect "$BASE_TAG" --format '{{json .Manifest}}'"""
        " | jq -r .digest"
    )
    assert lookup in resolve["run"]

    def run_step(digest: str) -> tuple[subprocess.CompletedProcess[str], str]:
        """The step's shell, the registry lookup replaced by its answer."""
        env_file = tmp_path / "github_env"
        env_file.write_text("")
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", resolve["run"].replace(lookup, f"echo {digest}")],
            env={**os.environ, **resolve["env"], "GITHUB_ENV": str(env_file)},
            capture_output=True,
            text=True,
            check=False,
        ), env_file.read_text()

    done, written = run_step("sha256:abc")
    assert done.returncode == 0, done.stderr
    assert written == "BASE_IMAGE=python:3.11-slim-bookworm@sha256:abc\n"
    done, written = run_step("null")  # no manifest: the job stops instead of using the tag
    assert done.returncode == 1 and written == ""
    assert "no digest for python:3.11-slim-bookworm" in done.stderr
