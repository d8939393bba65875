"""Training: corpus, optimiser labels, features, learned models, evaluation, promotion.

The nightly schedule gathers served rooms and rebuilds the corpus (on a first start,
a sensor does, once); automation conditions carry the rest of the group; blocking
checks on the evaluation gate promotion.
"""

import dagster as dg

from ceilgrid_assets.defs.training import checks, corpus, features, models
from ceilgrid_assets.defs.training.jobs import corpus_job
from ceilgrid_assets.defs.training.schedules import (
    first_start_training,
    nightly_retraining,
    training_automation,
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([corpus, features, models]),
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=[corpus_job],
    sensors=[training_automation, first_start_training],
    schedules=[nightly_retraining],
)
