"""The ceilgrid code location: every asset, check, job, sensor and schedule."""

from __future__ import annotations

import dagster as dg

from .defs import checks, datasets, layouts, observability, reports, schedules, sensors
from .defs.jobs import corpus_job, layout_building_job
from .defs.resources import build_resources

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([datasets, layouts, reports]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[layout_building_job, corpus_job],
    sensors=[sensors.inbox_sensor, sensors.run_failure_webhook,
             observability.check_failure_alerts],
    schedules=[schedules.nightly_retraining],
    resources=build_resources(),
)
