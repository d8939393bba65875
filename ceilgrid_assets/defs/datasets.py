"""Grid datasets: submitted buildings (serving) and the synthetic room corpus (training)."""

import time
from typing import Any

import dagster as dg

from ..core.corpus import CorpusSpec, corpus_hash, generate_rooms, size_summary
from ..core.grid import Room
from ..core.io import InputError, parse_document, write_atomic
from .partitions import building_partitions
from .resources import LayoutStorage

SERVING = "serving"
TRAINING = "training"
PLATFORM_OWNER = "team:ceilgrid-platform"
ML_OWNER = "team:ceilgrid-ml"
SUBMISSION_DOCUMENT_KEY = "document"

#: Buildings submitted through the webserver API. ``ceilgrid submit`` reports a
#: materialization of this external asset with the building JSON as text
#: metadata (no run); the inbox sensor stages it like a dropped file, so API
#: submissions share the batched layout runs instead of paying a run each.
building_submission = dg.AssetSpec(
    "building_submission",
    group_name=SERVING,
    partitions_def=building_partitions,
    kinds={"json"},
    owners=[PLATFORM_OWNER],
    description="A building document as received through the webserver API (text metadata "
                f"'{SUBMISSION_DOCUMENT_KEY}'); reported by ceilgrid submit, consumed by the "
                "inbox sensor.",
)
SUBMISSION_ASSET = building_submission.key


class SubmissionConfig(dg.Config):
    """How a building reaches a run.

    ``document`` carries the building JSON itself (a one-building run launched
    from the UI's launchpad or raw GraphQL); left empty, the run reads the file
    the inbox sensor staged in storage (inbox files and ``ceilgrid submit``
    submissions), or the building's canonical input when it is re-materialized.
    """

    document: str = ""


def _input_bytes(key: str, config: SubmissionConfig, storage: LayoutStorage) -> bytes:
    if config.document:
        return config.document.encode()
    for path in (storage.incoming_path(key), storage.input_path(key)):
        if path.is_file():
            return path.read_bytes()
    raise dg.Failure(
        description=f"building {key}: no input (not in the run config, not staged, "
                    f"no earlier input in {storage.building_dir(key)})",
        allow_retries=False,
    )


@dg.asset(
    group_name=SERVING,
    partitions_def=building_partitions,
    deps=[building_submission],  # when submitted through the API; else the inbox or config
    kinds={"json"},
    owners=[PLATFORM_OWNER],
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=20),
    description="A submitted building (one dynamic partition each), validated and stored as "
                "the canonical input of its layout. Bad rooms are listed, good rooms go on.",
)
def submitted_building(
    context: dg.AssetExecutionContext, config: SubmissionConfig, layout_storage: LayoutStorage
) -> dg.MaterializeResult:
    keys = context.partition_keys
    if config.document and len(keys) != 1:
        raise dg.Failure(description="a document in the run config needs a one-partition run",
                         allow_retries=False)
    rows = []
    for key in keys:
        data = _input_bytes(key, config, layout_storage)
        try:
            parsed = parse_document(data, source=f"{key}.json")
        except InputError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        input_path = layout_storage.input_path(key)
        if not input_path.is_file() or input_path.read_bytes() != data:
            write_atomic(input_path, data)
        layout_storage.incoming_path(key).unlink(missing_ok=True)
        for error in parsed.errors:
            context.log.warning(f"rejected room: {error}")
        rows.append(
            {
                "partition": key,
                "building_id": parsed.building_id,
                "rooms": len(parsed.rooms),
                "rejected_rooms": len(parsed.errors),
                "cells": int(sum(room.cells.size for room in parsed.rooms)),
                "bytes": len(data),
            }
        )
    metadata: dict[str, Any] = {
        "rooms": sum(row["rooms"] for row in rows),
        "rejected_rooms": sum(row["rejected_rooms"] for row in rows),
        "cells": sum(row["cells"] for row in rows),
        "buildings": dg.MetadataValue.table(
            [dg.TableRecord(row) for row in rows],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("partition"), dg.TableColumn("building_id"),
                         dg.TableColumn("rooms", "int"), dg.TableColumn("rejected_rooms", "int"),
                         dg.TableColumn("cells", "int"), dg.TableColumn("bytes", "int")]
            ),
        ),
    }
    if len(keys) == 1:
        metadata["path"] = dg.MetadataValue.path(str(layout_storage.input_path(keys[0])))
    return dg.MaterializeResult(metadata=metadata)


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
