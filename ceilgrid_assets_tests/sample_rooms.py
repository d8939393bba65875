"""Hand-built rooms with known device positions for the render and export tests.

Built directly as arrays so these tests do not depend on the placement engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ceilgrid_assets.core.engine.grid import CODE, Room
from ceilgrid_assets.core.engine.io import room_to_document
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import compliance_report, layout_metrics

#: (x, y) of each device in :func:`office_room`.
OFFICE_DEVICES: dict[str, list[tuple[int, int]]] = {
    "light": [(3, 1), (7, 1), (3, 4), (7, 4)],
    "air_supply": [(5, 1)],
    "air_return": [(9, 5)],
    "smoke_detector": [(5, 3)],
}


def office_room(grid_id: str = "office-1") -> Room:
    """10 x 6 tiles, a 2 x 2 column in the top-left corner, one of each device type."""
    cells = np.zeros((6, 10), dtype=np.uint8)
    cells[0:2, 0:2] = CODE["invalid"]
    for name, positions in OFFICE_DEVICES.items():
        for x, y in positions:
            cells[y, x] = CODE[name]
    return Room(grid_id, cells)


def grid_room(width: int, height: int, grid_id: str = "big") -> Room:
    """A regular array of devices over a large room, with a column of invalid tiles."""
    cells = np.zeros((height, width), dtype=np.uint8)
    cells[1::4, 1::4] = CODE["light"]
    cells[3::8, 3::8] = CODE["air_supply"]
    cells[7::8, 6::10] = CODE["air_return"]
    cells[height // 3 :: height // 3, width // 3 :: width // 3] = CODE["smoke_detector"]
    cells[height // 2 : height // 2 + 2, width // 2 : width // 2 + 2] = CODE["invalid"]
    return Room(grid_id, cells)


def output_document(rooms: list[Room], building_id: str = "b-1") -> dict[str, Any]:
    """A completed-layout document as the pipeline writes it (compliance and metrics per room)."""
    profile = get_profile("nfpa72")
    documents = []
    for room in rooms:
        document = room_to_document(room)
        document["compliance"] = compliance_report(room, profile)
        document["metrics"] = layout_metrics(room, profile)
        documents.append(document)
    return {"building_id": building_id, "rooms": documents}
