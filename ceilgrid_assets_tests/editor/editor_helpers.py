"""Starting a real ``ceilgrid editor`` process, and the buildings the editor tests open.

``start(path)`` runs the command as a user would (on 127.0.0.1 and a free
port) and waits for the line that prints its address.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from helpers import make_room

from ceilgrid_assets.core.engine.io import room_to_document

CEILGRID = Path(sys.executable).with_name("ceilgrid")
#: A room name that is markup in every place a careless page could put it.
HOSTILE_ID = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@dataclass
class Editor:
    url: str  # without the trailing slash
    process: subprocess.Popen


def start(path: Path | None, *extra: str, timeout_s: float = 60.0) -> Editor:
    """``ceilgrid editor [PATH] --port 0 EXTRA...``, once it has printed its address."""
    process = subprocess.Popen(
        [str(CEILGRID), "editor", *([str(path)] if path else []), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = process.stdout.readline()
            if line.startswith("ceilgrid editor: http://"):
                return Editor(line.split()[2].rstrip("/"), process)
            if not line:  # exited before serving
                break
    process.kill()
    raise AssertionError(f"editor did not start: {process.stderr.read()}")


def editing_building() -> dict:
    """Two rooms: an 8 x 6 office with one light at (2, 2), and a small room with a hostile id.

    A smoke detector placed next to the light breaks ``smoke.clearance``
    (0.6 m < 1.0 m); neither room is compliant as it stands (too few devices).
    """
    office = make_room(
        (8, 6), invalid=[(7, 0), (7, 1)], devices={"light": [(2, 2)]}, grid_id="office-a"
    )
    hostile = make_room((4, 3), grid_id=HOSTILE_ID, room_type="storage")
    return {
        "building_id": "floor-1",
        "rooms": [room_to_document(office), room_to_document(hostile)],
    }


def room_request(room_document: dict) -> bytes:
    return json.dumps({"room": room_document}).encode()


def with_cell(room_document: dict, x: int, y: int, component: str) -> dict:
    """A copy of a room document with cell (x, y) set to ``component``."""
    document = json.loads(json.dumps(room_document))
    for cell in document["cells"]:
        if cell["x"] == x and cell["y"] == y:
            cell["component"] = component
    return document


def codes_of(room_document: dict) -> np.ndarray:
    from ceilgrid_assets.core.engine.grid import CODE

    cells = np.zeros((room_document["height"], room_document["width"]), dtype=np.uint8)
    for cell in room_document["cells"]:
        cells[cell["y"], cell["x"]] = CODE[cell["component"]]
    return cells
