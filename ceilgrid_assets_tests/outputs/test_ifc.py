"""The IFC export read back with IfcOpenShell device for device, and checked with the IDS."""

from __future__ import annotations

import ifcopenshell
import ifcopenshell.geom
import ifcopenshell.util.element
import ifcopenshell.util.placement
import ifcopenshell.util.unit
import numpy as np
import pytest
from ifctester import ids
from sample_rooms import OFFICE_DEVICES, grid_room, office_room, output_document

from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, Room
from ceilgrid_assets.core.outputs import export, ifc

#: IFC class and PredefinedType the issue asks for, per device.
EXPECTED_CLASSES = {
    "light": ("IfcLightFixture", None),
    "air_supply": ("IfcAirTerminal", "DIFFUSER"),
    "air_return": ("IfcAirTerminal", "GRILLE"),
    "smoke_detector": ("IfcSensor", "SMOKESENSOR"),
}


def building() -> export.Layout:
    """The 10 x 6 office, then a 60 x 40 room, with a models record on the office."""
    document = output_document([office_room("office"), grid_room(60, 40)])
    document["rooms"][0]["models"] = {
        "light": {"chosen": "array", "compliant": True, "candidates": []},
        "smoke_detector": {"chosen": "exact", "compliant": True, "candidates": []},
    }
    return export.layout_from_document(document)


def read_back(layout: export.Layout, tmp_path) -> ifcopenshell.file:
    path = ifc.write_ifc(layout, tmp_path / "model.ifc")
    return ifcopenshell.open(str(path))


def devices_by_room(model: ifcopenshell.file) -> dict[str, dict[tuple[str, int, int], dict]]:
    """Per room id: (component, x, y) -> class, type, world position and properties."""
    rooms = {}
    for space in model.by_type("IfcSpace"):
        grid_id = ifcopenshell.util.element.get_psets(space)[ifc.ROOM_PSET]["GridId"]
        found = {}
        for element in ifcopenshell.util.element.get_decomposition(space):
            if element.is_a("IfcCovering"):
                continue
            placed = ifcopenshell.util.element.get_psets(element)[ifc.PLACEMENT_PSET]
            key = (placed["Component"], placed["CellX"], placed["CellY"])
            assert key not in found, key
            found[key] = {
                "class": element.is_a(),
                "type": ifcopenshell.util.element.get_predefined_type(element),
                "xyz": ifcopenshell.util.placement.get_local_placement(element.ObjectPlacement)[
                    :3, 3
                ],
                "pset": placed,
            }
        rooms[grid_id] = found
    return rooms


def expected_positions(room: Room, origin_x: float) -> dict[tuple[str, int, int], tuple]:
    t, height = room.tile_size_m, room.height
    expected = {}
    for name in DEVICE_COMPONENTS:
        ys, xs = np.nonzero(room.cells == CODE[name])
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
            expected[(name, x, y)] = (
                origin_x + (x + 0.5) * t,
                (height - y - 0.5) * t,
                room.ceiling_height_m,
            )
    return expected


def test_every_device_reads_back_at_its_tile_centre_in_metres(tmp_path):
    layout = building()
    model = read_back(layout, tmp_path)
    assert model.schema == "IFC4"
    assert ifcopenshell.util.unit.calculate_unit_scale(model) == 1.0  # metres
    rooms = devices_by_room(model)
    assert set(rooms) == {"office", "big"}

    # Hand-computed, office (tiles of 0.6 m, 6 rows, ceiling 2.7 m, at the origin):
    # the detector on cell (5, 3) sits at X = 5.5 * 0.6, Y = (6 - 3 - 0.5) * 0.6.
    office = rooms["office"]
    assert np.allclose(office[("smoke_detector", 5, 3)]["xyz"], (3.3, 1.5, 2.7))
    assert np.allclose(office[("air_return", 9, 5)]["xyz"], (5.7, 0.3, 2.7))
    assert sorted((x, y) for name, x, y in office if name == "light") == sorted(
        OFFICE_DEVICES["light"]
    )
    # The second room starts 1 m after the office's 6 m: its cell (1, 1) is at 7 + 0.9.
    assert np.allclose(rooms["big"][("light", 1, 1)]["xyz"], (7.9, 23.1, 2.7))

    for room, origin in zip(layout.rooms, (0.0, 7.0), strict=True):
        found = rooms[room.grid_id]
        expected = expected_positions(room, origin)
        assert set(found) == set(expected), room.grid_id
        for key, xyz in expected.items():
            assert np.allclose(found[key]["xyz"], xyz, atol=1e-9), key
            assert (found[key]["class"], found[key]["type"]) == EXPECTED_CLASSES[key[0]], key
    codes = [CODE[name] for name in DEVICE_COMPONENTS]
    total = sum(int(np.isin(room.cells, codes).sum()) for room in layout.rooms)
    assert len(model.by_type("IfcDistributionElement")) == total


def test_devices_name_the_rule_of_the_bill_of_quantities_and_the_chosen_model(tmp_path):
    layout = building()
    rooms = devices_by_room(read_back(layout, tmp_path))
    boq = export.bill_of_quantities(layout)
    for _, row in boq[boq["grid_id"] != export.TOTAL].iterrows():
        rules = {
            device["pset"]["Rule"]
            for key, device in rooms[row["grid_id"]].items()
            if key[0] == row["component"]
        }
        if row["count"]:
            # The one rule id the driven_by text names, e.g. "light.spacing (coverage)".
            assert len(rules) == 1 and rules.pop() in row["driven_by"].split(), row.to_dict()
    office = rooms["office"]
    assert office[("light", 3, 1)]["pset"]["PlacedBy"] == "array"
    assert office[("smoke_detector", 5, 3)]["pset"]["PlacedBy"] == "exact"
    assert "PlacedBy" not in office[("air_supply", 5, 1)]["pset"]  # no models record for it
    assert office[("smoke_detector", 5, 3)]["pset"]["Rule"] == "smoke.coverage"
    assert office[("air_return", 9, 5)]["pset"]["Rule"] == "return.count"


def test_spatial_structure_building_storey_spaces_and_ceilings(tmp_path):
    model = read_back(building(), tmp_path)
    [project] = model.by_type("IfcProject")
    [building_entity] = model.by_type("IfcBuilding")
    [storey] = model.by_type("IfcBuildingStorey")
    assert building_entity.Name == "b-1" and storey.Elevation == 0.0
    assert {space.LongName for space in model.by_type("IfcSpace")} == {"office"}  # room_type
    for ifc_class in ("IfcLightFixture", "IfcAirTerminal", "IfcSensor"):
        for element in model.by_type(ifc_class):
            assert ifcopenshell.util.element.get_type(element).is_a(f"{ifc_class}Type")
    assert ifcopenshell.util.element.get_aggregate(storey) == building_entity
    spaces = model.by_type("IfcSpace")
    assert [ifcopenshell.util.element.get_aggregate(space) for space in spaces] == [storey] * 2
    for space in spaces:
        [covers] = space.HasCoverings
        [ceiling] = covers.RelatedCoverings
        assert ceiling.is_a("IfcCovering") and ceiling.PredefinedType == "CEILING"
        # The ceiling plane is at the room's ceiling height above the space.
        assert ifcopenshell.util.placement.get_local_placement(ceiling.ObjectPlacement)[2, 3] == 2.7
    assert ifcopenshell.util.element.get_aggregate(building_entity).is_a("IfcSite")
    assert project.UnitsInContext is not None


def test_bodies_space_ceiling_and_device_symbols_in_world_metres(tmp_path):
    model = read_back(building(), tmp_path)
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)

    def bounds(element) -> np.ndarray:
        verts = ifcopenshell.geom.create_shape(settings, element).geometry.verts
        points = np.array(verts).reshape(-1, 3)
        return np.round(np.stack([points.min(axis=0), points.max(axis=0)]), 6)

    office = model.by_type("IfcSpace")[0]
    [ceiling] = office.HasCoverings[0].RelatedCoverings
    # The office is 10 x 6 tiles of 0.6 m under a 2.7 m ceiling; the ceiling is 20 mm thick.
    assert bounds(office).tolist() == [[0, 0, 0], [6.0, 3.6, 2.7]]
    assert bounds(ceiling).tolist() == [[0, 0, 2.7], [6.0, 3.6, 2.72]]
    sensor = next(e for e in model.by_type("IfcSensor") if e.Name == "smoke_detector 5,3")
    # A 0.3 t square, 50 mm deep, centred on (3.3, 1.5) under the ceiling.
    assert np.allclose(bounds(sensor), [[3.21, 1.41, 2.65], [3.39, 1.59, 2.7]])
    light = next(e for e in model.by_type("IfcLightFixture") if e.Name == "light 3,1")
    assert np.allclose(bounds(light), [[1.86, 2.46, 2.65], [2.34, 2.94, 2.7]])


def test_same_layout_same_bytes_and_unique_global_ids(tmp_path):
    first = ifc.ifc_bytes(building())
    assert first == ifc.ifc_bytes(building())
    assert b"1970-01-01T00:00:00" in first.split(b"ENDSEC;")[0]
    model = ifcopenshell.file.from_string(first.decode())
    ids_ = [entity.GlobalId for entity in model.by_type("IfcRoot")]
    assert len(ids_) == len(set(ids_))
    # A device keeps its GlobalId when another room is added after it.
    more = export.layout_from_document(
        output_document([office_room("office"), grid_room(60, 40), office_room("extra")])
    )
    again = ifcopenshell.file.from_string(ifc.ifc_bytes(more).decode())
    before = {e.GlobalId for e in model.by_type("IfcSensor")}
    assert before <= {e.GlobalId for e in again.by_type("IfcSensor")}


def validated(model: ifcopenshell.file) -> dict[str, bool]:
    spec = ids.open(str(ifc.IDS_PATH), validate=True)
    spec.validate(model)
    return {specification.name: specification.status for specification in spec.specifications}


def test_export_passes_the_shipped_ids(tmp_path):
    status = validated(read_back(building(), tmp_path))
    assert len(status) == 7 and all(status.values()), status


def drop_cell_y(model: ifcopenshell.file) -> str:
    sensor = model.by_type("IfcSensor")[0]
    pset = model.by_id(ifcopenshell.util.element.get_psets(sensor)[ifc.PLACEMENT_PSET]["id"])
    pset.HasProperties = [p for p in pset.HasProperties if p.Name != "CellY"]
    return "Smoke sensors"


def louvre_type(model: ifcopenshell.file) -> str:
    # The type's PredefinedType is the one that counts for its occurrences.
    [grilles] = [t for t in model.by_type("IfcAirTerminalType") if t.PredefinedType == "GRILLE"]
    grilles.PredefinedType = "LOUVRE"
    return "Air terminals are diffusers or grilles"


def loose_light(model: ifcopenshell.file) -> str:
    light = model.by_type("IfcLightFixture")[0]
    [contained] = light.ContainedInStructure
    contained.RelatedElements = [e for e in contained.RelatedElements if e != light]
    return "Light fixtures"


@pytest.mark.parametrize("tamper", [drop_cell_y, louvre_type, loose_light])
def test_a_tampered_export_fails_the_ids(tmp_path, tamper):
    model = read_back(building(), tmp_path)
    failing = tamper(model)
    status = validated(model)
    assert {name for name, passed in status.items() if not passed} == {failing}


def test_single_room_and_hostile_ids_read_back(tmp_path):
    grid_id = "a | b\n| c \U0001f3e2 " + "z" * 1000
    document = output_document([office_room(grid_id)])["rooms"][0]
    layout = export.layout_from_document(document)
    model = read_back(layout, tmp_path)
    [space] = model.by_type("IfcSpace")
    assert ifcopenshell.util.element.get_psets(space)[ifc.ROOM_PSET]["GridId"] == grid_id
    assert len(space.Name) == ifc.MAX_LABEL
    assert len(model.by_type("IfcLightFixture")) == len(OFFICE_DEVICES["light"])
    assert all(validated(model).values())


def l_shaped_room() -> Room:
    """10 x 8 tiles of 0.6 m, the top-right 4 x 3 outside the room, a column inside.

    Inside: 80 - 12 = 68 tiles (the invalid column is ceiling inside the room),
    68 x 0.36 = 24.48 m2; the devices stay clear of the void.
    """
    cells = np.zeros((8, 10), dtype=np.uint8)
    cells[0:3, 6:10] = CODE["void"]
    cells[5, 5] = CODE["invalid"]
    cells[1, 2] = CODE["light"]
    cells[6, 8] = CODE["smoke_detector"]
    return Room("l-shape", cells)


def test_footprint_rectangles_merge_rows_with_the_same_runs():
    room = l_shaped_room()
    # Rows 0-2 run over x 0..5, rows 3-7 over the whole width: two rectangles.
    assert ifc.footprint_rectangles(room.inside) == [(0, 0, 6, 3), (0, 3, 10, 8)]
    assert ifc.footprint_rectangles(np.ones((3, 4), dtype=bool)) == [(0, 0, 4, 3)]
    # A U (void in the middle of the top rows) and a room in two pieces.
    u = np.ones((4, 5), dtype=bool)
    u[0:2, 2] = False
    assert ifc.footprint_rectangles(u) == [(0, 0, 2, 2), (3, 0, 5, 2), (0, 2, 5, 4)]
    apart = np.array([[True, False, True], [True, False, False]])
    assert ifc.footprint_rectangles(apart) == [(0, 0, 1, 2), (2, 0, 3, 1)]
    assert ifc.footprint_rectangles(np.zeros((2, 2), dtype=bool)) == []


def test_an_l_shaped_room_space_and_ceiling_cover_its_inside_cells_only(tmp_path):
    import ifcopenshell.util.shape

    room = l_shaped_room()
    model = read_back(export.layout_from_document(output_document([room])), tmp_path)
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    [space] = model.by_type("IfcSpace")
    [ceiling] = space.HasCoverings[0].RelatedCoverings
    inside_area = 68 * 0.6**2  # hand-computed above: 24.48 m2
    assert int(room.inside.sum()) * room.tile_size_m**2 == pytest.approx(inside_area)
    for element, height in ((space, 2.7), (ceiling, ifc.CEILING_THICKNESS_M)):
        geometry = ifcopenshell.geom.create_shape(settings, element).geometry
        assert ifcopenshell.util.shape.get_footprint_area(geometry) == pytest.approx(inside_area)
        assert ifcopenshell.util.shape.get_volume(geometry) == pytest.approx(inside_area * height)
    # The full grid would be 80 tiles, 28.8 m2: the void's 4.32 m2 are left out.
    # The void is the top-right corner, X 3.6..6.0 and Y (8 - 3) * 0.6 = 3.0..4.8, so
    # the space is X 0..6 by Y 0..3 (rows 3-7) and X 0..3.6 by Y 3..4.8 (rows 0-2).
    [body] = space.Representation.Representations
    corners = []
    for item in body.Items:  # rectangles extruded from the space's origin
        assert item.Position.Location.Coordinates == (0.0, 0.0, 0.0)
        points = np.array(item.SweptArea.OuterCurve.Points.CoordList)
        corners.append((*points.min(axis=0).round(6), *points.max(axis=0).round(6)))
    assert sorted(corners) == [(0.0, 0.0, 6.0, 3.0), (0.0, 3.0, 3.6, 4.8)]
    # The devices read back at their cells, and the export still passes the IDS.
    rooms = devices_by_room(model)
    # Cell (2, 1): X = 2.5 * 0.6, Y = (8 - 1 - 0.5) * 0.6.
    assert np.allclose(rooms["l-shape"][("light", 2, 1)]["xyz"], (1.5, 3.9, 2.7))
    assert all(validated(model).values())


def test_a_room_without_void_keeps_one_box(tmp_path):
    model = read_back(building(), tmp_path)
    for space in model.by_type("IfcSpace"):
        [body] = space.Representation.Representations
        assert len(body.Items) == 1
