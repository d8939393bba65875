"""Hostile input through the entry points: the ``ceilgrid`` CLI and the inbox scan.

The parser's own messages are covered in test_io.py; here the same malformed
files (``badfiles.py``) go through the real entry points, which must turn each
into its one-line reason, exit 2 or quarantine, never crash, and keep every
good room and file of the same batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import badfiles
import pytest
from badfiles import BadFile

from ceilgrid_assets import cli
from ceilgrid_assets.core.engine.io import parse_document, read_document
from ceilgrid_assets.defs.resources import InboxFolders, LayoutStorage
from ceilgrid_assets.defs.serving import sensors

FILE_DEFECTS = badfiles.file_defects()


def reason_of(line: str, path: Path) -> str:
    """The part of an ``error: PATH: reason`` line after the path (so file names never match)."""
    prefix = f"error: {path}: "
    assert line.startswith(prefix), line
    return line[len(prefix) :]


def assert_one_line_reason(stderr: str, path: Path, words: tuple[str, ...]) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    reason = reason_of(lines[0], path)
    assert "Traceback" not in stderr
    for word in words:
        assert word in reason, (word, lines[0])


# ------------------------------------------------------------------ CLI, in process


@pytest.mark.parametrize("bad", FILE_DEFECTS, ids=lambda bad: bad.name)
@pytest.mark.parametrize("command", ["layout", "validate"])
def test_cli_rejects_each_bad_file_on_one_line(
    bad: BadFile, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bad.write(tmp_path)
    output = tmp_path / "out.json"
    argv = [command, str(path)] + (["-o", str(output)] if command == "layout" else [])
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line_reason(captured.err, path, bad.words)
    assert not output.exists()
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]  # no temporary left


# ------------------------------------------------------------------ CLI, real processes


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float


#: Runs the CLI's ``main`` and, at exit, writes the process's peak resident memory
#: (VmHWM, kB) to the file named by CEILGRID_PEAK_FILE. VmHWM belongs to the address
#: space created at exec, unlike wait4's ru_maxrss, which also counts the pytest
#: parent's memory inherited at fork.
PEAK_PROBE = """
import atexit, os, sys
def report_peak():
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:")).split()[1]
    with open(os.environ["CEILGRID_PEAK_FILE"], "w") as out:
        out.write(peak)
atexit.register(report_peak)
from ceilgrid_assets.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(*args: str, timeout_s: float = 120) -> Finished:
    """Run the ``ceilgrid`` command line in a fresh interpreter and measure its peak memory."""
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        finished = subprocess.run(
            [sys.executable, "-c", PEAK_PROBE, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "CEILGRID_PEAK_FILE": str(peak_file)},
        )
        peak_mb = int(peak_file.read_text()) / 1024
    return Finished(finished.returncode, finished.stdout, finished.stderr, peak_mb)


def test_cli_process_keeps_good_rooms_of_a_building_with_every_room_defect(tmp_path: Path) -> None:
    document, good, expected = badfiles.mixed_building()
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(document))
    output = tmp_path / "mixed.layout.json"
    finished = run_cli("layout", str(path), "-o", str(output))

    assert finished.returncode == 2, finished.stderr
    assert "Traceback" not in finished.stderr
    *error_lines, summary = finished.stderr.splitlines()
    reported = {}
    for line in error_lines:
        reason = reason_of(line, path)
        label, _, rest = reason.removeprefix("room ").partition(": ")
        reported[label] = rest
    assert set(reported) == set(expected)
    for label, words in expected.items():
        assert all(word in reported[label] for word in words), (label, reported[label])
    assert summary == f"{output}: 2 rooms laid out, 2 compliant, {len(expected)} rejected"

    written = json.loads(output.read_text())
    assert [room["grid_id"] for room in written["rooms"]] == good
    assert all(room["compliance"]["compliant"] for room in written["rooms"])
    assert len(written["rejected_rooms"]) == len(expected)
    # The completed file is valid input again, with no rejected rooms left.
    assert read_document(output).errors == []


#: The in-process test above covers every file; these run as real processes too.
HOSTILE = ["over-200mb-by-far.json", "room-width-1e9.json", "garbage.bin.json"]


@pytest.mark.parametrize("name", HOSTILE)
def test_cli_process_rejects_hostile_files_cheaply(name: str, tmp_path: Path) -> None:
    """A 600 MB sparse file or a 10**9 x 10**9 room costs no more memory than start-up."""
    [bad] = [bad for bad in FILE_DEFECTS if bad.name == name]
    path = bad.write(tmp_path)
    started = time.monotonic()
    finished = run_cli("layout", str(path), "-o", str(tmp_path / "out.json"))
    assert finished.returncode == 2
    assert_one_line_reason(finished.stderr, path, bad.words)
    assert finished.max_rss_mb < 400, f"{finished.max_rss_mb:.0f} MB"
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    "make, words",
    [
        (
            lambda folder: (folder / "loop.json").symlink_to("loop.json") or folder / "loop.json",
            ("symbolic links",),
        ),
        (lambda folder: (folder / "dir.json").mkdir() or folder / "dir.json", ("directory",)),
    ],
    ids=["symlink-loop", "directory"],
)
def test_cli_process_on_paths_that_are_not_files(
    make, words: tuple[str, ...], tmp_path: Path
) -> None:
    path = make(tmp_path)
    finished = run_cli("validate", str(path))
    assert finished.returncode == 2
    assert_one_line_reason(finished.stderr, path, words)


def test_cli_process_cannot_overwrite_its_output_halfway(tmp_path: Path) -> None:
    """An output path in a missing, unwritable place is one line and no stray temporary."""
    source = tmp_path / "room.json"
    source.write_text(json.dumps(badfiles.room("r")))
    blocker = tmp_path / "file"
    blocker.write_text("")
    finished = run_cli("layout", str(source), "-o", str(blocker / "out.json"))
    assert finished.returncode == 2
    lines = finished.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in lines[0]
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["file", "room.json"]


# ------------------------------------------------------------------ the inbox scan


@pytest.fixture
def inbox(tmp_path: Path) -> tuple[InboxFolders, LayoutStorage]:
    folders = InboxFolders(inbox=str(tmp_path / "inbox"), quarantine=str(tmp_path / "quarantine"))
    Path(folders.inbox).mkdir()
    return folders, LayoutStorage(root=str(tmp_path / "storage"))


def scan(
    folders: InboxFolders, storage: LayoutStorage, cursor: dict[str, str] | None = None
) -> sensors.InboxTick:
    """One sensor look at the inbox, with every file old enough to be settled."""
    return sensors.scan_inbox(folders, storage, cursor or {}, now=time.time() + 60)


def good_building(building_id: str, rooms: int = 1) -> bytes:
    return json.dumps(
        badfiles.building(
            building_id, [badfiles.room(f"{building_id}-r{index}") for index in range(rooms)]
        )
    ).encode()


def test_inbox_quarantines_each_bad_file_with_its_reason_and_keeps_the_good(
    inbox: tuple[InboxFolders, LayoutStorage],
) -> None:
    folders, storage = inbox
    inbox_dir, quarantine_dir = Path(folders.inbox), Path(folders.quarantine)
    for _ in badfiles.write_corpus(inbox_dir):
        pass
    for index in range(3):
        (inbox_dir / f"good-{index}.json").write_bytes(good_building(f"good-{index}"))
    document, _, expected = badfiles.mixed_building()
    (inbox_dir / "mixed.json").write_text(json.dumps(document))

    tick = scan(folders, storage)

    assert sorted(tick.accepted) == ["good-0", "good-1", "good-2", "mixed"]
    assert sorted(tick.quarantined) == sorted(bad.name for bad in FILE_DEFECTS)
    assert list(inbox_dir.iterdir()) == []
    for bad in FILE_DEFECTS:
        assert (quarantine_dir / bad.name).exists(), bad.name
        reason_file = quarantine_dir / f"{bad.name}.error.txt"
        text = reason_file.read_text()
        assert text.endswith("\n") and text.count("\n") == 1, text
        assert text.startswith(f"{bad.name}: "), text
        reason = text[len(bad.name) + 2 :]
        assert all(word in reason for word in bad.words), (bad.words, text)
    # The sparse giants were moved, not copied: still holes, no disk used.
    assert (quarantine_dir / "over-200mb-by-far.json").stat().st_blocks == 0
    # The mixed building goes on with its good rooms; the bad ones are listed beside it.
    rejected = (quarantine_dir / "mixed.json.rejected-rooms.error.txt").read_text().splitlines()
    assert len(rejected) == len(expected)
    staged = parse_document(storage.read(storage.incoming_key("mixed")))
    assert [room.grid_id for room in staged.rooms] == ["good-first", "good-last"]

    cursor = {**tick.cursor, **{digest: key for key, digest in tick.accepted.items()}}
    assert scan(folders, storage, cursor).quarantined == {}


def test_inbox_survives_entries_that_are_not_regular_files(
    inbox: tuple[InboxFolders, LayoutStorage],
) -> None:
    """Symlink loops, dangling links, directories and FIFOs never stop the good files."""
    folders, storage = inbox
    inbox_dir = Path(folders.inbox)
    oddities = badfiles.make_inbox_oddities(inbox_dir)
    (inbox_dir / "good.json").write_bytes(good_building("good"))

    with ThreadPoolExecutor(1) as pool:  # a blocked read of the FIFO would hang the scan
        tick = pool.submit(scan, folders, storage).result(timeout=30)

    assert list(tick.accepted) == ["good"]
    assert storage.blobs().exists(storage.incoming_key("good"))
    left = {entry.name for entry in inbox_dir.iterdir()}
    quarantined = {name for name in tick.quarantined}
    # Each oddity is either left alone or quarantined with a reason, never lost silently.
    assert left | quarantined == set(oddities)
    for name in quarantined:
        assert (Path(folders.quarantine) / f"{name}.error.txt").read_text().strip()


def test_inbox_file_deleted_or_renamed_while_being_read(
    inbox: tuple[InboxFolders, LayoutStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    folders, storage = inbox
    inbox_dir = Path(folders.inbox)
    for name in ("deleted", "renamed", "kept"):
        (inbox_dir / f"{name}.json").write_bytes(good_building(name))
    real_read = sensors.read_limited

    def racing_read(path: Path, source: str | None = None) -> bytes:
        if path.name == "deleted.json":
            path.unlink()
        if path.name == "renamed.json":
            path.rename(path.with_name("renamed-later.json"))
        return real_read(path, source)

    monkeypatch.setattr(sensors, "read_limited", racing_read)
    tick = scan(folders, storage)
    assert sorted(tick.accepted) == ["kept"]
    monkeypatch.setattr(sensors, "read_limited", real_read)
    # The renamed file is simply a new file on the next tick.
    tick = scan(folders, storage, {**{d: k for k, d in tick.accepted.items()}})
    assert sorted(tick.accepted) == ["renamed"]
    assert list(inbox_dir.iterdir()) == []


def test_inbox_file_removed_by_its_owner_after_it_was_read(
    inbox: tuple[InboxFolders, LayoutStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner deletes the file after the scan read it: still submitted, exactly once."""
    folders, storage = inbox
    inbox_dir = Path(folders.inbox)
    (inbox_dir / "early.json").write_bytes(good_building("early"))
    (inbox_dir / "bad.json").write_bytes(b"{")
    real_read = sensors.read_limited

    def read_then_owner_deletes(path: Path, source: str | None = None) -> bytes:
        data = real_read(path, source)
        path.unlink()
        return data

    monkeypatch.setattr(sensors, "read_limited", read_then_owner_deletes)
    tick = scan(folders, storage)
    assert list(tick.accepted) == ["early"]
    assert storage.blobs().exists(storage.incoming_key("early"))
    assert "bad.json" in tick.quarantined


def test_inbox_scan_never_fails_while_files_churn(
    inbox: tuple[InboxFolders, LayoutStorage],
) -> None:
    """Real concurrency: a writer creates, rewrites, renames and deletes files during scans.

    The scans use the real clock (files must settle first, as in the sensor).
    Every building that the writer leaves in place ends up staged exactly once.
    """
    folders, storage = inbox
    inbox_dir = Path(folders.inbox)
    kept: set[str] = set()

    def churn() -> None:
        for number in range(400):
            name = f"b{number:05d}"
            path = inbox_dir / f"{name}.json"
            path.write_bytes(good_building(name))
            if number % 4 == 0:
                path.unlink(missing_ok=True)
            elif number % 4 == 1:
                try:
                    path.rename(inbox_dir / f"{name}.moved.tmp")
                except FileNotFoundError:
                    continue  # the scan took it first
                (inbox_dir / f"{name}.moved.tmp").unlink()
            elif number % 4 == 2:
                path.write_bytes(b"{")  # rewritten as garbage: quarantined
            else:
                kept.add(name)
            time.sleep(0.005)

    writer = threading.Thread(target=churn)
    cursor: dict[str, str] = {}
    accepted: list[str] = []
    writer.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = not writer.is_alive()
        tick = sensors.scan_inbox(folders, storage, cursor)
        accepted += tick.accepted
        cursor.update({digest: key for key, digest in tick.accepted.items()})
        for key in tick.accepted:  # what a run does with the staged file
            storage.blobs().delete(storage.incoming_key(key))
        if done and not any(name.endswith(".json") for name in os.listdir(inbox_dir)):
            break
        time.sleep(0.2)
    writer.join()
    assert len(accepted) == len(set(accepted)), "a building was submitted twice"
    assert set(accepted) == kept
    assert not any(name.endswith(".json") for name in os.listdir(inbox_dir))
