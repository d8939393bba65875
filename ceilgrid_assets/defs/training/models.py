"""Learned models: one trained asset per component, evaluation, and promotion to serving."""

import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.learning import registry
from ceilgrid_assets.core.learning.registry import code_version
from ceilgrid_assets.defs.metadata import frame_table, rows_table
from ceilgrid_assets.defs.resources import ModelStore
from ceilgrid_assets.defs.training.corpus import ML_OWNER, TRAINING
from ceilgrid_assets.defs.training.features import training_features
from ceilgrid_assets.defs.training.jobs import TRAINING_RUN_TAGS
from ceilgrid_assets.defs.training.schedules import after_inputs_refreshed_or_in_run


def _model_asset(component: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{component}_model",
        group_name=TRAINING,
        pool=TRAINING,
        kinds={"scikitlearn"},
        owners=[ML_OWNER],
        tags=TRAINING_RUN_TAGS,
        automation_condition=after_inputs_refreshed_or_in_run,
        # Ordering only: the model trains on the labels once their features were built.
        deps=[training_features],
        description=f"Gradient-boosted classifier that scores cells for {component} placement, "
        f"with its card (scikit-learn version, features, corpus, decoder, metrics).",
    )
    def trained_model(
        context: dg.AssetExecutionContext, room_corpus: dict, optimiser_labels: dict[str, list[Any]]
    ) -> dg.Output[Any]:
        from ceilgrid_assets.core.learning.training import (
            fit_model,  # training stack: imported where it is used
        )

        labels = [room for shard in sorted(optimiser_labels) for room in optimiser_labels[shard]]
        started = time.perf_counter()
        model = fit_model(labels, component, seed=room_corpus["seed"])
        model.card["corpus"] = {
            "seed": room_corpus["seed"],
            "sha256": room_corpus["hash"],
            "rooms": len(labels),
            "served_rooms": room_corpus.get("served_rooms", 0),
        }
        metrics = {
            key: value
            for key, value in model.card["metrics"].items()
            if isinstance(value, (int, float)) and value is not None
        }
        return dg.Output(
            model,
            metadata={
                **metrics,
                "spacing_factor": model.spacing_factor,
                "sklearn_version": model.card["sklearn_version"],
                "card": dg.MetadataValue.json(model.card),
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    return trained_model


component_models = [_model_asset(component) for component in DEVICE_COMPONENTS]


class EvaluationConfig(dg.Config):
    """How many held-out rooms to lay out (all of them when larger than the hold-out set)."""

    max_rooms: int = 100


@dg.asset(
    group_name=TRAINING,
    pool=TRAINING,
    kinds={"pandas"},
    owners=[ML_OWNER],
    tags=TRAINING_RUN_TAGS,
    automation_condition=after_inputs_refreshed_or_in_run,
    ins={f"{component}_model": dg.AssetIn() for component in DEVICE_COMPONENTS},
    description="Held-out rooms laid out by the engine with the new models competing, the "
    "synthetic and the served ones apart: per slice and component, compliance before and "
    "after repair, devices against the best other candidate (the optimiser where it ran) "
    "and time per room. Its blocking checks decide promotion.",
)
def model_evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, room_corpus: dict, **models: Any
) -> dg.Output[Any]:
    from ceilgrid_assets.core.learning.evaluation import evaluate_slices

    slices = {
        "synthetic": room_corpus["holdout"][: config.max_rooms],
        "served": room_corpus.get("served_holdout", [])[: config.max_rooms],
    }
    started = time.perf_counter()
    frame, layouts_compliant = evaluate_slices(slices, list(models.values()))
    return dg.Output(
        frame,
        metadata={
            "rooms": dg.MetadataValue.json({name: len(rooms) for name, rooms in slices.items()}),
            "layouts_compliant": dg.MetadataValue.json(layouts_compliant),
            "evaluation": frame_table(frame.round(4)),
            "corpus_hash": room_corpus["hash"],
            "seconds": round(time.perf_counter() - started, 2),
        },
    )


def promotion_record(evaluation: Any, models: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The version's lineage: what it learned from, which code, how it trained and scored
    (the evaluation is also what the next candidate is judged against)."""
    cards = {model.component: model.card for model in models.values()}
    return {
        "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_id": run_id,
        "code_version": code_version(),
        "corpus": next(iter(cards.values())).get("corpus"),
        "training_metrics": {component: card.get("metrics") for component, card in cards.items()},
        # Through pandas' JSON writer: a missing value (no optimiser run) becomes null, not NaN.
        "evaluation": json.loads(evaluation.to_json(orient="records")),
    }


@dg.asset(
    group_name=TRAINING,
    pool=TRAINING,
    kinds={"scikitlearn", "filesystem"},
    owners=[ML_OWNER],
    # Retrained nightly: warn when a day has passed, fail after 26 hours.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=26), warn_window=timedelta(hours=24)
    ),
    tags=TRAINING_RUN_TAGS,
    automation_condition=after_inputs_refreshed_or_in_run,
    ins={
        "model_evaluation": dg.AssetIn(),
        **{f"{component}_model": dg.AssetIn() for component in DEVICE_COMPONENTS},
    },
    description="The models serving uses, swapped in atomically in the model store; reached "
    "only when model_evaluation's blocking checks pass.",
)
def promoted_models(
    context: dg.AssetExecutionContext, model_store: ModelStore, model_evaluation: Any, **models: Any
) -> dg.MaterializeResult:
    from ceilgrid_assets.core.learning.evaluation import noncompliant, regressions
    from ceilgrid_assets.core.learning.learned import save_model

    # The blocking checks gate promotion within a run; this refuses the same models when
    # promoted_models runs without them (alone from the UI, or in a later run).
    blockers = noncompliant(model_evaluation) + regressions(
        model_evaluation, model_store.promoted_record()
    )
    if blockers:
        raise dg.Failure(f"not promoted: {'; '.join(blockers)}")
    record = promotion_record(model_evaluation, models, context.run_id)
    previous = model_store.load_promoted().version
    Path(model_store.location).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_store.location, prefix=".staging-") as staging:
        for model in models.values():
            save_model(model, staging)
        version = model_store.promote(Path(staging), record)
    metadata: dict[str, Any] = {
        "version": version.id,
        "previous_version": previous or "none",
        "path": dg.MetadataValue.path(str(version.path)),
        "lineage": dg.MetadataValue.json(version.record),
        "evaluation": frame_table(model_evaluation.round(4)),
    }
    if previous is not None:
        old = registry.get_version(Path(model_store.location), previous)
        metadata["against_previous"] = rows_table(registry.compare(old, version))
    return dg.MaterializeResult(metadata=metadata)
