"""The editor's JSON API against a real ``ceilgrid editor`` process.

Every verdict the page shows must be the engine's: the tests compare the
answers with the core functions called directly, and the downloaded file with
``dump_document`` and with ``ceilgrid validate`` run as a process.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from editor_helpers import (
    CEILGRID,
    HOSTILE_ID,
    codes_of,
    editing_building,
    room_request,
    with_cell,
)

from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.grid import CODE
from ceilgrid_assets.core.engine.io import dump_document, parse_document, parse_object, parse_room
from ceilgrid_assets.core.engine.photometry import illuminance_map
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import compliance_report, layout_metrics
from ceilgrid_assets.core.outputs.export import LAYERS
from ceilgrid_assets.core.outputs.render import render_room

pytestmark = pytest.mark.timeout(180)
JSON = {"content-type": "application/json"}
PROFILE = get_profile("nfpa72")


def office_document() -> dict:
    return editing_building()["rooms"][0]


def test_building_lists_rooms_with_the_validators_verdicts(start_editor, building_file):
    editor = start_editor(building_file)
    response = requests.get(f"{editor.url}/api/building", timeout=30)
    assert response.headers["content-type"] == "application/json"
    building = response.json()
    assert building["building_id"] == "floor-1"
    assert [room["document"]["grid_id"] for room in building["rooms"]] == ["office-a", HOSTILE_ID]
    parsed = parse_document(building_file.read_bytes(), "floor-1.json")
    for view, room in zip(building["rooms"], parsed.rooms, strict=True):
        assert view["codes"] == "".join(str(code) for code in room.cells.ravel())
        assert view["compliance"] == compliance_report(room, PROFILE)
        assert view["metrics"] == layout_metrics(room, PROFILE)
    assert building["style"]["colours"]["light"] == "#e69f00"  # the PNG plans' colour


def test_validate_reports_a_broken_clearance_and_its_cell(start_editor, building_file):
    editor = start_editor(building_file)
    office = office_document()
    clear = requests.post(
        f"{editor.url}/api/validate", data=room_request(office), headers=JSON, timeout=30
    ).json()
    assert "smoke.clearance" not in {v["rule"] for v in clear["compliance"]["violations"]}

    broken = with_cell(office, 3, 2, "smoke_detector")  # 0.6 m from the light at (2, 2)
    verdict = requests.post(
        f"{editor.url}/api/validate", data=room_request(broken), headers=JSON, timeout=30
    ).json()
    clearance = [v for v in verdict["compliance"]["violations"] if v["rule"] == "smoke.clearance"]
    assert len(clearance) == 1 and clearance[0]["cells"] == [[3, 2]]
    assert verdict["compliance"] == compliance_report(parse_room(broken), PROFILE)
    assert verdict["metrics"]["smoke_detector"] == 1


def test_validate_sends_the_illuminance_map_when_asked(start_editor, building_file):
    editor = start_editor(building_file)
    office = office_document()
    plain = requests.post(
        f"{editor.url}/api/validate", data=room_request(office), headers=JSON, timeout=30
    ).json()
    assert "illuminance" not in plain
    body = json.dumps({"room": office, "illuminance": True}).encode()
    answer = requests.post(f"{editor.url}/api/validate", data=body, headers=JSON, timeout=30).json()
    lux = answer["illuminance"]["lux"]
    expected = illuminance_map(parse_room(office), PROFILE)
    assert len(lux) == 8 * 6
    assert lux[7] is None and lux[8 + 7] is None  # the unusable tiles (7, 0) and (7, 1)
    assert lux[2 * 8 + 2] == round(expected[2, 2]) > lux[5 * 8 + 6] > 0  # brightest under the light
    assert answer["illuminance"]["required_lx"] == 500


def test_complete_keeps_the_designers_devices_and_is_compliant(start_editor, building_file):
    editor = start_editor(building_file)
    designed = with_cell(office_document(), 6, 4, "air_supply")
    response = requests.post(
        f"{editor.url}/api/complete", data=room_request(designed), headers=JSON, timeout=120
    )
    assert response.status_code == 200
    room = response.json()["room"]
    codes = np.array([int(c) for c in room["codes"]], dtype=np.uint8).reshape(6, 8)
    before = codes_of(designed)
    assert codes[2, 2] == CODE["light"] and codes[4, 6] == CODE["air_supply"]
    assert (codes[before == CODE["invalid"]] == CODE["invalid"]).all()
    assert room["compliance"]["compliant"] is True
    assert set(room["models"]) == {"light", "air_supply", "air_return", "smoke_detector"}
    completed = parse_room({**room["document"], "cells": cells_of(codes)})
    assert compliance_report(completed, PROFILE)["compliant"]
    assert room["metrics"]["smoke_detector"] >= 1


def cells_of(codes: np.ndarray) -> list[dict]:
    names = ["empty", "invalid", "light", "air_supply", "air_return", "smoke_detector"]
    height, width = codes.shape
    return [
        {"x": x, "y": y, "component": names[codes[y, x]]}
        for y in range(height)
        for x in range(width)
    ]


def test_download_is_dump_document_bytes_and_passes_ceilgrid_validate(
    start_editor, building_file, tmp_path
):
    editor = start_editor(building_file)
    building = editing_building()
    for index, document in enumerate(building["rooms"]):
        done = requests.post(
            f"{editor.url}/api/complete", data=room_request(document), headers=JSON, timeout=120
        ).json()["room"]
        codes = np.array([int(c) for c in done["codes"]], dtype=np.uint8).reshape(
            document["height"], document["width"]
        )
        building["rooms"][index] = {**done["document"], "cells": cells_of(codes)}
        building["rooms"][index]["models"] = done["models"]
    response = requests.post(
        f"{editor.url}/api/download",
        data=json.dumps({"building": building}),
        headers=JSON,
        timeout=60,
    )
    assert response.status_code == 200
    assert 'filename="floor-1.json"' in response.headers["content-disposition"]
    data = response.content
    document = json.loads(data)
    assert data == dump_document(document)
    assert [room["grid_id"] for room in document["rooms"]] == ["office-a", HOSTILE_ID]
    for room in document["rooms"]:
        assert list(room)[-3:] == ["compliance", "models", "metrics"]  # as `ceilgrid layout`
        assert room["compliance"]["compliant"] is True
    assert parse_object(document).rooms[0].cells[2, 2] == CODE["light"]
    path = tmp_path / "downloaded.json"
    path.write_bytes(data)
    checked = subprocess.run(
        [str(CEILGRID), "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("compliant (nfpa72)") == 2


def test_a_room_exports_as_png_and_dxf_like_ceilgrid_export(start_editor, building_file):
    import ezdxf
    from PIL import Image

    editor = start_editor(building_file)
    office = with_cell(office_document(), 3, 2, "smoke_detector")
    png = requests.post(
        f"{editor.url}/api/export/png", data=room_request(office), headers=JSON, timeout=120
    )
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert 'filename="office-a.png"' in png.headers["content-disposition"]
    room = parse_room(office)
    expected = render_room(
        room, "violations", violations=compliance_report(room, PROFILE)["violations"]
    )
    assert png.content == expected.png  # not compliant: the violations view, byte for byte
    assert Image.open(io.BytesIO(png.content)).size == expected.size

    dxf = requests.post(
        f"{editor.url}/api/export/dxf", data=room_request(office), headers=JSON, timeout=120
    )
    assert dxf.status_code == 200
    drawing = ezdxf.read(io.StringIO(dxf.content.decode()))
    inserts = [entity.dxf.layer for entity in drawing.modelspace().query("INSERT")]
    assert sorted(inserts) == sorted([LAYERS["light"], LAYERS["smoke_detector"]])
    unknown = requests.post(
        f"{editor.url}/api/export/ifc", data=room_request(office), headers=JSON, timeout=30
    )
    assert unknown.status_code == 404


def test_bad_input_gets_the_engines_one_line_error(start_editor, building_file):
    editor = start_editor(building_file)
    bad_room = with_cell(office_document(), 3, 1, "lamp")
    response = requests.post(
        f"{editor.url}/api/validate", data=room_request(bad_room), headers=JSON, timeout=30
    )
    assert response.status_code == 400
    with pytest.raises(InputError) as expected:
        parse_room(bad_room, str(building_file))
    assert response.json() == {"error": str(expected.value)}
    assert "cell (3, 1)" in response.json()["error"] and "\n" not in response.json()["error"]

    truncated = requests.post(
        f"{editor.url}/api/complete", data=b'{"room": {"grid_id": ', headers=JSON, timeout=30
    )
    assert truncated.status_code == 400
    assert truncated.json()["error"].startswith(f"{building_file}: malformed JSON at line 1")

    not_json = requests.post(
        f"{editor.url}/api/validate",
        data=room_request(office_document()),
        headers={"content-type": "text/plain"},
        timeout=30,
    )
    assert not_json.status_code == 400  # what a form on another site could send


def test_a_malformed_file_fails_at_start_with_the_clis_line(tmp_path):
    path = tmp_path / "plan.json"
    room = office_document()
    room["cells"][5]["component"] = "lamp"
    path.write_text(json.dumps(room))
    editor = subprocess.run(
        [str(CEILGRID), "editor", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    validate = subprocess.run(
        [str(CEILGRID), "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert editor.returncode == 2
    assert editor.stderr.strip().count("\n") == 0
    assert editor.stderr.strip() == validate.stderr.strip().splitlines()[0]
    assert "field 'component': cell (5, 0): unknown value 'lamp'" in editor.stderr


def test_hostile_names_stay_data_and_other_hosts_are_refused(start_editor, tmp_path: Path):
    building = editing_building()
    building["building_id"] = "../../etc/" + HOSTILE_ID
    path = tmp_path / "hostile.json"
    path.write_bytes(dump_document(building))
    editor = start_editor(path)
    assert editor.url.startswith("http://127.0.0.1:")

    page = requests.get(f"{editor.url}/", timeout=30)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<img" not in page.text and "__pwned" not in page.text  # the page embeds no data
    view = requests.get(f"{editor.url}/api/building", timeout=30).json()
    assert view["building_id"] == building["building_id"]  # JSON keeps it exactly, as data
    assert "/" not in view["download_name"] and "<" not in view["download_name"]

    response = requests.post(
        f"{editor.url}/api/download",
        data=json.dumps({"building": building}),
        headers=JSON,
        timeout=60,
    )
    disposition = response.headers["content-disposition"]
    assert "/" not in disposition and "<" not in disposition
    assert json.loads(response.content)["building_id"] == building["building_id"]

    no_platform = requests.post(
        f"{editor.url}/api/submit",
        data=json.dumps({"building": building}),
        headers=JSON,
        timeout=30,
    )
    assert no_platform.status_code == 404 and view["can_submit"] is False

    rebinding = requests.get(
        f"{editor.url}/api/building", headers={"host": "attacker.example"}, timeout=30
    )
    assert rebinding.status_code == 400
