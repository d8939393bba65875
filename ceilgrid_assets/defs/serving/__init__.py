"""Serving: a submitted building becomes a validated input, a layout and a report.

Its assets, checks, sensor and job sit together; ``defs`` is this domain's share
of the code location.
"""

import dagster as dg

from ceilgrid_assets.defs.serving import checks, layouts, reports, sensors, submissions
from ceilgrid_assets.defs.serving.jobs import layout_building_job

defs = dg.Definitions(
    assets=[
        *dg.load_assets_from_modules([submissions, layouts, reports]),
        submissions.building_submission,
    ],
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[layout_building_job],
    sensors=[sensors.inbox_sensor],
)
