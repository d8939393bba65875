"""Hostile building ids through the live webserver's GraphQL (``dagster dev`` on Postgres).

Both API paths of docs/platform.md: ``reportRunlessAssetEvents`` (the inbox
sensor refuses the submission and leaves its reason in the quarantine) and
``addDynamicPartition`` + ``launchRun`` (the asset re-checks its partition key
and the run fails on one line, not retried). Nothing is written outside the
storage root.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient
from helpers import EXAMPLES_DIR

from ceilgrid_assets.cli.submit import GraphQL, ServerError, launch_run, step_failure, submit

pytestmark = pytest.mark.slow


def document(building_id: str) -> str:
    data = json.loads((EXAMPLES_DIR / "office-floor.json").read_bytes())
    data["building_id"] = building_id
    data["rooms"] = data["rooms"][:1]
    return json.dumps(data)


def wait_for(predicate, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen in {timeout_s} s: {log.read_text()[-3000:]}")
        time.sleep(1)


def test_hostile_ids_through_report_runless_asset_events(dagster_dev, tmp_path):
    tag = uuid.uuid4().hex[:8]
    outside = dagster_dev.home / f"outside-{tag}"
    keys = [
        f"../../../outside-{tag}/rel",  # from storage/buildings to the home's parent
        f"../outside-{tag}",
        str(outside / "abs"),
        f"CON-{tag}"[:3],  # CON
        "\u2024\u2024",
    ]
    quarantine = dagster_dev.home / "quarantine"
    before = set(quarantine.glob("api-submission-*.error.txt")) if quarantine.is_dir() else set()
    for key in keys:
        submit(dagster_dev.url, document(key), key)
    # A safe document reported under a traversal key: the key is refused, not used.
    submit(dagster_dev.url, document(f"fine-{tag}"), f"../../../outside-{tag}/k")

    def refused() -> set[Path]:
        return set(quarantine.glob("api-submission-*.error.txt")) - before

    log = dagster_dev.home / "dagster-dev.log"
    wait_for(lambda: len(refused()) >= len(keys) + 1, 120, "quarantine reasons", log)
    texts = [path.read_text() for path in refused()]
    assert all(text.count("\n") == 1 for text in texts)
    assert sum("reported under another partition key" in text for text in texts) == 1
    assert not outside.exists() and not (dagster_dev.home.parent / f"outside-{tag}").exists()
    assert not (dagster_dev.home / "storage" / f"outside-{tag}").exists()


def test_hostile_partition_added_through_graphql_fails_its_run(dagster_dev):
    tag = uuid.uuid4().hex[:8]
    key = f"../../../outside-{tag}/rel"
    try:
        run_id = launch_run(dagster_dev.url, document("x"), key)
    except ServerError as refused:  # refusing the partition outright would do as well
        assert "partition" in str(refused)
        return
    client = DagsterGraphQLClient("127.0.0.1", port_number=int(dagster_dev.url.rsplit(":", 1)[1]))
    log = dagster_dev.home / "dagster-dev.log"
    wait_for(
        lambda: client.get_run_status(run_id).value in ("FAILURE", "SUCCESS", "CANCELED"),
        180,
        f"run {run_id} finishing",
        log,
    )
    assert client.get_run_status(run_id).value == "FAILURE"
    message = step_failure(GraphQL(dagster_dev.url), run_id)
    assert message is not None and f"partition key {key!r}" in message
    assert "not a safe key" in message
    assert not (dagster_dev.home.parent / f"outside-{tag}").exists()
    assert not list(dagster_dev.home.parent.glob(f"outside-{tag}*"))
