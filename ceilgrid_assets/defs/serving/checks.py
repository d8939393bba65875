"""Asset checks on served layouts: re-validated from what storage holds."""

import functools
from typing import Any

import dagster as dg

from ceilgrid_assets.core.engine.io import parse_document
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, get_profile
from ceilgrid_assets.core.engine.rules import check_layout
from ceilgrid_assets.defs.resources import LayoutStorage
from ceilgrid_assets.defs.serving.layouts import completed_layout
from ceilgrid_assets.defs.serving.partitions import building_partitions


def revalidate(
    input_data: bytes, layout_data: bytes, input_source: str, layout_source: str
) -> list[dict[str, Any]]:
    """Each room of a written layout checked against its input, with the profile it names.

    The engine already validated each room before writing it, with this same
    rulebook: reading both stored documents back (files or objects) instead of
    trusting the run's memory is what this adds. It catches a layout written
    incompletely, altered afterwards or serialised wrongly, and rooms lost or
    invented between input and output.

    Both checks of a run read the same two documents back: the second is answered
    from the first's work when the bytes are equal (a second for 1,000 rooms).
    Each caller gets rows of its own.
    """
    rows = _revalidated(input_data, layout_data, input_source, layout_source)
    return [{**row, "rules": list(row["rules"])} for row in rows]


@functools.lru_cache(maxsize=2)
def _revalidated(
    input_data: bytes, layout_data: bytes, input_source: str, layout_source: str
) -> list[dict[str, Any]]:
    original = {room.grid_id: room for room in parse_document(input_data, input_source).rooms}
    completed = parse_document(layout_data, layout_source)
    rows = []
    for room, document in zip(completed.rooms, completed.room_documents, strict=True):
        compliance = document.get("compliance", {})
        profile = get_profile(compliance.get("profile", DEFAULT_PROFILE))
        violations = check_layout(room, profile, original.get(room.grid_id))
        claimed = bool(compliance.get("compliant", False))
        rows.append(
            {
                "grid_id": room.grid_id,
                "compliant": not violations,
                "claimed": claimed,
                "rules": sorted({violation.rule for violation in violations}),
                "known_room": room.grid_id in original,
            }
        )
    missing = sorted(set(original) - {row["grid_id"] for row in rows})
    rows.extend(
        {
            "grid_id": grid_id,
            "compliant": False,
            "claimed": False,
            "rules": ["missing from layout"],
            "known_room": True,
        }
        for grid_id in missing
    )
    return rows


def forget_validations() -> None:
    """Drop the validations kept for the second check (benchmarks start each run cold)."""
    _revalidated.cache_clear()


def _rows(context: dg.AssetCheckExecutionContext, storage: LayoutStorage) -> list[dict[str, Any]]:
    blobs = storage.blobs()
    rows = []
    for key in context.partition_keys:
        names = storage.input_key(key), storage.layout_key(key)
        data = [storage.read(name) for name in names]
        for row in revalidate(*data, *(blobs.describe(name) for name in names)):
            rows.append({"partition": key, **row})
    return rows


@dg.asset_check(
    asset=completed_layout,
    partitions_def=building_partitions,
    blocking=True,
    description="Reads the written layout and its input back from storage and re-checks them: "
    "every claimed-compliant room passes the rulebook, no room is lost or invented, the "
    "placement rule holds. It guards the file, not the engine (same validator): a "
    "truncated or altered file, a concurrent writer or a serialisation error fails it, "
    "and, blocking, it keeps the building report from being made from such a file.",
)
def layout_claims_hold(
    context: dg.AssetCheckExecutionContext, layout_storage: LayoutStorage
) -> dg.AssetCheckResult:
    rows = _rows(context, layout_storage)
    false_claims = [row for row in rows if row["claimed"] and not row["compliant"]]
    strangers = [row for row in rows if not row["known_room"]]
    missing = [row for row in rows if "missing from layout" in row["rules"]]
    return dg.AssetCheckResult(
        passed=not (false_claims or strangers or missing),
        metadata={
            "rooms_checked": len(rows),
            "false_claims": dg.MetadataValue.json(false_claims),
            "unknown_rooms": len(strangers),
            "missing_rooms": len(missing),
        },
    )


@dg.asset_check(
    asset=completed_layout,
    partitions_def=building_partitions,
    description="Every room of the layout passes the rulebook (a warning: a room with no "
    "compliant completion is reported as such, not hidden).",
)
def layout_rooms_compliant(
    context: dg.AssetCheckExecutionContext, layout_storage: LayoutStorage
) -> dg.AssetCheckResult:
    rows = _rows(context, layout_storage)
    failing = [row for row in rows if not row["compliant"]]
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rooms_checked": len(rows),
            "rooms_failing": len(failing),
            "failing": dg.MetadataValue.json(failing[:50]),
        },
    )
