"""Resources: where building files, layouts and promoted models live.

Every location is configurable by environment variable so that the webserver,
the daemon and run workers agree on one shared volume (deploy/docker sets
``CEILGRID_STORAGE_ROOT``); locally everything defaults to ``.ceilgrid/`` in the
working directory, which ``make dev`` runs from.
"""

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from ceilgrid_assets.contract import building_partition_key
from ceilgrid_assets.core.engine.io import write_atomic
from ceilgrid_assets.core.engine.models import PlacementModel


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


PROMOTION_RECORD = "promotion.json"


class ModelStore(ConfigurableResource):
    """Trained model candidates and the promoted set that serving uses.

    ``versions/<stamp>/`` holds every promoted set; ``promoted`` is a symlink
    swapped atomically to the newest, with ``promotion.json`` beside the models
    recording the evaluation it won with.
    """

    location: str

    def promoted_dir(self) -> Path:
        return Path(self.location) / "promoted"

    def promoted_record(self) -> dict[str, Any] | None:
        path = self.promoted_dir() / PROMOTION_RECORD
        return json.loads(path.read_text()) if path.is_file() else None

    def promote(self, candidate: Path, record: dict[str, Any]) -> Path:
        """Point ``promoted`` at a frozen copy of ``candidate``; readers never see a mix."""
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        version = Path(self.location) / "versions" / stamp
        shutil.copytree(candidate, version)
        write_atomic(version / PROMOTION_RECORD, json.dumps(record, indent=1).encode())
        link = self.promoted_dir()
        temporary = link.with_name(f".promoted.{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(version.relative_to(link.parent))
        os.replace(temporary, link)
        return version

    def load_promoted(self) -> list[PlacementModel]:
        """The promoted learned models, or none before the first promotion."""
        if self.promoted_record() is None:
            return []
        from ceilgrid_assets.core.learning.learned import load_models

        return list(load_models(self.promoted_dir()))


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
        "model_store": ModelStore(location=env_path("CEILGRID_MODEL_STORE", home / "model-store")),
        "webhook": WebhookConfig(url=os.environ.get("CEILGRID_ALERT_WEBHOOK_URL", "")),
    }
