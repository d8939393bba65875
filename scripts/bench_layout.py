"""Layout benchmark: start-up, time per room, buildings end to end, the largest room.

Run with ``make bench`` (add ``ORIGINAL=PATH`` to time the original pipeline
beside ceilgrid). Every figure is measured in this run, on this machine:

- start-up: wall time of ``ceilgrid --help``, of ``ceilgrid validate`` on one
  10x10 room and of ``ceilgrid layout --jobs 1`` on it (median of 5 processes);
- per room, in process: the median over distinct office rooms (a column grid
  every 6 tiles, shifted per room, and a riser) of 10x10 to 100x80 tiles, after
  one warm-up room per size; with ``--original``, that pipeline's mean over
  rooms of the same sizes (its own timer, in process);
- the 1,000-room building of distinct small offices (4-20 tiles a side): rooms
  per second in process (``complete_building``, one process) and end to end
  through ``ceilgrid layout`` (start-up, parsing and writing included) with
  ``--jobs 1`` and ``--jobs N``; the original pipeline's in-process rooms per
  second on the same file, and the ratio. Three rounds (``--building-rounds``),
  each running every command once in turn, so that drift in the machine's speed
  falls on all of them: medians, and each round's own ratio;
- a 1,000-room building of 40 distinct rooms repeated (hotel floors), end to
  end: what laying out each distinct room once gives;
- the largest room the format allows (500x500 tiles) end to end through
  ``ceilgrid layout``: wall seconds and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# isort: off
import ceilgrid_assets  # noqa: F401  before numpy, so its BLAS setting applies in process
import numpy as np

# isort: on
from ceilgrid_assets.core.engine.building import complete_building, default_jobs
from ceilgrid_assets.core.engine.grid import INVALID, Room
from ceilgrid_assets.core.engine.io import ParsedDocument, dump_document, room_to_document
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room

SIZES = ((10, 10), (30, 30), (60, 40), (100, 80))
CEILGRID = str(Path(sys.executable).with_name("ceilgrid"))
ORIGINAL_RATE = re.compile(r"(\d+) rooms in ([\d.]+) s")


def office(width: int, height: int, seed: int) -> Room:
    """An office with a column grid every 6 tiles and a riser (invalid cells), like a floor plate.

    The seed shifts the column grid and places the riser, so repeats time
    distinct rooms of the same size rather than one room again and again.
    """
    rng = np.random.default_rng(seed)
    cells = np.zeros((height, width), dtype=np.uint8)
    row, column = rng.integers(0, 6, size=2)
    cells[row::6, column::6] = INVALID
    cells[rng.integers(height), rng.integers(width)] = INVALID
    return Room(f"bench-{width}x{height}-{seed}", cells)


def small_offices(count: int) -> list[Room]:
    """The building of distinct small offices, 4-20 tiles a side."""
    rng = np.random.default_rng(0)
    return [office(int(rng.integers(4, 21)), int(rng.integers(4, 21)), i) for i in range(count)]


def write_building(path: Path, rooms: Sequence[Room], building_id: str) -> Path:
    document = {"building_id": building_id, "rooms": [room_to_document(room) for room in rooms]}
    path.write_bytes(dump_document(document))
    return path


@dataclass
class Finished:
    """A command's wall and CPU seconds (its workers included), peak memory and exit code.

    CPU seconds hardly move with the machine's load, wall seconds do: both are printed.
    """

    wall_s: float
    cpu_s: float
    peak_mb: float
    exit_code: int

    def __str__(self) -> str:
        return f"{self.wall_s:.2f} s wall, {self.cpu_s:.2f} s CPU"


def run(command: Sequence[str]) -> Finished:
    """Run ``command`` (output thrown away) and account for it."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Finished(wall, cpu, usage.ru_maxrss / 1024, process.returncode)


def median_wall(command: Sequence[str], repeats: int = 5) -> float:
    run(command)  # warm the file cache
    return statistics.median(run(command).wall_s for _ in range(repeats))


def compliant_rooms(path: Path) -> tuple[int, int]:
    document = json.loads(path.read_text())
    rooms = document.get("rooms", [document])
    return sum(room["compliance"]["compliant"] for room in rooms), len(rooms)


def original_rate(original: Path, building: Path) -> tuple[int, float]:
    """Rooms and seconds of the original pipeline over a building file (its own timer)."""
    done = subprocess.run(
        [sys.executable, str(original / "time_original.py"), str(building)],
        capture_output=True,
        text=True,
        check=True,
    )
    match = ORIGINAL_RATE.search(done.stderr)
    if match is None:
        raise RuntimeError(f"unexpected output of the original pipeline: {done.stderr[-300:]}")
    return int(match.group(1)), float(match.group(2))


def per_room(args: argparse.Namespace, work: Path) -> None:
    config = EngineConfig()
    header = f"{'room (tiles)':>14} {'median ms':>10} {'compliant':>10}"
    print(header + (f" {'original ms':>12} {'ratio':>6}" if args.original else ""))
    for width, height in SIZES:
        # Small rooms are quick and noisy: time more of them.
        repeats = args.repeats * max(1, 3000 // (width * height))
        complete_room(office(width, height, 10**6), config)  # warm imports, per-size caches
        rooms = [office(width, height, seed) for seed in range(repeats)]
        times, compliant = [], True
        for room in rooms:
            started = time.perf_counter()
            compliant &= complete_room(room, config).compliant
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        line = f"{f'{width}x{height}':>14} {median * 1000:>10.1f} {compliant!s:>10}"
        if args.original:
            # The original pipeline takes seconds a room from 60x40 up: fewer rooms there.
            sample = rooms[: max(3, repeats // 7)] if width * height >= 2400 else rooms
            path = write_building(work / f"original-{width}x{height}.json", sample, "sizes")
            count, seconds = original_rate(args.original, path)
            theirs = seconds / count
            line += f" {theirs * 1000:>12.1f} {theirs / median:>5.1f}x"
        print(line)


def render_times(args: argparse.Namespace) -> None:
    """Median time to draw each view of a completed 60x40 office (scripts, not tests, time)."""
    from ceilgrid_assets.core.outputs import render  # matplotlib: only when drawing

    room = complete_room(office(60, 40, 10**6), EngineConfig()).room
    render.render_room(room)  # warm up fonts and caches
    for view in render.VIEWS:
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            render.render_room(room, view)
            times.append(time.perf_counter() - started)
        print(f"render 60x40 {view}: median {statistics.median(times) * 1000:.0f} ms")


def start_up(work: Path) -> None:
    room = write_building(work / "one-room.json", [office(10, 10, 1)], "one-room")
    out = work / "one-room-out.json"
    print(f"python itself: {median_wall([sys.executable, '-c', 'pass']):.3f} s")
    print(f"ceilgrid --help: {median_wall([CEILGRID, '--help']):.3f} s")
    print(f"ceilgrid validate (10x10 room): {median_wall([CEILGRID, 'validate', str(room)]):.3f} s")
    layout = [CEILGRID, "layout", str(room), "-o", str(out), "--jobs", "1", "--no-models"]
    print(f"ceilgrid layout (10x10 room, --jobs 1): {median_wall(layout):.3f} s")


def buildings(args: argparse.Namespace, work: Path) -> None:
    rooms = small_offices(args.building_rooms)
    path = write_building(work / "offices.json", rooms, "offices")
    n = len(rooms)
    parsed = ParsedDocument(
        source="bench", building_id="offices", rooms=rooms, room_documents=[{} for _ in rooms]
    )
    started, cpu = time.perf_counter(), time.process_time()
    result = complete_building(parsed, EngineConfig(), jobs=1, memo=None)
    in_process = n / (time.perf_counter() - started)
    print(
        f"{n}-room building (4-20 tiles a side), in process, one core: {in_process:.1f} rooms/s "
        f"({time.process_time() - cpu:.2f} s CPU), "
        f"{sum(room.compliant for room in result.rooms)}/{n} compliant"
    )
    # Rounds, each running every command once in turn: the machine's speed drifts,
    # so medians of interleaved runs, and each round's own ratio, are compared.
    runs: dict[int, list[Finished]] = {jobs: [] for jobs in sorted({1, args.jobs})}
    theirs: list[float] = []
    for _ in range(args.building_rounds):
        for jobs, finished in runs.items():
            out = work / f"offices-out-{jobs}.json"
            command = [CEILGRID, "layout", str(path), "-o", str(out), "--jobs", str(jobs)]
            finished.append(run([*command, "--no-models"]))
        if args.original:
            count, seconds = original_rate(args.original, path)
            theirs.append(count / seconds)
    rates = {jobs: n / statistics.median(f.wall_s for f in done) for jobs, done in runs.items()}
    for jobs, done in runs.items():
        good, total = compliant_rooms(work / f"offices-out-{jobs}.json")
        walls = ", ".join(f"{f.wall_s:.2f}" for f in done)
        print(
            f"  end to end, ceilgrid layout --jobs {jobs}: median {rates[jobs]:.1f} rooms/s "
            f"(wall {walls} s; CPU median {statistics.median(f.cpu_s for f in done):.2f} s), "
            f"{good}/{total} compliant"
        )
    if len(runs) == 2:
        same = (work / "offices-out-1.json").read_bytes() == (
            work / f"offices-out-{args.jobs}.json"
        ).read_bytes()
        print(f"  --jobs 1 and --jobs {args.jobs} wrote the same bytes: {same}")
    if theirs:
        paired = [n / f.wall_s / rate for f, rate in zip(runs[args.jobs], theirs, strict=True)]
        print(
            f"  original pipeline, in process: median {statistics.median(theirs):.1f} rooms/s "
            f"({', '.join(f'{rate:.1f}' for rate in theirs)}); ceilgrid layout --jobs "
            f"{args.jobs} end to end is {rates[args.jobs] / statistics.median(theirs):.2f}x "
            f"that (target 2x; rounds {', '.join(f'{ratio:.2f}x' for ratio in paired)})"
        )
    distinct = small_offices(40)
    hotel = [
        Room(f"hotel-{floor}-{index}", room.cells)
        for floor in range(n // 40)
        for index, room in enumerate(distinct)
    ]
    hotel_path = write_building(work / "hotel.json", hotel, "hotel")
    out = work / "hotel-out.json"
    finished = run(
        [
            CEILGRID,
            "layout",
            str(hotel_path),
            "-o",
            str(out),
            "--jobs",
            str(args.jobs),
            "--no-models",
        ]
    )
    good, total = compliant_rooms(out)
    print(
        f"{len(hotel)}-room building of 40 distinct rooms repeated, end to end, "
        f"--jobs {args.jobs}: {finished} = {len(hotel) / finished.wall_s:.1f} rooms/s, "
        f"{good}/{total} compliant"
    )


def largest(work: Path) -> None:
    path = write_building(work / "largest.json", [office(500, 500, 7)], "largest")
    out = work / "largest-out.json"
    finished = run([CEILGRID, "layout", str(path), "-o", str(out), "--no-models"])
    good, _ = compliant_rooms(out) if finished.exit_code in (0, 1) else (0, 0)
    print(
        f"largest room (500x500 tiles) end to end: {finished}, peak {finished.peak_mb:.0f} MB, "
        f"compliant: {bool(good)} (targets 3 s, 1 GB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--building-rooms", type=int, default=1000)
    parser.add_argument(
        "--building-rounds",
        type=int,
        default=3,
        help="rounds of the 1,000-room building: each runs every command once in turn",
    )
    parser.add_argument(
        "--jobs", type=int, default=default_jobs(), help="processes (default: all cores)"
    )
    parser.add_argument(
        "--original",
        type=Path,
        default=os.environ.get("CEILGRID_ORIGINAL_PIPELINE") or None,
        help="folder of the original pipeline (with time_original.py) to time beside ceilgrid",
    )
    parser.add_argument("--skip-largest", action="store_true", help="leave out the 500x500 room")
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"
    )
    with tempfile.TemporaryDirectory(prefix="ceilgrid-bench-") as folder:
        work = Path(folder)
        start_up(work)
        per_room(args, work)
        render_times(args)
        buildings(args, work)
        if not args.skip_largest:
            largest(work)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
