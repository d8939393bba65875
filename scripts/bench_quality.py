"""Quality benchmark: devices placed against the certified lower bound, over varied rooms.

Run with ``.venv/bin/python scripts/bench_quality.py`` (``--json PATH`` also writes
every room's figures). The rooms are fixed and seeded (:func:`quality_rooms`):
closets to a 100x80-tile hall, ceilings of 2.4-6 m, tiles of 0.6 m and others,
columns as invalid cells, L and U shapes (the missing part ``invalid``) and rooms
that arrive with devices. Each room is completed by the default engine and
certified (``certificate.room_certificate``); the script prints per room and in
total the devices placed, the lower bound and the gap, per component and
overall, and the compliant rooms.

The bound is the serving certificate's, with the LP also in rooms where serving
skips it (coverage over ``LP_MAX_PAIRS``) over a sample of at most
``--sample-pairs`` (point, site) pairs: a valid bound, since dropping points
only relaxes the cover, and the same on every run; it costs a few seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ceilgrid_assets.core.engine.certificate import room_certificate
from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, INVALID, Room
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room

#: The benchmark's LP takes at most this many (point, site) pairs per component.
SAMPLE_PAIRS = 150_000


def _columns(cells: np.ndarray, step: int, rng: np.random.Generator, size: int = 1) -> None:
    """A column grid every ``step`` tiles (``size`` tiles square), shifted by the seed."""
    row, column = (int(v) for v in rng.integers(0, step, size=2))
    for dy in range(size):
        for dx in range(size):
            cells[row + dy :: step, column + dx :: step] = INVALID


def _room(
    name: str,
    width: int,
    height: int,
    tile: float = 0.6,
    ceiling: float = 2.7,
    room_type: str = "office",
    shape: str = "rect",
    columns: int = 0,
    devices: tuple[str, ...] = (),
    seed: int = 0,
) -> Room:
    """One benchmark room: ``shape`` rect | L | U, columns every ``columns`` tiles,
    and a few input ``devices`` at seeded cells spread over the room."""
    rng = np.random.default_rng(seed)
    cells = np.zeros((height, width), dtype=np.uint8)
    if columns:
        _columns(cells, columns, rng)
    if shape == "L":
        cells[: height // 2, width // 2 :] = INVALID
    elif shape == "U":
        cells[: height * 3 // 5, width // 3 : width - width // 3] = INVALID
    for component in devices:
        free = np.flatnonzero(cells.ravel() == 0)
        cells.flat[int(rng.choice(free))] = CODE[component]
    return Room(name, cells, tile_size_m=tile, ceiling_height_m=ceiling, room_type=room_type)


def quality_rooms() -> list[Room]:
    """The fixed set of benchmark rooms (same rooms on every run)."""
    rooms = [
        _room("closet-3x4", 3, 4, ceiling=2.4, room_type="storage"),
        _room("closet-5x5", 5, 5, ceiling=2.4, room_type="storage"),
        _room("restroom-6x8", 6, 8, ceiling=2.4, room_type="restroom"),
        _room("office-10x12", 10, 12),
        _room("office-14x18-columns", 14, 18, columns=6, seed=1),
        _room("meeting-16x20", 16, 20, ceiling=3.0, room_type="meeting"),
        _room("corridor-4x60", 4, 60, room_type="corridor"),
        _room("classroom-20x30", 20, 30, ceiling=3.0, room_type="classroom"),
        _room("office-24x24-tile1.2", 24, 24, tile=1.2, ceiling=3.0),
        _room("office-30x40-tile0.5", 30, 40, tile=0.5),
        _room("office-L-40x40", 40, 40, shape="L", columns=8, seed=2),
        _room("office-U-50x40", 50, 40, shape="U", seed=3),
        _room("lobby-L-60x50-4m", 60, 50, ceiling=4.0, room_type="lobby", shape="L"),
        _room("open-plan-60x40", 60, 40, columns=6, seed=4),
        _room("office-40x30-6m", 40, 30, ceiling=6.0),
        _room("storage-50x40-5m-tile1.0", 50, 40, tile=1.0, ceiling=5.0, room_type="storage"),
        _room("hall-100x80-4.5m", 100, 80, ceiling=4.5, room_type="lobby", columns=10, seed=5),
        _room("hall-100x80-6m", 100, 80, ceiling=6.0, room_type="storage", seed=6),
        # Rooms that arrive with devices.
        _room("office-12x12-inputs", 12, 12, devices=("light", "smoke_detector"), seed=7),
        _room("office-20x25-inputs", 20, 25, devices=("air_supply", "light", "light"), seed=8),
        _room(
            "open-plan-50x40-inputs",
            50,
            40,
            columns=6,
            devices=("smoke_detector", "air_supply", "air_return"),
            seed=9,
        ),
        _room(
            "lobby-U-70x60-inputs",
            70,
            60,
            ceiling=3.5,
            room_type="lobby",
            shape="U",
            devices=("smoke_detector", "light"),
            seed=10,
        ),
    ]
    return rooms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write every room's figures here")
    parser.add_argument("--sample-pairs", type=int, default=SAMPLE_PAIRS, metavar="N")
    args = parser.parse_args()
    config = EngineConfig()
    totals = {name: {"placed": 0, "lower_bound": 0} for name in DEVICE_COMPONENTS}
    placed = bound = compliant = 0
    records = []
    started = time.perf_counter()
    print(f"{'room':30} {'placed':>6} {'bound':>6} {'gap':>4}  per component (placed/bound)")
    for room in quality_rooms():
        result = complete_room(room, config)
        certificate = room_certificate(room, result.room, config.profile, args.sample_pairs)
        components = certificate["components"]
        for name in DEVICE_COMPONENTS:
            for key in ("placed", "lower_bound"):
                totals[name][key] += int(components[name][key])
        placed += int(certificate["placed"])
        bound += int(certificate["lower_bound"])
        compliant += result.compliant
        detail = " ".join(
            f"{name}={components[name]['placed']}/{components[name]['lower_bound']}"
            for name in DEVICE_COMPONENTS
        )
        mark = "" if result.compliant else "  NOT COMPLIANT"
        print(
            f"{room.grid_id:30} {certificate['placed']:6d} {certificate['lower_bound']:6d} "
            f"{certificate['gap']:4d}  {detail}{mark}"
        )
        records.append(
            {"room": room.grid_id, "compliant": result.compliant, "certificate": certificate}
        )
    seconds = time.perf_counter() - started
    print(
        f"total: {placed} devices, lower bound {bound}, gap {placed - bound} "
        f"({100 * (placed - bound) / max(1, bound):.2f} %), "
        f"{compliant}/{len(records)} rooms compliant, {seconds:.1f} s"
    )
    for name in DEVICE_COMPONENTS:
        figures = totals[name]
        print(f"  {name:15} placed {figures['placed']:5d}  bound {figures['lower_bound']:5d}")
    if args.json:
        args.json.write_text(json.dumps({"rooms": records, "totals": totals}, indent=1))


if __name__ == "__main__":
    main()
