"""Definitions load, schedule, instance storage on Postgres, and the serving job in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import dagster as dg
import ifcopenshell
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from helpers import EXAMPLES_DIR, building_document, room_document, to_json

from ceilgrid_assets.contract import BUILDINGS, building_partition_key
from ceilgrid_assets.core.engine.building import complete_building
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.io import dump_document, parse_document
from ceilgrid_assets.definitions import defs
from ceilgrid_assets.defs.resources import build_resources
from ceilgrid_assets.defs.serving import layouts
from ceilgrid_assets.defs.serving.jobs import layout_building_job
from ceilgrid_assets.defs.training.schedules import nightly_retraining


def test_definitions_load_with_described_owned_grouped_assets():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {
        "submitted_building",
        "completed_layout",
        "building_report",
        "room_corpus",
        "optimiser_labels",
        "training_features",
        "light_model",
        "air_supply_model",
        "air_return_model",
        "smoke_detector_model",
        "model_evaluation",
        "promoted_models",
    } <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.owners and node.group_name in ("serving", "training")
        assert node.kinds, key
    blocking = {
        check.name for check in graph.asset_check_keys if graph.get_check_spec(check).blocking
    }
    assert {
        "layout_claims_hold",
        "evaluation_fully_compliant",
        "evaluation_not_worse_than_promoted",
    } <= blocking


def test_serving_job_is_partitioned_and_in_process():
    job = defs.resolve_job_def("layout_building_job")
    assert job.executor_def.name == "in_process"
    assert job.partitions_def.name == BUILDINGS


def test_service_levels_are_freshness_policies_on_serving_and_promoted_models():
    """Layouts within minutes of submission; promoted models retrained within a day."""
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    for key in ("completed_layout", "building_report"):
        policy = specs[key].freshness_policy
        assert policy.fail_window.to_timedelta() <= timedelta(minutes=15), key
    models = specs["promoted_models"].freshness_policy
    assert timedelta(hours=24) <= models.fail_window.to_timedelta() <= timedelta(hours=26)
    assert models.warn_window.to_timedelta() <= models.fail_window.to_timedelta()


def test_nightly_retraining_schedule():
    assert nightly_retraining.cron_schedule == "0 2 * * *"
    assert nightly_retraining.execution_timezone == "UTC"
    assert nightly_retraining.job_name == "corpus_job"
    assert nightly_retraining.default_status == dg.DefaultScheduleStatus.RUNNING
    training = {
        key.to_user_string()
        for key in dg.AssetSelection.groups("training").resolve(defs.resolve_asset_graph())
    }
    automated = {
        key
        for key in training
        if defs.resolve_asset_graph().get(dg.AssetKey(key)).automation_condition
    }
    assert automated == training - {"served_rooms", "room_corpus"}  # the schedule runs these
    (request,) = nightly_retraining.evaluate_tick(dg.build_schedule_context()).run_requests
    assert request.run_config == {"ops": {"room_corpus": {"config": {"n_rooms": 400}}}}


def _load_definitions_with(
    variables: dict[str, str], statement: str
) -> subprocess.CompletedProcess[str]:
    """Import the definitions in a fresh interpreter with ``variables`` set, then run
    ``statement`` (settings are read when the definitions load)."""
    return subprocess.run(
        [sys.executable, "-c", f"import ceilgrid_assets.definitions as d\n{statement}"],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_retraining_time_and_nightly_corpus_size_come_from_the_environment():
    statement = (
        "from ceilgrid_assets.defs.training import schedules as s\n"
        "import dagster as dg\n"
        "tick = s.nightly_retraining.evaluate_tick(dg.build_schedule_context())\n"
        "(request,) = tick.run_requests\n"
        "print(s.nightly_retraining.cron_schedule, '|', s.nightly_tick.cron_schedule, '|',"
        " request.run_config['ops']['room_corpus']['config']['n_rooms'])"
    )
    done = _load_definitions_with(
        {"CEILGRID_RETRAINING_CRON": "30 23 * * 0", "CEILGRID_NIGHTLY_ROOMS": "900"}, statement
    )
    assert done.returncode == 0, done.stderr
    cron, night, rooms = (part.strip() for part in done.stdout.strip().split("|"))
    # The automation conditions' night follows the same cron as the schedule.
    assert cron == night == "30 23 * * 0" and rooms == "900"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CEILGRID_NIGHTLY_ROOMS", "many"),
        ("CEILGRID_INBOX_BATCH_SIZE", "0"),
        ("CEILGRID_FIRST_START_ROOMS", "-3"),
    ],
)
def test_a_bad_number_setting_stops_loading_with_one_line_naming_it(variable, value):
    done = _load_definitions_with({variable: value}, "")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"ValueError: {variable} must be a whole number of at least 1, got {value!r}"


def test_instance_storage_round_trip_on_postgres(postgres_instance):
    assert isinstance(postgres_instance.run_storage, PostgresRunStorage)
    assert isinstance(postgres_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(postgres_instance.schedule_storage, PostgresScheduleStorage)
    postgres_instance.add_dynamic_partitions(BUILDINGS, ["round-trip"])
    assert postgres_instance.get_dynamic_partitions(BUILDINGS) == ["round-trip"]

    @dg.asset
    def probe() -> int:
        return 1

    result = dg.materialize([probe], instance=postgres_instance)
    run = postgres_instance.get_run_by_id(result.run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    [record] = postgres_instance.fetch_materializations(dg.AssetKey("probe"), limit=5).records
    assert record.run_id == result.run_id


def serving_job() -> dg.JobDefinition:
    """The layout job with resources read from the test's environment (CEILGRID_HOME)."""
    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=[layout_building_job],
        resources=build_resources(),
    ).resolve_job_def("layout_building_job")


def test_layout_job_single_and_batched_on_postgres(postgres_instance, ceilgrid_home):
    document = (EXAMPLES_DIR / "office-floor.json").read_text()
    job = serving_job()
    postgres_instance.add_dynamic_partitions(BUILDINGS, ["office-floor"])
    single = job.execute_in_process(
        instance=postgres_instance,
        partition_key="office-floor",
        run_config={"ops": {"submitted_building": {"config": {"document": document}}}},
    )
    assert single.success
    [materialization] = single.asset_materializations_for_node("completed_layout")
    layout = materialization.metadata["layout"].value.encode()
    stored = ceilgrid_home / "storage" / "buildings" / "office-floor" / "layout.json"
    assert layout == stored.read_bytes()
    assert parse_document(layout).rooms and materialization.metadata["all_compliant"].value
    assert all(check.passed for check in single.get_asset_check_evaluations())
    # The report: bill of quantities adding up to the layout, plan images, HTML beside it.
    [report] = single.asset_materializations_for_node("building_report")
    devices = sum(
        room["metrics"][name]
        for room in json.loads(layout)["rooms"]
        for name in ("lights", "air_supply", "air_return", "smoke_detector")
    )
    assert (
        sum(
            report.metadata[name].value
            for name in ("light", "air_supply", "air_return", "smoke_detector")
        )
        == devices
    )
    assert report.metadata["plans"].value.count("](data:image/png;base64,") == 1
    assert "smoke.coverage" in (stored.parent / "report.csv").read_text()
    html = (stored.parent / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 1 and "office-floor" in html
    # The IFC model beside the layout, its path in metadata: one space per room, every device.
    assert report.metadata["ifc"].value == str(stored.parent / "layout.ifc")
    model = ifcopenshell.open(report.metadata["ifc"].value)
    assert len(model.by_type("IfcSpace")) == len(json.loads(layout)["rooms"])
    assert len(model.by_type("IfcDistributionElement")) == devices

    incoming = ceilgrid_home / "storage" / "incoming"
    incoming.mkdir(parents=True)
    for key in ("batch-a", "batch-b"):
        (incoming / f"{key}.json").write_text(document.replace('"office-floor"', f'"{key}"'))
    postgres_instance.add_dynamic_partitions(BUILDINGS, ["batch-a", "batch-b"])
    batch = job.execute_in_process(
        instance=postgres_instance,
        tags={
            "dagster/asset_partition_range_start": "batch-a",
            "dagster/asset_partition_range_end": "batch-b",
        },
    )
    assert batch.success
    for key in ("batch-a", "batch-b"):
        layout = json.loads(
            (ceilgrid_home / "storage" / "buildings" / key / "layout.json").read_bytes()
        )
        assert layout["building_id"] == key
        assert not (incoming / f"{key}.json").exists()
    # Same input, same bytes: re-materializing a building is idempotent.
    again = job.execute_in_process(instance=postgres_instance, partition_key="office-floor")
    assert again.success and stored.read_bytes() == layout_bytes(single)


def layout_bytes(result: dg.ExecuteInProcessResult) -> bytes:
    [materialization] = result.asset_materializations_for_node("completed_layout")
    return materialization.metadata["layout"].value.encode()


def test_bad_document_fails_the_run_with_a_one_line_reason(postgres_instance, ceilgrid_home):
    job = serving_job()
    postgres_instance.add_dynamic_partitions(BUILDINGS, ["broken"])
    result = job.execute_in_process(
        instance=postgres_instance,
        partition_key="broken",
        raise_on_error=False,
        run_config={"ops": {"submitted_building": {"config": {"document": "{nope"}}}},
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description
    assert "broken.json" in message and "malformed JSON" in message and "\n" not in message


def test_partition_keys_are_the_building_id_or_refused():
    assert building_partition_key("tower-7") == "tower-7"
    with pytest.raises(InputError, match="not a safe key"):
        building_partition_key("Tower 7/West")


def test_serving_run_with_workers_writes_the_single_process_bytes(
    postgres_instance, ceilgrid_home, monkeypatch
):
    """A large building is laid out over worker processes, with the command line's bytes."""
    # Five distinct halls of 2,500 cells (over 10,000 cells: workers start), each twice.
    halls = [
        room_document((50, 50), invalid=[(n, n)], grid_id=f"{name}-{n}")
        for name in ("hall", "copy")
        for n in range(5)
    ]
    document = to_json(building_document(halls, "halls"))
    expected = dump_document(complete_building(parse_document(document), jobs=1).document)
    monkeypatch.setattr(layouts, "default_jobs", lambda: 2)  # workers even on one core
    postgres_instance.add_dynamic_partitions(BUILDINGS, ["halls"])
    result = serving_job().execute_in_process(
        instance=postgres_instance,
        partition_key="halls",
        run_config={"ops": {"submitted_building": {"config": {"document": document}}}},
    )
    assert result.success
    assert layout_bytes(result) == expected
    [materialization] = result.asset_materializations_for_node("completed_layout")
    assert materialization.metadata["rooms"].value == 10
