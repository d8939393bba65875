"""The model registry: every promoted model set is a numbered version with its lineage.

A store directory holds::

    versions/v0001/    the models and cards, and promotion.json (the lineage record)
    promoted -> versions/v0003   what serving loads (a relative symlink)
    history.jsonl      one line per promotion or rollback: which version, when, how

Versions are never changed after they are written, so any layout made with a
version can be made again from it. ``promote`` and ``rollback`` only swap the
``promoted`` symlink, atomically: a reader sees the old set or the new one.

With object storage (a :class:`~ceilgrid_assets.core.storage.BlobStore`), the
bucket's ``model-store/`` is the registry every pod shares: ``versions/vNNNN/``
with the same files (the record uploaded last, so a version without one is
partial and never loaded) and the small ``promoted`` object (``{"version":
"v0003"}``) in place of the symlink, and ``history/`` with one small object per
promotion or rollback (an object each, never a shared file rewritten, so two
machines acting at once lose neither line). The local store is then a cache that
whole versions are downloaded into before anything is read from them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.io import write_atomic
from ceilgrid_assets.core.storage import BlobStore, LocalBlobs

RECORD = "promotion.json"
HISTORY = "history.jsonl"
#: The bucket's history: one object per promotion or rollback.
HISTORY_FOLDER = "history"
PROMOTED = "promoted"
VERSIONS = "versions"
#: Model versions and the promoted pointer live under this folder of a bucket.
REMOTE_MODELS = "model-store"
_VERSION_ID = re.compile(r"v(\d{4,})")


class RegistryError(InputError):
    """A version that does not exist, or nothing to roll back to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


@dataclass(frozen=True)
class Version:
    """One promoted model set: its id, folder and lineage record."""

    id: str
    path: Path
    record: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """One line of ``ceilgrid models list``."""
        corpus = self.record.get("corpus") or {}
        return {
            "version": self.id,
            "promoted_at": self.record.get("promoted_at"),
            "corpus_sha256": (corpus.get("sha256") or "")[:12],
            "served_rooms": corpus.get("served_rooms", 0),
            "code_version": self.record.get("code_version"),
        }


def default_store() -> Path:
    """``CEILGRID_MODEL_STORE``, else ``model-store`` under ``CEILGRID_HOME`` (``.ceilgrid``):
    the platform's model store and the command line's default agree."""
    home = Path(os.environ.get("CEILGRID_HOME", ".ceilgrid"))
    return Path(os.environ.get("CEILGRID_MODEL_STORE") or home / "model-store").absolute()


def is_version_id(name: str) -> bool:
    """Whether ``name`` is a version id (``v0001``), and so a safe folder name."""
    return _VERSION_ID.fullmatch(name) is not None


def versions(store: Path) -> list[Version]:
    """Every version in the store, oldest first."""
    root = Path(store) / VERSIONS
    found = [
        Version(path.name, path, json.loads((path / RECORD).read_text()))
        for path in (root.iterdir() if root.is_dir() else [])
        if not path.name.startswith(".") and (path / RECORD).is_file()
    ]
    return sorted(found, key=_order)


def _order(version: Version) -> tuple[int, str]:
    match = _VERSION_ID.fullmatch(version.id)
    return (int(match.group(1)) if match else 0, version.id)


def get_version(store: Path, version_id: str) -> Version:
    for version in versions(store):
        if version.id == version_id:
            return version
    known = ", ".join(version.id for version in versions(store)) or "none"
    raise RegistryError(f"no model version {version_id!r} in {store}; versions: {known}")


def current(store: Path) -> Version | None:
    """The version serving uses, or None before the first promotion."""
    link = Path(store) / PROMOTED
    if not (link / RECORD).is_file():
        return None
    return get_version(store, link.resolve().name)


def add_version(store: Path, candidate: Path, record: dict[str, Any]) -> Version:
    """Freeze ``candidate`` (a folder of models) as the next version, with its record.

    The copy is made beside the versions and renamed into place, so a version
    folder is complete whenever it exists; two promotions at once get two ids.
    """
    root = Path(store) / VERSIONS
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{os.getpid()}-{time.monotonic_ns()}"
    shutil.copytree(candidate, staging)
    number = max((_order(version)[0] for version in versions(store)), default=0) + 1
    while True:
        version_id = f"v{number:04d}"
        full = {**record, "version": version_id}
        write_atomic(staging / RECORD, json.dumps(full, indent=1).encode())
        try:
            staging.rename(root / version_id)
        except OSError:
            if not (root / version_id).exists():
                raise
            number += 1
            continue
        return Version(version_id, root / version_id, full)


def activate(store: Path, version_id: str, action: str) -> Version:
    """Point ``promoted`` at ``version_id`` and record it in the history."""
    version = get_version(store, version_id)
    link = Path(store) / PROMOTED
    temporary = link.with_name(f".{PROMOTED}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(version.path.relative_to(link.parent))
    os.replace(temporary, link)
    with open(Path(store) / HISTORY, "a") as history:
        history.write(json.dumps(_history_line(version.id, action)) + "\n")
    return version


def _history_line(version_id: str, action: str) -> dict[str, Any]:
    return {"at": _now(), "version": version_id, "action": action}


def rollback(store: Path) -> Version:
    """Serve the version before the current one (by version number)."""
    now = current(store)
    if now is None:
        raise RegistryError(f"nothing is promoted in {store}: nothing to roll back")
    older = [version for version in versions(store) if _order(version) < _order(now)]
    if not older:
        raise RegistryError(f"{now.id} is the oldest version in {store}: nothing to roll back to")
    return activate(store, older[-1].id, "rollback")


def remote_current(remote: BlobStore, store: Path) -> Version | None:
    """The version the bucket's pointer names, downloaded into ``store`` if missing;
    None before the first promotion."""
    pointer = remote.get_bytes(f"{REMOTE_MODELS}/{PROMOTED}")
    if pointer is None:
        return None
    version_id = json.loads(pointer).get("version", "")
    if not is_version_id(version_id):
        raise RegistryError(
            f"the promoted pointer in {remote.describe(REMOTE_MODELS)} names no version id"
        )
    return pull_version(remote, store, version_id)


def pull_version(remote: BlobStore, store: Path, version_id: str) -> Version:
    """The version from the local cache ``store``, downloaded first if missing.

    Files go to a staging folder renamed into place, so the cache only ever
    holds whole versions; names are checked like every other storage key.
    """
    store = Path(store)
    if not (store / VERSIONS / version_id / RECORD).is_file():
        folder = f"{REMOTE_MODELS}/{VERSIONS}/{version_id}"
        names = remote.list(folder)
        if not names:
            raise RegistryError(
                f"no model version {version_id} in {remote.describe(REMOTE_MODELS)}"
            )
        if f"{folder}/{RECORD}" not in names:
            raise RegistryError(
                f"model version {version_id} in {remote.describe(folder)} is partial"
            )
        (store / VERSIONS).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=store / VERSIONS, prefix=".pull-") as tmp:
            staging = LocalBlobs(Path(tmp) / version_id)
            for name in names:
                data = remote.get_bytes(name)
                if data is None:
                    raise RegistryError(f"{remote.describe(name)} vanished")
                staging.put_bytes(name.removeprefix(folder + "/"), data)
            try:
                staging.root.rename(store / VERSIONS / version_id)
            except OSError:  # another process downloaded it meanwhile
                if not (store / VERSIONS / version_id).is_dir():
                    raise
    return get_version(store, version_id)


def pull_all(remote: BlobStore, store: Path) -> list[Version]:
    """Every whole version in the bucket, cached in ``store``; oldest first. A version
    without its record (a promotion still uploading, or one that failed) is left out."""
    folder = f"{REMOTE_MODELS}/{VERSIONS}"
    whole = [
        parts[2]
        for parts in (name.split("/") for name in remote.list(folder))
        if parts[3:] == [RECORD] and is_version_id(parts[2])
    ]
    return sorted((pull_version(remote, store, version_id) for version_id in whole), key=_order)


def push_version(remote: BlobStore, version: Version) -> None:
    """Upload a version added to the cache, its record last; refused if the bucket
    already holds that id (nothing locks a bucket: another promotion got there first)."""
    prefix = f"{REMOTE_MODELS}/{VERSIONS}/{version.id}"
    if remote.exists(f"{prefix}/{RECORD}"):
        raise RegistryError(
            f"model version {version.id} appeared in {remote.describe(prefix)} meanwhile "
            "(another promotion): promote again"
        )
    files = [path for path in version.path.rglob("*") if path.is_file()]
    for path in sorted(files, key=lambda path: (path.name == RECORD, path)):
        remote.put_bytes(f"{prefix}/{path.relative_to(version.path).as_posix()}", path.read_bytes())


def remote_activate(remote: BlobStore, store: Path, version_id: str, action: str) -> Version:
    """Serve ``version_id`` from the bucket: the pointer object is replaced whole and the
    action added to the bucket's history (the local cache records it in its own too)."""
    if not is_version_id(version_id):
        raise RegistryError(f"{version_id!r} is not a version id (v0001, v0002, ...)")
    pull_version(remote, store, version_id)
    remote.put_bytes(f"{REMOTE_MODELS}/{PROMOTED}", json.dumps({"version": version_id}).encode())
    folder = f"{REMOTE_MODELS}/{HISTORY_FOLDER}"
    # Numbered in order; two machines acting at once may take the same number, and the
    # token keeps both lines (their order between them is then not known).
    name = f"{len(remote.list(folder)) + 1:06d}-{secrets.token_hex(4)}.json"
    remote.put_bytes(f"{folder}/{name}", json.dumps(_history_line(version_id, action)).encode())
    return activate(store, version_id, action)


def remote_rollback(remote: BlobStore, store: Path) -> Version:
    """Serve the bucket's version before the one its pointer names (by number)."""
    now = remote_current(remote, store)
    where = remote.describe(REMOTE_MODELS)
    if now is None:
        raise RegistryError(f"nothing is promoted in {where}: nothing to roll back")
    older = [version for version in pull_all(remote, store) if _order(version) < _order(now)]
    if not older:
        raise RegistryError(f"{now.id} is the oldest version in {where}: nothing to roll back to")
    return remote_activate(remote, store, older[-1].id, "rollback")


def history(store: Path) -> list[dict[str, Any]]:
    """The promotions and rollbacks made through this store, oldest first."""
    path = Path(store) / HISTORY
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def remote_history(remote: BlobStore) -> list[dict[str, Any]]:
    """Every promotion and rollback of the bucket's registry, from whichever machine,
    oldest first."""
    names = sorted(remote.list(f"{REMOTE_MODELS}/{HISTORY_FOLDER}"))
    found = (remote.get_bytes(name) for name in names)
    return [json.loads(data) for data in found if data is not None]  # None: removed meanwhile


def compare(old: Version, new: Version) -> list[dict[str, Any]]:
    """Per evaluation slice and component: the two versions' device ratios and compliance."""
    rows = []
    before = {_row_key(row): row for row in old.record.get("evaluation", [])}
    for row in new.record.get("evaluation", []):
        was = before.get(_row_key(row), {})
        rows.append(
            {
                "slice": row.get("slice", "synthetic"),
                "component": row["component"],
                f"devices_vs_reference {old.id}": was.get("devices_vs_reference"),
                f"devices_vs_reference {new.id}": row.get("devices_vs_reference"),
                f"compliance {old.id}": was.get("compliance_after_repair"),
                f"compliance {new.id}": row.get("compliance_after_repair"),
            }
        )
    return rows


def _row_key(row: dict[str, Any]) -> tuple[str, str]:
    return (row.get("slice", "synthetic"), row["component"])


def code_version() -> str:
    """The package and scikit-learn versions that trained a model set."""
    import sklearn

    return f"ceilgrid {metadata.version('ceilgrid')}, scikit-learn {sklearn.__version__}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
