"""Named training jobs: the schedule and operators launch these by name."""

import dagster as dg

from ceilgrid_assets.defs.training.corpus import room_corpus, served_rooms

#: The run tag dagster.yaml's ``tag_concurrency_limits`` count training runs by.
TRAINING_RUN_TAGS = {"ceilgrid/workload": "training"}

#: Regenerates the training corpus; the rest of the training group follows by
#: automation condition once its inputs are fresh.
corpus_job = dg.define_asset_job(
    name="corpus_job",
    selection=dg.AssetSelection.assets(served_rooms, room_corpus),
    executor_def=dg.in_process_executor,
    tags=TRAINING_RUN_TAGS,
    description="Gather the served rooms and rebuild the corpus (starts nightly retraining).",
)
