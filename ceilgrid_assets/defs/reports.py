"""Per-building reports: device counts by room and type, as tables and a CSV file."""

import csv
import io
import json
from collections import defaultdict
from typing import Any

import dagster as dg

from ..core.io import write_atomic
from .datasets import PLATFORM_OWNER, SERVING
from .layouts import DEVICE_METRICS, SERVING_FRESHNESS, completed_layout
from .metadata import rows_table
from .partitions import building_partitions
from .resources import LayoutStorage

DEVICE_COLUMNS = tuple(DEVICE_METRICS.values())


def report_rows(layout_document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per room: type, tiles, device counts and compliance, from a layout document."""
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
    return rows


def by_room_type(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(DEVICE_COLUMNS, 0))
    for row in rows:
        for name in DEVICE_COLUMNS:
            totals[row["room_type"]][name] += row[name]
    return [{"room_type": room_type, "rooms": sum(r["room_type"] == room_type for r in rows),
             **counts} for room_type, counts in sorted(totals.items())]


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["grid_id"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


@dg.asset(
    group_name=SERVING,
    partitions_def=building_partitions,
    freshness_policy=SERVING_FRESHNESS,
    deps=[completed_layout],
    kinds={"csv"},
    owners=[PLATFORM_OWNER],
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=20),
    description="Counts of lights, air supplies, air returns and smoke detectors by room and "
                "by room type for one building, shown as tables and written as report.csv.",
)
def building_report(context: dg.AssetExecutionContext,
                    layout_storage: LayoutStorage) -> dg.MaterializeResult:
    keys = context.partition_keys
    totals = dict.fromkeys(DEVICE_COLUMNS, 0)
    rows: list[dict[str, Any]] = []
    for key in keys:
        rows = report_rows(json.loads(layout_storage.layout_path(key).read_bytes()))
        write_atomic(layout_storage.report_path(key), csv_bytes(rows))
        for name in totals:
            totals[name] += sum(row[name] for row in rows)
    metadata: dict[str, Any] = {"buildings": len(keys), **totals}
    if len(keys) == 1:
        metadata["by_room"] = rows_table(rows)
        metadata["by_room_type"] = rows_table(by_room_type(rows))
        metadata["path"] = dg.MetadataValue.path(str(layout_storage.report_path(keys[0])))
    return dg.MaterializeResult(metadata=metadata)
