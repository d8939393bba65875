"""Dagster glue for telemetry: materialization spans, structured logs, webhook alerts.

Telemetry and alerts (:mod:`ceilgrid_assets.observability`) know nothing of
Dagster; this module supplies what only Dagster knows: the run
id, asset key, partition and retry number of a step, whether the run group
already recorded a materialization (retry de-duplication), the log manager that
puts records in the UI, and the sensor contexts of failures.

Usage in an asset::

    with materialization_telemetry(context):
        result = complete_building(parsed, engine)
        log_event(context.log, "building laid out", building_id=..., rooms=...)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType

from ceilgrid_assets.observability import alerts, telemetry

#: Loggers of the core whose records are forwarded to the step's log manager.
CORE_LOGGER = "ceilgrid_assets"
CHECK_ALERT_SENSOR = "ceilgrid_check_failure_alerts"


class DagsterLogHandler(logging.Handler):
    """Sends Python log records, as JSON lines with trace ids, to a Dagster log manager."""

    def __init__(self, dagster_log: logging.Logger, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.dagster_log = dagster_log
        self.setFormatter(telemetry.JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.dagster_log.log(record.levelno, self.format(record))
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


@contextmanager
def forward_core_logs(dagster_log: logging.Logger, level: int = logging.INFO) -> Iterator[None]:
    """Route the core's ``logging`` records into the step's log (the UI) for a block."""
    logger = logging.getLogger(CORE_LOGGER)
    handler = DagsterLogHandler(dagster_log, level)
    previous = logger.level
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def log_event(
    dagster_log: logging.Logger, message: str, level: int = logging.INFO, **fields: Any
) -> None:
    """One structured line in the run's log: JSON with message, trace ids and fields."""
    dagster_log.log(level, telemetry.structured_message(message, **fields))


def _partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    if context.has_partition_key_range or context.has_partition_key:
        return list(context.partition_keys)
    return []


def already_materialized_in_run_group(
    instance: dg.DagsterInstance, run_id: str, asset_key: dg.AssetKey, partition_keys: Sequence[str]
) -> bool:
    """Whether another run of this run's group (retries, re-executions) materialized it.

    Such a run already recorded the metrics of this asset partition, so a
    re-execution must not count its rooms again.
    """
    group = instance.get_run_group(run_id)
    if group is None:
        return False
    others = [run.run_id for run in group[1] if run.run_id != run_id]
    wanted = set(partition_keys)
    for other in others:
        records = instance.get_records_for_run(
            other, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ).records
        for record in records:
            if record.asset_key != asset_key:
                continue
            if not wanted or record.partition_key in wanted:
                return True
    return False


@contextmanager
def materialization_telemetry(
    context: dg.AssetExecutionContext,
) -> Iterator[telemetry.Materialization]:
    """Span per materialization, run attributes on core spans, logs to the UI, metrics once."""
    asset_key = context.asset_key
    partitions = _partition_keys(context)
    duplicate = already_materialized_in_run_group(
        context.instance, context.run_id, asset_key, partitions
    )
    if duplicate:
        log_event(
            context.log,
            "metrics already recorded by this run group; not counted again",
            asset_key=asset_key.to_user_string(),
            partitions=partitions,
        )
    partition_label = (
        partitions[0]
        if len(partitions) == 1
        else f"{partitions[0]}...{partitions[-1]}"
        if partitions
        else None
    )
    with (
        forward_core_logs(context.log),
        telemetry.materialization(
            asset_key.to_user_string(),
            run_id=context.run_id,
            partition_key=partition_label,
            attempt=context.retry_number + 1,
            already_recorded=duplicate,
        ) as scope,
    ):
        yield scope


# --------------------------------------------------------------------------- alerts


def _deliver(kind: str, alert: alerts.Alert, sensor_log: logging.Logger, url: str | None) -> bool:
    """Send an alert to every configured channel; True when at least one took it.

    ``url`` (the sensor's webhook resource) stands in for the webhook variable.
    A failure is logged in the sensor's tick log and counted, not raised:
    raising would fail the tick and, for run-status sensors, hold the cursor so
    that one unreachable channel blocks every later alert.
    """
    instruments = telemetry.get().instruments
    environ = {**os.environ, alerts.ENV_WEBHOOK_URL: url} if url else os.environ
    try:
        channels = alerts.configured_channels(environ)
    except (alerts.AlertError, ValueError) as exc:
        sensor_log.error(f"{kind} alert not sent: alert settings invalid: {exc}")
        channels = []
    if not channels:
        sensor_log.info(
            f"{kind} alert not sent: no alert channel is configured ({alerts.ENV_WEBHOOK_URL}, "
            f"{alerts.ENV_SMTP_HOST}, {alerts.ENV_PAGERDUTY_KEY})"
        )
    delivered = False
    for channel in channels:
        try:
            channel.send(alert)
        except alerts.AlertError as exc:
            sensor_log.error(f"{kind} alert not delivered: {exc}")
            outcome = "failed"
        else:
            sensor_log.info(f"{kind} alert sent to {channel.name}")
            outcome, delivered = "sent", True
        if instruments is not None:
            instruments.alerts.add(
                1, {"kind": kind, "channel": channel.name.split()[0], "outcome": outcome}
            )
    return delivered


def run_failure_error(context: dg.RunFailureSensorContext) -> str:
    """The step errors of a failed run, else the run failure message."""
    messages = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:  # the user's exception
            error = error.cause
        if error is not None:
            messages.append(f"{event.step_key}: {error.message.strip()}")
    return "\n".join(messages) or (context.failure_event.message or "run failed")


def notify_run_failure(context: dg.RunFailureSensorContext, url: str | None = None) -> bool:
    """Count a failed run and send its alert to every configured channel."""
    run = context.dagster_run
    instruments = telemetry.get().instruments
    if instruments is not None:
        instruments.runs_failed.add(1, {"job": run.job_name})
    alert = alerts.run_failure_alert(
        run.run_id, run.job_name, run_failure_error(context), tags=run.tags
    )
    return _deliver("run_failure", alert, context.log, url)


def notify_check_failure(
    evaluation: Any, run_id: str | None, sensor_log: logging.Logger, url: str | None = None
) -> bool:
    """Count a failed asset check and post its alert; ``evaluation`` is an AssetCheckEvaluation."""
    asset_key = evaluation.asset_key.to_user_string()
    severity = getattr(evaluation.severity, "value", str(evaluation.severity))
    instruments = telemetry.get().instruments
    if instruments is not None:
        instruments.checks_failed.add(
            1, {"asset_key": asset_key, "check": evaluation.check_name, "severity": severity}
        )
    alert = alerts.check_failure_alert(
        asset_key,
        evaluation.check_name,
        run_id,
        severity=severity,
        blocking=bool(evaluation.blocking),
        description=evaluation.description,
        partition_key=evaluation.partition,
    )
    return _deliver("check_failure", alert, sensor_log, url)


def notify_freshness_failure(
    change: Any, sensor_log: logging.Logger, url: str | None = None
) -> bool:
    """Post the alert of an asset failing its freshness policy (a ``FreshnessStateChange``)."""
    alert = alerts.freshness_failure_alert(change.key.to_user_string(), change.previous_state.value)
    return _deliver("freshness_failure", alert, sensor_log, url)
