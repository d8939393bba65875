"""Opening a building from the platform's storage by id: only inside the storage root."""

from __future__ import annotations

import subprocess

import pytest
import requests
from editor_helpers import CEILGRID, editing_building

from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.io import dump_document
from ceilgrid_assets.editor.sources import stored_building

pytestmark = pytest.mark.timeout(120)


def store(root, key: str, name: str = "layout.json") -> None:
    folder = root / "buildings" / key
    folder.mkdir(parents=True)
    building = editing_building()
    building["building_id"] = key
    (folder / name).write_bytes(dump_document(building))


def test_the_stored_layout_opens_by_building_id(start_editor, tmp_path):
    root = tmp_path / "storage"
    store(root, "floor-7")
    editor = start_editor(None, "--building", "floor-7", "--storage", str(root))
    building = requests.get(f"{editor.url}/api/building", timeout=30).json()
    assert building["building_id"] == "floor-7"
    assert building["file_name"] == "layout.json"
    assert [room["document"]["grid_id"] for room in building["rooms"]][0] == "office-a"


def test_the_input_opens_when_no_layout_is_stored_yet(tmp_path):
    root = tmp_path / "storage"
    store(root, "floor-8", "input.json")
    assert stored_building(root, "floor-8") == (root / "buildings/floor-8/input.json").resolve()


@pytest.mark.parametrize("building_id", ["../../etc", "a/b", "..", "floor-1/../../x", "CON"])
def test_unsafe_ids_never_become_paths(tmp_path, building_id):
    with pytest.raises(InputError, match="building id"):
        stored_building(tmp_path, building_id)


def test_a_symlink_out_of_the_storage_root_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "layout.json").write_bytes(dump_document(editing_building()))
    root = tmp_path / "storage"
    (root / "buildings").mkdir(parents=True)
    (root / "buildings" / "floor-9").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="outside the storage root"):
        stored_building(root, "floor-9")


def test_the_command_refuses_a_hostile_id_in_one_line(tmp_path):
    result = subprocess.run(
        [str(CEILGRID), "editor", "--building", "../../etc/passwd", "--storage", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a safe key" in result.stderr
    missing = subprocess.run(
        [str(CEILGRID), "editor", "--building", "floor-1", "--storage", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "nothing stored for this building" in missing.stderr
