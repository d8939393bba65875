"""The HTML report: self-contained, quantities add up, and a real browser shows the plan."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image
from sample_rooms import grid_room, office_room, output_document

from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS
from ceilgrid_assets.core.outputs import export, render, report_html

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
)


class Tables(HTMLParser):
    """Collects every table's rows, img sources and external references."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.references: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attributes["src"])
        for name in ("src", "href"):
            if attributes.get(name) and not attributes[name].startswith(("#", "data:")):
                self.references.append(attributes[name])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Tables:
    parser = Tables()
    parser.feed(text)
    return parser


def layout(rooms=None) -> export.Layout:
    rooms = rooms or [office_room("r1"), grid_room(30, 20, "r2")]
    return export.layout_from_document(output_document(rooms, building_id="tower <A>"))


@pytest.fixture(scope="module")
def text() -> str:
    """The report of the default two-room layout, rendered once for the module."""
    return report_html.building_report_html(layout())


def test_report_is_self_contained_with_every_image(text):
    parsed = parse(text)
    assert parsed.references == []
    assert len(parsed.images) == 2 * (len(render.VIEWS) + len(render.STAGES))
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert "tower &lt;A&gt;" in text and "tower <A>" not in text


def test_quantities_table_adds_up(text):
    built = layout()
    parsed = parse(text)
    header = ["grid_id", *DEVICE_COMPONENTS, "total"]
    (table,) = [t for t in parsed.tables if t[0] == header and len(t) > 2]
    rows = {row[0]: [int(value) for value in row[1:]] for row in table[1:]}
    assert list(rows) == ["r1", "r2", export.TOTAL]
    for name, values in rows.items():
        assert values[-1] == sum(values[:-1]), name
    assert rows[export.TOTAL] == [a + b for a, b in zip(rows["r1"], rows["r2"], strict=True)]
    for index, name in enumerate(DEVICE_COMPONENTS):
        assert rows["r1"][index] == built.rooms[0].count(name)


def test_compliance_per_room_is_shown(text):
    for room_id in ("r1", "r2"):
        assert f'id="room-{room_id}"' in text
    assert "not compliant" in text and "smoke.clearance" in text


def test_certificate_per_room_and_gap_for_the_building(text):
    built = layout()
    parsed = parse(text)
    header = ["component", "placed", "lower_bound", "gap", "method"]
    tables = [t for t in parsed.tables if t[0] == header]
    assert len(tables) == len(built.rooms)
    for table, index in zip(tables, range(len(built.rooms)), strict=True):
        certificate = built.certificate(index)
        rows = {row[0]: row[1:] for row in table[1:]}
        assert rows["total"][:3] == [
            str(certificate[key]) for key in ("placed", "lower_bound", "gap")
        ]
        for name in DEVICE_COMPONENTS:
            assert int(rows[name][0]) == built.rooms[index].count(name)
    placed = sum(built.certificate(i)["placed"] for i in range(len(built.rooms)))
    bound = sum(built.certificate(i)["lower_bound"] for i in range(len(built.rooms)))
    assert (
        f"{placed} devices; the rooms' lower bounds sum to {bound}, a gap of {placed - bound}"
        in (text.replace("&#x27;", "'"))
    )


def test_images_are_capped_for_big_buildings():
    text = report_html.building_report_html(layout(), max_rooms_with_images=1)
    parsed = parse(text)
    assert len(parsed.images) == len(render.VIEWS) + len(render.STAGES)
    assert "first 1 rooms" in text


def test_markdown_helpers():
    image = render.render_room(office_room())
    snippet = report_html.markdown_image(image.png, "plan")
    assert snippet.startswith("![plan](data:image/png;base64,")
    table = report_html.markdown_table(export.quantities_table(export.bill_of_quantities(layout())))
    lines = table.splitlines()
    header = ["grid_id", *DEVICE_COMPONENTS, "total"]
    assert lines[0] == "| " + " | ".join(name.replace("_", "\\_") for name in header) + " |"
    assert len(lines) == 2 + 3


def screenshot(report: export.Layout, tmp_path, name: str) -> np.ndarray:
    """Open the written report in headless Chromium and return the screenshot's pixels."""
    path = report_html.write_report_html(report, tmp_path / f"{name}.html")
    shot = tmp_path / f"{name}.png"
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--hide-scrollbars",  # a scrollbar, there or not, would rescale the plans
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            # Tall enough that the first room's plan lies well above the bottom edge:
            # headless Chromium sometimes shoots before it has painted the last band
            # of the window (1 screenshot in 5-12 here at 1600 px, cutting that plan).
            "--window-size=1280,2400",
            "--virtual-time-budget=3000",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), result.stderr[-2000:]
    return np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")).astype(int)


def colour_pixels(array: np.ndarray, name: str) -> int:
    colour = np.round(np.array(to_rgb(render.COLOURS[name])) * 255)
    return int((np.abs(array - colour).max(axis=2) <= 10).sum())


@pytest.mark.browser
@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)"
)
def test_report_opens_in_headless_chromium_and_shows_the_plan(tmp_path):
    room = office_room("r1")
    bare = room.with_cells(
        np.where(room.cells == CODE["invalid"], CODE["invalid"], CODE["empty"]).astype(np.uint8)
    )
    shown = screenshot(layout([room]), tmp_path, "devices")
    baseline = screenshot(layout([bare]), tmp_path, "bare")  # legends and headings only
    assert (shown < 245).any(axis=2).mean() > 0.05  # not a blank page
    for name in DEVICE_COMPONENTS:
        # each device symbol is about (0.6 x 32 px)^2; the baseline has the legend swatches
        assert colour_pixels(shown, name) > colour_pixels(baseline, name) + 150, name
