"""Named asset jobs: GraphQL clients, sensors and schedules launch these by name."""

import dagster as dg

from .datasets import room_corpus, submitted_building
from .layouts import completed_layout
from .reports import building_report

#: The serving job: one building partition (or a contiguous batch) per run. The
#: in-process executor avoids a process per step (about 5 s each here).
#:
#: Its runs are retried on step failures too (the instance retries only crashed
#: runs): a Postgres restart kills the storage query a step is making and Dagster
#: records that as a step failure. A layout is deterministic and written
#: atomically, so a retry from the failed step is safe and a real code error just
#: fails ``run_retries.max_retries`` more times, visibly.
layout_building_job = dg.define_asset_job(
    name="layout_building_job",
    selection=dg.AssetSelection.assets(submitted_building, completed_layout, building_report),
    executor_def=dg.in_process_executor,
    tags={"ceilgrid/workload": "serving", "dagster/retry_on_asset_or_op_failure": "true"},
    description="Validate, lay out and report one submitted building (checks included).",
)

#: Regenerates the training corpus; the rest of the training group follows by
#: automation condition once its inputs are fresh.
corpus_job = dg.define_asset_job(
    name="corpus_job",
    selection=dg.AssetSelection.assets(room_corpus),
    executor_def=dg.in_process_executor,
    tags={"ceilgrid/workload": "training"},
    description="Regenerate the synthetic room corpus (starts nightly retraining).",
)
