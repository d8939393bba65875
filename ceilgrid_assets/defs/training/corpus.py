"""The synthetic room corpus the learned models train and are evaluated on."""

import time

import dagster as dg

from ceilgrid_assets.core.engine.grid import Room
from ceilgrid_assets.core.learning.corpus import (
    CorpusSpec,
    corpus_hash,
    generate_rooms,
    size_summary,
)

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


@dg.asset(
    group_name=TRAINING,
    kinds={"python", "numpy"},
    owners=[ML_OWNER],
    description="Seeded synthetic rooms (realistic sizes, shapes, columns, beams, pre-existing "
    "devices), split into a training part and a held-out part.",
)
def room_corpus(context: dg.AssetExecutionContext, config: CorpusConfig) -> dg.Output[dict]:
    started = time.perf_counter()
    rooms = generate_rooms(CorpusSpec(seed=config.seed, n_rooms=config.n_rooms))
    train, holdout = split_holdout(rooms, config.holdout_fraction)
    summary = size_summary(rooms)
    value = {
        "seed": config.seed,
        "hash": corpus_hash(rooms),
        "train": train,
        "holdout": holdout,
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
            "train_rooms": len(train),
            "holdout_rooms": len(holdout),
            "rooms_by_type": dg.MetadataValue.json(by_type),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
