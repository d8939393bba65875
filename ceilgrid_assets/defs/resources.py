"""Resources: where building files, layouts and promoted models live.

Every location is configurable by environment variable so that the webserver,
the daemon and run workers agree: one S3-compatible bucket
(``CEILGRID_STORAGE_URL=s3://bucket/prefix``, as the Helm chart sets it, so pods
share no volume) or one shared folder (deploy/docker sets
``CEILGRID_STORAGE_ROOT``); locally everything defaults to ``.ceilgrid/`` in the
working directory, which ``make dev`` runs from.
"""

import os
from pathlib import Path
from typing import Any, NamedTuple

from dagster import (
    ConfigurableResource,
    ExecutorDefinition,
    Failure,
    in_process_executor,
    multiprocess_executor,
)

from ceilgrid_assets.contract import building_partition_key
from ceilgrid_assets.core.engine.models import PlacementModel
from ceilgrid_assets.core.learning import registry
from ceilgrid_assets.core.storage import BlobStore, LocalBlobs, open_blobs


def ceilgrid_home() -> Path:
    return Path(os.environ.get("CEILGRID_HOME", ".ceilgrid")).absolute()


def env_path(name: str, default: Path) -> str:
    """A location from the environment, else ``default`` (resolved when definitions load)."""
    return str(Path(os.environ.get(name) or default).absolute())


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """A whole number from the environment, else ``default``; a bad value stops the
    definitions from loading with one line naming the variable, not a traceback deep
    in ``int()``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {raw!r}")
    return value


#: Optimiser labels by room content, under the storage root (and the bucket).
LABEL_CACHE = "label-cache"


class LayoutStorage(ConfigurableResource):
    """Where submitted inputs, completed layouts and reports live.

    ``incoming/<key>.json`` holds files the inbox sensor accepted and no run has
    consumed yet; ``buildings/<key>/`` holds the canonical input, the layout and
    the reports of one building partition. These are objects in the bucket of
    ``url`` (``s3://bucket/prefix``, so run pods share no volume) or, without
    one, files under ``root``. The label cache is always a local folder under
    ``root``, filled from and copied back to the bucket's ``label-cache/`` around
    labelling (:meth:`pull_label_cache`, :meth:`push_label_cache`).
    """

    root: str
    url: str = ""

    def blobs(self) -> BlobStore:
        return open_blobs(self.url, self.root)

    def read(self, name: str) -> bytes:
        """The bytes stored under ``name``; a missing object fails the step, not retried."""
        data = self.blobs().get_bytes(name)
        if data is None:
            raise Failure(
                description=f"nothing stored at {self.blobs().describe(name)}",
                allow_retries=False,
            )
        return data

    def label_cache_dir(self) -> Path:
        """Optimiser labels by room content (``core.learning.labels.LabelCache``)."""
        return LocalBlobs(self.root).path(LABEL_CACHE)

    def pull_label_cache(self) -> Path:
        """The label cache folder, first filled with the bucket's entries it lacks.

        Run pods share no folder, so the labels of earlier nights come from the
        bucket; entries are JSON (a damaged one is solved again, never executed).
        """
        if self.url:
            local, remote = LocalBlobs(self.root), self.blobs()
            for name in remote.list(LABEL_CACHE):
                data = None if local.exists(name) else remote.get_bytes(name)
                if data is not None:
                    local.put_bytes(name, data)
        return self.label_cache_dir()

    def push_label_cache(self) -> int:
        """Upload the label cache entries the bucket lacks; how many were uploaded."""
        if not self.url:
            return 0
        local, remote = LocalBlobs(self.root), self.blobs()
        stored = set(remote.list(LABEL_CACHE))
        uploaded = 0
        for name in local.list(LABEL_CACHE):
            data = None if name in stored or not name.endswith(".json") else local.get_bytes(name)
            if data is not None:
                remote.put_bytes(name, data)
                uploaded += 1
        return uploaded

    @staticmethod
    def incoming_key(key: str) -> str:
        return f"incoming/{building_partition_key(key, 'partition key')}.json"

    @staticmethod
    def building_key(key: str, name: str) -> str:
        """``buildings/<key>/<name>`` of a valid partition key."""
        return f"buildings/{building_partition_key(key, 'partition key')}/{name}"

    def input_key(self, key: str) -> str:
        return self.building_key(key, "input.json")

    def layout_key(self, key: str) -> str:
        return self.building_key(key, "layout.json")

    def report_key(self, key: str) -> str:
        """The bill of quantities (CSV)."""
        return self.building_key(key, "report.csv")

    def report_html_key(self, key: str) -> str:
        return self.building_key(key, "report.html")


class InboxFolders(ConfigurableResource):
    """The drop folder the inbox sensor watches and where it puts rejected files."""

    inbox: str
    quarantine: str


class PromotedModels(NamedTuple):
    """The learned models serving uses and the registry version they came from."""

    version: str | None
    models: list[PlacementModel]


class ModelStore(ConfigurableResource):
    """The model registry (``core/learning/registry.py``) serving and promotion share.

    ``versions/vNNNN/`` holds every promoted set with its lineage record;
    ``promoted`` is a symlink swapped atomically to the version serving uses.
    With ``url`` (``s3://bucket/prefix``) the bucket's ``model-store/`` is the
    registry every pod shares (see the registry module) and ``location`` a local
    cache that versions are downloaded into, whole, before anything is loaded.
    """

    location: str
    url: str = ""

    def _remote(self) -> BlobStore | None:
        return open_blobs(self.url, self.location) if self.url else None

    def _current(self) -> registry.Version | None:
        remote = self._remote()
        if remote is None:
            return registry.current(Path(self.location))
        return registry.remote_current(remote, Path(self.location))

    def promoted_record(self) -> dict[str, Any] | None:
        version = self._current()
        return None if version is None else version.record

    def promote(self, candidate: Path, record: dict[str, Any]) -> registry.Version:
        """Freeze ``candidate`` as a new version and serve it; readers never see a mix.

        With a bucket, every version in it is cached first, so numbering continues
        from the bucket's (training runs one at a time: see docs/platform.md).
        """
        store, remote = Path(self.location), self._remote()
        if remote is None:
            return registry.activate(
                store, registry.add_version(store, candidate, record).id, "promote"
            )
        registry.pull_all(remote, store)
        version = registry.add_version(store, candidate, record)
        registry.push_version(remote, version)
        return registry.remote_activate(remote, store, version.id, "promote")

    def load_promoted(self) -> PromotedModels:
        """The promoted learned models (none before the first promotion), read from the
        version folder the link points at once, so the version named is the one loaded."""
        version = self._current()
        if version is None:
            return PromotedModels(None, [])
        from ceilgrid_assets.core.learning.learned import load_models

        return PromotedModels(version.id, list(load_models(version.path)))


class WebhookConfig(ConfigurableResource):
    """Where run-failure alerts go; an empty URL turns alerting off."""

    url: str = ""


#: Executors a deployment may choose for runs of jobs that name none (the automation's
#: training runs): CEILGRID_RUN_EXECUTOR. The serving and corpus jobs always run in
#: process (one step after another in the run worker).
RUN_EXECUTORS = ("in_process", "multiprocess", "k8s")


def run_executor() -> ExecutorDefinition:
    """The default executor from CEILGRID_RUN_EXECUTOR (default ``in_process``).

    In process, a run spends no start-up per step (a process per step costs about
    5 s here, and a training run has seven); ``k8s`` (the Kubernetes runtime ConfigMap sets it) runs
    each step as its own pod, so the four models of a night train side by side.
    """
    name = os.environ.get("CEILGRID_RUN_EXECUTOR") or "in_process"
    if name == "k8s":
        from dagster_k8s import k8s_job_executor  # only deployments on Kubernetes need it

        return k8s_job_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "in_process":
        return in_process_executor
    raise ValueError(f"CEILGRID_RUN_EXECUTOR={name!r}: expected one of {', '.join(RUN_EXECUTORS)}")


def build_resources() -> dict[str, ConfigurableResource]:
    """Resources from the environment (see README: CEILGRID_* variables)."""
    home = ceilgrid_home()
    return {
        "layout_storage": LayoutStorage(
            root=env_path("CEILGRID_STORAGE_ROOT", home / "storage"),
            url=os.environ.get("CEILGRID_STORAGE_URL", ""),
        ),
        "inbox_folders": InboxFolders(
            inbox=env_path("CEILGRID_INBOX", home / "inbox"),
            quarantine=env_path("CEILGRID_QUARANTINE", home / "quarantine"),
        ),
        "model_store": ModelStore(
            location=str(registry.default_store()), url=os.environ.get("CEILGRID_STORAGE_URL", "")
        ),
        "webhook": WebhookConfig(url=os.environ.get("CEILGRID_ALERT_WEBHOOK_URL", "")),
    }
