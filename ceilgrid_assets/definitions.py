"""The ceilgrid code location: every asset, check, job, sensor and schedule."""

import dagster as dg

from .defs import (
    checks,
    datasets,
    features,
    layouts,
    models,
    observability,
    reports,
    schedules,
    sensors,
)
from .defs.datasets import TRAINING
from .defs.jobs import corpus_job, layout_building_job
from .defs.resources import build_resources

#: Evaluates the training group's on_cron conditions, so that labels, features,
#: models, evaluation and promotion follow the nightly corpus in order.
training_automation = dg.AutomationConditionSensorDefinition(
    name="training_automation",
    target=dg.AssetSelection.groups(TRAINING),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)

defs = dg.Definitions(
    assets=[*dg.load_assets_from_modules([datasets, features, models, layouts, reports]),
            datasets.building_submission],
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[layout_building_job, corpus_job],
    sensors=[sensors.inbox_sensor, sensors.run_failure_webhook,
             observability.check_failure_alerts, training_automation],
    schedules=[schedules.nightly_retraining],
    resources=build_resources(),
)
