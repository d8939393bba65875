"""Offline checks of the Kubernetes deployment under ``deploy/k8s``.

No Kubernetes API server can run on CI machines, so nothing here is applied to a
cluster. Real parts: Dagster's config schema for K8sRunLauncher and
QueuedRunCoordinator, a constructed K8sRunLauncher, the Job objects built by
``dagster_k8s.construct_dagster_k8s_job`` (the code path the launcher and
``k8s_job_executor`` use), and strict schema validation with kubernetes-validate.
The one stand-in: the launcher is given a kubeconfig for an API server that does not
exist and is never contacted. See ``deploy/k8s/offline.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterRun
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.instance.config import validate_concurrency_config
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._grpc.types import ExecuteRunArgs
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job
from helpers import PROJECT_ROOT, load_module

IMAGE = "registry.example.com/ceilgrid:0.1.0"


offline = load_module("ceilgrid_deploy_k8s_offline", PROJECT_ROOT / "deploy" / "k8s" / "offline.py")


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return offline.load_values()


@pytest.fixture(scope="module")
def launcher(
    values: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> K8sRunLauncher:
    """The chart's launcher config through Dagster's schema, then a real K8sRunLauncher."""
    config = offline.run_launcher_config(values)
    result = process_config(K8sRunLauncher.config_type(), config)
    assert result.success, [error.message for error in result.errors]
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "offline",
                "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "offline", "user": {"token": "unused"}}],
                "contexts": [
                    {"name": "offline", "context": {"cluster": "offline", "user": "offline"}}
                ],
            }
        )
    )
    processed = {**result.value, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    return K8sRunLauncher.from_config_value(None, processed)


def _run(values: dict[str, Any], job_name: str, tags: dict[str, str]) -> DagsterRun:
    origin = JobPythonOrigin(
        job_name,
        RepositoryPythonOrigin(
            executable_path="/opt/venv/bin/python",
            code_pointer=ModuleCodePointer("ceilgrid_assets.definitions", "defs", None),
            container_image=IMAGE,
            container_context=offline.code_location_container_context(values),
        ),
    )
    return DagsterRun(
        job_name=job_name,
        run_id="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        tags=tags,
        job_code_origin=origin,
    )


def _run_job(
    launcher: K8sRunLauncher,
    run: DagsterRun,
    component: str = "run_worker",
) -> dict[str, Any]:
    """The Job that K8sRunLauncher.launch_run would submit (its own construction path)."""
    context = launcher.get_container_context_for_run(run)
    job_config = context.get_k8s_job_config(job_image=IMAGE, run_launcher=launcher)
    args = ExecuteRunArgs(
        job_origin=run.job_code_origin, run_id=run.run_id, instance_ref=None
    ).get_command_args()
    job = construct_dagster_k8s_job(
        job_config=job_config,
        args=args,
        job_name=f"dagster-run-{run.run_id[:8]}",
        user_defined_k8s_config=context.run_k8s_config,
        component=component,
        labels={"dagster/job": run.job_name, "dagster/run-id": run.run_id},
    )
    manifest = offline.to_manifest(job)
    manifest["metadata"]["namespace"] = context.namespace
    return manifest


@pytest.mark.parametrize(
    "path_and_doc",
    list(offline.manifests()),
    ids=lambda item: f"{item[0].name}:{item[1]['metadata']['name']}",
)
def test_manifests_validate_strictly(path_and_doc: tuple[Path, dict[str, Any]]) -> None:
    path, document = path_and_doc
    assert offline.validate(document) == [], path


def test_run_queue_values_load_through_dagster_schema(values: dict[str, Any]) -> None:
    """The queued run coordinator's settings and the run limits the chart renders from
    ``concurrency`` (the queue's behaviour under them: ``test_automation.py``)."""
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    config = {"dequeue_interval_seconds": queued["dequeueIntervalSeconds"]}
    result = process_config(QueuedRunCoordinator.config_type(), config)
    assert result.success, [error.message for error in result.errors]
    concurrency = offline.instance_concurrency(values)
    validate_concurrency_config({"concurrency": concurrency})
    assert concurrency["pools"] == {"granularity": "run", "default_limit": 4}
    partition_limit = {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}}
    assert {**partition_limit, "limit": 1} in concurrency["runs"]["tag_concurrency_limits"]


def test_the_chart_refuses_run_limits_set_twice() -> None:
    values = offline.load_values()  # a copy of its own: the module's fixture stays as shipped
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    queued["maxConcurrentRuns"] = 5
    with pytest.raises(ValueError, match="Cannot set both concurrency.runs.maxConcurrentRuns"):
        offline.instance_concurrency(values)


def test_serving_run_job_is_valid_and_locked_down(
    launcher: K8sRunLauncher, values: dict[str, Any]
) -> None:
    job = _run_job(
        launcher, _run(values, "layout_building_job", {"dagster/partition": "office-floor"})
    )
    assert offline.validate(job) == []
    assert job["metadata"]["namespace"] == "ceilgrid"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    assert container["args"][:5] == ["/opt/venv/bin/python", "-m", "dagster", "api", "execute_run"]
    assert pod["serviceAccountName"] == "ceilgrid"
    assert pod["securityContext"]["fsGroup"] == 10001
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    sources = {next(iter(item.values()))["name"] for item in container["envFrom"]}
    assert {"ceilgrid-runtime", "ceilgrid-env"} <= sources
    password = [e for e in container["env"] if e["name"] == "DAGSTER_PG_PASSWORD"]
    assert password[0]["valueFrom"]["secretKeyRef"]["name"] == "ceilgrid-postgresql"
    volume_names = [volume["name"] for volume in pod["volumes"]]
    assert len(volume_names) == len(set(volume_names))
    assert {"ceilgrid-data", "tmp"} <= set(volume_names)
    # Buildings, layouts, models and logs are in object storage: no shared volume.
    assert not [volume for volume in pod["volumes"] if "persistentVolumeClaim" in volume]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/var/lib/ceilgrid", "/tmp"}
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["spec"]["backoffLimit"] == 0


def test_training_run_gets_its_own_resources_and_node_pool(
    launcher: K8sRunLauncher, values: dict[str, Any]
) -> None:
    tags = {**offline.training_tags(), "ceilgrid/workload": "training"}
    UserDefinedDagsterK8sConfig.from_dict(json.loads(tags["dagster-k8s/config"]))
    job = _run_job(launcher, _run(values, "corpus_job", tags))
    assert offline.validate(job) == []
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "12Gi"}
    assert pod["nodeSelector"] == {"ceilgrid.io/pool": "training"}
    assert pod["tolerations"][0]["key"] == "ceilgrid.io/pool"
    assert job["spec"]["activeDeadlineSeconds"] == 14400
    # DEEP merge keeps the launcher's hardening and the run's defaults.
    assert container["securityContext"]["readOnlyRootFilesystem"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_step_pod_for_k8s_job_executor_is_valid(
    launcher: K8sRunLauncher, values: dict[str, Any]
) -> None:
    """k8s_job_executor builds step pods with the same function and the same config."""
    run = _run(values, "label_job", {**offline.training_tags(), "dagster/partition": "shard-01"})
    job = _run_job(launcher, run, component="step_worker")
    assert offline.validate(job) == []
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "step_worker"


def _manifest(kind: str, name: str) -> dict[str, Any]:
    return next(
        doc
        for _, doc in offline.manifests()
        if doc["kind"] == kind and doc["metadata"]["name"] == name
    )


def test_backup_cronjob_runs_the_shipped_script_daily_with_retention() -> None:
    script = _manifest("ConfigMap", "ceilgrid-pg-backup-script")["data"]["pg-backup.sh"]
    assert script == (PROJECT_ROOT / "deploy" / "pg-backup.sh").read_text()
    cron = _manifest("CronJob", "ceilgrid-pg-backup")["spec"]
    minute, hour, *every_day = cron["schedule"].split()
    assert every_day == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["command"]
    assert command[1:3] == ["rotate", "/backups"] and int(command[3]) >= 1
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert command[0] == f"{mounts['script']}/pg-backup.sh"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"]["claimName"] == "ceilgrid-pg-backups"
    _manifest("PersistentVolumeClaim", "ceilgrid-pg-backups")
    assert volumes["script"]["configMap"]["defaultMode"] == 0o555
    env = {item["name"]: item for item in container["env"]}
    assert "value" not in env["PGPASSWORD"]  # from the Secret, never inline
    assert env["PGHOST"]["value"] == offline.load_values()["postgresql"]["postgresqlHost"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_prune_cronjob_runs_daily() -> None:
    cron = _manifest("CronJob", "ceilgrid-prune-runs")["spec"]
    assert cron["schedule"].split()[2:] == ["*", "*", "*"]
    (container,) = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["python", "/opt/dagster/bin/prune_runs.py"]


def _executors(monkeypatch: pytest.MonkeyPatch, name: str) -> dict[str, str]:
    """The executors of the code location built with CEILGRID_RUN_EXECUTOR=``name``."""
    from ceilgrid_assets.contract import LAYOUT_JOB
    from ceilgrid_assets.definitions import build_definitions

    monkeypatch.setenv("CEILGRID_RUN_EXECUTOR", name)
    defs = build_definitions()
    return {
        "automation": defs.resolve_implicit_global_asset_job_def().executor_def.name,
        "serving": defs.resolve_job_def(LAYOUT_JOB).executor_def.name,
        "corpus": defs.resolve_job_def("corpus_job").executor_def.name,
    }


def test_the_runtime_config_makes_training_steps_k8s_pods_and_serving_stays_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """deploy/README: on Kubernetes each step of a training run is its own pod."""
    data = _manifest("ConfigMap", "ceilgrid-runtime")["data"]
    assert data["CEILGRID_RUN_EXECUTOR"] == "k8s"
    assert _executors(monkeypatch, data["CEILGRID_RUN_EXECUTOR"]) == {
        "automation": "k8s",
        "serving": "in_process",
        "corpus": "in_process",
    }


def test_locally_runs_are_in_process_and_a_wrong_executor_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _executors(monkeypatch, "")["automation"] == "in_process"
    assert _executors(monkeypatch, "multiprocess")["automation"] == "multiprocess"
    with pytest.raises(ValueError, match=r"CEILGRID_RUN_EXECUTOR='celery': expected one of "):
        _executors(monkeypatch, "celery")
