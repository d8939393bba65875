"""Layout-engine benchmark: time per room for the full default pipeline.

Prints the median over repeats for 10x10, 30x30, 60x40 and 100x80 tile office
rooms (all candidates and validation included), and rooms per second for a
1,000-room building of mixed rooms. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from ceilgrid_assets.core.engine.grid import INVALID, Room
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room

SIZES = ((10, 10), (30, 30), (60, 40), (100, 80))


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


def time_rooms(rooms: list[Room], config: EngineConfig) -> tuple[float, bool]:
    """Median seconds per room and whether every layout is compliant."""
    times, compliant = [], True
    for room in rooms:
        started = time.perf_counter()
        result = complete_room(room, config)
        times.append(time.perf_counter() - started)
        compliant &= result.compliant
    return statistics.median(times), compliant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--building-rooms", type=int, default=1000)
    args = parser.parse_args()
    config = EngineConfig()
    print(f"{'room (tiles)':>14} {'median ms':>10} {'compliant':>10}")
    for width, height in SIZES:
        # Small rooms are quick and noisy: time more of them.
        repeats = args.repeats * max(1, 3000 // (width * height))
        complete_room(office(width, height, 10**6), config)  # warm imports, per-size caches
        rooms = [office(width, height, seed) for seed in range(repeats)]
        median, compliant = time_rooms(rooms, config)
        print(f"{f'{width}x{height}':>14} {median * 1000:>10.1f} {compliant!s:>10}")
    rng = np.random.default_rng(0)
    rooms = [
        office(int(rng.integers(4, 21)), int(rng.integers(4, 21)), i)
        for i in range(args.building_rooms)
    ]
    started = time.perf_counter()
    compliant = sum(complete_room(room, config).compliant for room in rooms)
    elapsed = time.perf_counter() - started
    print(
        f"{len(rooms)}-room building (4-20 tiles a side): {len(rooms) / elapsed:.1f} rooms/s, "
        f"{compliant}/{len(rooms)} compliant"
    )


if __name__ == "__main__":
    main()
