"""Per-building reports: the bill of quantities, plan images, a self-contained HTML file
and the IFC model.

The rendering and tabulation are the core's (``core.export``, ``core.render``,
``core.report_html``, ``core.ifc``), the same as ``ceilgrid export``; this asset
only decides what to write next to each layout and what to show in the UI.
"""

import json
from typing import Any

import dagster as dg

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.defs.metadata import frame_table
from ceilgrid_assets.defs.resources import LayoutStorage, env_int
from ceilgrid_assets.defs.serving.layouts import SERVING_FRESHNESS, completed_layout
from ceilgrid_assets.defs.serving.partitions import building_partitions
from ceilgrid_assets.defs.serving.submissions import (
    PLATFORM_OWNER,
    SERVING,
    checked_partition_keys,
)

#: Rooms per building whose plan is drawn into report.html (CEILGRID_REPORT_IMAGE_ROOMS).
DEFAULT_REPORT_IMAGE_ROOMS = 3
#: Buildings per run whose first room's plan is shown in the materialization metadata.
PREVIEW_BUILDINGS = 4
#: The IFC model's name beside each building's layout.json.
IFC_NAME = "layout.ifc"


def report_image_rooms() -> int:
    return env_int("CEILGRID_REPORT_IMAGE_ROOMS", DEFAULT_REPORT_IMAGE_ROOMS, minimum=0)


@dg.asset(
    group_name=SERVING,
    partitions_def=building_partitions,
    freshness_policy=SERVING_FRESHNESS,
    deps=[completed_layout],
    kinds={"csv", "html", "matplotlib"},
    owners=[PLATFORM_OWNER],
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=20),
    description="The bill of quantities of one building (counts by room and device type, "
    "totals, and the rule that drove each count) as tables and report.csv, the "
    "plans as images, a self-contained report.html and the IFC4 model layout.ifc "
    "next to the layout.",
)
def building_report(
    context: dg.AssetExecutionContext, layout_storage: LayoutStorage
) -> dg.MaterializeResult:
    # The plotting and table stack loads only here, not in every run worker.
    from ceilgrid_assets.core.outputs.export import (
        TOTAL,
        bill_of_quantities,
        boq_csv,
        disputed,
        layout_from_document,
        quantities_table,
    )
    from ceilgrid_assets.core.outputs.ifc import ifc_bytes
    from ceilgrid_assets.core.outputs.render import render_room
    from ceilgrid_assets.core.outputs.report_html import (
        building_report_html,
        markdown_image,
        markdown_table,
        markdown_text,
    )

    keys = checked_partition_keys(context)
    blobs = layout_storage.blobs()
    totals = dict.fromkeys(DEVICE_COMPONENTS, 0)
    previews: list[str] = []
    boq = None
    rooms = compliant = disputes = 0
    for key in keys:
        source = layout_storage.layout_key(key)
        data = layout_storage.read(source)
        layout = layout_from_document(json.loads(data), source=blobs.describe(source))
        # The rulebook re-run on each room, never the document's own claim.
        verdicts = [layout.compliance(index) for index in range(len(layout.rooms))]
        rooms += len(verdicts)
        compliant += sum(bool(verdict["compliant"]) for verdict in verdicts)
        building_disputes = sum(disputed(verdict) for verdict in verdicts)
        if building_disputes:
            context.log.warning(
                f"{key}: {building_disputes} room(s) disagree with their document's "
                "compliance claim on re-validation"
            )
        disputes += building_disputes
        boq = bill_of_quantities(layout)
        blobs.put_bytes(layout_storage.report_key(key), boq_csv(boq))
        html = building_report_html(
            layout, max_rooms_with_images=report_image_rooms(), plans_only=True
        )
        blobs.put_bytes(layout_storage.report_html_key(key), html.encode("utf-8"))
        blobs.put_bytes(layout_storage.building_key(key, IFC_NAME), ifc_bytes(layout))
        building_totals = boq[boq["grid_id"] == TOTAL].set_index("component")["count"]
        for component in totals:
            totals[component] += int(building_totals[component])
        if len(previews) < PREVIEW_BUILDINGS and layout.rooms:
            room = layout.rooms[0]
            previews.append(
                f"**{markdown_text(key)}** / {markdown_text(room.grid_id)}\n\n"
                + markdown_image(render_room(room).png, f"{key} {room.grid_id}")
            )
    metadata: dict[str, Any] = {
        "buildings": len(keys),
        **totals,
        "rooms": rooms,
        "compliant_rooms": compliant,
        "claims_disputed": disputes,
    }
    if previews:
        metadata["plans"] = dg.MetadataValue.md("\n\n".join(previews))
    if len(keys) == 1 and boq is not None:
        metadata["quantities"] = dg.MetadataValue.md(markdown_table(quantities_table(boq)))
        metadata["bill_of_quantities"] = frame_table(boq.astype(object).where(boq.notna(), None))
        key = keys[0]
        metadata["report"] = dg.MetadataValue.path(
            blobs.describe(layout_storage.report_html_key(key))
        )
        metadata["csv"] = dg.MetadataValue.path(blobs.describe(layout_storage.report_key(key)))
        metadata["ifc"] = dg.MetadataValue.path(
            blobs.describe(layout_storage.building_key(key, IFC_NAME))
        )
    return dg.MaterializeResult(metadata=metadata)
