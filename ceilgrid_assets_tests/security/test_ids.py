"""Building ids never become paths unchecked: a traversal corpus through every entry point.

The entry points: the contract function itself, the storage resource, the real
inbox sensor (dropped files and API submissions recorded in a Postgres event
log), the asset run with a partition added by hand (the launchpad path),
``ceilgrid submit``, and, in ``test_ids_platform.py``, the live webserver's
GraphQL. After each, nothing exists outside the storage root, the inbox and
the quarantine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from helpers import EXAMPLES_DIR, inbox_tick

from ceilgrid_assets.contract import MAX_BUILDING_ID, MAX_SUBMISSION_BYTES, building_partition_key
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.storage import LocalBlobs
from ceilgrid_assets.defs.resources import LayoutStorage, build_resources
from ceilgrid_assets.defs.serving.layouts import completed_layout
from ceilgrid_assets.defs.serving.partitions import BUILDINGS
from ceilgrid_assets.defs.serving.reports import building_report
from ceilgrid_assets.defs.serving.sensors import (
    InboxTick,
    Submission,
    _stage_submissions,
)
from ceilgrid_assets.defs.serving.submissions import submitted_building

CEILGRID = str(Path(sys.executable).with_name("ceilgrid"))

#: Relative traversals are written so that, joined under ``<home>/storage/buildings``
#: or ``<home>/storage/incoming``, they would land in ``<tmp>/outside``.
TRAVERSAL_CORPUS = [
    "..",
    ".",
    "../../../outside/rel",
    "../../../../../../../../tmp/ceilgrid-escape/rel",
    "../name",
    "a/../../../../outside/b",
    "a\\..\\..\\outside",
    "bad\x00byte",
    "\u2024\u2024",  # one dot leader, twice: looks like ".."
    "\u2025",  # two dot leader
    "\uff0e\uff0e",  # fullwidth full stops
    "x" * (MAX_BUILDING_ID + 1),
    "y" * 5000,
    "CON",
    "nul",
    "aux.json",
    "COM1",
    "lpt9.txt",
    ".hidden",
    "trailing.",
    " lead",
    "new\nline",
    "tab\tid",
    "\u00e9cole",  # not ASCII: NFC and NFD spellings would be two keys for one name
]


def absolute_ids(outside: Path) -> list[str]:
    return [str(outside / "abs"), "/etc/ceilgrid-escape", "C:\\Windows\\x", "//server/share/x"]


def document(building_id: str | None) -> bytes:
    data = json.loads((EXAMPLES_DIR / "office-floor.json").read_bytes())
    data["rooms"] = data["rooms"][:1]
    if building_id is None:
        del data["building_id"]
    else:
        data["building_id"] = building_id
    return json.dumps(data).encode()


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file() or path.is_symlink()}


def assert_nothing_outside(tmp_path: Path, home: Path) -> None:
    """Every file the test's area holds is in the inbox, the quarantine or the storage root."""
    allowed = [home / "inbox", home / "quarantine", home / "storage"]
    strays = [
        path
        for path in files_under(tmp_path)
        if not any(path.is_relative_to(folder) for folder in allowed)
        and not path.is_relative_to(tmp_path / "dagster_home")
        and path.name not in ("room.json",)
    ]
    assert strays == []
    assert not (tmp_path / "outside").exists()
    assert not Path("/tmp/ceilgrid-escape").exists()
    assert not Path("/etc/ceilgrid-escape").exists()


@pytest.mark.parametrize("building_id", TRAVERSAL_CORPUS + absolute_ids(Path("/tmp/outside")))
def test_contract_refuses_every_id_it_cannot_keep_as_is(building_id):
    with pytest.raises(InputError) as refused:
        building_partition_key(building_id, "drop.json")
    message = str(refused.value)
    assert message.startswith("drop.json: field 'building_id': ") and "\n" not in message


@pytest.mark.parametrize("building_id", ["tower-7", "Tower_7.v2", "a" * MAX_BUILDING_ID, "0"])
def test_safe_ids_are_their_own_keys(building_id):
    assert building_partition_key(building_id) == building_id


def test_storage_refuses_bad_keys_and_symlinks_out_of_the_root(tmp_path):
    storage = LayoutStorage(root=str(tmp_path / "storage"))
    for key in TRAVERSAL_CORPUS + absolute_ids(tmp_path / "outside"):
        for where in (storage.incoming_key, storage.input_key, storage.layout_key):
            with pytest.raises(ValueError):
                where(key)
        # The backend checks the object key again, whoever built it.
        if key.startswith(".") or any(c in key for c in "/\\\x00 \n\t") or not key.isascii():
            with pytest.raises(ValueError):
                storage.blobs().put_bytes(f"buildings/{key}/layout.json", b"{}")
    local = storage.blobs()
    assert isinstance(local, LocalBlobs)
    assert local.path(storage.layout_key("tower")) == (
        tmp_path / "storage/buildings/tower/layout.json"
    )
    # A folder planted in the root as a symlink to elsewhere is refused too.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "storage" / "buildings").mkdir(parents=True)
    (tmp_path / "storage" / "buildings" / "planted").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside the storage root"):
        storage.blobs().put_bytes(storage.input_key("planted"), b"{}")
    assert not list((tmp_path / "elsewhere").iterdir())


def drop(inbox: Path, name: str, data: bytes) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_bytes(data)
    old = time.time() - 10
    os.utime(inbox / name, (old, old))


def test_inbox_quarantines_every_bad_id_and_writes_nothing_outside(
    postgres_instance, ceilgrid_home, tmp_path
):
    corpus = TRAVERSAL_CORPUS + absolute_ids(tmp_path / "outside")
    for index, building_id in enumerate(corpus):
        drop(ceilgrid_home / "inbox", f"evil-{index:02d}.json", document(building_id))
    # No building_id: the file name is the id, and a reserved name is refused too.
    drop(ceilgrid_home / "inbox", "con.json", document(None))
    drop(ceilgrid_home / "inbox", "good.json", document("good"))
    result = inbox_tick(postgres_instance, None)
    assert postgres_instance.get_dynamic_partitions(BUILDINGS) == ["good"]
    assert [request.partition_key for request in result.run_requests] == ["good"]
    quarantine = ceilgrid_home / "quarantine"
    for index in range(len(corpus)):
        reason = (quarantine / f"evil-{index:02d}.json.error.txt").read_text()
        assert reason.count("\n") == 1 and "field 'building_id'" in reason
    assert "Windows reserves" in (quarantine / "con.json.error.txt").read_text()
    assert not list((ceilgrid_home / "inbox").iterdir())
    assert_nothing_outside(tmp_path, ceilgrid_home)


def test_case_collision_is_quarantined(postgres_instance, ceilgrid_home, tmp_path):
    drop(ceilgrid_home / "inbox", "first.json", document("Tower"))
    cursor = inbox_tick(postgres_instance, None).cursor
    drop(ceilgrid_home / "inbox", "second.json", document("tower"))
    drop(ceilgrid_home / "inbox", "third.json", document("TOWER-b"))
    drop(ceilgrid_home / "inbox", "fourth.json", document("tower-B"))
    inbox_tick(postgres_instance, cursor)
    assert postgres_instance.get_dynamic_partitions(BUILDINGS) == ["Tower", "TOWER-b"]
    for name, other in (("second", "Tower"), ("fourth", "TOWER-b")):
        reason = (ceilgrid_home / "quarantine" / f"{name}.json.error.txt").read_text()
        assert f"differs from building {other} only in letter case" in reason
    assert_nothing_outside(tmp_path, ceilgrid_home)


def report(instance: dg.DagsterInstance, partition: str, text: str) -> None:
    """What reportRunlessAssetEvents records: a materialization with the document as description."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization("building_submission", partition=partition, description=text)
    )


def test_api_submissions_with_bad_ids_or_keys_are_refused_with_reasons(
    postgres_instance, ceilgrid_home, tmp_path
):
    corpus = ["../../../outside/rel", str(tmp_path / "outside" / "abs"), "CON", "\u2024\u2024"]
    for building_id in corpus:
        report(postgres_instance, building_id, document(building_id).decode())
    # A safe document under a hostile partition key, and a hostile id under a safe key.
    report(postgres_instance, "../../../outside/k", document("fine").decode())
    report(postgres_instance, "fine2", document("../fine2").decode())
    report(postgres_instance, "ok", document("ok").decode())
    result = inbox_tick(postgres_instance, None)
    assert [request.partition_key for request in result.run_requests] == ["ok"]
    reasons = sorted((ceilgrid_home / "quarantine").glob("api-submission-*.error.txt"))
    assert len(reasons) == len(corpus) + 2
    texts = [path.read_text() for path in reasons]
    assert all(text.count("\n") == 1 for text in texts)
    assert sum("not a safe key" in text or "Windows" in text for text in texts) == len(corpus) + 1
    assert sum("reported under another partition key" in text for text in texts) == 1
    assert_nothing_outside(tmp_path, ceilgrid_home)


def test_oversize_api_submission_is_refused_and_a_burst_is_spread_over_ticks(tmp_path):
    storage = LayoutStorage(root=str(tmp_path / "storage"))
    big = b" " * (MAX_SUBMISSION_BYTES + 1 - len(document("big"))) + document("big")
    submissions = [
        Submission(1, "big", big.decode()),
        *(Submission(2 + i, f"b{i}", document(f"b{i}").decode()) for i in range(4)),
    ]
    state = InboxTick(cursor={})
    budget = 2 * len(document("b0"))  # room for two buildings per tick
    _stage_submissions(state, storage, submissions, set(), set(), max_bytes=budget)
    assert "more than the 16777216 byte limit" in state.rejected_submissions[1]
    assert list(state.accepted) == ["b0", "b1"] and state.api_after == 3
    assert not storage.blobs().exists(storage.incoming_key("big"))
    state = InboxTick(cursor={}, api_after=state.api_after)
    _stage_submissions(state, storage, submissions[3:], set(), set(), max_bytes=budget)
    assert list(state.accepted) == ["b2", "b3"] and state.api_after == 5


@pytest.mark.parametrize(
    ("key", "reason"),
    [("../../../outside/rel", "not a safe key"), ("CON", "Windows"), ("Tower", "letter case")],
)
def test_asset_rechecks_a_partition_added_by_hand(
    postgres_instance, ceilgrid_home, tmp_path, key, reason
):
    """The launchpad path: addDynamicPartition, then a run (each serving asset re-checks)."""
    postgres_instance.add_dynamic_partitions(BUILDINGS, ["tower", key])
    config = {"ops": {"submitted_building": {"config": {"document": document("x").decode()}}}}
    for asset, run_config in (
        (submitted_building, config),
        (completed_layout, None),
        (building_report, None),
    ):
        result = dg.materialize(
            [asset],
            partition_key=key,
            instance=postgres_instance,
            resources=build_resources(),
            run_config=run_config,
            raise_on_error=False,
        )
        assert not result.success
        [failure] = [event for event in result.all_events if event.is_step_failure]
        message = failure.step_failure_data.error.message
        assert f"Failure: partition key {key!r}: " in message and reason in message
        assert "\n" not in message.strip()
    assert_nothing_outside(tmp_path, ceilgrid_home)


def test_submit_refuses_a_bad_id_before_contacting_the_server(tmp_path):
    path = tmp_path / "evil.json"
    path.write_bytes(document("../../../outside/rel"))
    done = subprocess.run(
        [CEILGRID, "submit", str(path), "--url", "http://127.0.0.1:9", "--run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not a safe key" in done.stderr
    assert not (tmp_path / "outside").exists()


def test_asset_refuses_an_oversize_document_in_the_run_config(postgres_instance, ceilgrid_home):
    """The launchpad path is size-limited like the API path, whoever sends it."""
    postgres_instance.add_dynamic_partitions(BUILDINGS, ["big"])
    big = b" " * (MAX_SUBMISSION_BYTES + 1 - len(document("big"))) + document("big")
    result = dg.materialize(
        [submitted_building],
        partition_key="big",
        instance=postgres_instance,
        resources=build_resources(),
        run_config={"ops": {"submitted_building": {"config": {"document": big.decode()}}}},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert "more than the 16777216 byte limit" in failure.step_failure_data.error.message
    assert not (ceilgrid_home / "storage" / "buildings" / "big").exists()
