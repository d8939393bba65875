"""Alert sensors: failed runs and failed blocking checks reach the configured webhook."""

from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType

from ceilgrid_assets.defs.observability import (
    CHECK_ALERT_SENSOR,
    notify_check_failure,
    notify_run_failure,
)
from ceilgrid_assets.defs.resources import WebhookConfig


def check_evaluations(
    instance: dg.DagsterInstance, after: float | None, limit: int | None
) -> list[Any]:
    """Check evaluations after a cursor, oldest first (newest only when ``limit=1``, no cursor).

    The cursor is a storage id; on run-sharded storage (SQLite ``dagster dev``),
    which cannot page by storage id across runs, it is a timestamp instead.
    """
    sharded = instance.event_log_storage.is_run_sharded
    bound = (
        {}
        if after is None
        else {"after_timestamp": after}
        if sharded
        else {"after_cursor": int(after)}
    )
    return list(
        instance.get_event_records(
            dg.EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION, **bound),
            ascending=after is not None,
            limit=limit,
        )
    )


def cursor_of(instance: dg.DagsterInstance, record: Any) -> str:
    return str(record.timestamp if instance.event_log_storage.is_run_sharded else record.storage_id)


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    description="Posts an alert (JSON, Slack-compatible) to the webhook in "
    "CEILGRID_ALERT_WEBHOOK_URL when any run fails.",
)
def run_failure_webhook(context: dg.RunFailureSensorContext, webhook: WebhookConfig) -> None:
    # Payload and delivery live in observability.notify_run_failure (one place to extend).
    notify_run_failure(context, webhook.url or None)


@dg.sensor(
    name=CHECK_ALERT_SENSOR,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts failed asset checks (blocking promotion checks included) to "
    "the alert webhook, with a link to the run.",
)
def check_failure_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Alerts on asset-check evaluations that failed since the cursor (new ones only)."""
    instance = context.instance
    if context.cursor is None:
        latest = check_evaluations(instance, None, limit=1)
        context.update_cursor(cursor_of(instance, latest[0]) if latest else "0")
        return dg.SkipReason("started: alerting on check failures from now on")
    records = check_evaluations(instance, float(context.cursor), limit=200)
    failed = 0
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            failed += 1
            notify_check_failure(evaluation, record.run_id, context.log)
    if records:
        context.update_cursor(cursor_of(instance, records[-1]))
    return dg.SkipReason(f"{len(records)} check evaluations, {failed} failed")
