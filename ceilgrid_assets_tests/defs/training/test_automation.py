"""The training group's automation over simulated nights, evaluated as the sensor does.

Materializations are reported to a real Postgres instance between evaluations
(no asset code runs), so each test follows exactly what the conditions request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from helpers import PROJECT_ROOT, load_module

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.learning import registry
from ceilgrid_assets.definitions import defs
from ceilgrid_assets.defs.resources import build_resources
from ceilgrid_assets.defs.training.corpus import TRAINING
from ceilgrid_assets.defs.training.partitions import label_shard_partitions
from ceilgrid_assets.defs.training.schedules import (
    FIRST_START_ROOMS,
    first_start_training,
    training_automation,
)

k8s_offline = load_module("ceilgrid_deploy_k8s_offline", PROJECT_ROOT / "deploy/k8s/offline.py")
WORKLOAD = "ceilgrid/workload"
SHARDS = label_shard_partitions.get_partition_keys()
MODELS = [f"{component}_model" for component in DEVICE_COMPONENTS]
#: After the last shard: one run, in graph order (features, models, evaluation and its
#: blocking checks, promotion).
AFTER_SHARDS = {"training_features", *MODELS, "model_evaluation", "promoted_models"}


class Night:
    """Automation ticks against one instance, the clock set by the caller."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.cursor = None
        self.run_requests: list[dg.RunRequest] = []

    def tick(self, when: dt.datetime) -> dict[str, set[str | None]]:
        """Evaluate every training condition at ``when``: what would be requested."""
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=self.instance,
            asset_selection=dg.AssetSelection.groups(TRAINING),
            evaluation_time=when,
            cursor=self.cursor,
        )
        self.cursor = result.cursor
        # The runs the daemon makes of these requests, with the sensor's own settings.
        self.run_requests = build_run_requests(
            result._requested_subsets,
            defs.resolve_asset_graph(),
            training_automation.run_tags,
            training_automation.emit_backfills,
        )
        requested = {}
        for key in dg.AssetSelection.groups(TRAINING).resolve(defs.resolve_asset_graph()):
            partitions = result.get_requested_partitions(key)
            if partitions:
                requested[key.to_user_string()] = set(partitions)
        return requested

    def materialize(self, *names: str, partition: str | None = None) -> None:
        for name in names:
            self.instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=name, partition=partition)
            )

    def materialize_shards(self, shards: list[str]) -> None:
        for shard in shards:
            self.materialize("optimiser_labels", partition=shard)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.UTC)


def unpartitioned(*names: str) -> dict[str, set[str | None]]:
    return {name: {None} for name in names}


@pytest.fixture
def trained(postgres_instance) -> Night:
    """An instance where every training asset was materialized on an earlier night."""
    night = Night(postgres_instance)
    night.materialize("room_corpus")
    night.materialize_shards(SHARDS)
    night.materialize(*AFTER_SHARDS)
    assert night.tick(at(1, 12)) == {}
    return night


def test_first_start_runs_each_asset_once_after_all_its_inputs_exist(postgres_instance):
    night = Night(postgres_instance)
    assert night.tick(at(1, 12)) == {}  # no corpus yet: nothing can run
    night.materialize("room_corpus")
    assert night.tick(at(1, 12, 1)) == {"optimiser_labels": set(SHARDS)}
    night.materialize_shards(SHARDS[:1])
    assert night.tick(at(1, 12, 2)) == {}  # three shards were never materialized
    night.materialize_shards(SHARDS[1:])
    assert night.tick(at(1, 12, 3)) == unpartitioned(*AFTER_SHARDS)
    night.materialize(*AFTER_SHARDS)
    assert night.tick(at(1, 12, 4)) == {}
    assert night.tick(at(1, 13)) == {}


def test_first_start_after_a_corpus_made_before_automation_was_on(postgres_instance):
    night = Night(postgres_instance)
    night.materialize("room_corpus")
    assert night.tick(at(1, 12)) == {"optimiser_labels": set(SHARDS)}
    assert night.tick(at(1, 12, 1)) == {}


def test_a_night_runs_in_order_once(trained):
    assert trained.tick(at(1, 23)) == {}
    assert trained.tick(at(2, 2, 1)) == {}  # the tick passed; the corpus run is not done yet
    trained.materialize("room_corpus")
    assert trained.tick(at(2, 2, 2)) == {"optimiser_labels": set(SHARDS)}
    assert trained.tick(at(2, 2, 3)) == {}  # requested once
    trained.materialize_shards(SHARDS[:2])
    assert trained.tick(at(2, 2, 4)) == {}  # last night's shards do not count
    trained.materialize_shards(SHARDS[2:])
    assert trained.tick(at(2, 2, 5)) == unpartitioned(*AFTER_SHARDS)
    (run,) = trained.run_requests
    assert {key.to_user_string() for key in run.asset_selection} == AFTER_SHARDS
    trained.materialize(*AFTER_SHARDS)
    assert trained.tick(at(2, 2, 6)) == {}
    assert trained.tick(at(2, 12)) == {}


def test_a_failed_shard_holds_the_night_back_until_it_succeeds_late(trained):
    trained.tick(at(2, 1))
    trained.materialize("room_corpus")
    assert trained.tick(at(2, 2, 1)) == {"optimiser_labels": set(SHARDS)}
    trained.materialize_shards(SHARDS[:-1])  # the last shard's run failed
    for minute in range(2, 6):
        assert trained.tick(at(2, 2, minute)) == {}
    trained.materialize_shards(SHARDS[-1:])  # retried by hand, late
    assert trained.tick(at(2, 6)) == unpartitioned(*AFTER_SHARDS)


def test_a_night_with_no_new_corpus_requests_nothing(trained):
    for when in (at(2, 1, 59), at(2, 2, 1), at(2, 5), at(2, 23)):
        assert trained.tick(when) == {}


def test_every_automation_run_carries_the_training_workload_tag(trained):
    trained.materialize("room_corpus")
    trained.tick(at(2, 2, 1))
    shard_runs = trained.run_requests
    assert sorted(run.partition_key for run in shard_runs) == SHARDS  # a run per shard
    trained.materialize_shards(SHARDS)
    trained.tick(at(2, 2, 2))
    for run in [*shard_runs, *trained.run_requests]:
        assert run.tags[WORKLOAD] == "training"


@pytest.fixture(params=["dagster.yaml", "helm values"])
def queue_instance(request, dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    """The project's instance on the test Postgres, its run limits from ``dagster.yaml``
    (dev, Docker host alike) or as the Helm chart renders them from ``deploy/k8s/values.yaml``."""
    if request.param == "helm values":
        settings = yaml.safe_load((dagster_home / "dagster.yaml").read_text())
        settings["concurrency"] = k8s_offline.instance_concurrency(k8s_offline.load_values())
        (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield instance


def test_the_queue_holds_training_runs_back_however_launched_but_starts_serving(
    queue_instance: dg.DagsterInstance,
):
    """The "training" pool (as many runs at once as its limit) applied by the run queue's
    own dequeue logic, on runs made from the definitions' execution plans: a shard run of
    the automation (tagged) and a run the UI's asset graph would launch (Dagster's
    implicit asset job, no tag of ours) wait while the pool is full, whatever the tags of
    the runs in progress; a serving run of the same job still starts."""
    instance = queue_instance
    limit = instance.get_concurrency_config().pool_config.default_pool_limit
    assert isinstance(limit, int) and limit >= 1, "the training pool has no limit"
    job = defs.resolve_implicit_global_asset_job_def()
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("ceilgrid"), "__repository__"),
        job.name,
    )
    training = dict(training_automation.run_tags)

    def add_run(status: dg.DagsterRunStatus, asset: str, tags: dict[str, str]) -> str:
        return instance.create_run_for_job(
            job_def=job,
            asset_selection=frozenset({dg.AssetKey(asset)}),
            status=status,
            tags=tags,
            remote_job_origin=origin,
        ).run_id

    def dequeued() -> list[str]:
        queue = QueuedRunCoordinatorDaemon(interval_seconds=1)
        runs = queue._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
        return [run.run_id for run in runs]

    from_ui = add_run(dg.DagsterRunStatus.QUEUED, "training_features", {})
    assert WORKLOAD not in instance.get_run_by_id(from_ui).tags
    assert dequeued() == [from_ui]  # nothing in progress: it may start
    shard = [{**training, "dagster/partition": key} for key in SHARDS]
    in_progress = [
        add_run(dg.DagsterRunStatus.STARTED, "optimiser_labels", shard[index % len(SHARDS)])
        for index in range(limit)
    ]
    next_shard = add_run(dg.DagsterRunStatus.QUEUED, "room_corpus", training)
    serving = add_run(dg.DagsterRunStatus.QUEUED, "submitted_building", {"dagster/partition": "x"})
    assert dequeued() == [serving]
    instance.report_run_failed(instance.get_run_by_id(in_progress[0]))
    # One slot is free again: one training run (the older first) may start.
    assert dequeued() == [from_ui, serving]
    assert next_shard not in dequeued()


def test_first_start_sensor_requests_one_small_corpus_run_only_when_nothing_exists(
    postgres_instance, ceilgrid_home, monkeypatch
):
    def evaluate() -> dg.SensorResult | dg.RunRequest | dg.SkipReason:
        context = dg.build_sensor_context(
            instance=postgres_instance, resources={"model_store": build_resources()["model_store"]}
        )
        return first_start_training(context)

    monkeypatch.delenv("CEILGRID_FIRST_START_TRAINING", raising=False)
    assert isinstance(evaluate(), dg.SkipReason)  # off unless make dev turns it on
    monkeypatch.setenv("CEILGRID_FIRST_START_TRAINING", "1")
    request = evaluate()
    assert request.run_key == "first-start"
    assert request.run_config["ops"]["room_corpus"]["config"]["n_rooms"] == FIRST_START_ROOMS
    Night(postgres_instance).materialize("room_corpus")
    assert "a corpus exists" in evaluate().skip_message
    store = Path(build_resources()["model_store"].location)
    candidate = ceilgrid_home / "candidate"
    candidate.mkdir()
    registry.activate(store, registry.add_version(store, candidate, {}).id, "promote")
    assert evaluate().skip_message == "models are promoted"
