"""``ceilgrid validate`` prints each room's certificate beside its verdict."""

from __future__ import annotations

import json
import re

from helpers import room_document, to_json

from ceilgrid_assets.cli import main


def test_validate_prints_placed_bound_and_gap_per_room(tmp_path, capsys):
    source = tmp_path / "room.json"
    source.write_text(to_json(room_document((12, 9), grid_id="office")))
    layout = tmp_path / "layout.json"
    assert main(["layout", str(source), "-o", str(layout), "--jobs", "1"]) == 0
    capsys.readouterr()
    assert main(["validate", str(layout)]) == 0
    lines = capsys.readouterr().out.splitlines()
    certificate = json.loads(layout.read_text())["certificate"]
    line = next(line for line in lines if "lower bound" in line)
    found = re.fullmatch(
        r"room office: (\d+) devices, lower bound (\d+), gap (-?\d+) \((.*)\)", line
    )
    assert found, line
    placed, bound, gap = (int(found.group(i)) for i in (1, 2, 3))
    assert placed == certificate["placed"] and gap == placed - bound
    assert bound <= certificate["lower_bound"]  # the file alone never proves more
    per_component = dict(part.rsplit(" ", 1) for part in found.group(4).split(", "))
    assert per_component["light"] == (
        f"{certificate['components']['light']['placed']}/"
        f"{certificate['components']['light']['lower_bound']}"
    )
    assert "room office: compliant (nfpa72)" in lines
