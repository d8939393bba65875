"""Submitted buildings: the API submission (external asset) and the validated input asset."""

from typing import Any

import dagster as dg

from ceilgrid_assets.contract import (
    BUILDINGS,
    MAX_SUBMISSION_BYTES,
    SUBMISSION_ASSET,
    SUBMISSION_DOCUMENT_KEY,
    building_id_problem,
    case_collision,
)
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.io import parse_document
from ceilgrid_assets.defs.resources import LayoutStorage
from ceilgrid_assets.defs.serving.partitions import building_partitions

SERVING = "serving"
PLATFORM_OWNER = "team:ceilgrid-platform"

#: Buildings submitted through the webserver API. ``ceilgrid submit`` reports a
#: materialization of this external asset with the building JSON as text
#: metadata (no run); the inbox sensor stages it like a dropped file, so API
#: submissions share the batched layout runs instead of paying a run each.
building_submission = dg.AssetSpec(
    SUBMISSION_ASSET,
    group_name=SERVING,
    partitions_def=building_partitions,
    kinds={"json"},
    owners=[PLATFORM_OWNER],
    description="A building document as received through the webserver API (text metadata "
    f"'{SUBMISSION_DOCUMENT_KEY}'); reported by ceilgrid submit, consumed by the "
    "inbox sensor.",
)


class SubmissionConfig(dg.Config):
    """How a building reaches a run.

    ``document`` carries the building JSON itself (a one-building run launched
    from the UI's launchpad or raw GraphQL); left empty, the run reads the file
    the inbox sensor staged in storage (inbox files and ``ceilgrid submit``
    submissions), or the building's canonical input when it is re-materialized.
    """

    document: str = ""


def checked_partition_keys(context: dg.AssetExecutionContext) -> list[str]:
    """The run's partition keys, each re-checked as a building id before any path is built.

    The sensor only adds valid keys, but anyone who may launch runs can add a
    partition through GraphQL or the launchpad (``addDynamicPartition``), so the
    asset refuses a bad key itself (no retry: it will not get better). Of two
    keys that differ only in letter case, the one added later is refused
    (partitions are listed in the order they were added).
    """
    keys = context.partition_keys
    existing = context.instance.get_dynamic_partitions(BUILDINGS)
    for key in keys:
        problem = building_id_problem(key)
        earlier = existing[: existing.index(key)] if key in existing else existing
        other = case_collision(key, earlier)
        if problem is None and other is not None:
            problem = f"differs from partition {other} only in letter case"
        if problem is not None:
            raise dg.Failure(
                description=f"partition key {ascii(key[:120])}: {problem}", allow_retries=False
            )
    return keys


def _input_bytes(key: str, config: SubmissionConfig, storage: LayoutStorage) -> bytes:
    if config.document:
        return config.document.encode()
    blobs = storage.blobs()
    for name in (storage.incoming_key(key), storage.input_key(key)):
        data = blobs.get_bytes(name)
        if data is not None:
            return data
    raise dg.Failure(
        description=f"building {key}: no input (not in the run config, not staged, "
        f"no earlier input at {blobs.describe(storage.input_key(key))})",
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
    keys = checked_partition_keys(context)
    if len(config.document.encode()) > MAX_SUBMISSION_BYTES:
        raise dg.Failure(
            description=f"the document in the run config is {len(config.document.encode())} "
            f"bytes, more than the {MAX_SUBMISSION_BYTES} byte limit for API submissions "
            "(drop it into the inbox)",
            allow_retries=False,
        )
    if config.document and len(keys) != 1:
        raise dg.Failure(
            description="a document in the run config needs a one-partition run",
            allow_retries=False,
        )
    blobs = layout_storage.blobs()
    rows = []
    for key in keys:
        data = _input_bytes(key, config, layout_storage)
        try:
            parsed = parse_document(data, source=f"{key}.json")
        except InputError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        input_key = layout_storage.input_key(key)
        if blobs.get_bytes(input_key) != data:
            blobs.put_bytes(input_key, data)
        blobs.delete(layout_storage.incoming_key(key))
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
                columns=[
                    dg.TableColumn("partition"),
                    dg.TableColumn("building_id"),
                    dg.TableColumn("rooms", "int"),
                    dg.TableColumn("rejected_rooms", "int"),
                    dg.TableColumn("cells", "int"),
                    dg.TableColumn("bytes", "int"),
                ]
            ),
        ),
    }
    if len(keys) == 1:
        metadata["path"] = dg.MetadataValue.path(blobs.describe(layout_storage.input_key(keys[0])))
    return dg.MaterializeResult(metadata=metadata)
