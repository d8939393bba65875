"""OpenTelemetry traces and metrics for the layout engine, plus JSON log records.

Configuration comes from the environment (see :func:`configure`):

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the per-signal ``..._TRACES_ENDPOINT`` /
  ``..._METRICS_ENDPOINT``): spans and metrics are pushed over OTLP/HTTP;
- ``CEILGRID_PROMETHEUS_PORT``: metrics are served for scraping at
  ``http://CEILGRID_PROMETHEUS_ADDR:PORT/metrics`` (address ``127.0.0.1`` unless set);
- neither (or ``OTEL_SDK_DISABLED=true``): telemetry is off and unsubscribed from
  the engine's hooks (:mod:`ceilgrid_assets.core.engine.hooks`), which then cost
  one empty-tuple check per step.

Entry points (the CLI, the Dagster glue, scripts) call :func:`get` once to set
telemetry up from the environment; the engine itself never does.

The OpenTelemetry SDK is imported only when the environment (or a caller's
exporters) switches telemetry on, so a plain ``ceilgrid layout`` starts without it.

Why module state rather than the OpenTelemetry global providers: those can be
set once per process, while tests, the benchmark and the Dagster glue swap
exporters; and when telemetry is off the pipeline must not pay for no-op spans.

**Retries and double counting.** Spans describe work and are emitted for every
attempt (they carry ``dagster.run.attempt``). Metric points describe results:
inside a :func:`materialization` scope they are buffered and added to the
counters only when the scope ends without an error and the caller did not mark
the materialization as already recorded (the Dagster glue does so when another
run of the same run group, i.e. a retry or re-execution, already materialized
the same asset partition). A failed attempt therefore adds nothing, and a
retried run that succeeds counts its rooms once. Outside a scope (CLI, scripts)
each room is recorded as soon as it is laid out.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ceilgrid_assets.core.engine import hooks
from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from ceilgrid_assets.core.engine.building import BuildingResult
    from ceilgrid_assets.core.engine.pipeline import CandidateOutcome, RoomResult

log = logging.getLogger(__name__)

ENV_OTLP_ENDPOINTS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)
ENV_PROMETHEUS_PORT = "CEILGRID_PROMETHEUS_PORT"
ENV_PROMETHEUS_ADDR = "CEILGRID_PROMETHEUS_ADDR"
DEFAULT_PROMETHEUS_ADDR = "127.0.0.1"
SCOPE_NAME = "ceilgrid"

#: Seconds buckets for placement and room times (the SDK default is milliseconds-shaped).
SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)

#: Metric names as Prometheus shows them (OTel name, dots to underscores, unit and
#: ``_total`` suffixes added by the exporters). Dashboards and tests use these.
PROMETHEUS_NAMES = {
    "ceilgrid.rooms": "ceilgrid_rooms_total",
    "ceilgrid.room.duration": "ceilgrid_room_duration_seconds",
    "ceilgrid.devices": "ceilgrid_devices_total",
    "ceilgrid.violations": "ceilgrid_violations_total",
    "ceilgrid.candidates": "ceilgrid_candidates_total",
    "ceilgrid.candidate.wins": "ceilgrid_candidate_wins_total",
    "ceilgrid.placement.duration": "ceilgrid_placement_duration_seconds",
    "ceilgrid.materializations": "ceilgrid_materializations_total",
    "ceilgrid.runs.failed": "ceilgrid_runs_failed_total",
    "ceilgrid.checks.failed": "ceilgrid_checks_failed_total",
    "ceilgrid.alerts": "ceilgrid_alerts_total",
}


class Instruments:
    """The ceilgrid meters. Attributes stay low-cardinality: never a run id or grid id."""

    def __init__(self, meter: Any) -> None:
        counter, histogram = meter.create_counter, meter.create_histogram
        self.rooms = counter(
            "ceilgrid.rooms",
            unit="{room}",
            description="Rooms laid out, by compliance, room type and profile",
        )
        self.room_duration = histogram(
            "ceilgrid.room.duration",
            unit="s",
            description="Time to complete one room",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.devices = counter(
            "ceilgrid.devices",
            unit="{device}",
            description="Devices placed by the engine, by component",
        )
        self.violations = counter(
            "ceilgrid.violations",
            unit="{violation}",
            description="Rule violations in delivered layouts, by rule id",
        )
        self.candidates = counter(
            "ceilgrid.candidates",
            unit="{candidate}",
            description="Candidates evaluated, by component, model, compliance",
        )
        self.wins = counter(
            "ceilgrid.candidate.wins",
            unit="{win}",
            description="Chosen candidate per room and component, by model",
        )
        self.placement_duration = histogram(
            "ceilgrid.placement.duration",
            unit="s",
            description="Time a model took to propose a placement, by component and model",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.materializations = counter(
            "ceilgrid.materializations",
            unit="{materialization}",
            description="Materialization scopes ended, by asset and outcome "
            "(recorded, duplicate, failed)",
        )
        self.runs_failed = counter(
            "ceilgrid.runs.failed", unit="{run}", description="Dagster runs that failed, by job"
        )
        self.checks_failed = counter(
            "ceilgrid.checks.failed",
            unit="{check}",
            description="Failed asset checks, by asset, check, severity",
        )
        self.alerts = counter(
            "ceilgrid.alerts",
            unit="{alert}",
            description="Webhook alerts, by kind and outcome (sent, failed)",
        )


@dataclass
class Telemetry:
    """What is switched on in this process and where it goes."""

    tracer: Any = None  # opentelemetry Tracer when tracing is on
    instruments: Instruments | None = None  # when metrics are on
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    prometheus_server: WSGIServer | None = None
    push_readers: list[MetricReader] = field(default_factory=list)

    @property
    def tracing(self) -> bool:
        return self.tracer is not None

    @property
    def metrics(self) -> bool:
        return self.instruments is not None

    @property
    def enabled(self) -> bool:
        return self.tracer is not None or self.instruments is not None

    @property
    def prometheus_address(self) -> tuple[str, int] | None:
        """``(host, port)`` the scrape endpoint listens on (the real port when 0 was asked)."""
        if self.prometheus_server is None:
            return None
        return self.prometheus_server.server_address[:2]

    def flush(self, timeout_millis: int = 5_000) -> None:
        """Push pending spans and metric points now (run workers exit right after a step).

        Only push readers are flushed: collecting a Prometheus reader outside a
        scrape would queue a second copy of every series for the next scrape.
        """
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush(timeout_millis)
        for reader in self.push_readers:
            reader.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if self.prometheus_server is not None:
            self.prometheus_server.shutdown()
            self.prometheus_server.server_close()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


_DISABLED = Telemetry()
_current: Telemetry | None = None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _resource(environ: Mapping[str, str]) -> Resource:
    from opentelemetry.sdk.resources import Resource

    # A per-process instance id keeps concurrent run workers from overwriting
    # each other's cumulative series in the collector.
    attributes = {"service.instance.id": uuid.uuid4().hex, "service.namespace": "ceilgrid"}
    if not environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "ceilgrid"
    return Resource.create(attributes)


def configure(
    environ: Mapping[str, str] | None = None,
    *,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
    batch: bool = True,
) -> Telemetry:
    """Set up this process's telemetry from the environment, plus explicit exporters.

    Replaces (and shuts down) any previous setup. ``span_exporters`` and
    ``metric_readers`` add to what the environment asks for; tests and the
    benchmark pass in-memory ones. ``batch=False`` exports each span as it ends
    (deterministic tests); production uses a batch processor.
    """
    global _current
    environ = os.environ if environ is None else environ
    if _current is not None:
        _current.shutdown()
    _current = _DISABLED
    hooks.unsubscribe(observe)
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return _current
    exporters = list(span_exporters)
    readers = list(metric_readers)
    push_readers: list[MetricReader] = []
    if any(environ.get(name) for name in ENV_OTLP_ENDPOINTS):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        exporters.append(OTLPSpanExporter())
        push_readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    server = None
    if environ.get(ENV_PROMETHEUS_PORT):
        server, reader = _prometheus(environ)
        if reader is not None:
            readers.append(reader)
    readers += push_readers
    if not exporters and not readers:
        return _current
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = _resource(environ)
    state = Telemetry(prometheus_server=server, push_readers=push_readers)
    if exporters:
        state.tracer_provider = TracerProvider(resource=resource)
        for exporter in exporters:
            processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
            state.tracer_provider.add_span_processor(processor)
        state.tracer = state.tracer_provider.get_tracer(SCOPE_NAME)
    if readers:
        state.meter_provider = MeterProvider(metric_readers=readers, resource=resource)
        state.instruments = Instruments(state.meter_provider.get_meter(SCOPE_NAME))
    _current = state
    hooks.subscribe(observe)
    return state


def _prometheus(environ: Mapping[str, str]) -> tuple[WSGIServer | None, MetricReader | None]:
    """A Prometheus reader on its own registry, served over HTTP; warns if the port is taken."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_wsgi_server

    raw_port = environ[ENV_PROMETHEUS_PORT]
    try:
        port = int(raw_port)
    except ValueError:
        raise ValueError(f"{ENV_PROMETHEUS_PORT} must be a port number, not {raw_port!r}") from None
    address = environ.get(ENV_PROMETHEUS_ADDR) or DEFAULT_PROMETHEUS_ADDR
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
    try:
        server, _ = start_wsgi_server(port, addr=address, registry=registry)
    except OSError as exc:
        # Two processes on one host cannot share the port: metrics still go to
        # OTLP if configured, and the operator sees why the endpoint is missing.
        log.warning("Prometheus endpoint %s:%s not started: %s", address, port, exc)
        reader.shutdown()
        return None, None
    log.info("Prometheus metrics at http://%s:%s/metrics", *server.server_address[:2])
    return server, reader


def get() -> Telemetry:
    """The current setup, configured from the environment on first use."""
    return _current if _current is not None else configure()


def disable() -> None:
    """Shut down exporters and turn every hook into a pass-through."""
    global _current
    if _current is not None:
        _current.shutdown()
    _current = _DISABLED
    hooks.unsubscribe(observe)


# --------------------------------------------------------------------------- scopes


@dataclass
class Materialization:
    """One asset materialization attempt: span attributes and its buffered metric points."""

    attributes: dict[str, Any]
    record_metrics: bool = True
    rooms: int = 0
    pending: list[Callable[[Instruments], None]] = field(default_factory=list)


_scope: contextvars.ContextVar[Materialization | None] = contextvars.ContextVar(
    "ceilgrid_materialization", default=None
)


def _scope_attributes() -> dict[str, Any]:
    scope = _scope.get()
    return dict(scope.attributes) if scope is not None else {}


@contextmanager
def materialization(
    asset_key: str,
    *,
    run_id: str | None = None,
    partition_key: str | None = None,
    attempt: int = 1,
    already_recorded: bool = False,
) -> Iterator[Materialization]:
    """Span and metric scope for one asset materialization attempt.

    Every span opened inside carries the run id, asset key, partition and
    attempt. Metric points are committed once, when the block ends without an
    error and ``already_recorded`` is false (see the module docstring).
    """
    attributes: dict[str, Any] = {"dagster.asset_key": asset_key, "dagster.run.attempt": attempt}
    if run_id:
        attributes["dagster.run_id"] = run_id
    if partition_key:
        attributes["dagster.partition_key"] = partition_key
    scope = Materialization(attributes, record_metrics=not already_recorded)
    token = _scope.set(scope)
    state = get()
    outcome = "failed"
    try:
        with _span(state, f"materialize {asset_key}", attributes) as span:
            yield scope
            if span is not None:
                span.set_attribute("ceilgrid.rooms", scope.rooms)
                span.set_attribute("ceilgrid.metrics_recorded", scope.record_metrics)
        outcome = "recorded" if scope.record_metrics else "duplicate"
        if state.instruments is not None and scope.record_metrics:
            for record in scope.pending:
                record(state.instruments)
    finally:
        _scope.reset(token)
        if state.instruments is not None:
            state.instruments.materializations.add(1, {"asset_key": asset_key, "outcome": outcome})
        state.flush()


@contextmanager
def _span(
    state: Telemetry, name: str, attributes: Mapping[str, Any], start_time: int | None = None
) -> Iterator[Any]:
    if state.tracer is None:
        yield None
        return
    with state.tracer.start_as_current_span(
        name, attributes=attributes, start_time=start_time
    ) as span:
        yield span


# --------------------------------------------------------------------------- recording


def _room_points(result: RoomResult, profile: str) -> Callable[[Instruments], None]:
    """The metric points of one completed room, computed now, added when committed."""
    compliant = result.compliant
    room = result.room
    room_labels = {"compliant": compliant, "room_type": room.room_type, "profile": profile}
    added = {
        component: room.count(component) - result.original.count(component)
        for component in DEVICE_COMPONENTS
    }
    rules = [violation["rule"] for violation in result.compliance.get("violations", ())]
    wins = [(component, record["chosen"]) for component, record in result.models.items()]
    candidates = [
        (component, outcome.model, outcome.compliant, outcome.seconds, outcome.added is not None)
        for component, outcomes in result.candidates.items()
        for outcome in outcomes
    ]
    seconds = result.seconds

    def record(instruments: Instruments) -> None:
        instruments.rooms.add(1, room_labels)
        instruments.room_duration.record(seconds, {"compliant": compliant})
        for component, count in added.items():
            if count > 0:
                instruments.devices.add(count, {"component": component})
        for rule in rules:
            instruments.violations.add(1, {"rule": rule})
        for component, model in wins:
            instruments.wins.add(1, {"component": component, "model": model})
        for component, model, ok, took, ran in candidates:
            labels = {"component": component, "model": model}
            instruments.candidates.add(1, {**labels, "compliant": ok, "skipped": not ran})
            if ran:
                instruments.placement_duration.record(took, labels)

    return record


def record_room(result: RoomResult) -> None:
    """Count a completed room: now, or when the enclosing materialization succeeds."""
    state = get()
    if state.instruments is None:
        return
    record = _room_points(result, str(result.compliance.get("profile", "")))
    scope = _scope.get()
    if scope is None:
        record(state.instruments)
    else:
        scope.rooms += 1
        scope.pending.append(record)


def _room_attributes(result: RoomResult) -> dict[str, Any]:
    room = result.room
    devices = sum(room.count(component) for component in DEVICE_COMPONENTS)
    return {
        "ceilgrid.compliant": result.compliant,
        "ceilgrid.devices": devices,
        "ceilgrid.violations": len(result.compliance.get("violations", ())),
        "ceilgrid.duration_s": result.seconds,
        "ceilgrid.chosen": [f"{c}={r['chosen']}" for c, r in result.models.items()],
    }


def _candidate_attributes(outcome: CandidateOutcome) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "ceilgrid.compliant": outcome.compliant,
        "ceilgrid.placement_s": outcome.seconds,
        "ceilgrid.skipped": outcome.added is None,
    }
    if outcome.added is not None:
        attributes.update(
            {
                "ceilgrid.devices": outcome.devices,
                "ceilgrid.violations": outcome.violations,
                "ceilgrid.repaired": outcome.repaired,
                "ceilgrid.score": outcome.score,
            }
        )
    return attributes


# --------------------------------------------------------------------------- engine hooks
#
# The engine reports its steps through ceilgrid_assets.core.engine.hooks; this
# module subscribes while telemetry is on, so with telemetry off the engine pays
# one empty-tuple check per step and never imports OpenTelemetry.


def _building(
    step: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], state: Telemetry
) -> BuildingResult:
    """Span ``ceilgrid.building`` around ``complete_building(parsed, ...)``."""
    if state.tracer is None:
        return step(*args, **kwargs)
    parsed = args[0]
    attributes = {
        **_scope_attributes(),
        "ceilgrid.building_id": parsed.building_id,
        "ceilgrid.rooms": len(parsed.rooms),
        "ceilgrid.rejected_rooms": len(parsed.errors),
    }
    with state.tracer.start_as_current_span("ceilgrid.building", attributes=attributes) as span:
        result = step(*args, **kwargs)
        span.set_attribute("ceilgrid.compliant_rooms", sum(room.compliant for room in result.rooms))
        return result


def _room(
    step: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], state: Telemetry
) -> RoomResult:
    """Span ``ceilgrid.room`` around ``complete_room(room, ...)`` and its metric points."""
    if state.tracer is None:
        result = step(*args, **kwargs)
    else:
        room = args[0]
        attributes = {
            **_scope_attributes(),
            "ceilgrid.grid_id": room.grid_id,
            "ceilgrid.room.width": room.width,
            "ceilgrid.room.height": room.height,
            "ceilgrid.room.cells": room.width * room.height,
            "ceilgrid.room.usable_cells": int(room.usable.sum()),
            "ceilgrid.room_type": room.room_type,
        }
        with state.tracer.start_as_current_span("ceilgrid.room", attributes=attributes) as span:
            result = step(*args, **kwargs)
            span.set_attributes(_room_attributes(result))
            if not result.compliant:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR, "no compliant layout"))
    record_room(result)
    return result


def _stage(
    step: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], state: Telemetry
) -> Any:
    """Span ``ceilgrid.stage`` around ``run_stage(context, models)``."""
    if state.tracer is None:
        return step(*args, **kwargs)
    attributes = {**_scope_attributes(), "ceilgrid.component": args[0].component}
    with state.tracer.start_as_current_span("ceilgrid.stage", attributes=attributes) as span:
        chosen, outcomes = step(*args, **kwargs)
        span.set_attributes(
            {
                "ceilgrid.model": chosen.model,
                "ceilgrid.compliant": chosen.compliant,
                "ceilgrid.devices": chosen.devices,
                "ceilgrid.candidates": len(outcomes),
            }
        )
        return chosen, outcomes


def _candidate(
    step: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], state: Telemetry
) -> CandidateOutcome:
    """Span ``ceilgrid.candidate`` for ``evaluate(context, model, proposal, seconds)``.

    The engine calls ``evaluate`` right after the model's ``place`` returned,
    with the placement time: the span starts ``seconds`` earlier, so it covers
    placement, repair and validation without touching the stage loop.
    """
    if state.tracer is None:
        return step(*args, **kwargs)
    context, model, _proposal, seconds = args
    attributes = {
        **_scope_attributes(),
        "ceilgrid.component": context.component,
        "ceilgrid.model": model,
    }
    start = time.time_ns() - int(seconds * 1e9)
    with state.tracer.start_as_current_span(
        "ceilgrid.candidate", attributes=attributes, start_time=start
    ) as span:
        outcome = step(*args, **kwargs)
        span.set_attributes(_candidate_attributes(outcome))
        return outcome


_HANDLERS = {"building": _building, "room": _room, "stage": _stage, "candidate": _candidate}


def observe(
    event: hooks.Event, step: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The engine observer: spans and metric points for one engine step."""
    state = _current if _current is not None else get()
    if not state.enabled:
        return step(*args, **kwargs)
    return _HANDLERS[event](step, args, kwargs, state)


# --------------------------------------------------------------------------- logs

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def trace_ids() -> dict[str, str]:
    """``trace_id``/``span_id`` of the current span (hex, as backends show them), if any."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def structured_message(message: str, **fields: Any) -> str:
    """One JSON object: the message, trace ids and fields (for ``context.log`` lines)."""
    return json.dumps(
        {"message": message, **trace_ids(), **fields}, default=str, separators=(", ", ": ")
    )


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object per line, with trace ids and ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **trace_ids(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
