"""Resources: where building files, layouts and promoted models live.

Every location is configurable by environment variable so that the webserver,
the daemon and run workers agree on one shared volume (deploy/docker sets
``CEILGRID_STORAGE_ROOT``); locally everything defaults to ``.ceilgrid/`` in the
working directory, which ``make dev`` runs from.
"""

import os
from pathlib import Path
from typing import Any, NamedTuple

from dagster import ConfigurableResource

from ceilgrid_assets.contract import building_partition_key
from ceilgrid_assets.core.engine.models import PlacementModel
from ceilgrid_assets.core.learning import registry


def ceilgrid_home() -> Path:
    return Path(os.environ.get("CEILGRID_HOME", ".ceilgrid")).absolute()


def env_path(name: str, default: Path) -> str:
    """A location from the environment, else ``default`` (resolved when definitions load)."""
    return str(Path(os.environ.get(name) or default).absolute())


class LayoutStorage(ConfigurableResource):
    """The storage root for submitted inputs and completed layouts.

    ``incoming/<key>.json`` holds files the inbox sensor accepted and no run has
    consumed yet; ``buildings/<key>/`` holds the canonical input, the layout and
    the report of one building partition.
    """

    root: str

    def _under_root(self, *parts: str) -> Path:
        """``root/parts...`` resolved, refused unless it stays inside the root.

        The key is checked first (it must be a valid building id), and the
        resolved path second, so neither a bad key nor a planted symlink can
        lead a write outside the storage root.
        """
        root = Path(self.root).resolve()
        path = root.joinpath(*parts).resolve()
        if not path.is_relative_to(root) or path == root:
            raise ValueError(f"storage path {path} is outside the storage root {root}")
        return path

    def label_cache_dir(self) -> Path:
        """Optimiser labels by room content (``core.learning.labels.LabelCache``)."""
        return self._under_root("label-cache")

    def incoming_dir(self) -> Path:
        return self._under_root("incoming")

    def incoming_path(self, key: str) -> Path:
        return self._under_root("incoming", f"{building_partition_key(key, 'partition key')}.json")

    def building_dir(self, key: str, *names: str) -> Path:
        """``buildings/<key>/`` (or a file in it) of a valid key, inside the root."""
        return self._under_root("buildings", building_partition_key(key, "partition key"), *names)

    def input_path(self, key: str) -> Path:
        return self.building_dir(key, "input.json")

    def layout_path(self, key: str) -> Path:
        return self.building_dir(key, "layout.json")

    def report_path(self, key: str) -> Path:
        """The bill of quantities (CSV)."""
        return self.building_dir(key, "report.csv")

    def report_html_path(self, key: str) -> Path:
        return self.building_dir(key, "report.html")

    def training_dir(self) -> Path:
        return Path(self.root) / "training"


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
    """

    location: str

    def promoted_record(self) -> dict[str, Any] | None:
        version = registry.current(Path(self.location))
        return None if version is None else version.record

    def promote(self, candidate: Path, record: dict[str, Any]) -> registry.Version:
        """Freeze ``candidate`` as a new version and serve it; readers never see a mix."""
        version = registry.add_version(Path(self.location), candidate, record)
        return registry.activate(Path(self.location), version.id, "promote")

    def load_promoted(self) -> PromotedModels:
        """The promoted learned models (none before the first promotion), read from the
        version folder the link points at once, so the version named is the one loaded."""
        version = registry.current(Path(self.location))
        if version is None:
            return PromotedModels(None, [])
        from ceilgrid_assets.core.learning.learned import load_models

        return PromotedModels(version.id, list(load_models(version.path)))


class WebhookConfig(ConfigurableResource):
    """Where run-failure alerts go; an empty URL turns alerting off."""

    url: str = ""


def build_resources() -> dict[str, ConfigurableResource]:
    """Resources from the environment (see README: CEILGRID_* variables)."""
    home = ceilgrid_home()
    return {
        "layout_storage": LayoutStorage(root=env_path("CEILGRID_STORAGE_ROOT", home / "storage")),
        "inbox_folders": InboxFolders(
            inbox=env_path("CEILGRID_INBOX", home / "inbox"),
            quarantine=env_path("CEILGRID_QUARANTINE", home / "quarantine"),
        ),
        "model_store": ModelStore(location=str(registry.default_store())),
        "webhook": WebhookConfig(url=os.environ.get("CEILGRID_ALERT_WEBHOOK_URL", "")),
    }
