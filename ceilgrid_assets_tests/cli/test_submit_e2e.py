"""End to end: `dagster dev` on Postgres, buildings in through GraphQL and the inbox."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import EXAMPLES_DIR

from ceilgrid_assets.core.engine.io import parse_document, read_document
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import check_layout

CEILGRID = Path(sys.executable).with_name("ceilgrid")

pytestmark = pytest.mark.slow


def building(building_id: str, tmp_path: Path) -> Path:
    document = json.loads((EXAMPLES_DIR / "school-wing.json").read_bytes())
    document["building_id"] = building_id
    path = tmp_path / f"{building_id}.json"
    path.write_text(json.dumps(document))
    return path


def assert_valid_layout(input_path: Path, layout: bytes) -> None:
    """Every room of the input present, compliant by the rulebook, placement kept."""
    original = {room.grid_id: room for room in read_document(input_path).rooms}
    completed = parse_document(layout, "layout")
    assert sorted(room.grid_id for room in completed.rooms) == sorted(original)
    for room, document in zip(completed.rooms, completed.room_documents, strict=True):
        assert check_layout(room, get_profile("nfpa72"), original[room.grid_id]) == []
        assert document["compliance"]["compliant"] is True


def submit(dagster_dev, source: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CEILGRID), "submit", str(source), "--url", dagster_dev.url, *flags],
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_submit_wait_returns_the_validated_layout(dagster_dev, tmp_path):
    """--wait: a run of its own (no wait for the sensor's tick); again: nothing new."""
    source = building("e2e-school", tmp_path)
    output = tmp_path / "out" / "layout.json"
    started = time.monotonic()
    result = submit(dagster_dev, source, "--wait", "-o", str(output), "--timeout", "300")
    assert result.returncode == 0, result.stderr
    assert "launched run " in result.stderr
    assert "3/3 rooms compliant" in result.stderr
    assert time.monotonic() - started < 120
    assert_valid_layout(source, output.read_bytes())
    stored = dagster_dev.home / "storage" / "buildings" / "e2e-school" / "layout.json"
    assert output.read_bytes() == stored.read_bytes()  # the same bytes came through the API
    again = submit(dagster_dev, source, "--wait", "-o", str(tmp_path / "again.json"))
    assert again.returncode == 0, again.stderr
    assert "laid out from this document before" in again.stderr
    assert "launched run " not in again.stderr
    assert (tmp_path / "again.json").read_bytes() == output.read_bytes()


def test_submit_batch_wait_joins_the_sensors_batch(dagster_dev, tmp_path):
    """--batch --wait: the submission event, staged and laid out by the inbox sensor."""
    source = building("e2e-batched", tmp_path)
    output = tmp_path / "batched.json"
    result = submit(dagster_dev, source, "--batch", "--wait", "-o", str(output), "--timeout", "300")
    assert result.returncode == 0, result.stderr
    assert "submitted building e2e-batched" in result.stderr
    assert_valid_layout(source, output.read_bytes())
    assert submit(dagster_dev, source, "--batch", "--run").returncode == 2  # one or the other


def test_submit_run_launches_its_own_run_through_graphql(dagster_dev, tmp_path):
    """--run: addDynamicPartition and launchRun (dagster-graphql) for this building alone."""
    source = building("e2e-own-run", tmp_path)
    output = tmp_path / "own-run.json"
    result = subprocess.run(
        [
            str(CEILGRID),
            "submit",
            str(source),
            "--url",
            dagster_dev.url,
            "--run",
            "--wait",
            "-o",
            str(output),
            "--timeout",
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr
    assert "launched run " in result.stderr
    assert_valid_layout(source, output.read_bytes())


def test_submit_rejects_bad_input_before_contacting_the_server(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"building_id": "b", "rooms": [{"grid_id": "r", "width": 0}]}')
    result = subprocess.run(
        [str(CEILGRID), "submit", str(bad), "--url", "http://127.0.0.1:9", "--wait"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 2  # the room, then the file
    assert "Traceback" not in result.stderr


def test_inbox_file_is_laid_out_by_the_daemon(dagster_dev, tmp_path):
    inbox = dagster_dev.home / "inbox"
    inbox.mkdir(exist_ok=True)
    source = building("e2e-inbox", tmp_path)
    (inbox / "e2e-inbox.json").write_bytes(source.read_bytes())
    (inbox / "garbage.json").write_bytes(b"\x00\xff not json")
    layout = dagster_dev.home / "storage" / "buildings" / "e2e-inbox" / "layout.json"
    reason = dagster_dev.home / "quarantine" / "garbage.json.error.txt"
    deadline = time.monotonic() + 180
    while not (layout.exists() and reason.exists()) and time.monotonic() < deadline:
        time.sleep(1)
    assert layout.exists(), (dagster_dev.home / "dagster-dev.log").read_text()[-3000:]
    assert_valid_layout(source, layout.read_bytes())
    assert "UTF-8" in reason.read_text()
    assert not list(inbox.iterdir())
