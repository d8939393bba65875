"""The training chain under the real daemon: a first start (one small training, in
order, tagged, promoted, then used by serving), then a night the schedule starts.

``dagster dev`` (webserver and daemon) runs against its own Postgres database with
CEILGRID_FIRST_START_TRAINING=1, as ``make dev`` does; corpora are kept tiny, and for
the night the retraining cron is set to a minute just ahead (CEILGRID_RETRAINING_CRON).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from helpers import PROJECT_ROOT

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.learning import registry
from ceilgrid_assets.defs.training.partitions import label_shard_partitions
from ceilgrid_assets.dev.postgres import create_database, free_port
from ceilgrid_assets.dev.server import (
    instance_env,
    prepare_dagster_home,
    start_dagster_dev,
    stop,
    wait_for_webserver,
)

pytestmark = pytest.mark.slow

TIMEOUT_S = 900
#: The night's tick is set at least this far after its ``dagster dev`` starts, so that
#: the daemon is up before it (it does not run a tick that passed before it started).
TICK_LEAD_S = 75
NIGHTLY_ROOMS = 8
#: Automation ticks every 5 s here instead of 30 s: the chain has five steps.
INTERVAL_S = 5
EXAMPLES = PROJECT_ROOT / "ceilgrid_assets" / "examples"
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
TRAINING_ASSETS_IN_ORDER = [
    ["served_rooms"],
    ["room_corpus"],
    ["optimiser_labels"],
    ["training_features"],
    [f"{component}_model" for component in DEVICE_COMPONENTS],
    ["model_evaluation"],
    ["promoted_models"],
]


@contextlib.contextmanager
def running_dagster_dev(
    env: dict[str, str], dagster_home: Path, log_path: Path
) -> Iterator[dg.DagsterInstance]:
    """``dagster dev`` on a free port until the block ends, with the instance it writes to."""
    prepare_dagster_home(PROJECT_ROOT, dagster_home)
    port = free_port()
    process = start_dagster_dev(PROJECT_ROOT, env, port, log_path)
    try:
        wait_for_webserver(f"http://127.0.0.1:{port}", process)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            yield instance
    finally:
        stop(process)


def drop_building_and_wait(
    home: Path, instance: dg.DagsterInstance, deadline: float, name: str = "office-floor.json"
) -> dg.EventLogRecord:
    """Drop an example building into the inbox; its ``completed_layout`` materialization,
    once its run (the report follows the layout) has finished."""

    def latest() -> dg.EventLogRecord | None:
        records = instance.fetch_materializations(dg.AssetKey("completed_layout"), limit=1)
        return records.records[0] if records.records else None

    seen = latest()
    (home / "inbox").mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / name, home / "inbox" / name)
    while True:
        assert time.monotonic() < deadline, "no layout in time"
        time.sleep(5)
        layout = latest()
        if layout is not None and (seen is None or layout.storage_id != seen.storage_id):
            break
    while instance.get_runs(dg.RunsFilter(statuses=UNFINISHED)):
        assert time.monotonic() < deadline, "layout run still going"
        time.sleep(1)
    return layout


def training_events(instance: dg.DagsterInstance) -> dict[str, list[dg.EventLogRecord]]:
    return {
        name: instance.fetch_materializations(dg.AssetKey(name), limit=20).records
        for step in TRAINING_ASSETS_IN_ORDER
        for name in step
    }


def assert_once_each_in_order(events: dict[str, list[dg.EventLogRecord]]) -> None:
    """Each asset (each shard) exactly once; each step after every one of the step before."""
    assert {record.partition_key for record in events["optimiser_labels"]} == set(
        label_shard_partitions.get_partition_keys()
    )
    for name, found in events.items():
        expected = label_shard_partitions.get_num_partitions() if name == "optimiser_labels" else 1
        assert len(found) == expected, name
    steps = TRAINING_ASSETS_IN_ORDER
    for before, after in zip(steps, steps[1:], strict=False):
        last = max(record.storage_id for name in before for record in events[name])
        first = min(record.storage_id for name in after for record in events[name])
        assert last < first, (before, after)


def wait_until_settled(instance: dg.DagsterInstance, deadline: float) -> None:
    """Past three more automation ticks, and until no run is queued or going."""
    time.sleep(3 * INTERVAL_S)
    while instance.get_runs(dg.RunsFilter(statuses=UNFINISHED)):
        assert time.monotonic() < deadline, "runs still going"
        time.sleep(1)


def print_runs(runs: list[dg.DagsterRun], instance: dg.DagsterInstance, since: float) -> None:
    stats_by_run = {run.run_id: instance.get_run_stats(run.run_id) for run in runs}
    for run in sorted(runs, key=lambda run: stats_by_run[run.run_id].start_time or 0):
        stats = stats_by_run[run.run_id]
        if stats.start_time and stats.end_time:
            print(
                f"  {run.job_name} {run.tags.get('dagster/partition', '')}: "
                f"{stats.start_time - since:.0f}-{stats.end_time - since:.0f} s"
            )


def next_tick(lead_s: float) -> dt.datetime:
    """The first whole minute at least ``lead_s`` from now (UTC)."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lead_s)
    return soon.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


def test_first_start_then_a_scheduled_night_train_in_order_and_serving_uses_each_version(
    postgres_server, _dagster_schema_template, tmp_path, monkeypatch
):
    database = "first_start"
    create_database(postgres_server, database, template=_dagster_schema_template)
    home = tmp_path / "ceilgrid"
    dagster_home = home / "dagster_home"
    store = home / "model-store"
    env = {
        **instance_env(postgres_server, home, dagster_home),
        "DAGSTER_POSTGRES_DB": database,
        "CEILGRID_FIRST_START_TRAINING": "1",
        "CEILGRID_FIRST_START_ROOMS": "8",
        "CEILGRID_NIGHTLY_ROOMS": str(NIGHTLY_ROOMS),
        "CEILGRID_AUTOMATION_INTERVAL_S": str(INTERVAL_S),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CEILGRID_MODEL_STORE", raising=False)
    monkeypatch.delenv("CEILGRID_RETRAINING_CRON", raising=False)

    # First start: no models, no corpus; the first-start sensor trains once.
    started, started_wall = time.monotonic(), time.time()
    with running_dagster_dev(env, dagster_home, tmp_path / "first-start.log") as instance:
        while registry.current(store) is None:
            assert time.monotonic() - started < TIMEOUT_S, "no promotion in time"
            failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
            assert not failed, f"run {failed[0].run_id} failed"
            time.sleep(5)
        seconds = time.monotonic() - started
        wait_until_settled(instance, started + TIMEOUT_S)
        first_events = training_events(instance)
        first_runs = instance.get_runs()
        print(f"first start: models promoted {seconds:.0f} s after dagster dev started")
        print_runs(first_runs, instance, started_wall)
        # Serving picks the promoted version up: a building dropped in now records it.
        layout = drop_building_and_wait(home, instance, started + TIMEOUT_S + 300)

    assert_once_each_in_order(first_events)
    # Six runs (the corpus, a run per shard, one for the rest), all training runs in
    # dagster.yaml's sense, all successful.
    assert len(first_runs) == 2 + label_shard_partitions.get_num_partitions()
    assert all(run.tags.get("ceilgrid/workload") == "training" for run in first_runs)
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in first_runs)
    assert registry.current(store).id == "v0001"
    assert layout.asset_materialization.metadata["model_version"].value == "v0001"
    assert layout.asset_materialization.metadata["learned_models"].value == len(DEVICE_COMPONENTS)

    # A night: dagster dev again (models promoted: the first-start sensor stays quiet),
    # the retraining cron set to a minute just ahead; the daemon's scheduler starts it.
    tick = next_tick(TICK_LEAD_S)
    night_env = {**env, "CEILGRID_RETRAINING_CRON": f"{tick.minute} {tick.hour} * * *"}
    monkeypatch.setenv("CEILGRID_RETRAINING_CRON", night_env["CEILGRID_RETRAINING_CRON"])
    deadline = time.monotonic() + TIMEOUT_S
    with running_dagster_dev(night_env, dagster_home, tmp_path / "night.log") as instance:
        before_tick = {
            name: {record.storage_id for record in records}
            for name, records in training_events(instance).items()
        }
        while registry.current(store).id == "v0001":
            assert time.monotonic() < deadline, "no promotion after the tick in time"
            failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
            assert not failed, f"run {failed[0].run_id} failed"
            time.sleep(5)
        wait_until_settled(instance, deadline)
        night_events = {
            name: [record for record in records if record.storage_id not in before_tick[name]]
            for name, records in training_events(instance).items()
        }
        night_runs = instance.get_runs(dg.RunsFilter(created_after=tick))
        print(f"night: tick at {tick:%H:%M:%S} UTC")
        print_runs(night_runs, instance, tick.timestamp())
        layout = drop_building_and_wait(home, instance, deadline + 300, "school-wing.json")

    assert before_tick == {
        name: {record.storage_id for record in records} for name, records in first_events.items()
    }
    assert_once_each_in_order(night_events)
    assert all(
        record.timestamp >= tick.timestamp() for found in night_events.values() for record in found
    )
    scheduled = [run for run in night_runs if run.tags.get("dagster/schedule_name")]
    assert [run.job_name for run in scheduled] == ["corpus_job"]
    assert scheduled[0].tags["dagster/schedule_name"] == "nightly_retraining"
    assert len(night_runs) == 2 + label_shard_partitions.get_num_partitions()
    assert all(run.tags.get("ceilgrid/workload") == "training" for run in night_runs)
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in night_runs)
    # The night's corpus: the schedule's synthetic rooms plus the rooms served since.
    corpus = night_events["room_corpus"][0].asset_materialization.metadata
    served_train = corpus["served_train_rooms"].value
    assert corpus["train_rooms"].value - served_train + corpus["holdout_rooms"].value == (
        NIGHTLY_ROOMS
    )
    assert served_train + corpus["served_holdout_rooms"].value > 0
    assert registry.current(store).id == "v0002"
    assert layout.asset_materialization.metadata["model_version"].value == "v0002"
