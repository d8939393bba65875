"""Training data: optimiser labels in shards and the per-cell feature tables they yield."""

import time
from typing import Any

import dagster as dg

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.defs.metadata import frame_table
from ceilgrid_assets.defs.resources import LayoutStorage
from ceilgrid_assets.defs.training.corpus import ML_OWNER, TRAINING
from ceilgrid_assets.defs.training.jobs import TRAINING_RUN_TAGS
from ceilgrid_assets.defs.training.partitions import (
    LABEL_SHARDS,
    label_shard_partitions,
    shard_index,
)
from ceilgrid_assets.defs.training.schedules import after_inputs_finished


class LabelConfig(dg.Config):
    """Time HiGHS may spend on one stage of one room (None: the labeller's default);
    slower stages are marked, not used."""

    time_limit_s: float | None = None
    n_jobs: int = 1


@dg.asset(
    group_name=TRAINING,
    pool=TRAINING,
    partitions_def=label_shard_partitions,
    kinds={"scipy", "python"},
    owners=[ML_OWNER],
    tags=TRAINING_RUN_TAGS,
    automation_condition=after_inputs_finished,
    description=f"Exact optimiser (HiGHS) layouts of the training rooms, stage by stage, in "
    f"{LABEL_SHARDS} shards (room i goes to shard i mod {LABEL_SHARDS}) so that "
    f"labelling fans out over run workers. Time-outs are kept and marked. Each room is "
    f"labelled once: later nights replay its stages from the label cache by content.",
)
def optimiser_labels(
    context: dg.AssetExecutionContext,
    config: LabelConfig,
    room_corpus: dict,
    layout_storage: LayoutStorage,
) -> dg.Output[list[Any]]:
    # The training stack (pandas, scikit-learn) is imported where it is used, so that
    # serving runs start without it.
    from ceilgrid_assets.core.learning.labels import (
        LabelCache,
        count_replayed,
        label_rooms,
        labels_table,
    )

    shard = shard_index(context.partition_key)
    rooms = [
        room for index, room in enumerate(room_corpus["train"]) if index % LABEL_SHARDS == shard
    ]
    started = time.perf_counter()
    limit = {} if config.time_limit_s is None else {"time_limit_s": config.time_limit_s}
    cache = LabelCache(layout_storage.pull_label_cache())
    labels = label_rooms(rooms, n_jobs=config.n_jobs, cache=cache, **limit)
    layout_storage.push_label_cache()
    replayed = count_replayed(labels)
    table = labels_table(labels)
    status = table["status"].value_counts().to_dict() if not table.empty else {}
    return dg.Output(
        labels,
        metadata={
            "rooms": len(labels),
            "rooms_labelled": len(labels) - replayed,
            "rooms_from_label_cache": replayed,
            "stages": len(table),
            "usable_stages": int(table["usable"].sum()) if not table.empty else 0,
            "rooms_timed_out": sum(room.timed_out for room in labels),
            "status": dg.MetadataValue.json(
                {str(key): int(value) for key, value in status.items()}
            ),
            "corpus_hash": room_corpus["hash"],
            "seconds": round(time.perf_counter() - started, 2),
        },
    )


def feature_summary(labels: list[Any]) -> Any:
    """Rows, positives and stages of each component's training table."""
    import pandas as pd

    from ceilgrid_assets.core.learning.training import training_table

    rows = []
    for component in DEVICE_COMPONENTS:
        table = training_table(labels, component)
        rows.append(
            {
                "component": component,
                "rows": int(table.target.size),
                "positives": int(table.target.sum()),
                "stages": len(table.stages),
                "features": table.features.shape[1],
            }
        )
    return pd.DataFrame(rows)


@dg.asset(
    group_name=TRAINING,
    pool=TRAINING,
    kinds={"pandas"},
    owners=[ML_OWNER],
    tags=TRAINING_RUN_TAGS,
    automation_condition=after_inputs_finished,
    description="Per-cell feature tables (distance transforms, position, room shape and type, "
    "local density, earlier devices) of every usable label: what the models learn "
    "from, with a preview. One function builds them for training and inference.",
)
def training_features(optimiser_labels: dict[str, list[Any]]) -> dg.Output[Any]:
    from ceilgrid_assets.core.learning.training import training_table

    labels = [room for shard in sorted(optimiser_labels) for room in optimiser_labels[shard]]
    summary = feature_summary(labels)
    first = training_table(labels, DEVICE_COMPONENTS[0])
    preview = first.features.head(10).round(3)
    return dg.Output(
        summary,
        metadata={
            "rooms": len(labels),
            "summary": frame_table(summary),
            "feature_columns": dg.MetadataValue.json(list(first.features.columns)),
            f"preview_{DEVICE_COMPONENTS[0]}": frame_table(preview.reset_index(names="cell")),
            "dagster/row_count": int(summary["rows"].sum()),
        },
    )
