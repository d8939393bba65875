"""Per-building reports: device counts by room and type, as a table and a CSV file."""

import json
from typing import Any

import dagster as dg
import pandas as pd

from ..core.io import write_atomic
from .datasets import PLATFORM_OWNER, SERVING
from .layouts import DEVICE_METRICS, completed_layout
from .metadata import frame_table
from .partitions import building_partitions
from .resources import LayoutStorage


def report_frame(layout_document: dict) -> pd.DataFrame:
    """One row per room: type, area, device counts and compliance, from a layout document."""
    rooms = layout_document["rooms"] if "rooms" in layout_document else [layout_document]
    rows = []
    for room in rooms:
        metrics = room.get("metrics", {})
        rows.append({
            "grid_id": room["grid_id"],
            "room_type": room.get("room_type", "office"),
            "tiles": room["width"] * room["height"],
            **{name: int(metrics.get(metric, 0)) for metric, name in DEVICE_METRICS.items()},
            "illuminance_avg_lx": metrics.get("illuminance_avg_lx"),
            "compliant": bool(room.get("compliance", {}).get("compliant", False)),
        })
    return pd.DataFrame(rows)


@dg.asset(
    group_name=SERVING,
    partitions_def=building_partitions,
    deps=[completed_layout],
    kinds={"pandas", "csv"},
    owners=[PLATFORM_OWNER],
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=20),
    description="Counts of lights, air supplies, air returns and smoke detectors by room and "
                "by type for one building, shown as a table and written as report.csv.",
)
def building_report(context: dg.AssetExecutionContext,
                    layout_storage: LayoutStorage) -> dg.MaterializeResult:
    keys = context.partition_keys
    totals: dict[str, int] = {name: 0 for name in DEVICE_METRICS.values()}
    frame = pd.DataFrame()
    for key in keys:
        document = json.loads(layout_storage.layout_path(key).read_bytes())
        frame = report_frame(document)
        write_atomic(layout_storage.report_path(key), frame.to_csv(index=False).encode())
        for name in totals:
            totals[name] += int(frame[name].sum())
    metadata: dict[str, Any] = {"buildings": len(keys), **totals}
    if len(keys) == 1:
        metadata["by_room"] = frame_table(frame)
        by_type = frame.groupby("room_type")[list(totals)].sum().reset_index()
        metadata["by_room_type"] = frame_table(by_type)
        metadata["path"] = dg.MetadataValue.path(str(layout_storage.report_path(keys[0])))
    return dg.MaterializeResult(metadata=metadata)
