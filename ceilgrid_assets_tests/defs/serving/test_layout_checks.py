"""``layout_claims_hold`` reads the written files back: what it catches that the engine cannot.

The engine validates each room before writing it; this check guards the file.
Each case writes a real input and a real completed layout, then changes the
layout file the way a faulty writer or a later edit would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import EXAMPLES_DIR

from ceilgrid_assets.core.engine.building import complete_building
from ceilgrid_assets.core.engine.io import dump_document, read_document
from ceilgrid_assets.defs.serving.checks import revalidate


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("layout")
    source = EXAMPLES_DIR / "office-floor.json"
    input_path = folder / "input.json"
    input_path.write_bytes(source.read_bytes())
    result = complete_building(read_document(input_path))
    assert result.all_compliant
    return input_path, json.loads(dump_document(result.document))


def check(input_path: Path, document: dict[str, Any]) -> list[dict[str, Any]]:
    """The check's reading of the stored input and of ``document`` written as the layout."""
    layout = json.dumps(document).encode()
    return revalidate(input_path.read_bytes(), layout, str(input_path), "layout.json")


def test_an_intact_layout_passes(written):
    input_path, document = written
    rows = check(input_path, document)
    assert rows and all(row["compliant"] and row["claimed"] for row in rows)
    assert all(row["known_room"] for row in rows)


def test_devices_deleted_under_a_compliant_claim_are_a_false_claim(written):
    input_path, document = written
    room = document["rooms"][0]
    room["cells"] = [
        {**cell, "component": "empty"} if cell["component"] == "smoke_detector" else cell
        for cell in room["cells"]
    ]
    rows = {row["grid_id"]: row for row in check(input_path, document)}
    tampered = rows[room["grid_id"]]
    assert tampered["claimed"] and not tampered["compliant"]
    assert "smoke.coverage" in tampered["rules"]
    others = [row for grid_id, row in rows.items() if grid_id != room["grid_id"]]
    assert all(row["compliant"] for row in others)


def test_a_lost_room_and_an_invented_room_are_reported(written):
    input_path, document = written
    lost = document["rooms"].pop()
    invented = {**document["rooms"][0], "grid_id": "not-in-the-input"}
    document["rooms"].append(invented)
    rows = {row["grid_id"]: row for row in check(input_path, document)}
    assert rows[lost["grid_id"]]["rules"] == ["missing from layout"]
    assert not rows["not-in-the-input"]["known_room"]


def test_an_input_device_removed_from_the_layout_breaks_placement(written):
    input_path, document = written
    # A room of the input that arrived with devices: the layout must keep them in place.
    original = next(room for room in read_document(input_path).rooms if (room.cells >= 2).any())
    y, x = (int(value) for value in np.argwhere(original.cells >= 2)[0])
    room = next(room for room in document["rooms"] if room["grid_id"] == original.grid_id)
    cell = next(cell for cell in room["cells"] if (cell["x"], cell["y"]) == (x, y))
    cell["component"] = "empty"
    rows = {row["grid_id"]: row for row in check(input_path, document)}
    assert "placement" in rows[original.grid_id]["rules"]


def test_both_checks_of_a_run_validate_the_same_documents_once(written, monkeypatch):
    """The two checks read the same input and layout back; the second reuses the
    first's validation when the bytes are equal, and gets rows of its own."""
    from ceilgrid_assets.defs.serving import checks

    input_path, document = written
    layout = json.dumps({**document, "note": "validated once"}).encode()
    calls = []
    real = checks.check_layout

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(checks, "check_layout", counted)
    data = input_path.read_bytes()
    first = revalidate(data, layout, "input.json", "layout.json")
    assert len(calls) == len(document["rooms"])
    copies = bytes(bytearray(data)), bytes(bytearray(layout))  # read back anew: equal, not the same
    second = revalidate(*copies, "input.json", "layout.json")
    assert len(calls) == len(document["rooms"])  # answered from the first
    assert second == first
    second[0]["rules"].append("changed by a caller")
    assert revalidate(data, layout, "input.json", "layout.json") == first
    changed = layout.replace(b"validated once", b"validated twice")
    revalidate(data, changed, "input.json", "layout.json")
    assert len(calls) == 2 * len(document["rooms"])  # other bytes: validated afresh
