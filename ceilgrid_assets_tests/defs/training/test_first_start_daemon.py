"""A first start under the real daemon: one small training, in order, tagged, promoted,
then used by serving.

``dagster dev`` (webserver and daemon) runs against its own Postgres database with
CEILGRID_FIRST_START_TRAINING=1, as ``make dev`` does; the corpus is kept tiny.
"""

from __future__ import annotations

import shutil
import time

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
#: Automation ticks every 5 s here instead of 30 s: the chain has five steps.
INTERVAL_S = 5
EXAMPLES = PROJECT_ROOT / "ceilgrid_assets" / "examples"
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
ORDER = [
    ["served_rooms"],
    ["room_corpus"],
    ["optimiser_labels"],
    ["training_features"],
    [f"{component}_model" for component in DEVICE_COMPONENTS],
    ["model_evaluation"],
    ["promoted_models"],
]


def test_first_start_trains_in_order_promotes_v0001_and_serving_uses_it(
    postgres_server, _dagster_schema_template, tmp_path, monkeypatch
):
    database = "first_start"
    create_database(postgres_server, database, template=_dagster_schema_template)
    home = tmp_path / "ceilgrid"
    dagster_home = home / "dagster_home"
    prepare_dagster_home(PROJECT_ROOT, dagster_home)
    env = {
        **instance_env(postgres_server, home, dagster_home),
        "DAGSTER_POSTGRES_DB": database,
        "CEILGRID_FIRST_START_TRAINING": "1",
        "CEILGRID_FIRST_START_ROOMS": "8",
        "CEILGRID_AUTOMATION_INTERVAL_S": str(INTERVAL_S),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CEILGRID_MODEL_STORE", raising=False)
    port = free_port()
    started, started_wall = time.monotonic(), time.time()
    process = start_dagster_dev(PROJECT_ROOT, env, port, tmp_path / "dagster-dev.log")
    try:
        wait_for_webserver(f"http://127.0.0.1:{port}", process)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            while registry.current(home / "model-store") is None:
                assert time.monotonic() - started < TIMEOUT_S, "no promotion in time"
                failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
                assert not failed, f"run {failed[0].run_id} failed"
                time.sleep(5)
            seconds = time.monotonic() - started
            # Past three more automation ticks: nothing further is requested.
            time.sleep(3 * INTERVAL_S)
            while instance.get_runs(dg.RunsFilter(statuses=UNFINISHED)):
                assert time.monotonic() - started < TIMEOUT_S, "runs still going"
                time.sleep(5)
            events = {
                name: instance.fetch_materializations(dg.AssetKey(name), limit=10).records
                for step in ORDER
                for name in step
            }
            runs = instance.get_runs()
            instance_stats = {run.run_id: instance.get_run_stats(run.run_id) for run in runs}
            # Serving picks the promoted version up: a building dropped in now records it.
            (home / "inbox").mkdir(parents=True, exist_ok=True)
            shutil.copy(EXAMPLES / "office-floor.json", home / "inbox" / "office-floor.json")
            layout = None
            while layout is None:
                assert time.monotonic() - started < TIMEOUT_S + 300, "no layout in time"
                time.sleep(5)
                layout = instance.get_latest_materialization_event(dg.AssetKey("completed_layout"))
    finally:
        stop(process)
    print(f"first start: models promoted {seconds:.0f} s after dagster dev started")
    for run in sorted(runs, key=lambda run: run.run_id):
        stats = instance_stats.get(run.run_id)
        if stats is not None and stats.start_time and stats.end_time:
            print(
                f"  {run.job_name} {run.tags.get('dagster/partition', '')}: "
                f"{stats.start_time - started_wall:.0f}-{stats.end_time - started_wall:.0f} s"
            )
    # Each asset (each shard) exactly once; each step after every one of the step before.
    assert {record.partition_key for record in events["optimiser_labels"]} == set(
        label_shard_partitions.get_partition_keys()
    )
    for name, found in events.items():
        expected = label_shard_partitions.get_num_partitions() if name == "optimiser_labels" else 1
        assert len(found) == expected, name
    for before, after in zip(ORDER, ORDER[1:], strict=False):
        last = max(record.storage_id for name in before for record in events[name])
        first = min(record.storage_id for name in after for record in events[name])
        assert last < first, (before, after)
    # Six runs (the corpus, a run per shard, one for the rest), all training runs in
    # dagster.yaml's sense, all successful.
    assert len(runs) == 2 + label_shard_partitions.get_num_partitions()
    assert all(run.tags.get("ceilgrid/workload") == "training" for run in runs)
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    assert registry.current(home / "model-store").id == "v0001"
    metadata = layout.asset_materialization.metadata
    assert metadata["model_version"].value == "v0001"
    assert metadata["learned_models"].value == len(DEVICE_COMPONENTS)
