"""Traces, metrics and logs of a layout run, with the SDK's in-memory exporters and real HTTP."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest
import yaml
from helpers import PROJECT_ROOT
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ceilgrid_assets.core.engine.building import complete_building
from ceilgrid_assets.core.engine.io import ParsedDocument, parse_object
from ceilgrid_assets.defs.observability import (
    already_materialized_in_run_group,
    log_event,
    materialization_telemetry,
)
from ceilgrid_assets.observability import telemetry

RUN_ATTRIBUTES = ("dagster.run_id", "dagster.asset_key", "dagster.run.attempt")


def _room(grid_id: str, width: int, height: int, placed: dict[tuple[int, int], str]) -> dict:
    return {
        "grid_id": grid_id,
        "width": width,
        "height": height,
        "cells": [
            {"x": x, "y": y, "component": placed.get((x, y), "empty")}
            for y in range(height)
            for x in range(width)
        ],
    }


def small_building() -> ParsedDocument:
    """Two compliant rooms and one whose given supply sits next to a given detector."""
    return parse_object(
        {
            "building_id": "b-telemetry",
            "rooms": [
                _room("open", 8, 6, {}),
                _room("column", 5, 5, {(2, 2): "invalid"}),
                _room("clash", 6, 4, {(1, 1): "air_supply", (2, 1): "smoke_detector"}),
            ],
        }
    )


@pytest.fixture
def otel() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    telemetry.configure({}, span_exporters=[spans], metric_readers=[reader], batch=False)
    yield spans, reader
    telemetry.disable()


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Metric name -> [(attributes, value or histogram count)]."""
    data = reader.get_metrics_data()
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = [
                    (
                        dict(point.attributes),
                        point.value if hasattr(point, "value") else point.count,
                    )
                    for point in metric.data.data_points
                ]
    return found


def total(found: dict, name: str, **attributes: Any) -> Any:
    return sum(
        value
        for labels, value in found.get(name, ())
        if all(labels.get(key) == wanted for key, wanted in attributes.items())
    )


def test_layout_run_yields_span_tree_with_attributes(otel) -> None:
    spans, _ = otel
    with telemetry.materialization("completed_layout", run_id="run-1", partition_key="b-telemetry"):
        result = complete_building(small_building())
    finished = spans.get_finished_spans()
    by_id = {span.context.span_id: span for span in finished}

    def parent(span):
        return by_id[span.parent.span_id] if span.parent is not None else None

    names = Counter(span.name for span in finished)
    assert names["materialize completed_layout"] == 1
    assert names["ceilgrid.building"] == 1
    assert names["ceilgrid.room"] == 3
    candidates = [span for span in finished if span.name == "ceilgrid.candidate"]
    for room_span in (span for span in finished if span.name == "ceilgrid.room"):
        room = next(
            r for r in result.rooms if r.room.grid_id == room_span.attributes["ceilgrid.grid_id"]
        )
        stages = [
            s
            for s in finished
            if s.name == "ceilgrid.stage" and s.parent.span_id == room_span.context.span_id
        ]
        assert {"light", "air_supply", "air_return"} <= {
            s.attributes["ceilgrid.component"] for s in stages
        }
        inside = {room_span.context.span_id, *(s.context.span_id for s in stages)}
        for component, outcomes in room.candidates.items():
            traced = Counter(
                c.attributes["ceilgrid.model"]
                for c in candidates
                if c.parent.span_id in inside and c.attributes["ceilgrid.component"] == component
            )
            ran = Counter(
                outcome.model for outcome in outcomes if "lower bound" not in outcome.skip_reason
            )  # skipped ones never ran
            assert traced >= ran, component
    for span in finished:
        assert span.attributes["dagster.run_id"] == "run-1"
        assert span.attributes["dagster.asset_key"] == "completed_layout"
        assert span.attributes["dagster.partition_key"] == "b-telemetry"
    expected_parent = {
        "ceilgrid.stage": "ceilgrid.room",
        "ceilgrid.room": "ceilgrid.building",
        "ceilgrid.building": "materialize completed_layout",
    }
    for span in finished:
        if span.name in expected_parent:
            assert parent(span).name == expected_parent[span.name]
            assert (
                parent(span).start_time <= span.start_time <= span.end_time <= parent(span).end_time
            )
    rooms = {
        span.attributes["ceilgrid.grid_id"]: span
        for span in finished
        if span.name == "ceilgrid.room"
    }
    assert rooms["open"].attributes["ceilgrid.room.width"] == 8
    assert rooms["open"].attributes["ceilgrid.room.height"] == 6
    assert rooms["open"].attributes["ceilgrid.compliant"] is True
    assert rooms["clash"].attributes["ceilgrid.compliant"] is False
    assert rooms["clash"].status.status_code.name == "ERROR"
    for room in result.rooms:
        span = rooms[room.room.grid_id]
        assert span.attributes["ceilgrid.devices"] == sum(
            room.room.count(c) for c in ("light", "air_supply", "air_return", "smoke_detector")
        )
        assert span.attributes["ceilgrid.duration_s"] == pytest.approx(room.seconds)
    for span in candidates:
        assert parent(span).name in {"ceilgrid.stage", "ceilgrid.room"}
        assert {
            "ceilgrid.component",
            "ceilgrid.model",
            "ceilgrid.compliant",
            "ceilgrid.placement_s",
        } <= set(span.attributes)
        if parent(span).name == "ceilgrid.stage":
            assert (
                parent(span).attributes["ceilgrid.component"]
                == span.attributes["ceilgrid.component"]
            )


def test_rooms_from_workers_and_copies_are_counted_once_each(otel) -> None:
    """With workers and a repeated room: one room span and one room point per output room."""
    spans, reader = otel
    parsed = small_building()
    parsed.rooms.append(replace(parsed.rooms[0], grid_id="open-again"))
    parsed.room_documents.append({**parsed.room_documents[0], "grid_id": "open-again"})
    with telemetry.materialization("completed_layout", run_id="run-w"):
        result = complete_building(parsed, jobs=2, pool_min_cells=0)
    room_spans = [span for span in spans.get_finished_spans() if span.name == "ceilgrid.room"]
    assert sorted(span.attributes["ceilgrid.grid_id"] for span in room_spans) == sorted(
        room.room.grid_id for room in result.rooms
    )
    assert len(room_spans) == 4
    assert all(span.attributes["dagster.run_id"] == "run-w" for span in room_spans)
    found = points(reader)
    assert total(found, "ceilgrid.rooms") == 4
    assert total(found, "ceilgrid.rooms", compliant=False) == 1
    for component in ("light", "air_supply", "air_return", "smoke_detector"):
        added = sum(r.room.count(component) - r.original.count(component) for r in result.rooms)
        assert total(found, "ceilgrid.devices", component=component) == added


def test_layout_run_yields_metric_points(otel) -> None:
    _, reader = otel
    result = complete_building(small_building())  # no scope: recorded room by room
    found = points(reader)
    assert total(found, "ceilgrid.rooms") == 3
    assert total(found, "ceilgrid.rooms", compliant=False) == 1
    assert total(found, "ceilgrid.room.duration") == 3
    for component in ("light", "air_supply", "air_return", "smoke_detector"):
        added = sum(r.room.count(component) - r.original.count(component) for r in result.rooms)
        assert total(found, "ceilgrid.devices", component=component) == added
    rules = Counter(v["rule"] for r in result.rooms for v in r.compliance["violations"])
    assert rules["smoke.clearance"] >= 1
    for rule, count in rules.items():
        assert total(found, "ceilgrid.violations", rule=rule) == count
    assert total(found, "ceilgrid.candidate.wins") == 3 * 4
    for room in result.rooms:
        for component, record in room.models.items():
            assert (
                total(found, "ceilgrid.candidate.wins", component=component, model=record["chosen"])
                >= 1
            )
    ran = sum(o.added is not None for r in result.rooms for v in r.candidates.values() for o in v)
    assert total(found, "ceilgrid.placement.duration") == ran
    assert {labels["model"] for labels, _ in found["ceilgrid.placement.duration"]} >= {
        "array",
        "greedy-cover",
    }


def test_failed_attempt_counts_nothing_and_retry_counts_once(otel) -> None:
    spans, reader = otel
    with pytest.raises(RuntimeError, match="storage unavailable"):
        with telemetry.materialization("completed_layout", run_id="run-1", attempt=1):
            complete_building(small_building())
            raise RuntimeError("storage unavailable")
    assert total(points(reader), "ceilgrid.rooms") == 0
    with telemetry.materialization("completed_layout", run_id="run-1", attempt=2):
        complete_building(small_building())
    with telemetry.materialization(
        "completed_layout", run_id="run-2", attempt=1, already_recorded=True
    ):
        complete_building(small_building())  # a re-execution of the same run group
    found = points(reader)
    assert total(found, "ceilgrid.rooms") == 3
    assert total(found, "ceilgrid.candidate.wins") == 3 * 4
    assert total(found, "ceilgrid.materializations", outcome="failed") == 1
    assert total(found, "ceilgrid.materializations", outcome="recorded") == 1
    assert total(found, "ceilgrid.materializations", outcome="duplicate") == 1
    # spans describe work: every attempt is traced, told apart by its attempt number
    attempts = Counter(
        (s.attributes["dagster.run_id"], s.attributes["dagster.run.attempt"])
        for s in spans.get_finished_spans()
        if s.name == "ceilgrid.room"
    )
    assert attempts == {("run-1", 1): 3, ("run-1", 2): 3, ("run-2", 1): 3}
    failed = next(
        s
        for s in spans.get_finished_spans()
        if s.name.startswith("materialize")
        and s.attributes["dagster.run.attempt"] == 1
        and s.attributes["dagster.run_id"] == "run-1"
    )
    assert failed.status.status_code.name == "ERROR"


def test_nothing_configured_is_a_pass_through() -> None:
    state = telemetry.configure({})
    try:
        assert not state.enabled
        result = complete_building(small_building())
        assert len(result.rooms) == 3
        assert (
            telemetry.configure(
                {"OTEL_SDK_DISABLED": "true", "CEILGRID_PROMETHEUS_PORT": "0"}
            ).enabled
            is False
        )
    finally:
        telemetry.disable()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_prometheus_endpoint_serves_metrics_over_http(caplog) -> None:
    port = _free_port()
    state = telemetry.configure({"CEILGRID_PROMETHEUS_PORT": str(port)})
    try:
        assert state.prometheus_address == ("127.0.0.1", port)
        assert state.metrics and not state.tracing  # nowhere to send spans: none are made
        complete_building(small_building())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read().decode()
        for name in (
            "ceilgrid_rooms_total",
            "ceilgrid_devices_total",
            "ceilgrid_violations_total",
            "ceilgrid_candidate_wins_total",
            "ceilgrid_candidates_total",
        ):
            assert f"\n{name}{{" in body, name
        for name in ("ceilgrid_placement_duration_seconds", "ceilgrid_room_duration_seconds"):
            assert f"\n{name}_bucket{{" in body, name
        assert 'ceilgrid_violations_total{rule="smoke.clearance"' in body
        assert (
            'ceilgrid_rooms_total{compliant="true",profile="nfpa72",room_type="office"} 2.0' in body
        )
        # a second process on the same port: warned about, not fatal
        with caplog.at_level(logging.WARNING, logger="ceilgrid_assets.observability.telemetry"):
            second = telemetry._prometheus({"CEILGRID_PROMETHEUS_PORT": str(port)})
        assert second == (None, None)
        assert "not started" in caplog.text
    finally:
        telemetry.disable()


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_otlp_export_reaches_a_collector_over_http(monkeypatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    try:
        state = telemetry.configure()
        assert state.tracing and state.metrics
        with telemetry.materialization("completed_layout", run_id="run-otlp"):
            complete_building(small_building())  # the scope flushes on exit
        paths = Counter(path for path, _ in _Collector.received)
        assert paths["/v1/traces"] >= 1 and paths["/v1/metrics"] >= 1
        names, metrics = Counter(), set()
        for path, body in _Collector.received:
            if path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
                    assert attributes["service.name"] == "ceilgrid"
                    assert attributes["service.instance.id"]
                    names.update(s.name for scope in resource.scope_spans for s in scope.spans)
            else:
                request = ExportMetricsServiceRequest.FromString(body)
                metrics.update(
                    m.name
                    for r in request.resource_metrics
                    for scope in r.scope_metrics
                    for m in scope.metrics
                )
        assert names["ceilgrid.room"] == 3
        assert {
            "ceilgrid.rooms",
            "ceilgrid.devices",
            "ceilgrid.candidate.wins",
            "ceilgrid.placement.duration",
        } <= metrics
    finally:
        telemetry.disable()
        server.shutdown()
        server.server_close()


def test_json_log_records_carry_trace_ids(otel) -> None:
    spans, _ = otel
    handler = logging.Handler(level=logging.DEBUG)
    handler.setFormatter(telemetry.JsonFormatter())
    records: list[str] = []
    handler.emit = lambda record: records.append(handler.format(record))  # type: ignore
    logger = logging.getLogger("ceilgrid_assets.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with telemetry.materialization("completed_layout", run_id="run-log"):
            logger.info("room done", extra={"grid_id": "open", "devices": 7})
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in records)
    span = spans.get_finished_spans()[-1]
    assert inside["trace_id"] == f"{span.context.trace_id:032x}"
    assert inside["span_id"] == f"{span.context.span_id:016x}"
    assert inside["grid_id"] == "open" and inside["devices"] == 7
    assert inside["message"] == "room done" and inside["level"] == "INFO"
    assert "trace_id" not in outside


# --------------------------------------------------------------------------- Dagster glue

ATTEMPTS: list[int] = []


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
def traced_layout(context) -> dg.MaterializeResult:  # noqa: ANN001 - Dagster reads the hint
    with materialization_telemetry(context):
        result = complete_building(small_building())
        logging.getLogger("ceilgrid_assets.core.test").info("core says hello")
        log_event(context.log, "building laid out", rooms=len(result.rooms))
        ATTEMPTS.append(context.retry_number)
        if context.retry_number == 0:
            raise RuntimeError("transient storage error")
    return dg.MaterializeResult(metadata={"rooms": len(result.rooms)})


def test_dagster_materialization_traced_logged_and_counted_once(otel, tmp_path) -> None:
    spans, reader = otel
    ATTEMPTS.clear()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        outcome = dg.materialize([traced_layout], instance=instance)
        assert outcome.success and ATTEMPTS == [0, 1]
        run_id = outcome.run_id
        messages = [event.message for event in instance.all_logs(run_id) if event.message]
        assert already_materialized_in_run_group(instance, run_id, traced_layout.key, []) is False
    lines = [json.loads(m) for m in messages if m.startswith("{")]
    laid_out = [line for line in lines if line["message"] == "building laid out"]
    assert len(laid_out) == 2 and all(len(line["trace_id"]) == 32 for line in laid_out)
    assert any(
        line["message"] == "core says hello" and line["logger"] == "ceilgrid_assets.core.test"
        for line in lines
    )  # core logs reach the UI
    rooms = [s for s in spans.get_finished_spans() if s.name == "ceilgrid.room"]
    assert {s.attributes["dagster.run_id"] for s in rooms} == {run_id}
    assert Counter(s.attributes["dagster.run.attempt"] for s in rooms) == {1: 3, 2: 3}
    assert {s.attributes["dagster.asset_key"] for s in rooms} == {"traced_layout"}
    found = points(reader)
    assert total(found, "ceilgrid.rooms") == 3  # the failed attempt added nothing
    assert total(found, "ceilgrid.materializations", outcome="failed") == 1


def traced_job() -> dg.JobDefinition:
    """Module-level, so that Dagster can reconstruct it for a re-execution."""
    job = dg.define_asset_job("traced_job", [traced_layout], executor_def=dg.in_process_executor)
    return dg.Definitions(assets=[traced_layout], jobs=[job]).resolve_job_def("traced_job")


def test_reexecution_in_the_same_run_group_is_not_counted_again(otel, tmp_path) -> None:
    _, reader = otel
    ATTEMPTS.clear()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        job = dg.reconstructable(traced_job)
        first = dg.execute_job(job, instance=instance)
        second = dg.execute_job(
            job, instance=instance, reexecution_options=dg.ReexecutionOptions(first.run_id)
        )
        assert first.success and second.success
        assert already_materialized_in_run_group(instance, second.run_id, traced_layout.key, [])
    found = points(reader)
    assert total(found, "ceilgrid.rooms") == 3
    assert total(found, "ceilgrid.materializations", outcome="recorded") == 1
    assert total(found, "ceilgrid.materializations", outcome="duplicate") == 1


# --------------------------------------------------------------------------- deploy files


def test_collector_config_parses_and_wires_otlp_to_prometheus() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "deploy/otel/collector.yaml").read_text())
    assert "otlp" in config["receivers"]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert {"http", "grpc"} <= set(protocols)
    pipelines = config["service"]["pipelines"]
    assert "otlp" in pipelines["metrics"]["receivers"]
    assert "prometheus" in pipelines["metrics"]["exporters"]
    assert "otlp" in pipelines["traces"]["receivers"]
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline.get(kind, []):
                assert name in config[kind], f"{name} used but not defined in {kind}"


def test_grafana_dashboard_is_valid_and_uses_emitted_metrics() -> None:
    dashboard = json.loads((PROJECT_ROOT / "deploy/grafana/dashboards/ceilgrid.json").read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {
        "Rooms per hour",
        "Compliance rate",
        "Devices placed by type",
        "Placement time by model (p90)",
        "Model wins",
        "Failed runs",
    } <= titles
    expressions = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())
    )
    used = {name for name in telemetry.PROMETHEUS_NAMES.values() if name in expressions}
    assert used >= {
        "ceilgrid_rooms_total",
        "ceilgrid_devices_total",
        "ceilgrid_placement_duration_seconds",
        "ceilgrid_candidate_wins_total",
        "ceilgrid_runs_failed_total",
    }
    for name in re.findall(r"\bceilgrid_[a-z_]+", expressions):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert base in telemetry.PROMETHEUS_NAMES.values(), name
    provisioning = PROJECT_ROOT / "deploy/grafana/provisioning"
    datasources = yaml.safe_load((provisioning / "datasources/prometheus.yaml").read_text())
    assert datasources["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load((provisioning / "dashboards/ceilgrid.yaml").read_text())
    assert providers["providers"][0]["options"]["path"]
