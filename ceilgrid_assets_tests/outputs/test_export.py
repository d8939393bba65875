"""DXF plans read back with ezdxf, and the bill of quantities adds up."""

from __future__ import annotations

import collections

import ezdxf
import ifcopenshell
import numpy as np
import pandas as pd
import pytest
from sample_rooms import OFFICE_DEVICES, grid_room, office_room, output_document

from ceilgrid_assets.cli import main
from ceilgrid_assets.cli.export import export_command
from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, Room
from ceilgrid_assets.core.engine.io import dump_document
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.outputs import export

PROFILE = get_profile("nfpa72")


def layer_counts(doc) -> collections.Counter:
    return collections.Counter((entity.dxftype(), entity.dxf.layer) for entity in doc.modelspace())


def read_back(room: Room, tmp_path) -> ezdxf.document.Drawing:
    path = tmp_path / "room.dxf"
    path.write_bytes(export.dxf_bytes(export.room_dxf(room)))
    return ezdxf.readfile(path)


def test_dxf_reads_back_with_a_layer_per_component(tmp_path):
    room = office_room()
    doc = read_back(room, tmp_path)
    assert doc.header["$INSUNITS"] == 6
    assert not doc.audit().has_errors
    counts = layer_counts(doc)
    for name in DEVICE_COMPONENTS:
        assert counts[("INSERT", export.LAYERS[name])] == room.count(name), name
    assert counts[("LINE", export.LAYERS["grid"])] == (room.width + 1) + (room.height + 1)
    assert counts[("HATCH", export.LAYERS["invalid"])] == 1
    assert counts[("CIRCLE", export.LAYERS["coverage"])] == room.count("smoke_detector")
    for key in ("grid", "invalid", "light", "air_supply", "air_return", "smoke_detector"):
        assert export.LAYERS[key] in doc.layers


def test_dxf_inserts_blocks_at_tile_centres_in_metres(tmp_path):
    room = office_room()
    doc = read_back(room, tmp_path)
    t, height_m = room.tile_size_m, room.height * room.tile_size_m
    for name, positions in OFFICE_DEVICES.items():
        inserts = doc.modelspace().query(f'INSERT[layer=="{export.LAYERS[name]}"]')
        assert {insert.dxf.name for insert in inserts} == {export.BLOCKS[name]}
        assert {insert.dxf.xscale for insert in inserts} == {t}
        found = sorted((round(i.dxf.insert.x, 6), round(i.dxf.insert.y, 6)) for i in inserts)
        expected = sorted(
            (round((x + 0.5) * t, 6), round(height_m - (y + 0.5) * t, 6)) for x, y in positions
        )
        assert found == expected, name
        assert len(doc.blocks.get(export.BLOCKS[name])) >= 2


def test_invalid_hatch_has_one_boundary_per_row_run(tmp_path):
    cells = np.zeros((5, 8), dtype=np.uint8)
    cells[0, 0:3] = CODE["invalid"]
    cells[0, 5] = CODE["invalid"]
    cells[3:5, 2:4] = CODE["invalid"]
    doc = read_back(Room("holes", cells), tmp_path)
    (hatch,) = doc.modelspace().query("HATCH")
    assert len(hatch.paths) == 4
    assert not doc.modelspace().query("INSERT")


def test_void_tiles_are_a_solid_hatch_on_their_own_layer(tmp_path):
    # An L: the top-right 3 x 2 tiles are outside the room, one invalid tile inside.
    cells = np.zeros((5, 8), dtype=np.uint8)
    cells[0:2, 5:8] = CODE["void"]
    cells[4, 0] = CODE["invalid"]
    doc = read_back(Room("l-shape", cells), tmp_path)
    (void,) = doc.modelspace().query(f'HATCH[layer=="{export.LAYERS["void"]}"]')
    (invalid,) = doc.modelspace().query(f'HATCH[layer=="{export.LAYERS["invalid"]}"]')
    assert void.dxf.solid_fill == 1 and invalid.dxf.solid_fill == 0
    assert len(void.paths) == 2  # one boundary per row run


def test_room_without_invalid_cells_has_no_hatch(tmp_path):
    doc = read_back(Room("plain", np.zeros((3, 3), dtype=np.uint8)), tmp_path)
    assert not doc.modelspace().query("HATCH")


def test_one_dxf_file_per_room_with_unique_names(tmp_path):
    layout = export.layout_from_document(
        output_document([office_room("a/b"), office_room("a_b"), grid_room(30, 20, "big")])
    )
    paths = export.write_dxf(layout, tmp_path / "dxf")
    names = [path.name for path in paths]
    # A safe id keeps its name; an unsafe one is cleaned and told apart by a hash.
    assert names[1:] == ["a_b.dxf", "big.dxf"]
    assert names[0].startswith("a-b-") and names[0].endswith(".dxf") and "/" not in names[0]
    doc = ezdxf.readfile(paths[2])
    counts = layer_counts(doc)
    assert counts[("INSERT", export.LAYERS["light"])] == layout.rooms[2].count("light")
    texts = " ".join(text.dxf.text for text in doc.modelspace().query("TEXT"))
    assert "big" in texts and "compliant" in texts


def boq_for(rooms: list[Room]) -> pd.DataFrame:
    return export.bill_of_quantities(export.layout_from_document(output_document(rooms)))


def test_quantities_add_up():
    rooms = [office_room("r1"), grid_room(60, 40, "r2"), grid_room(30, 20, "r3")]
    boq = boq_for(rooms)
    assert list(boq.columns) == list(export.BOQ_COLUMNS)
    per_room = boq[boq["grid_id"] != export.TOTAL]
    totals = boq[boq["grid_id"] == export.TOTAL].set_index("component")
    assert len(per_room) == len(rooms) * len(DEVICE_COMPONENTS)
    for room in rooms:
        counts = per_room[per_room["grid_id"] == room.grid_id].set_index("component")["count"]
        assert counts.to_dict() == {name: room.count(name) for name in DEVICE_COMPONENTS}
    for name in DEVICE_COMPONENTS:
        assert totals.loc[name, "count"] == sum(room.count(name) for room in rooms)
    table = export.quantities_table(boq)
    assert list(table.index) == ["r1", "r2", "r3", export.TOTAL]
    assert (table["total"] == table[list(DEVICE_COMPONENTS)].sum(axis=1)).all()
    assert (table.loc[export.TOTAL] == table.drop(index=export.TOTAL).sum()).all()
    assert (boq["gap"] == boq["count"] - boq["lower_bound"]).all()
    for name in DEVICE_COMPONENTS:
        rows = per_room[per_room["component"] == name]
        assert totals.loc[name, "lower_bound"] == rows["lower_bound"].sum()


def test_lower_bounds_come_from_the_file_not_its_claim():
    room = office_room("r1")
    document = output_document([room])
    claimed = {"components": {}, "placed": 0, "lower_bound": 999, "gap": 0}
    document["rooms"][0]["certificate"] = claimed  # a file may claim anything
    layout = export.layout_from_document(document)
    certificate = layout.certificate(0)
    assert certificate["placed"] == sum(room.count(name) for name in DEVICE_COMPONENTS)
    assert certificate["lower_bound"] < 999
    boq = export.bill_of_quantities(layout)
    assert boq.loc[boq["grid_id"] == "r1", "lower_bound"].sum() == certificate["lower_bound"]


def lights_room(lights: int) -> Room:
    """5 x 5 office (9 m^2): the lumen method asks for 3 lights."""
    cells = np.zeros((5, 5), dtype=np.uint8)
    cells.ravel()[: lights * 2 : 2] = CODE["light"]
    return Room("lights", cells)


@pytest.mark.parametrize(
    ("lights", "driver"),
    [(2, "short of light.count"), (3, "light.count"), (5, "light.spacing (coverage)")],
)
def test_driving_rule_of_the_light_count(lights, driver):
    assert PROFILE.min_lights(9.0, "office") == 3
    boq = boq_for([lights_room(lights)])
    row = boq[(boq["grid_id"] == "lights") & (boq["component"] == "light")].iloc[0]
    assert row["count_rule"] == "light.count" and row["count_rule_min"] == 3
    assert row["driven_by"] == driver


def test_driving_rules_of_the_other_devices():
    room = grid_room(60, 40)
    boq = boq_for([room]).set_index(["grid_id", "component"])
    supply = boq.loc[("big", "air_supply")]
    assert supply["count_rule_min"] == PROFILE.min_supplies(room.area_m2)
    assert supply["driven_by"] == (
        "supply.count"
        if room.count("air_supply") == supply["count_rule_min"]
        else "supply.coverage (coverage)"
    )
    assert boq.loc[("big", "air_return"), "count_rule_min"] == PROFILE.min_returns(
        room.area_m2, room.count("air_supply")
    )
    smoke = boq.loc[("big", "smoke_detector")]
    assert pd.isna(smoke["count_rule_min"]) and smoke["driven_by"] == "smoke.coverage"


def test_room_without_coverage_points():
    room = Room("shaft", np.full((3, 3), CODE["invalid"], dtype=np.uint8))
    boq = boq_for([room])
    assert set(boq.loc[boq["grid_id"] == "shaft", "driven_by"]) == {"no coverage points"}


def test_csv_reads_back_and_totals_match(tmp_path):
    layout = export.layout_from_document(output_document([office_room("r1"), grid_room(30, 20)]))
    path = export.write_boq_csv(layout, tmp_path / "boq.csv")
    frame = pd.read_csv(path)
    totals = frame[frame["grid_id"] == export.TOTAL].set_index("component")["count"]
    rooms = frame[frame["grid_id"] != export.TOTAL].groupby("component")["count"].sum()
    assert totals.sort_index().tolist() == rooms.sort_index().tolist()


def test_layout_without_compliance_is_checked_on_load():
    document = output_document([office_room()])
    del document["rooms"][0]["compliance"]
    layout = export.layout_from_document(document)
    compliance = layout.compliance(0)
    assert compliance["profile"] == "nfpa72" and isinstance(compliance["violations"], list)


def test_export_command_writes_everything(tmp_path, capsys):
    source = tmp_path / "out.json"
    source.write_bytes(dump_document(output_document([office_room("r1"), grid_room(20, 12)])))
    code = export_command(
        source,
        dxf_dir=tmp_path / "dxf",
        png_dir=tmp_path / "png",
        html=tmp_path / "report.html",
        csv=tmp_path / "boq.csv",
        ifc=tmp_path / "model.ifc",
    )
    assert code == 0
    assert sorted(path.name for path in (tmp_path / "dxf").iterdir()) == ["big.dxf", "r1.dxf"]
    pngs = list((tmp_path / "png").glob("*.png"))
    assert len(pngs) == 2 * 9
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert pd.read_csv(tmp_path / "boq.csv")["count"].sum() > 0
    model = ifcopenshell.open(str(tmp_path / "model.ifc"))
    assert [space.Name for space in model.by_type("IfcSpace")] == ["r1", "big"]
    assert len(model.by_type("IfcSensor")) == sum(
        room.count("smoke_detector") for room in (office_room("r1"), grid_room(20, 12))
    )
    out = capsys.readouterr().out
    assert (
        "dxf: wrote 2 file(s)" in out and f"ifc: wrote 1 file(s) to {tmp_path / 'model.ifc'}" in out
    )


def test_export_command_reports_input_errors_on_one_line(tmp_path, capsys):
    assert export_command(tmp_path / "missing.json", csv=tmp_path / "boq.csv") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "missing.json" in error and "Traceback" not in error
    assert export_command(tmp_path / "missing.json") == 2
    assert "nothing to do" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, reason",
    [
        (b'{"hello": 1}', "neither a room"),
        (b"ISO-10303-21;", "JSON"),
        (b'{"grid_id": "r", "width": 1, "height": 1, "cells": []}', "field 'cells'"),
    ],
)
def test_ifc_of_a_file_that_is_not_a_layout_is_a_one_line_error(tmp_path, capsys, content, reason):
    source = tmp_path / "plan.json"
    source.write_bytes(content)
    assert export_command(source, ifc=tmp_path / "model.ifc") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ") and "plan.json" in error
    assert reason in error and "Traceback" not in error
    assert not (tmp_path / "model.ifc").exists()


def test_export_subcommand_parses_its_options(tmp_path):
    source = tmp_path / "room.json"
    source.write_bytes(dump_document(output_document([office_room()])["rooms"][0]))
    assert (
        main(
            [
                "export",
                str(source),
                "--dxf",
                str(tmp_path / "d"),
                "--csv",
                str(tmp_path / "q.csv"),
                "--ifc",
                str(tmp_path / "m.ifc"),
            ]
        )
        == 0
    )
    assert (tmp_path / "d" / "office-1.dxf").exists()
    [space] = ifcopenshell.open(str(tmp_path / "m.ifc")).by_type("IfcSpace")
    assert space.Name == "office-1"


@pytest.mark.parametrize("grid_id", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx"])
def test_csv_ids_a_spreadsheet_would_run_are_text(tmp_path, grid_id):
    layout = export.layout_from_document(output_document([office_room(grid_id)]))
    path = export.write_boq_csv(layout, tmp_path / "boq.csv")
    boq = pd.read_csv(path, keep_default_na=False)
    ids = set(boq["grid_id"]) - {export.TOTAL}
    assert ids == {"'" + grid_id}
    # Counts stay numbers: only text cells are quoted.
    assert pd.api.types.is_numeric_dtype(boq["count"])
