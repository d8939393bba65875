"""When training runs: the nightly schedule starts it, automation conditions carry it on."""

import dagster as dg

from ceilgrid_assets.defs.training.corpus import TRAINING
from ceilgrid_assets.defs.training.jobs import corpus_job

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

#: Evaluates the training group's on_cron conditions, so that labels, features,
#: models, evaluation and promotion follow the nightly corpus in order.
training_automation = dg.AutomationConditionSensorDefinition(
    name="training_automation",
    target=dg.AssetSelection.groups(TRAINING),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)
