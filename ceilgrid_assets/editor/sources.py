"""Where the editor finds a building: a file, or the platform's storage by building id.

A building id from the command line becomes a path only through
``contract.building_partition_key`` (which refuses separators, ``..`` and
every other unsafe name) and only if the resolved path stays under the
storage root, so neither a crafted id nor a planted symlink opens a file
elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from ceilgrid_assets.contract import building_partition_key
from ceilgrid_assets.core.engine.errors import InputError

#: What the platform keeps per building, newest first: the layout, else the input.
STORED_FILES = ("layout.json", "input.json")


def default_storage_root() -> Path:
    """As the platform's ``LayoutStorage``: $CEILGRID_STORAGE_ROOT, else $CEILGRID_HOME/storage."""
    configured = os.environ.get("CEILGRID_STORAGE_ROOT")
    if configured:
        return Path(configured)
    return Path(os.environ.get("CEILGRID_HOME", ".ceilgrid")) / "storage"


def stored_building(root: Path, building_id: str) -> Path:
    """The stored layout (else input) of ``building_id`` under ``root``; InputError if none."""
    key = building_partition_key(building_id, "--building")
    base = root.resolve()
    for name in STORED_FILES:
        path = (base / "buildings" / key / name).resolve()
        if not path.is_relative_to(base):
            raise InputError(f"{path} is outside the storage root {base}", source=f"building {key}")
        if path.is_file():
            return path
    raise InputError(
        f"nothing stored for this building under {base / 'buildings'} "
        f"(looked for {' and '.join(STORED_FILES)})",
        source=f"building {key}",
    )
