"""Inbox sensor (against Postgres instance storage) and the run-failure webhook sensor."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id
from helpers import EXAMPLES_DIR, inbox_tick

from ceilgrid_assets.defs.operations.alerts import run_failure_webhook
from ceilgrid_assets.defs.resources import build_resources
from ceilgrid_assets.defs.serving.partitions import BUILDINGS
from ceilgrid_assets.defs.serving.sensors import load_cursor


def drop(inbox: Path, name: str, data: bytes) -> Path:
    """A file as a user would leave it: written, then settled (mtime in the past)."""
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_bytes(data)
    old = time.time() - 10
    os.utime(path, (old, old))
    return path


def building(building_id: str) -> bytes:
    document = json.loads((EXAMPLES_DIR / "office-floor.json").read_bytes())
    document["building_id"] = building_id
    return json.dumps(document).encode()


@pytest.fixture
def folders(ceilgrid_home: Path) -> dict[str, Path]:
    return {
        "inbox": ceilgrid_home / "inbox",
        "quarantine": ceilgrid_home / "quarantine",
        "incoming": ceilgrid_home / "storage" / "incoming",
    }


def test_new_file_becomes_partition_and_run(postgres_instance, folders):
    drop(folders["inbox"], "tower.json", building("tower"))
    result = inbox_tick(postgres_instance, None)
    assert isinstance(result, dg.SensorResult)
    assert postgres_instance.get_dynamic_partitions(BUILDINGS) == ["tower"]
    [request] = result.run_requests
    assert request.partition_key == "tower"
    assert (folders["incoming"] / "tower.json").read_bytes() == building("tower")
    assert not (folders["inbox"] / "tower.json").exists()
    assert list(load_cursor(result.cursor).values()) == ["tower"]


def test_several_new_files_are_batched_into_partition_ranges(postgres_instance, folders):
    for index in range(3):
        drop(folders["inbox"], f"b{index}.json", building(f"b{index}"))
    result = inbox_tick(postgres_instance, None)
    [request] = result.run_requests
    assert request.partition_key_range == dg.PartitionKeyRange("b0", "b2")
    assert postgres_instance.get_dynamic_partitions(BUILDINGS) == ["b0", "b1", "b2"]


def test_bad_file_is_quarantined_with_one_line_reason(postgres_instance, folders):
    drop(folders["inbox"], "broken.json", b'{"building_id": "x", "rooms": [')
    drop(folders["inbox"], "good.json", building("good"))
    result = inbox_tick(postgres_instance, None)
    assert [request.partition_key for request in result.run_requests] == ["good"]
    assert (folders["quarantine"] / "broken.json").read_bytes().startswith(b'{"building_id"')
    reason = (folders["quarantine"] / "broken.json.error.txt").read_text()
    assert reason.count("\n") == 1 and "broken.json" in reason and "malformed JSON" in reason
    assert not any(folders["inbox"].iterdir())


def test_bad_room_is_reported_and_good_rooms_go_on(postgres_instance, folders):
    document = json.loads(building("mixed"))
    document["rooms"][1]["width"] = -3
    drop(folders["inbox"], "mixed.json", json.dumps(document).encode())
    result = inbox_tick(postgres_instance, None)
    assert [request.partition_key for request in result.run_requests] == ["mixed"]
    note = (folders["quarantine"] / "mixed.json.rejected-rooms.error.txt").read_text()
    assert "width" in note and note.count("\n") == 1


def test_cursor_survives_restart_and_duplicates_are_not_processed_twice(postgres_instance, folders):
    drop(folders["inbox"], "hq.json", building("hq"))
    first = inbox_tick(postgres_instance, None)
    assert len(first.run_requests) == 1
    # The daemon restarts: a new evaluation sees only the stored cursor.
    drop(folders["inbox"], "hq-copy.json", building("hq"))
    second = inbox_tick(postgres_instance, first.cursor)
    assert not second.run_requests
    reason = (folders["quarantine"] / "hq-copy.json.error.txt").read_text()
    assert "duplicate" in reason and "hq" in reason
    assert isinstance(inbox_tick(postgres_instance, second.cursor), dg.SkipReason)


def test_tick_that_died_before_committing_is_recovered_once(postgres_instance, folders):
    drop(folders["inbox"], "annex.json", building("annex"))
    lost = inbox_tick(postgres_instance, None)  # staged, but its cursor never stored
    assert lost.run_requests
    again = inbox_tick(postgres_instance, None)
    assert [request.partition_key for request in again.run_requests] == ["annex"]
    assert again.run_requests[0].run_key == lost.run_requests[0].run_key  # deduplicated
    assert isinstance(inbox_tick(postgres_instance, again.cursor), dg.SkipReason)


def test_batch_launched_by_a_tick_that_died_before_committing_is_not_launched_again(
    postgres_instance, folders
):
    """The daemon stores the cursor after submitting the tick's runs: killed in between."""
    for name in ("wing-a", "wing-b", "wing-c"):
        drop(folders["inbox"], f"{name}.json", building(name))
    lost = inbox_tick(postgres_instance, None)
    [batch] = lost.run_requests
    postgres_instance.add_run(
        dg.DagsterRun(
            job_name="layout_job",
            run_id=make_new_run_id(),
            tags={**batch.tags, "dagster/run_key": batch.run_key},
        )
    )
    drop(folders["inbox"], "wing-d.json", building("wing-d"))
    again = inbox_tick(postgres_instance, None)
    # Only the new file gets a run; the three staged ones are remembered as submitted.
    assert [request.partition_key for request in again.run_requests] == ["wing-d"]
    assert sorted(load_cursor(again.cursor).values()) == ["wing-a", "wing-b", "wing-c", "wing-d"]
    assert isinstance(inbox_tick(postgres_instance, again.cursor), dg.SkipReason)


def test_file_still_being_written_waits(postgres_instance, folders):
    folders["inbox"].mkdir(parents=True)
    (folders["inbox"] / "fresh.json").write_bytes(building("fresh"))
    assert isinstance(inbox_tick(postgres_instance, None), dg.SkipReason)
    assert (folders["inbox"] / "fresh.json").exists()


def report_submission(
    instance: dg.DagsterInstance, key: str, document: bytes, as_description: bool = False
) -> None:
    """What the webserver records for ``ceilgrid submit`` (GraphQL: the document as the
    description) or for a client of the HTTP endpoint (text metadata)."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "building_submission",
            partition=key,
            description=document.decode() if as_description else None,
            metadata={} if as_description else {"document": document.decode()},
        )
    )


def test_api_submissions_share_a_batch_with_inbox_files_exactly_once(postgres_instance, folders):
    drop(folders["inbox"], "dropped.json", building("dropped"))
    report_submission(postgres_instance, "api-a", building("api-a"))
    report_submission(postgres_instance, "api-b", building("api-b"), as_description=True)
    report_submission(postgres_instance, "api-a", building("api-a"))  # a client's retry
    report_submission(postgres_instance, "other", building("not-other"))
    first = inbox_tick(postgres_instance, None)
    [request] = first.run_requests
    assert postgres_instance.get_dynamic_partitions(BUILDINGS) == ["api-a", "api-b", "dropped"]
    assert request.partition_key_range == dg.PartitionKeyRange("api-a", "dropped")
    assert (folders["incoming"] / "api-b.json").read_bytes() == building("api-b")
    # Handled once: the retry and the mismatched key are not laid out, nothing is re-read.
    assert isinstance(inbox_tick(postgres_instance, first.cursor), dg.SkipReason)
    report_submission(postgres_instance, "api-c", building("api-c"))
    second = inbox_tick(postgres_instance, first.cursor)
    assert [request.partition_key for request in second.run_requests] == ["api-c"]


class _Recorder(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        return


def test_run_failure_posts_to_webhook(postgres_instance, ceilgrid_home, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("CEILGRID_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    try:

        @dg.op
        def explode() -> None:
            raise RuntimeError("boom")

        @dg.job
        def failing_job() -> None:
            explode()

        result = failing_job.execute_in_process(instance=postgres_instance, raise_on_error=False)
        assert not result.success
        run = postgres_instance.get_run_by_id(result.run_id)
        failure = result.get_run_failure_event()
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_webhook",
            dagster_instance=postgres_instance,
            dagster_run=run,
            dagster_event=failure,
            resources=build_resources(),
        ).for_run_failure()
        run_failure_webhook(context)
    finally:
        server.shutdown()
    [payload] = _Recorder.received
    assert result.run_id in json.dumps(payload) and "failing_job" in payload["text"]
