"""Every surface shows hostile names as text: layout, export, report and the platform's report.

One building whose room ids are math text, HTML, a path, Markdown table breakers
with a line break, emoji, a 1,000-character id, and names that collide once made
file-safe (``a b``/``a_b``) or once case is ignored (``A``/``a``), through the real
``ceilgrid layout`` and ``ceilgrid export`` processes and the ``building_report``
asset on a Postgres instance.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
from helpers import building_document, room_document

from ceilgrid_assets.core.outputs.report_html import markdown_text
from ceilgrid_assets.defs.resources import build_resources
from ceilgrid_assets.defs.serving.layouts import completed_layout
from ceilgrid_assets.defs.serving.partitions import BUILDINGS
from ceilgrid_assets.defs.serving.reports import building_report
from ceilgrid_assets.defs.serving.submissions import submitted_building

CEILGRID = str(Path(sys.executable).with_name("ceilgrid"))

HOSTILE_IDS = [
    "$\\frac{",
    "cost $5 and $6",
    "<script>alert(1)</script>",
    "../x",
    "/etc/passwd",
    "a | b\n| c",
    "**bold** [link](javascript:alert(1))",
    'say "hi", then =1+2',
    "office \U0001f3e2 \u2603",
    "z" * 1000,
    "a b",
    "a_b",
    "A",
    "a",
]


def hostile_building() -> str:
    rooms = [room_document((5, 4), grid_id=grid_id) for grid_id in HOSTILE_IDS]
    return json.dumps(building_document(rooms, "hostile-names"))


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CEILGRID, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def test_hostile_names_through_layout_and_export(tmp_path):
    (tmp_path / "in.json").write_text(hostile_building())
    laid = run("layout", "in.json", "-o", "out.json", cwd=tmp_path)
    assert laid.returncode in (0, 1) and "Traceback" not in laid.stderr, laid.stderr
    rooms = json.loads((tmp_path / "out.json").read_text())["rooms"]
    assert [room["grid_id"] for room in rooms] == HOSTILE_IDS
    exported = run(
        "export",
        "out.json",
        "--dxf",
        "dxf",
        "--png",
        "png",
        "--html",
        "r.html",
        "--csv",
        "q.csv",
        cwd=tmp_path,
    )
    assert exported.returncode == 0 and exported.stderr == "", exported.stderr
    assert len(exported.stdout.splitlines()) == 4
    # One DXF per room, names unique even where case is ignored, all inside their folder.
    dxf = sorted(path.name for path in (tmp_path / "dxf").iterdir())
    assert len(dxf) == len(HOSTILE_IDS) == len({name.lower() for name in dxf})
    assert all(len(name) < 200 and "/" not in name for name in dxf)
    pngs = [path for path in (tmp_path / "png").rglob("*") if path.is_file()]
    assert len({path.name.lower() for path in pngs}) == len(pngs) >= len(HOSTILE_IDS)
    everything = {path.relative_to(tmp_path).parts[0] for path in tmp_path.rglob("*")}
    assert everything == {"in.json", "out.json", "dxf", "png", "r.html", "q.csv"}
    assert not (tmp_path.parent / "x").exists()
    html = (tmp_path / "r.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:alert" not in html.replace("[link](javascript:alert(1))", "")
    with open(tmp_path / "q.csv", newline="") as handle:
        boq_ids = {row["grid_id"] for row in csv.DictReader(handle)}
    assert set(HOSTILE_IDS) <= boq_ids


def test_markdown_text_leaves_no_markup():
    for value in HOSTILE_IDS:
        text = markdown_text(value)
        assert "\n" not in text
        for special in "<>|[]()$*_":
            assert f"{special}" not in text.replace(f"\\{special}", "")


def test_platform_report_of_hostile_names(postgres_instance, ceilgrid_home):
    key = "hostile-names"
    postgres_instance.add_dynamic_partitions(BUILDINGS, [key])
    result = dg.materialize(
        [submitted_building, completed_layout, building_report],
        partition_key=key,
        instance=postgres_instance,
        resources=build_resources(),
        run_config={"ops": {"submitted_building": {"config": {"document": hostile_building()}}}},
        raise_on_error=False,
    )
    assert result.success
    [report] = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("building_report")
    ]
    quantities = report.metadata["quantities"].value
    plans = report.metadata["plans"].value
    assert "<script>" not in quantities and "\\<script\\>" in quantities
    assert plans.startswith("**hostile\\-names** / \\$\\\\frac\\{\n")  # the first room
    # One table row per room plus header, rule and total: no id broke a row apart.
    assert len(quantities.splitlines()) == 2 + len(HOSTILE_IDS) + 1
    cells = [len(re.split(r"(?<!\\)\|", line)) for line in quantities.splitlines()]
    assert len(set(cells)) == 1
    html = (ceilgrid_home / "storage" / "buildings" / key / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
