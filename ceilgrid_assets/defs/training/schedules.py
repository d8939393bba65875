"""When training runs: the nightly schedule starts it, automation conditions carry it on.

Every training asset is in the concurrency pool ``training``, which dagster.yaml
and the Helm values limit at run granularity: the queue holds training runs back,
however launched, and never serving runs. The runs the schedule and the automation
launch also carry the run tag ``ceilgrid/workload: training``, to find them in the UI.
"""

import os

import dagster as dg

from ceilgrid_assets.defs.resources import ModelStore, env_int
from ceilgrid_assets.defs.training.corpus import TRAINING, CorpusConfig
from ceilgrid_assets.defs.training.jobs import TRAINING_RUN_TAGS, corpus_job

#: When retraining starts (CEILGRID_RETRAINING_CRON, a cron string in UTC): the
#: schedule and the automation conditions' "night" both follow it.
RETRAINING_CRON = os.environ.get("CEILGRID_RETRAINING_CRON", "").strip() or "0 2 * * *"
RETRAINING_TIMEZONE = "UTC"
#: Synthetic rooms of the nightly corpus (CEILGRID_NIGHTLY_ROOMS), besides the served rooms.
NIGHTLY_ROOMS = env_int("CEILGRID_NIGHTLY_ROOMS", CorpusConfig().n_rooms)


def corpus_run_config(n_rooms: int) -> dict:
    """Run config of ``corpus_job`` for a corpus of ``n_rooms`` synthetic rooms."""
    return {"ops": {"room_corpus": {"config": {"n_rooms": n_rooms}}}}


nightly_retraining = dg.ScheduleDefinition(
    name="nightly_retraining",
    job=corpus_job,
    cron_schedule=RETRAINING_CRON,
    execution_timezone=RETRAINING_TIMEZONE,
    run_config=corpus_run_config(NIGHTLY_ROOMS),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly retraining of the learned placement models; the blocking checks on "
    "the evaluation decide whether serving switches to the new models.",
)

#: The night's tick; ``refreshed_tonight`` holds for an asset partition updated after it.
nightly_tick = dg.AutomationCondition.cron_tick_passed(RETRAINING_CRON, RETRAINING_TIMEZONE)
refreshed_tonight = dg.AutomationCondition.newly_updated().since(nightly_tick)


def every_input_partition(condition: dg.AutomationCondition) -> dg.AutomationCondition:
    """``condition`` on every partition of every input.

    ``all_deps_match`` (and so ``on_cron``) accepts a partitioned input once any
    one of its partitions matches; no input partition failing it is what we mean.
    """
    return ~dg.AutomationCondition.any_deps_match(~condition)


def after_inputs(in_same_run: bool) -> dg.AutomationCondition:
    """Once per night after every input partition was refreshed since the tick; and on
    the first start, once every input exists.

    ``in_same_run`` also accepts inputs requested in the same tick: for unpartitioned
    assets on unpartitioned inputs, which then share one run and execute in graph
    order (so the evaluation's blocking checks gate promotion within that run). An
    asset on a partitioned input must not: the shard runs and its own run would race.
    """
    updated = dg.AutomationCondition.newly_updated()
    refreshed, exists = refreshed_tonight, ~dg.AutomationCondition.missing()
    if in_same_run:
        requested = dg.AutomationCondition.will_be_requested()
        updated, refreshed, exists = updated | requested, refreshed | requested, exists | requested
    tonight = nightly_tick.since_last_handled() & every_input_partition(refreshed).with_label(
        "every input partition refreshed since the tick"
    )
    # ``missing().newly_true().since_last_handled()`` (on_missing) is reset by the sensor's
    # first evaluation, when a fresh instance is all missing: the latch here is set by
    # that first evaluation or an input's update, and reset only by a request or an update.
    latch = (
        dg.AutomationCondition.initial_evaluation() | dg.AutomationCondition.any_deps_match(updated)
    ).since(dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated())
    # Not while its own run is in progress: an input updated by that run re-arms the latch.
    first_start = (
        dg.AutomationCondition.missing()
        & ~dg.AutomationCondition.in_progress()
        & latch.with_label("first evaluation or an input updated, since last requested")
        & every_input_partition(exists).with_label("every input partition exists")
    )
    return tonight | first_start


#: Labels and features: after their inputs' runs finished.
after_inputs_finished = after_inputs(in_same_run=False)
#: Models, evaluation, promotion: inputs may run first in the same run.
after_inputs_refreshed_or_in_run = after_inputs(in_same_run=True)

#: Seconds between two evaluations of the training automation and of the first-start
#: sensor (CEILGRID_AUTOMATION_INTERVAL_S): each step of the nightly chain starts at
#: the tick after its inputs finished, so this is the wait per step.
AUTOMATION_INTERVAL_S = env_int("CEILGRID_AUTOMATION_INTERVAL_S", 30)

#: Evaluates the training group's conditions. One run per shard (no backfills), each
#: tagged as training (found by that tag in the UI).
training_automation = dg.AutomationConditionSensorDefinition(
    name="training_automation",
    target=dg.AssetSelection.groups(TRAINING),
    run_tags=TRAINING_RUN_TAGS,
    emit_backfills=False,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=AUTOMATION_INTERVAL_S,
)


#: Size of the corpus the first start trains on: small, so that models serve within minutes.
FIRST_START_ROOMS = env_int("CEILGRID_FIRST_START_ROOMS", 60)


@dg.sensor(
    job=corpus_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=AUTOMATION_INTERVAL_S,
    description="On a platform with no promoted models and no corpus yet, starts one small "
    "training (CEILGRID_FIRST_START_ROOMS rooms); the automation conditions carry it to "
    "promotion. Only where CEILGRID_FIRST_START_TRAINING=1 (make dev sets it).",
)
def first_start_training(
    context: dg.SensorEvaluationContext, model_store: ModelStore
) -> dg.RunRequest | dg.SkipReason:
    if os.environ.get("CEILGRID_FIRST_START_TRAINING") != "1":
        return dg.SkipReason("CEILGRID_FIRST_START_TRAINING is not 1")
    if model_store.promoted_record() is not None:  # the record only: no model is loaded
        return dg.SkipReason("models are promoted")
    if context.instance.get_latest_materialization_event(dg.AssetKey("room_corpus")):
        return dg.SkipReason("a corpus exists: the automation conditions carry training on")
    # One run key: requested once per instance, even if this run fails.
    return dg.RunRequest(
        run_key="first-start",
        run_config=corpus_run_config(FIRST_START_ROOMS),
    )
