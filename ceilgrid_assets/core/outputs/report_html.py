"""A building's layout report as one self-contained HTML file.

The report travels by e-mail and sits next to the layout JSON, so it has no
external resources: images are PNG data URIs and the styles are inline. Rooms
past ``max_rooms_with_images`` are listed with their tables only, which keeps a
10,000-room building's report to a size a browser opens; the PNG export has
every image. Also here: Markdown snippets for Dagster materialization metadata.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ceilgrid_assets.core.engine.grid import Room
from ceilgrid_assets.core.engine.io import write_atomic
from ceilgrid_assets.core.engine.rules import layout_metrics
from ceilgrid_assets.core.outputs.export import (
    TOTAL,
    Layout,
    bill_of_quantities,
    disputed,
    quantities_table,
    verdict_label,
)
from ceilgrid_assets.core.outputs.render import (
    VIEWS,
    RenderedImage,
    render_room,
    render_stages,
    render_views,
)

DEFAULT_MAX_ROOMS_WITH_IMAGES = 50

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px;
       color: #202020; background: #ffffff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
.ok { color: #0a7a3d; font-weight: bold; } .bad { color: #b3261e; font-weight: bold; }
.muted { color: #666666; font-size: 13px; }
figure { margin: 0 12px 12px 0; display: inline-block; vertical-align: top; }
img.plan { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
img.stage { width: 300px; height: auto; border: 1px solid #e0e0e0; }
section.room { border-top: 2px solid #e6e6e6; margin-top: 20px; }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


#: Characters with a meaning in Markdown (CommonMark, GitHub tables, math and HTML).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:])")


def markdown_text(value: Any) -> str:
    """``value`` as literal Markdown text on one line.

    Ids are user input: unescaped, ``<script>``, ``|`` or a line break would
    become markup, table cells or new blocks in the UI.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def markdown_image(png: bytes, alt: str) -> str:
    """An inline Markdown image, for ``MetadataValue.md`` on an asset materialization."""
    return f"![{markdown_text(alt)}]({data_uri(png)})"


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame`` with its index as the first column (no extra dependency)."""
    header = [frame.index.name or "", *frame.columns]
    lines = ["| " + " | ".join(map(markdown_text, header)) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join(map(markdown_text, [index, *row])) + " |")
    return "\n".join(lines)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(image: RenderedImage, css_class: str) -> str:
    return (
        f'<figure><img class="{css_class}" src="{data_uri(image.png)}" alt="{_e(image.title)}" '
        f'width="{image.size[0]}" height="{image.size[1]}"></figure>'
    )


def _table(frame: pd.DataFrame, text_columns: Sequence[str] = ()) -> str:
    """A small HTML table; the index is the first column."""
    head = "".join(
        f'<th class="text">{_e(frame.index.name or "")}</th>'
        if position == 0
        else f"<th{' class=text' if name in text_columns else ''}>{_e(name)}</th>"
        for position, name in enumerate([frame.index.name, *frame.columns])
    )
    body = []
    for index, row in frame.iterrows():
        cells = [f'<td class="text">{_e(index)}</td>']
        cells += [
            f"<td{' class=text' if column in text_columns else ''}>"
            f"{'' if pd.isna(value) else _e(value)}</td>"
            for column, value in row.items()
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _metrics(layout: Layout, index: int) -> dict[str, Any]:
    metrics = layout.room_documents[index].get("metrics")
    if isinstance(metrics, dict):
        return metrics
    return layout_metrics(layout.rooms[index], layout.profile(index))


def _certificate_table(certificate: Mapping[str, Any]) -> str:
    """Devices placed against the lower bound no compliant layout of the room beats."""
    frame = pd.DataFrame.from_dict(certificate["components"], orient="index")
    frame.loc["total"] = [certificate["placed"], certificate["lower_bound"], certificate["gap"], ""]
    frame.index.name = "component"
    return "<h3>Certificate</h3>" + _table(frame, text_columns=("method",))


def _badge(compliance: Mapping[str, Any]) -> str:
    """The re-validated verdict, and the document's contrary claim when there is one."""
    css = "ok" if compliance.get("compliant") and not disputed(compliance) else "bad"
    return f'<span class="{css}">{_e(verdict_label(compliance))}</span>'


def _room_section(
    layout: Layout, index: int, stages: Sequence[Room] | None, with_images: bool, plans_only: bool
) -> str:
    room = layout.rooms[index]
    compliance = layout.compliance(index)
    violations = compliance["violations"]
    parts = [
        f'<section class="room" id="room-{_e(room.grid_id)}">',
        f"<h2>{_e(room.grid_id)} &middot; {_badge(compliance)}</h2>",
        f'<p class="muted">{_e(room.room_type)}, {room.width}&times;{room.height} tiles of '
        f"{room.tile_size_m:g} m, ceiling {room.ceiling_height_m:g} m, area "
        f"{room.area_m2:.1f} m&sup2;, profile {_e(compliance.get('profile', ''))}</p>",
    ]
    metrics = pd.DataFrame({"value": pd.Series(_metrics(layout, index), dtype=object)})
    metrics.index.name = "metric"
    parts.append(_table(metrics, text_columns=("value",)))
    parts.append(_certificate_table(layout.certificate(index)))
    if violations:
        items = "".join(
            f"<li><b>{_e(v.get('rule', ''))}</b>: {_e(v.get('message', ''))}"
            + (f" <i>(cause: {_e(v['cause'])})</i>" if v.get("cause") else "")
            + "</li>"
            for v in violations
        )
        parts.append(f"<h3>Violations</h3><ul>{items}</ul>")
    if with_images and plans_only:
        parts.append("<h3>Plan</h3>")
        parts.append(_img(render_room(room, profile=layout.profile(index)), "plan"))
    elif with_images:
        images = render_views(room, profile=layout.profile(index), violations=violations)
        parts.append("<h3>Plans</h3>")
        parts += [_img(images[view], "plan") for view in VIEWS]
        parts.append("<h3>Stages</h3><div>")
        parts += [_img(image, "stage") for _, image in render_stages(room, stages)]
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _gap_summary(boq: pd.DataFrame) -> str:
    """The building's devices against the summed lower bounds of its rooms."""
    totals = boq[boq["grid_id"] == TOTAL]
    placed, bound = int(totals["count"].sum()), int(totals["lower_bound"].sum())
    share = f" ({100 * (placed - bound) / bound:.1f} % above)" if bound else ""
    return (
        f'<p class="muted">{placed} devices; the rooms\' lower bounds sum to {bound}, '
        f"a gap of {placed - bound}{share}.</p>"
    )


def building_report_html(
    layout: Layout,
    *,
    stages: Mapping[str, Sequence[Room]] | None = None,
    max_rooms_with_images: int = DEFAULT_MAX_ROOMS_WITH_IMAGES,
    plans_only: bool = False,
) -> str:
    """The report: summary, bill of quantities, then per room compliance, metrics and images.

    ``stages`` maps ``grid_id`` to the pipeline's per-stage rooms
    (``RoomResult.stages``); rooms without an entry get stages rebuilt from the layout.
    ``plans_only`` shows the plan alone, without overlays and stages (a ninth of the
    rendering, for reports written on every serving run).
    """
    rooms = layout.rooms
    verdicts = [layout.compliance(i) for i in range(len(rooms))]
    compliant = sum(bool(verdict.get("compliant")) for verdict in verdicts)
    disputes = sum(disputed(verdict) for verdict in verdicts)
    boq = bill_of_quantities(layout)
    detail = boq.set_index("grid_id")[
        ["component", "count", "count_rule", "count_rule_min", "driven_by", "lower_bound", "gap"]
    ]
    toc = "".join(
        f'<li><a href="#room-{_e(room.grid_id)}">{_e(room.grid_id)}</a> {_badge(verdicts[i])}</li>'
        for i, room in enumerate(rooms)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(layout.building_id)} - ceiling layout report</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(layout.building_id)}: ceiling layout report</h1>",
        f'<p class="muted">source {_e(layout.source)} &middot; {len(rooms)} room(s), '
        f'<span class="{"ok" if compliant == len(rooms) else "bad"}">{compliant} compliant'
        f"</span> on re-validation"
        + (
            f', <span class="bad">{disputes} disagree with their document\'s own claim</span>'
            if disputes
            else ""
        )
        + "</p>",
    ]
    if layout.errors:
        errors = "".join(f"<li>{_e(error)}</li>" for error in layout.errors)
        parts.append(f'<h2>Rejected rooms</h2><ul class="bad">{errors}</ul>')
    if len(rooms) > max_rooms_with_images:
        parts.append(
            f'<p class="muted">Images are shown for the first {max_rooms_with_images} '
            "rooms; the PNG export has all of them.</p>"
        )
    table = quantities_table(boq)
    parts += [
        '<h2>Building totals</h2><p class="muted">per room and the rule behind each count: '
        '<a href="#quantities">bill of quantities</a></p>',
        _table(table.loc[[TOTAL]]),
        _gap_summary(boq),
        f"<h2>Rooms</h2><ul>{toc}</ul>",
    ]
    parts += [
        _room_section(
            layout, i, (stages or {}).get(room.grid_id), i < max_rooms_with_images, plans_only
        )
        for i, room in enumerate(rooms)
    ]
    parts += [
        '<h2 id="quantities">Bill of quantities</h2>',
        _table(table),
        "<h3>Rule that drove each count</h3>",
        _table(detail, text_columns=("component", "count_rule", "driven_by")),
    ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report_html(layout: Layout, path: str | os.PathLike[str], **options: Any) -> Path:
    write_atomic(path, building_report_html(layout, **options).encode("utf-8"))
    return Path(path)
