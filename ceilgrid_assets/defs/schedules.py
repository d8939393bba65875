"""Schedules: nightly retraining."""

import dagster as dg

from .jobs import corpus_job

#: Retraining starts here; labels, features, models, evaluation and promotion
#: follow through ``AutomationCondition.on_cron`` with the same cron, each once
#: all of its inputs have been refreshed since this tick.
RETRAINING_CRON = "0 2 * * *"
RETRAINING_TIMEZONE = "UTC"

nightly_retraining = dg.ScheduleDefinition(
    name="nightly_retraining",
    job=corpus_job,
    cron_schedule=RETRAINING_CRON,
    execution_timezone=RETRAINING_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly retraining of the learned placement models; the blocking checks on "
                "the evaluation decide whether serving switches to the new models.",
)
