"""Alert sensors: failed runs, failed checks and failed freshness policies reach every
configured channel (webhook, e-mail, PagerDuty: see observability/alerts.py)."""

from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.events import DagsterEventType

from ceilgrid_assets.defs.observability import (
    CHECK_ALERT_SENSOR,
    notify_check_failure,
    notify_freshness_failure,
    notify_run_failure,
)
from ceilgrid_assets.defs.resources import WebhookConfig

FRESHNESS_ALERT_SENSOR = "ceilgrid_freshness_alerts"


def event_records(
    instance: dg.DagsterInstance,
    event_type: DagsterEventType,
    after: float | None,
    limit: int | None,
) -> list[Any]:
    """Events of a type after a cursor, oldest first (newest only when ``limit=1``, no cursor).

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
            dg.EventRecordsFilter(event_type=event_type, **bound),
            ascending=after is not None,
            limit=limit,
        )
    )


def cursor_of(instance: dg.DagsterInstance, record: Any) -> str:
    return str(record.timestamp if instance.event_log_storage.is_run_sharded else record.storage_id)


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    description="Sends an alert (webhook, e-mail, PagerDuty: whichever is configured) "
    "when any run fails.",
)
def run_failure_webhook(context: dg.RunFailureSensorContext, webhook: WebhookConfig) -> None:
    # Payload and delivery live in observability.notify_run_failure (one place to extend).
    notify_run_failure(context, webhook.url or None)


@dg.sensor(
    name=CHECK_ALERT_SENSOR,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends failed asset checks (blocking promotion checks included) to "
    "the alert channels, with a link to the run.",
)
def check_failure_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Alerts on asset-check evaluations that failed since the cursor (new ones only)."""
    return _alert_on_new_events(
        context,
        DagsterEventType.ASSET_CHECK_EVALUATION,
        lambda record: not record.event_log_entry.dagster_event.event_specific_data.passed,
        lambda record: notify_check_failure(
            record.event_log_entry.dagster_event.event_specific_data, record.run_id, context.log
        ),
        "check evaluations",
    )


@dg.sensor(
    name=FRESHNESS_ALERT_SENSOR,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts when an asset starts failing its freshness policy (the serving "
    "and training SLAs), from the freshness daemon's state changes.",
)
def freshness_failure_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """One alert per change into FAIL; staying in FAIL makes no new event, hence no repeat."""
    return _alert_on_new_events(
        context,
        DagsterEventType.FRESHNESS_STATE_CHANGE,
        lambda record: _freshness_change(record).new_state == FreshnessState.FAIL,
        lambda record: notify_freshness_failure(_freshness_change(record), context.log),
        "freshness changes",
    )


def _freshness_change(record: Any) -> Any:
    return record.event_log_entry.dagster_event.event_specific_data


def _alert_on_new_events(
    context: dg.SensorEvaluationContext,
    event_type: DagsterEventType,
    is_failure: Callable[[Any], bool],
    notify: Callable[[Any], object],
    label: str,
) -> dg.SkipReason:
    """Alert on the failures among events newer than the cursor; the first tick only starts."""
    instance = context.instance
    if context.cursor is None:
        latest = event_records(instance, event_type, None, limit=1)
        context.update_cursor(cursor_of(instance, latest[0]) if latest else "0")
        return dg.SkipReason(f"started: alerting on {label} from now on")
    records = event_records(instance, event_type, float(context.cursor), limit=200)
    failed = 0
    for record in records:
        if is_failure(record):
            failed += 1
            notify(record)
    if records:
        context.update_cursor(cursor_of(instance, records[-1]))
    return dg.SkipReason(f"{len(records)} {label}, {failed} failed")
