"""The room corpus the learned models train and are evaluated on: seeded synthetic rooms
plus the rooms of buildings users submitted."""

import time

import dagster as dg

from ceilgrid_assets.contract import BUILDINGS
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.grid import Room
from ceilgrid_assets.core.engine.io import parse_document
from ceilgrid_assets.core.learning.corpus import (
    CorpusSpec,
    corpus_hash,
    generate_rooms,
    served_corpus,
    size_summary,
)
from ceilgrid_assets.defs.resources import LayoutStorage

#: The training group, and the concurrency pool of its assets: dagster.yaml holds any
#: run with a training asset back while another runs, however it was launched.
TRAINING = "training"
ML_OWNER = "team:ceilgrid-ml"


class CorpusConfig(dg.Config):
    """Size and seed of the synthetic training corpus (room i depends only on seed and i)."""

    n_rooms: int = 400
    seed: int = 2024
    holdout_fraction: float = 0.25


def split_holdout(rooms: list[Room], holdout_fraction: float) -> tuple[list[Room], list[Room]]:
    """Every k-th room is held out, so the split is stable as the corpus grows."""
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    step = max(2, round(1 / holdout_fraction))
    train = [room for index, room in enumerate(rooms) if index % step]
    holdout = [room for index, room in enumerate(rooms) if not index % step]
    return train, holdout


class ServedRoomsConfig(dg.Config):
    """At most this many distinct served rooms join the corpus (labelling time grows with it)."""

    max_rooms: int = 200


@dg.asset(
    group_name=TRAINING,
    pool=TRAINING,
    kinds={"python", "json"},
    owners=[ML_OWNER],
    # Read from the storage root's stored inputs; listed for lineage.
    deps=["submitted_building"],
    description="The rooms of every submitted building (their stored input.json), deduplicated "
    "by content, ids removed, bounded: the real distribution the models learn from "
    "and are evaluated on beside the synthetic rooms.",
)
def served_rooms(
    context: dg.AssetExecutionContext, config: ServedRoomsConfig, layout_storage: LayoutStorage
) -> dg.Output[list[Room]]:
    blobs = layout_storage.blobs()
    rooms, unreadable = [], []
    for key in context.instance.get_dynamic_partitions(BUILDINGS):
        name = layout_storage.input_key(key)
        data = blobs.get_bytes(name)
        if data is None:
            continue  # submitted, not yet stored by a layout run
        try:
            rooms.extend(parse_document(data, blobs.describe(name)).rooms)
        except InputError as error:
            unreadable.append(str(error))
    served = served_corpus(rooms, config.max_rooms)
    return dg.Output(
        served,
        metadata={
            "rooms_submitted": len(rooms),
            "distinct_rooms": len(served),
            "max_rooms": config.max_rooms,
            "unreadable_inputs": dg.MetadataValue.json(unreadable),
            "corpus_hash": corpus_hash(served),
        },
    )


@dg.asset(
    group_name=TRAINING,
    pool=TRAINING,
    kinds={"python", "numpy"},
    owners=[ML_OWNER],
    description="Seeded synthetic rooms (realistic sizes, shapes, columns, beams, pre-existing "
    "devices) and the served rooms, each split into a training part and a held-out part; "
    "the served held-out rooms are evaluated on their own.",
)
def room_corpus(
    context: dg.AssetExecutionContext, config: CorpusConfig, served_rooms: list[Room]
) -> dg.Output[dict]:
    started = time.perf_counter()
    synthetic = generate_rooms(CorpusSpec(seed=config.seed, n_rooms=config.n_rooms))
    train, holdout = split_holdout(synthetic, config.holdout_fraction)
    served_train, served_holdout = split_holdout(served_rooms, config.holdout_fraction)
    rooms = synthetic + served_rooms
    summary = size_summary(rooms)
    value = {
        "seed": config.seed,
        "hash": corpus_hash(rooms),
        "train": train + served_train,
        "holdout": holdout,
        "served_holdout": served_holdout,
        "served_rooms": len(served_rooms),
    }
    by_type: dict[str, int] = {}
    for room in rooms:
        by_type[room.room_type] = by_type.get(room.room_type, 0) + 1
    return dg.Output(
        value,
        metadata={
            **{key: value for key, value in summary.items()},
            "seed": config.seed,
            "corpus_hash": value["hash"],
            "train_rooms": len(value["train"]),
            "holdout_rooms": len(holdout),
            "served_train_rooms": len(served_train),
            "served_holdout_rooms": len(served_holdout),
            "rooms_by_type": dg.MetadataValue.json(by_type),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
