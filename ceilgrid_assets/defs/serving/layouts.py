"""Completed layouts: the serving side, one building partition (or a batch) per run."""

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import dagster as dg

from ceilgrid_assets.contract import INPUT_HASH_METADATA_KEY, LAYOUT_METADATA_KEY
from ceilgrid_assets.core.engine.building import BuildingResult, complete_building, default_jobs
from ceilgrid_assets.core.engine.io import content_hash, parse_document
from ceilgrid_assets.core.engine.pipeline import EngineConfig
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE
from ceilgrid_assets.defs.observability import log_event, materialization_telemetry
from ceilgrid_assets.defs.resources import LayoutStorage, ModelStore, env_int
from ceilgrid_assets.defs.serving.partitions import building_partitions
from ceilgrid_assets.defs.serving.submissions import (
    PLATFORM_OWNER,
    SERVING,
    checked_partition_keys,
    submitted_building,
)

#: Keys of the output's ``metrics`` (docs/format.md) that count devices, with their metadata names.
DEVICE_METRICS = {
    "lights": "lights",
    "air_supply": "air_supply",
    "air_return": "air_return",
    "smoke_detector": "smoke_detectors",
}
#: The layout document travels back to API clients in metadata up to this size.
LAYOUT_METADATA_MAX_BYTES = env_int("CEILGRID_LAYOUT_METADATA_MAX_BYTES", 16 * 1024 * 1024)


class LayoutConfig(dg.Config):
    """Rulebook profile the layout must satisfy."""

    profile: str = DEFAULT_PROFILE


def building_summary(key: str, result: BuildingResult) -> dict[str, Any]:
    """One building's headline numbers: what the UI and the alerts show."""
    devices: Counter[str] = Counter()
    for room in result.rooms:
        for metric, name in DEVICE_METRICS.items():
            devices[name] += int(room.metrics.get(metric, 0))
    return {
        "partition": key,
        "building_id": result.building_id,
        "rooms": len(result.rooms),
        "rooms_compliant": sum(room.compliant for room in result.rooms),
        "rejected_rooms": len(result.errors),
        **{name: devices[name] for name in DEVICE_METRICS.values()},
        "seconds": round(sum(room.seconds for room in result.rooms), 3),
    }


def rooms_table(result: BuildingResult) -> dg.TableMetadataValue:
    rows = []
    for room in result.rooms:
        rows.append(
            dg.TableRecord(
                {
                    "grid_id": room.room.grid_id,
                    "room_type": room.room.room_type,
                    "size": f"{room.room.width}x{room.room.height}",
                    "compliant": room.compliant,
                    "violations": len(room.compliance["violations"]),
                    **{
                        name: int(room.metrics.get(metric, 0))
                        for metric, name in DEVICE_METRICS.items()
                    },
                    "models": ", ".join(
                        f"{component}={record['chosen']}"
                        for component, record in room.models.items()
                    ),
                    "seconds": round(room.seconds, 3),
                }
            )
        )
    columns = [
        dg.TableColumn("grid_id"),
        dg.TableColumn("room_type"),
        dg.TableColumn("size"),
        dg.TableColumn("compliant", "bool"),
        dg.TableColumn("violations", "int"),
        *(dg.TableColumn(name, "int") for name in DEVICE_METRICS.values()),
        dg.TableColumn("models"),
        dg.TableColumn("seconds", "float"),
    ]
    return dg.MetadataValue.table(rows, schema=dg.TableSchema(columns=columns))


def _totals(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    rooms = sum(summary["rooms"] for summary in summaries)
    compliant = sum(summary["rooms_compliant"] for summary in summaries)
    return {
        "buildings": len(summaries),
        "rooms": rooms,
        "rooms_compliant": compliant,
        "all_compliant": compliant == rooms,
        "rejected_rooms": sum(summary["rejected_rooms"] for summary in summaries),
        **{name: sum(summary[name] for summary in summaries) for name in DEVICE_METRICS.values()},
    }


#: Service level of the serving side: a submitted building is laid out within minutes
#: (warn after 5, fail after 15 without a new layout while buildings keep arriving).
SERVING_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=15), warn_window=timedelta(minutes=5)
)


@dg.asset(
    group_name=SERVING,
    partitions_def=building_partitions,
    freshness_policy=SERVING_FRESHNESS,
    # promoted_models is read through the model store resource; listed for lineage.
    deps=[submitted_building, "promoted_models"],
    kinds={"json", "scipy", "scikitlearn"},
    owners=[PLATFORM_OWNER],
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=20),
    description="The building with every room completed (output format: docs/format.md), written "
    "atomically to the storage root; each partition's 'layout' metadata holds the "
    "file's text and 'input_sha256' its input's hash, for API clients. Uses the "
    "promoted learned models.",
)
def completed_layout(
    context: dg.AssetExecutionContext,
    config: LayoutConfig,
    layout_storage: LayoutStorage,
    model_store: ModelStore,
) -> dg.MaterializeResult:
    promoted = model_store.load_promoted()
    engine = EngineConfig.create(config.profile, extra_models=promoted.models)
    context.log.info(f"candidates: {', '.join(model.name for model in engine.models)}")
    keys = checked_partition_keys(context)
    summaries = []
    last: BuildingResult | None = None
    blobs = layout_storage.blobs()
    started = time.perf_counter()
    with materialization_telemetry(context):
        for key in keys:
            source = layout_storage.input_key(key)
            document = layout_storage.read(source)
            parsed = parse_document(document, blobs.describe(source))
            result = complete_building(parsed, engine, jobs=default_jobs())
            data = result.dump()
            blobs.put_bytes(layout_storage.layout_key(key), data)
            # Per partition, also in batched runs: API clients poll for their building.
            per_building: dict[str, Any] = {INPUT_HASH_METADATA_KEY: content_hash(document)}
            if len(data) <= LAYOUT_METADATA_MAX_BYTES:
                # The file's exact bytes (JSON metadata would re-order keys).
                per_building[LAYOUT_METADATA_KEY] = dg.MetadataValue.text(data.decode())
            context.add_asset_metadata(per_building, partition_key=key)
            summary = building_summary(key, result)
            log_event(context.log, "building laid out", **summary)
            summaries.append(summary)
            last = result
    metadata = _totals(summaries)
    metadata["profile"] = config.profile
    metadata["learned_models"] = len(promoted.models)
    # The registry version that made these layouts (ceilgrid models show VERSION).
    metadata["model_version"] = promoted.version or "none"
    metadata["seconds"] = round(time.perf_counter() - started, 3)
    metadata["building_table"] = dg.MetadataValue.table(
        [dg.TableRecord(summary) for summary in summaries]
    )
    if len(keys) == 1 and last is not None:
        result = last
        metadata["path"] = dg.MetadataValue.path(blobs.describe(layout_storage.layout_key(keys[0])))
        metadata["rooms_table"] = rooms_table(result)
        # Renders and the bill of quantities of this building attach here.
    return dg.MaterializeResult(metadata=metadata)
