"""``ceilgrid layout --jobs``: the same file from one process or several."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import PROJECT_ROOT, building_document, room_document, to_json

ROOMS = [
    room_document((8, 6), grid_id="office-1", floor=1),
    room_document((8, 6), grid_id="office-2", floor=2),  # same layout-shaping content
    room_document((5, 5), grid_id="store", room_type="storage"),
    room_document((3, 3), grid_id="bad", room_type="sauna"),  # rejected
    room_document((10, 3), grid_id="corridor", room_type="corridor"),
    room_document((8, 6), grid_id="office-3"),
    # Four distinct halls: over 10,000 cells in all, so --jobs > 1 does start workers.
    *(room_document((50, 50), invalid=[(n, n)], grid_id=f"hall-{n}") for n in range(4)),
]


def ceilgrid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("ceilgrid")), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_layout_writes_the_same_bytes_for_any_jobs(tmp_path: Path):
    source = tmp_path / "building.json"
    source.write_text(to_json(building_document(ROOMS, "jobs")))
    outputs = {}
    for jobs in ("1", "2", "4"):
        target = tmp_path / f"out-{jobs}.json"
        done = ceilgrid("layout", str(source), "-o", str(target), "--jobs", jobs, "--no-models")
        assert done.returncode == 2, done.stderr  # a rejected room: exit 2, the rest written
        assert "9 rooms laid out, 9 compliant, 1 rejected" in done.stderr
        outputs[jobs] = target.read_bytes()
    assert outputs["1"] == outputs["2"] == outputs["4"]
    document = json.loads(outputs["2"])
    assert [room["grid_id"] for room in document["rooms"]] == [
        "office-1",
        "office-2",
        "store",
        "corridor",
        "office-3",
        "hall-0",
        "hall-1",
        "hall-2",
        "hall-3",
    ]
    assert [room.get("floor") for room in document["rooms"]][:3] == [1, 2, None]


def test_jobs_must_be_at_least_one(tmp_path: Path):
    source = tmp_path / "room.json"
    source.write_text(to_json(ROOMS[0]))
    done = ceilgrid("layout", str(source), "-o", str(tmp_path / "out.json"), "--jobs", "0")
    assert done.returncode == 2
    assert "--jobs: must be at least 1, got 0" in done.stderr
    assert not (tmp_path / "out.json").exists()
