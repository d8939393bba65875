"""Named asset jobs: GraphQL clients, sensors and schedules launch these by name."""

import dagster as dg

from ceilgrid_assets.contract import LAYOUT_JOB
from ceilgrid_assets.defs.serving.layouts import completed_layout
from ceilgrid_assets.defs.serving.reports import building_report
from ceilgrid_assets.defs.serving.submissions import submitted_building

#: The serving job: one building partition (or a contiguous batch) per run. The
#: in-process executor avoids a process per step (about 5 s each here).
#:
#: Its runs are retried on step failures too (the instance retries only crashed
#: runs): a Postgres restart kills the storage query a step is making and Dagster
#: records that as a step failure. A layout is deterministic and written
#: atomically, so a retry from the failed step is safe and a real code error just
#: fails ``run_retries.max_retries`` more times, visibly.
layout_building_job = dg.define_asset_job(
    name=LAYOUT_JOB,
    selection=dg.AssetSelection.assets(submitted_building, completed_layout, building_report),
    executor_def=dg.in_process_executor,
    tags={"ceilgrid/workload": "serving", "dagster/retry_on_asset_or_op_failure": "true"},
    description="Validate, lay out and report one submitted building (checks included).",
)
