"""Offline checks of the Kubernetes deployment (no API server can run on CI machines).

What is checked for real: the run launcher configuration that the Dagster Helm chart
renders from ``values.yaml`` goes through Dagster's own config schema and builds a
real ``K8sRunLauncher``; the Kubernetes ``Job`` that ``dagster-k8s`` would submit for
a run (``construct_dagster_k8s_job``, the launcher's own code path) and every
manifest under ``deploy/k8s/manifests`` pass ``kubernetes-validate --strict``.

What is not real: the chart's template is not executed (no ``helm`` binary or chart
download here); ``run_launcher_config`` mirrors its K8sRunLauncher mapping
(``templates/helpers/instance/_run-launcher.tpl``) and ``compute_log_manager_config``
its S3ComputeLogManager mapping, ``instance_concurrency`` its run queue limits
(``_concurrency.tpl``), and the launcher points at a
kubeconfig whose API server does not exist and is never contacted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes_validate
import yaml

K8S_DIR = Path(__file__).resolve().parent
VALUES = K8S_DIR / "values.yaml"
MANIFESTS = K8S_DIR / "manifests"
TRAINING_JOB_CONFIG = K8S_DIR / "training-job-config.yaml"
KUBERNETES_VERSION = "1.31.0"

# Launcher keys the chart copies verbatim (values key -> dagster.yaml key).
_VERBATIM = {
    "envVars": "env_vars",
    "volumeMounts": "volume_mounts",
    "volumes": "volumes",
    "labels": "labels",
    "resources": "resources",
    "schedulerName": "scheduler_name",
    "securityContext": "security_context",
}
_RUN_K8S_CONFIG = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}


def load_values(path: Path = VALUES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def run_launcher_config(
    values: Mapping[str, Any], release: str = "ceilgrid", namespace: str = "ceilgrid"
) -> dict[str, Any]:
    """The ``run_launcher.config`` block the chart writes into the instance ConfigMap."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or namespace,
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{release}-dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    if launcher.get("kubeconfigFile"):
        config["kubeconfig_file"] = launcher["kubeconfigFile"]
    if values.get("imagePullSecrets"):
        config["image_pull_secrets"] = values["imagePullSecrets"]
    if launcher.get("envConfigMaps"):
        config["env_config_maps"] = [item["name"] for item in launcher["envConfigMaps"]]
    if launcher.get("envSecrets"):
        config["env_secrets"] = [item["name"] for item in launcher["envSecrets"]]
    for key, target in _VERBATIM.items():
        if launcher.get(key):
            config[target] = launcher[key]
    if launcher.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    if launcher.get("runK8sConfig"):
        config["run_k8s_config"] = {
            target: launcher["runK8sConfig"][key]
            for key, target in _RUN_K8S_CONFIG.items()
            if launcher["runK8sConfig"].get(key)
        }
    return config


#: S3ComputeLogManager settings the chart passes on (values key -> dagster.yaml key),
#: as in its ``templates/helpers/instance/_compute-log-manager.tpl``.
_S3_COMPUTE_LOGS = {
    "bucket": "bucket",
    "localDir": "local_dir",
    "prefix": "prefix",
    "useSsl": "use_ssl",
    "verify": "verify",
    "verifyCertPath": "verify_cert_path",
    "endpointUrl": "endpoint_url",
    "skipEmptyFiles": "skip_empty_files",
    "uploadInterval": "upload_interval",
    "showUrlOnly": "show_url_only",
    "region": "region",
}


def compute_log_manager_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The instance's ``compute_logs`` block the chart renders for an S3ComputeLogManager."""
    manager = values["computeLogManager"]
    if manager["type"] != "S3ComputeLogManager":
        raise ValueError(f"computeLogManager type {manager['type']!r} is not mirrored here")
    settings = manager["config"]["s3ComputeLogManager"]
    return {
        "module": "dagster_aws.s3.compute_log_manager",
        "class": "S3ComputeLogManager",
        "config": {
            target: settings[key]
            for key, target in _S3_COMPUTE_LOGS.items()
            if settings.get(key) is not None
        },
    }


# The chart's concurrency values (values key -> dagster.yaml key), ``_concurrency.tpl``.
_POOL_KEYS = {
    "defaultLimit": "default_limit",
    "granularity": "granularity",
    "opGranularityRunBuffer": "op_granularity_run_buffer",
}
_RUN_KEYS = {
    "maxConcurrentRuns": "max_concurrent_runs",
    "tagConcurrencyLimits": "tag_concurrency_limits",
}


def _is_set(value: Any) -> bool:
    """As the template tests a value: present (0 included), and a list not empty."""
    return value is not None and value != []


def instance_concurrency(values: Mapping[str, Any]) -> dict[str, Any]:
    """The instance's ``concurrency`` block the chart renders from ``values.concurrency``.

    Mirrors ``templates/helpers/instance/_concurrency.tpl``, its refusals included:
    a run limit set both there and under the queued run coordinator stops the render.
    """
    settings = values.get("concurrency") or {}
    if not settings.get("enabled"):
        return {}
    pools, runs = settings.get("pools") or {}, settings.get("runs") or {}
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    for key in _RUN_KEYS:
        if _is_set(runs.get(key)) and _is_set(queued.get(key)):
            raise ValueError(
                f"Cannot set both concurrency.runs.{key} and "
                f"dagsterDaemon.runCoordinator.config.queuedRunCoordinator.{key}"
            )
    rendered: dict[str, Any] = {}
    for name, block, keys in (("pools", pools, _POOL_KEYS), ("runs", runs, _RUN_KEYS)):
        if chosen := {
            target: block[key] for key, target in keys.items() if _is_set(block.get(key))
        }:
            rendered[name] = chosen
    return rendered


def code_location_container_context(values: Mapping[str, Any]) -> dict[str, Any]:
    """What the code server hands to runs with ``includeConfigInLaunchedRuns`` (env and volumes)."""
    deployment = values["dagster-user-deployments"]["deployments"][0]
    return {
        "k8s": {
            "env_config_maps": [item["name"] for item in deployment.get("envConfigMaps", [])],
            "env_secrets": [item["name"] for item in deployment.get("envSecrets", [])],
            "volumes": deployment.get("volumes", []),
            "volume_mounts": deployment.get("volumeMounts", []),
        }
    }


def manifests(directory: Path = MANIFESTS) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every document of every YAML file under ``directory``."""
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def validate(resource: Mapping[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    """Strict schema validation errors for one resource (empty when valid)."""
    try:
        kubernetes_validate.validate(dict(resource), version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(str(p) for p in error.path)}: {error.message}"]
    return []


def to_manifest(obj: Any) -> dict[str, Any]:
    """A kubernetes-client model as the JSON the API server would receive."""
    return json.loads(json.dumps(kubernetes.client.ApiClient().sanitize_for_serialization(obj)))


def training_tags() -> dict[str, str]:
    """Run tags carrying the per-job Kubernetes config of the heavy training jobs."""
    return {"dagster-k8s/config": json.dumps(yaml.safe_load(TRAINING_JOB_CONFIG.read_text()))}
