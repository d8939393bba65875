"""Luminaire files: reading LDT and IES, the intensity table, illuminance by hand, the field."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from eulumdat_ies import ldt_to_ies
from helpers import building_document, make_room, room_document
from pyldt import LdtReader

from ceilgrid_assets.core.engine import photometry
from ceilgrid_assets.core.engine.building import complete_building
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.io import parse_document, read_document, room_to_document
from ceilgrid_assets.core.engine.luminaires import (
    LUMINAIRE_DIR,
    Luminaire,
    lambertian,
    load_luminaire,
    luminaire_names,
    read_luminaire,
)
from ceilgrid_assets.core.engine.photometry import illuminance_map, point_kernel, required_lights
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import layout_metrics

NFPA = get_profile("nfpa72")
PANEL, DOWNLIGHT = "generic-led-panel-600", "generic-led-downlight"


# ------------------------------------------------------------------ the shipped catalogue


def test_the_catalogue_is_the_shipped_files_and_says_they_are_generic():
    assert luminaire_names() == (DOWNLIGHT, PANEL)
    ldt = (LUMINAIRE_DIR / f"{PANEL}.ldt").read_text(encoding="latin-1")
    ies = (LUMINAIRE_DIR / f"{DOWNLIGHT}.ies").read_text(encoding="ascii")
    for text in (ldt, ies):
        assert "GENERIC REFERENCE DISTRIBUTION, not a manufacturer's product" in text


def test_an_unknown_name_lists_the_catalogue():
    with pytest.raises(KeyError, match="generic-led-downlight, generic-led-panel-600"):
        load_luminaire("../luminaire_files/generic-led-panel-600")


def test_the_panel_file_read_by_hand_values():
    # LDT: 1 lamp of 3600 lm, LORL 100 %, 318.3 cd/klm at gamma 0 -> 318.3 x 3.6 = 1145.88 cd;
    # 159.2 cd/klm at gamma 60 -> 573.12 cd; rotationally symmetric (ISYM 1)
    panel = load_luminaire(PANEL)
    assert panel.flux_lm == pytest.approx(3600.0)
    assert panel.intensity(np.array([0.0, 90.0, 215.0]), np.zeros(3)) == pytest.approx(
        [1145.88] * 3, abs=0.01
    )
    assert panel.intensity(np.array(0.0), np.array(60.0)) == pytest.approx(573.12, abs=0.01)
    # halfway between the 15 and 20 degree rows (307.5, 299.1 cd/klm): 303.3 x 3.6
    assert panel.intensity(np.array(33.0), np.array(17.5)) == pytest.approx(1091.88, abs=0.01)
    assert panel.intensity(np.array(0.0), np.array(120.0)) == 0.0  # nothing upward


def test_the_downlight_file_read_by_hand_values():
    # IES: absolute candela for 1 lamp of 2400 lm, one horizontal angle (rotational symmetry)
    downlight = load_luminaire(DOWNLIGHT)
    assert downlight.flux_lm == pytest.approx(2400.0)
    assert downlight.intensity(np.array([0.0, 123.0]), np.zeros(2)) == pytest.approx([1145.9] * 2)
    assert downlight.intensity(np.array(0.0), np.array(45.0)) == pytest.approx(573.0)


@pytest.mark.parametrize(("name", "flux"), [(PANEL, 3600.0), (DOWNLIGHT, 2400.0)])
def test_declared_flux_matches_the_integrated_table(name, flux):
    # Lambertian: 2 pi I0 / 2 = pi I0 = 3600 lm; cos^2: 2 pi I0 / 3 = 2400 lm for I0 = 1145.9 cd.
    # The 5-degree table, interpolated linearly, integrates within 0.2 % of that.
    assert load_luminaire(name).integrated_flux_lm() == pytest.approx(flux, rel=0.002)


# ------------------------------------------------------------------ reading any file


def test_the_ies_reader_gives_the_ldt_readers_table(tmp_path):
    # the panel written as IES by the converter and read back: the same candela everywhere
    ies = tmp_path / "panel-as-ies.ies"
    ldt_to_ies(LdtReader.read(LUMINAIRE_DIR / f"{PANEL}.ldt"), ies)
    from_ies, from_ldt = read_luminaire(ies), load_luminaire(PANEL)
    c, gamma = np.meshgrid(np.arange(0.0, 360.0, 7.5), np.arange(0.0, 180.0, 2.5))
    np.testing.assert_allclose(from_ies.intensity(c, gamma), from_ldt.intensity(c, gamma))
    assert from_ies.flux_lm == pytest.approx(3600.0)


def _ies(tmp_path: Path, horizontal: str, rows: list[str], lumens: str) -> Path:
    path = tmp_path / "test.ies"
    path.write_text(
        "IESNA:LM-63-2002\n[TEST] t\nTILT=NONE\n"
        f"1 {lumens} 1 3 {len(horizontal.split())} 1 2 0.1 0.1 0\n1 1 10\n"
        f"0 45 90\n{horizontal}\n" + "\n".join(rows) + "\n",
        encoding="ascii",
    )
    return path


def test_a_file_whose_declared_flux_disagrees_with_its_table_is_refused(tmp_path):
    # lamp lumens -1 (absolute photometry): the converter assumes 1000 lm, the table has 457
    path = _ies(tmp_path, "0 45 90", ["300 150 0", "200 100 0", "100 50 0"], lumens="-1")
    with pytest.warns(UserWarning):  # absolute photometry: no lamp lumens to normalise by
        with pytest.raises(ValueError, match="test.ies: declared flux"):
            read_luminaire(path)


def test_ies_quadrant_table_gives_mirrored_planes(tmp_path):
    # this made-up table integrates to 456.6 lm: declared as 457 lm, it passes the check
    rows = ["300 150 0", "200 100 0", "100 50 0"]
    table = read_luminaire(_ies(tmp_path, "0 45 90", rows, lumens="457"))
    np.testing.assert_allclose(table.c_deg, [0, 45, 90, 135, 180, 225, 270, 315])
    at = table.intensity
    # I(C) = I(180 - C) = I(180 + C) = I(360 - C)
    for c, mirror in [(135, 45), (225, 45), (315, 45), (270, 90), (180, 0)]:
        assert at(np.array(float(c)), np.array(0.0)) == pytest.approx(at(np.array(mirror), 0.0))
    assert at(np.array(90.0), np.array(45.0)) == pytest.approx(50.0)
    assert at(np.array(67.5), np.array(0.0)) == pytest.approx(150.0)  # halfway 200 and 100


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("IESNA:LM-63-2002\n[TEST] t\n", "TILT line not found"),
        ("not\na\nfile\n", "could not convert"),
    ],
)
def test_a_malformed_file_names_itself(tmp_path, text, words):
    path = tmp_path / ("bad.ies" if "IESNA" in text else "bad.ldt")
    path.write_text(text, encoding="ascii")
    with pytest.raises(ValueError, match=f"{path.name}: .*{words}"):
        read_luminaire(path)


# ------------------------------------------------------------------ illuminance by hand


def test_one_panel_by_hand_below_and_one_tile_aside():
    # Hm = 2.7 - 0.8 = 1.9 m, MF 0.8. Below: E = 1145.88 x 0.8 / 1.9^2 = 253.93 lx.
    # One tile aside: gamma = atan(0.6 / 1.9) = 17.53 deg, I = (307.5 + 0.5052 (299.1 - 307.5))
    # x 3.6 = 1091.76 cd, cos^3 = (1.9 / 1.99249)^3 = 0.86711: E = 1091.76 x 0.8 x 0.86711
    # / 3.61 = 209.79 lx
    room = replace(make_room((2, 1), devices={"light": [(0, 0)]}), luminaire=PANEL)
    lux = illuminance_map(room, NFPA)
    assert lux[0, 0] == pytest.approx(253.93, rel=0.001)
    assert lux[0, 1] == pytest.approx(209.79, rel=0.001)


def test_one_downlight_by_hand_below_and_two_tiles_aside():
    # ceiling 3.0: Hm = 2.2 m. Below: E = 1145.9 x 0.8 / 4.84 = 189.40 lx.
    # Two tiles aside (1.2 m): gamma = 28.61 deg between the 25 and 30 rows (941.2, 859.4 cd):
    # I = 941.2 - 0.7222 x 81.8 = 882.12 cd, cos^3 = (2.2 / 2.50599)^3 = 0.67660:
    # E = 882.12 x 0.8 x 0.67660 / 4.84 = 98.65 lx
    room = make_room((3, 1), devices={"light": [(0, 0)]}, ceiling_height_m=3.0)
    lux = illuminance_map(replace(room, luminaire=DOWNLIGHT), NFPA)
    assert lux[0, 0] == pytest.approx(189.40, rel=0.001)
    assert lux[0, 2] == pytest.approx(98.65, rel=0.001)


def test_c_planes_follow_the_grid_axes():
    # 100 cd in the planes C0 and C180 (along x), 400 cd in C90 and C270 (along y)
    table = np.array([[100.0, 100.0, 0.0], [400.0, 400.0, 0.0]] * 2)
    planes, gammas = np.array([0.0, 90.0, 180.0, 270.0]), np.array([0.0, 45.0, 90.0])
    luminaire = Luminaire("axes", planes, gammas, table, 1.0)
    kernel = point_kernel((3, 3), 1.0, 1.0, luminaire, 1.0)
    # kernel centre (2, 2) is the fitting; one metre aside is gamma 45: E = I cos^3(45) / 1
    cos3 = math.cos(math.radians(45)) ** 3
    assert kernel[2, 3] == pytest.approx(100 * cos3)  # +x: C0
    assert kernel[2, 1] == pytest.approx(100 * cos3)  # -x: C180
    assert kernel[3, 2] == pytest.approx(400 * cos3)  # +y: C90
    assert kernel[1, 2] == pytest.approx(400 * cos3)  # -y: C270


def test_the_panel_reproduces_the_lambertian_default_within_half_a_percent():
    room = make_room((12, 9), devices={"light": [(2, 2), (9, 2), (2, 6), (9, 6), (5, 4)]})
    default = illuminance_map(room, NFPA)
    panel = illuminance_map(replace(room, luminaire=PANEL), NFPA)
    np.testing.assert_allclose(panel, default, rtol=0.005)
    assert lambertian(3600.0).integrated_flux_lm() == pytest.approx(3600.0, rel=1e-5)


def test_the_lumen_method_takes_the_files_flux():
    # 5 x 5 tiles = 9 m2 office at 500 lx, UF 0.6, MF 0.8:
    # 3600 lm -> 4500 / 1728 = 2.6 -> 3 lights; 2400 lm -> 4500 / 1152 = 3.9 -> 4 lights
    room = make_room((5, 5))
    assert required_lights(room, NFPA) == 3
    assert required_lights(replace(room, luminaire=PANEL), NFPA) == 3
    assert required_lights(replace(room, luminaire=DOWNLIGHT), NFPA) == 4
    assert required_lights(room, replace(NFPA, luminaire=DOWNLIGHT)) == 4


def test_the_panel_asks_the_default_counts_in_the_example_buildings():
    examples = sorted((LUMINAIRE_DIR.parents[2] / "examples").glob("*.json"))
    rooms = [room for path in examples for room in read_document(path).rooms]
    assert len(rooms) == 6
    for room in rooms:
        assert required_lights(replace(room, luminaire=PANEL), NFPA) == required_lights(room, NFPA)


def test_reading_a_document_does_not_import_the_readers():
    # the readers load with the first file read, not with the engine
    code = (
        "import sys; from ceilgrid_assets.core.engine import pipeline, io;"
        "io.parse_document(sys.argv[1]);"
        "assert 'pyldt' not in sys.modules and 'eulumdat_ies' not in sys.modules"
    )
    document = json.dumps(room_document((2, 2), luminaire=PANEL))
    subprocess.run([sys.executable, "-c", code, document], check=True)


# ------------------------------------------------------------------ the luminaire field


def test_a_room_names_its_luminaire_and_the_output_keeps_it():
    parsed = parse_document(json.dumps(room_document((2, 2), luminaire=DOWNLIGHT)))
    room = parsed.rooms[0]
    assert room.luminaire == DOWNLIGHT and "luminaire" not in room.extra
    assert room_to_document(room)["luminaire"] == DOWNLIGHT
    assert "luminaire" not in room_to_document(replace(room, luminaire=None))


def test_a_buildings_luminaire_applies_to_rooms_that_name_none():
    rooms = [
        room_document((2, 2), grid_id="a"),
        room_document((2, 2), grid_id="b", luminaire=DOWNLIGHT),
    ]
    document = {**building_document(rooms), "luminaire": PANEL}
    parsed = parse_document(json.dumps(document))
    assert [room.luminaire for room in parsed.rooms] == [PANEL, DOWNLIGHT]
    # without the field: the profile's Lambertian default, as before
    plain = parse_document(json.dumps(building_document(rooms[:1])))
    assert plain.rooms[0].luminaire is None


@pytest.mark.parametrize(
    "value", ["/etc/passwd", f"../engine/luminaire_files/{PANEL}.ldt", f"{PANEL}.ldt", 3, None]
)
def test_an_unknown_luminaire_names_file_room_and_field(value):
    text = json.dumps(room_document((2, 2), grid_id="r1", luminaire=value))
    with pytest.raises(InputError) as raised:
        parse_document(text, "b.json")
    message = str(raised.value)
    assert message.startswith("b.json: room r1: field 'luminaire': unknown value")
    assert "allowed: generic-led-downlight, generic-led-panel-600" in message


def test_an_unknown_building_luminaire_names_file_and_field():
    document = {**building_document([room_document((2, 2))]), "luminaire": "spotlight"}
    with pytest.raises(InputError, match=r"^b.json: field 'luminaire': unknown value 'spotlight'"):
        parse_document(json.dumps(document), "b.json")


def test_a_building_lays_out_each_room_with_its_own_luminaire():
    # two rooms alike in every cell: only the luminaire differs, so they share no layout
    rooms = [
        room_document((5, 5), grid_id="panel"),
        room_document((5, 5), grid_id="down", luminaire=DOWNLIGHT),
    ]
    document = {**building_document(rooms), "luminaire": PANEL}
    result = complete_building(parse_document(json.dumps(document)), memo=None)
    by_id = {room["grid_id"]: room for room in result.document["rooms"]}
    assert by_id["panel"]["luminaire"] == PANEL and by_id["down"]["luminaire"] == DOWNLIGHT
    # lumen method: 3 panels (3600 lm) and 4 downlights (2400 lm), as computed above
    assert by_id["panel"]["metrics"]["lights"] == 3
    assert by_id["down"]["metrics"]["lights"] == 4
    # read back, the output names its luminaire, so validation uses the same photometry
    again = parse_document(json.dumps(result.document))
    assert [room.luminaire for room in again.rooms] == [PANEL, DOWNLIGHT]
    for room, written in zip(again.rooms, result.document["rooms"], strict=True):
        assert layout_metrics(room, NFPA) == written["metrics"]


@pytest.mark.parametrize("name", [None, *luminaire_names()])
@pytest.mark.parametrize("shape", [(1, 1), (4, 17), (20, 9), (64, 64), (64, 1), (3, 65)])
def test_a_small_grids_kernel_cut_from_the_shared_one_is_the_kernel_computed_for_it(name, shape):
    """Up to SHARED_KERNEL_SIDE tiles a side, kernels are the middle of one larger kernel;
    every value must be bit for bit the one computed for the grid itself."""
    luminaire = lambertian(3200.0) if name is None else load_luminaire(name)
    for tile, height in [(0.6, 1.95), (1.2, 3.7)]:
        cut = point_kernel(shape, tile, height, luminaire, 0.8)
        computed = photometry._offset_kernel(*shape, tile, height, luminaire, 0.8)
        assert cut.shape == (2 * shape[0] - 1, 2 * shape[1] - 1)
        assert cut.tobytes() == computed.tobytes()
        assert not cut.flags.writeable
