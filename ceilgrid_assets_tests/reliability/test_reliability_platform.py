"""Faults and load against real processes: Postgres, dagster-daemon and dagster-webserver.

One deployment is shared by the module (start-up costs tens of seconds). Each
test submits its own buildings (distinct partition keys) and checks the
invariants of issue 8: every building laid out exactly once or visibly failed
and retried, the sensor cursor intact, no half-written layout file.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import badfiles
import pytest
from reliability_harness import Platform, instance_of, running_platform

from ceilgrid_assets.core.engine.io import content_hash, read_document
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import check_layout
from ceilgrid_assets.defs.serving.sensors import load_cursor

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with running_platform() as running:
        yield running


def wait_for(
    predicate: Callable[[], Any], timeout_s: float, what: str, platform: Platform | None = None
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    logs = "" if platform is None else platform.log_tail("daemon")
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{logs}")


def building_bytes(building_id: str, rooms: int = 2, size: int = 6) -> bytes:
    """Rooms of ``size`` tiles a side and up, one tile more each, so each is laid out."""
    return json.dumps(
        badfiles.building(
            building_id,
            [
                badfiles.room(f"{building_id}-r{index}", width=size + index, height=size)
                for index in range(rooms)
            ],
        )
    ).encode()


def layout_materializations(instance, key: str) -> int:
    return len(layout_runs(instance, key))


def runs_of(instance, key: str) -> list:
    """Every run that covered partition ``key`` (single-partition or in a batch range)."""
    runs = []
    for run in instance.get_runs():
        tags = run.tags
        if tags.get("dagster/partition") == key:
            runs.append(run)
        elif "dagster/asset_partition_range_start" in tags:
            keys = instance.get_dynamic_partitions("buildings")
            start = keys.index(tags["dagster/asset_partition_range_start"])
            end = keys.index(tags["dagster/asset_partition_range_end"])
            if key in keys[start : end + 1]:
                runs.append(run)
    return runs


def assert_laid_out_once(platform: Platform, instance, key: str, building: bytes) -> None:
    """One layout materialization, a complete valid file, no temporary left beside it."""
    assert layout_materializations(instance, key) == 1, key
    layout = platform.layout_path(key)
    parsed = read_document(layout)
    expected = json.loads(building)
    assert [room.grid_id for room in parsed.rooms] == [
        room["grid_id"] for room in expected["rooms"]
    ]
    for room in parsed.rooms:
        assert check_layout(room, get_profile("nfpa72")) == [], (key, room.grid_id)
    assert (
        sorted(path.name for path in layout.parent.iterdir() if path.name.startswith(".")) == []
    ), key


def inbox_cursor(instance) -> dict[str, str]:
    from dagster._core.scheduler.instigation import InstigatorType

    [state] = [
        state
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        if state.name == "inbox_sensor"
    ]
    return load_cursor(state.instigator_data.cursor)


def worker_pid(instance, run_id: str) -> int | None:
    """The run's worker: the process the launcher forked for it (its run tag)."""
    from ceilgrid_assets.dev.launcher import PID_TAG

    pid = instance.get_run_by_id(run_id).tags.get(PID_TAG)
    return int(pid) if pid else None


def run_status(instance, run_id: str) -> str:
    return instance.get_run_by_id(run_id).status.value


# ------------------------------------------------------------------ bad input, live


def test_live_inbox_quarantines_bad_files_and_lays_out_the_good(platform: Platform) -> None:
    """Through the running daemon: reasons on disk, good buildings laid out, no failed tick."""
    bad = [
        bad
        for bad in badfiles.file_defects()
        if bad.name
        in (
            "truncated.json",
            "garbage.bin.json",
            "over-200mb-by-far.json",
            "room-width-1e9.json",
            "deep-nesting.json",
            "room-unknown-component.json",
        )
    ]
    for entry in bad:
        entry.write(platform.inbox)
    (platform.inbox / "loop-a.json").symlink_to("loop-b.json")
    (platform.inbox / "loop-b.json").symlink_to("loop-a.json")
    good = {f"live-{index}": building_bytes(f"live-{index}") for index in range(3)}
    for key, data in good.items():
        (platform.inbox / f"{key}.json").write_bytes(data)
    document, good_rooms, expected = badfiles.mixed_building()
    document["building_id"] = "live-mixed"
    (platform.inbox / "live-mixed.json").write_text(json.dumps(document))

    names = [entry.name for entry in bad] + ["loop-a.json"]
    wait_for(
        lambda: all((platform.quarantine / f"{name}.error.txt").exists() for name in names),
        240,
        "quarantine reasons",
        platform,
    )
    for entry in bad:
        reason = (platform.quarantine / f"{entry.name}.error.txt").read_text()
        assert reason.count("\n") == 1 and all(word in reason for word in entry.words), reason
    # Once loop-a is quarantined, loop-b dangles: not a file, so it is left alone.
    assert "symbolic links" in (platform.quarantine / "loop-a.json.error.txt").read_text()

    with instance_of(platform) as instance:
        keys = [*good, "live-mixed"]
        wait_for(
            lambda: all(layout_materializations(instance, key) for key in keys),
            480,
            "layouts of the good inbox buildings",
            platform,
        )
        for key, data in good.items():
            assert_laid_out_once(platform, instance, key, data)
        mixed = json.loads(platform.layout_path("live-mixed").read_text())
        assert [room["grid_id"] for room in mixed["rooms"]] == good_rooms
        assert len(mixed["rejected_rooms"]) == len(expected)
        cursor = inbox_cursor(instance)
        for key, data in good.items():
            assert cursor[content_hash(data)] == key
    assert [path.name for path in platform.inbox.iterdir()] == ["loop-b.json"]
    (platform.inbox / "loop-b.json").unlink()


# ------------------------------------------------------------------ faults


def launch_and_wait_for_start(platform: Platform, instance: Any, key: str) -> tuple[bytes, str]:
    """Launch a building big enough to be caught mid-run; its bytes and run id once started.

    Takes an open instance so that a fault can follow the start without delay.
    """
    data = building_bytes(key, rooms=6, size=30)
    run_id = platform.launch(key, data)
    wait_for(
        lambda: run_status(instance, run_id) in {"STARTED", *TERMINAL},
        300,
        "the run to start",
        platform,
    )
    return data, run_id


def layout_runs(instance, key: str) -> list[str]:
    """Ids of the runs that materialized ``key``'s layout."""
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("completed_layout"), asset_partitions=[key]),
        limit=100,
    ).records
    return [record.run_id for record in records]


#: Buildings tried until a kill lands before the run's layout step has finished.
KILL_ATTEMPTS = 3


def test_run_worker_killed_mid_run_is_failed_and_retried(platform: Platform) -> None:
    # The worker is found and killed a second or two after the run starts; on a fast
    # machine the layout may be written by then, and the kill no longer tests a
    # crash mid-run: that attempt is set aside and another building tried.
    with instance_of(platform) as instance:
        for attempt in range(KILL_ATTEMPTS):
            key = f"killed-worker-{attempt}"
            data, run_id = launch_and_wait_for_start(platform, instance, key)
            assert run_status(instance, run_id) == "STARTED", "finished before it could be killed"
            pid = wait_for(lambda run_id=run_id: worker_pid(instance, run_id), 30, "the run worker")
            os.kill(pid, signal.SIGKILL)
            wait_for(
                lambda run_id=run_id: run_status(instance, run_id) in TERMINAL,
                120,
                "the killed run to end",
            )
            assert run_status(instance, run_id) == "FAILURE"
            if run_id not in layout_runs(instance, key):
                break
        else:
            pytest.fail(f"every kill of {KILL_ATTEMPTS} came after the layout was written")
        retry = wait_for(
            lambda: [
                run
                for run in instance.get_runs()
                if run.tags.get("dagster/parent_run_id") == run_id
            ],
            120,
            "a retry of the killed run",
            platform,
        )[0]
        wait_for(lambda: run_status(instance, retry.run_id) in TERMINAL, 300, "the retry")
        assert run_status(instance, retry.run_id) == "SUCCESS"
        assert layout_runs(instance, key) == [retry.run_id]
        assert_laid_out_once(platform, instance, key, data)


def test_postgres_stopped_mid_run_and_brought_back(platform: Platform) -> None:
    """A query cut off by the shutdown fails its step; the serving job's runs retry that."""
    with instance_of(platform) as instance:
        data, _ = launch_and_wait_for_start(platform, instance, "pg-outage")
    platform.postgres.stop()
    time.sleep(10)
    platform.restart_postgres()
    with instance_of(platform) as instance:

        def settled() -> bool:
            runs = runs_of(instance, "pg-outage")
            return any(run.status.value == "SUCCESS" for run in runs) or (
                runs and all(run.status.value in TERMINAL for run in runs) and len(runs) > 2
            )  # retries exhausted: a visible failure

        wait_for(settled, 420, "the building to be laid out or visibly failed", platform)
        runs = runs_of(instance, "pg-outage")
        statuses = sorted(run.status.value for run in runs)
        assert "SUCCESS" in statuses, statuses
        for run in runs:  # a run the outage failed is visible and was retried
            if run.status.value == "FAILURE":
                assert any(
                    child.tags.get("dagster/parent_run_id") == run.run_id for child in runs
                ), f"run {run.run_id} failed and was not retried"
        # Whatever happened during the outage, the result is one complete layout.
        assert_laid_out_once(platform, instance, "pg-outage", data)
    # The webserver and daemon survived the outage: a new submission works (the
    # harness retries requests that meet a connection that died with the old server).
    run_id = platform.launch("after-outage", building_bytes("after-outage", rooms=1))
    with instance_of(platform) as instance:
        wait_for(
            lambda: run_status(instance, run_id) in TERMINAL,
            300,
            "a run after the outage",
            platform,
        )
        assert run_status(instance, run_id) == "SUCCESS"


def test_daemon_killed_and_restarted_while_the_inbox_holds_files(platform: Platform) -> None:
    """The daemon dies twice: with files waiting, then while their runs are in flight."""
    platform.stop("daemon", signal.SIGKILL)
    buildings = {
        f"restart-{index:02d}": building_bytes(f"restart-{index:02d}", rooms=1)
        for index in range(12)
    }
    for key, data in buildings.items():
        (platform.inbox / f"{key}.json").write_bytes(data)
    platform.start("daemon")
    with instance_of(platform) as instance:
        wait_for(
            lambda: any(runs_of(instance, key) for key in buildings),
            300,
            "the first inbox runs",
            platform,
        )
        platform.processes["daemon"].kill()  # the daemon alone: its code server is orphaned
        time.sleep(5)
        platform.stop("daemon", signal.SIGKILL)  # and the rest of its process group
        platform.start("daemon")
        wait_for(
            lambda: all(layout_materializations(instance, key) for key in buildings),
            600,
            "every inbox building laid out after the restarts",
            platform,
        )
        for key, data in buildings.items():
            assert_laid_out_once(platform, instance, key, data)
        cursor = inbox_cursor(instance)
        assert {
            content_hash(data): key for key, data in buildings.items()
        }.items() <= cursor.items()
        # Runs cut off by the kill are visible failures, each followed by a successful retry.
        for key in buildings:
            failed = [run for run in runs_of(instance, key) if run.status.value == "FAILURE"]
            for run in failed:
                retried = [
                    child
                    for child in instance.get_runs()
                    if child.tags.get("dagster/parent_run_id") == run.run_id
                ]
                assert retried, f"run {run.run_id} of {key} failed and was not retried"
    assert not any(platform.inbox.iterdir())
    assert not any((platform.storage / "incoming").glob("*.json"))


# ------------------------------------------------------------------ idempotency


def test_rematerializing_a_partition_gives_byte_identical_layout(platform: Platform) -> None:
    data = building_bytes("idempotent", rooms=3, size=12)
    first = platform.launch("idempotent", data)
    with instance_of(platform) as instance:
        wait_for(lambda: run_status(instance, first) in TERMINAL, 300, "the first run", platform)
        assert run_status(instance, first) == "SUCCESS"
        before = platform.layout_path("idempotent").read_bytes()
        second = platform.launch("idempotent", data)
        wait_for(lambda: run_status(instance, second) in TERMINAL, 300, "the second run", platform)
        assert run_status(instance, second) == "SUCCESS"
    assert platform.layout_path("idempotent").read_bytes() == before


# ------------------------------------------------------------------ load, scaled down


def test_graphql_burst_and_inbox_flood_each_laid_out_exactly_once(platform: Platform) -> None:
    """8 concurrent API submissions and 24 inbox files: none lost, none twice, batched.

    Twice as many submissions as ``max_concurrent_runs`` (4), so the run queue holds
    some back; ``scripts/load_test.py`` measures the throughput at full size.
    """
    from concurrent.futures import ThreadPoolExecutor

    via_graphql = {
        f"load-gql-{index:03d}": building_bytes(f"load-gql-{index:03d}", rooms=1)
        for index in range(8)
    }
    via_inbox = {
        f"load-inbox-{index:03d}": building_bytes(f"load-inbox-{index:03d}", rooms=1)
        for index in range(24)
    }
    started = time.monotonic()
    for key, data in via_inbox.items():
        (platform.inbox / f"{key}.json").write_bytes(data)
    with ThreadPoolExecutor(len(via_graphql)) as pool:
        list(pool.map(lambda item: platform.submit(*item), via_graphql.items()))
    everything = {**via_graphql, **via_inbox}
    max_in_progress = 0
    with instance_of(platform) as instance:
        from dagster import DagsterRunStatus, RunsFilter

        def all_done() -> bool:
            nonlocal max_in_progress
            in_progress = instance.get_runs_count(
                RunsFilter(statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])
            )
            max_in_progress = max(max_in_progress, in_progress)
            return all(platform.layout_path(key).exists() for key in everything) and all(
                layout_materializations(instance, key) for key in everything
            )

        wait_for(all_done, 780, "every building of the burst", platform)
        elapsed = time.monotonic() - started
        for key, data in everything.items():
            assert_laid_out_once(platform, instance, key, data)
        assert max_in_progress <= 4, max_in_progress  # dagster.yaml's max_concurrent_runs
    print(
        f"\n{len(everything)} buildings in {elapsed:.0f} s: "
        f"{len(everything) / elapsed * 60:.1f} buildings/minute"
    )
