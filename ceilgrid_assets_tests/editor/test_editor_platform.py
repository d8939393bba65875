"""The editor opens a building from a running platform (`dagster dev` on Postgres).

The building goes in through ``ceilgrid submit --wait``; the editor then opens
it by id through the webserver's GraphQL API (``--url``) and from the storage
root on this machine (``--building`` alone), and shows the stored layout. An
edit submitted from the editor is laid out again by the platform.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import requests
from editor_helpers import CEILGRID
from helpers import EXAMPLES_DIR

from ceilgrid_assets.cli.submit import GraphQL, latest_timestamp, layout_events, wait_for_layout
from ceilgrid_assets.core.engine.grid import CODE, COMPONENTS
from ceilgrid_assets.core.engine.io import parse_document

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def room_document(view: dict) -> dict:
    """A room of the editor's building view back in the interchange format."""
    width = view["document"]["width"]
    cells = [
        {"x": i % width, "y": i // width, "component": COMPONENTS[int(code)]}
        for i, code in enumerate(view["codes"])
    ]
    return {**view["document"], "cells": cells}


def test_a_submitted_building_opens_from_the_platform(dagster_dev, start_editor, tmp_path):
    document = json.loads((EXAMPLES_DIR / "school-wing.json").read_bytes())
    document["building_id"] = "editor-school"
    source = tmp_path / "editor-school.json"
    source.write_text(json.dumps(document))
    submitted = subprocess.run(
        [str(CEILGRID), "submit", str(source), "--url", dagster_dev.url, "--wait"]
        + ["-o", str(tmp_path / "layout.json"), "--timeout", "300"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert submitted.returncode == 0, submitted.stderr
    stored = dagster_dev.home / "storage" / "buildings" / "editor-school" / "layout.json"
    expected = parse_document(stored.read_bytes(), "layout")

    for extra in (
        ("--url", dagster_dev.url, "--building", "editor-school"),
        ("--building", "editor-school", "--storage", str(dagster_dev.home / "storage")),
    ):
        editor = start_editor(None, *extra)
        building = requests.get(f"{editor.url}/api/building", timeout=30).json()
        assert building["building_id"] == "editor-school"
        for view, room in zip(building["rooms"], expected.rooms, strict=True):
            assert view["codes"] == "".join(str(code) for code in room.cells.ravel())
            assert view["compliance"]["compliant"] is True
            assert set(view["models"]) == {"light", "air_supply", "air_return", "smoke_detector"}

    # The edited building goes back through the same path as `ceilgrid submit`.
    editor = start_editor(None, "--url", dagster_dev.url, "--building", "editor-school")
    view = requests.get(f"{editor.url}/api/building", timeout=30).json()
    rooms = [room_document(room) for room in view["rooms"]]
    first = rooms[0]
    x, y = next((cell["x"], cell["y"]) for cell in first["cells"] if cell["component"] == "empty")
    for cell in first["cells"]:
        if (cell["x"], cell["y"]) == (x, y):
            cell["component"] = "invalid"  # a column the designer found on site
    since = latest_timestamp(layout_events(GraphQL(dagster_dev.url), "editor-school"))
    answer = requests.post(
        f"{editor.url}/api/submit",
        data=json.dumps({"building": {"building_id": "editor-school", "rooms": rooms}}),
        headers={"content-type": "application/json"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["submitted"] == "editor-school"
    layout = wait_for_layout(
        dagster_dev.url, "editor-school", answer.json()["input_sha256"], since, 300
    )
    relaid = parse_document(layout, "layout")
    assert relaid.rooms[0].cells[y, x] == CODE["invalid"]
    assert all(document["compliance"]["compliant"] for document in relaid.room_documents)

    unknown = subprocess.run(
        [str(CEILGRID), "editor", "--url", dagster_dev.url, "--building", "never-submitted"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 3
    assert unknown.stderr.count("\n") == 1 and "no layout of building never-submitted" in (
        unknown.stderr
    )
