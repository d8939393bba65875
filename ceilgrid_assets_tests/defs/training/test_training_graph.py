"""The training side end to end on a tiny corpus: shards, features, models, promotion."""

from __future__ import annotations

import dagster as dg
import pytest

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.definitions import defs
from ceilgrid_assets.defs.resources import build_resources
from ceilgrid_assets.defs.training.partitions import label_shard_partitions

pytestmark = pytest.mark.slow

UNPARTITIONED = [
    "training_features",
    *(f"{component}_model" for component in DEVICE_COMPONENTS),
    "model_evaluation",
    "promoted_models",
]


def test_tiny_corpus_trains_evaluates_and_promotes(postgres_instance, ceilgrid_home):
    everything = [*defs.assets, *defs.asset_checks]
    resources = build_resources()
    corpus = dg.materialize(
        everything,
        selection=["served_rooms", "room_corpus"],
        instance=postgres_instance,
        resources=resources,
        run_config={"ops": {"room_corpus": {"config": {"n_rooms": 12, "seed": 5}}}},
    )
    assert corpus.success
    for shard in label_shard_partitions.get_partition_keys():
        labels = dg.materialize(
            everything,
            selection="optimiser_labels",
            partition_key=shard,
            instance=postgres_instance,
            resources=resources,
        )
        assert labels.success
        (event,) = labels.get_asset_materialization_events()
        metadata = event.materialization.metadata
        assert metadata["rooms_from_label_cache"].value == 0
        assert metadata["rooms_labelled"].value == metadata["rooms"].value
    # A second night on the same corpus solves nothing: every room is replayed.
    shard = label_shard_partitions.get_partition_keys()[0]
    again = dg.materialize(
        everything,
        selection="optimiser_labels",
        partition_key=shard,
        instance=postgres_instance,
        resources=resources,
    )
    (event,) = again.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["rooms"].value > 0
    assert metadata["rooms_from_label_cache"].value == metadata["rooms"].value
    assert metadata["rooms_labelled"].value == 0
    rest = dg.materialize(
        everything,
        selection=UNPARTITIONED,
        instance=postgres_instance,
        resources=resources,
        raise_on_error=False,
    )
    materialized = {
        event.asset_key.to_user_string() for event in rest.get_asset_materialization_events()
    }
    checks = {
        evaluation.check_name: evaluation.passed
        for evaluation in rest.get_asset_check_evaluations()
    }
    assert set(UNPARTITIONED) - {"promoted_models"} <= materialized
    assert set(checks) == {"evaluation_fully_compliant", "evaluation_not_worse_than_promoted"}
    # Promotion happens exactly when both blocking checks pass.
    assert ("promoted_models" in materialized) == all(checks.values())
    if all(checks.values()):
        store = resources["model_store"]
        assert {model.component for model in store.load_promoted().models} == set(DEVICE_COMPONENTS)
