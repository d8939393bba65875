"""Regenerate the README's figures of an L-shaped office described with void tiles.

    .venv/bin/python scripts/readme_figures.py [--out docs/img]

Writes five PNGs with the existing plan renders (``core/outputs/render.py``)
and prints one caption per figure; the README quotes these captions, so every
number it gives comes from this script, and
``ceilgrid_assets_tests/outputs/test_readme_figures.py`` checks that it does.

The room: an office of 16 x 23 tiles of 0.6 m under a 3.0 m ceiling, its
top-right 7 x 7 tiles outside the room (``void``), lit by the shipped
``generic-led-panel-600`` luminaire file.

- ``l-office-blind-zones.png``: the room as it arrives, with a few existing
  devices, and the blind zones of each coverage rule (in-room distances: the
  detector's reach does not cross the void);
- ``l-office-completed.png``: the same room completed under ``nfpa72``;
- ``l-office-illuminance.png``: the completed room's point-by-point
  illuminance from the luminaire file, with Eavg and U0;
- ``l-office-regularity-off.png`` and ``l-office-regularity-on.png``: the room
  without existing devices, completed with the selector's tie-break order
  ``("quality",)`` (regularity off) and with the default
  ``("quality", "regularity")``.

The output is deterministic: fixed rooms, the engine's deterministic
completion (no room here reaches a wall-clock safety net) and PNGs written
without metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, EPSILON_M, VOID, Room
from ceilgrid_assets.core.engine.luminaires import LUMINAIRE_DIR
from ceilgrid_assets.core.engine.photometry import luminaire_of
from ceilgrid_assets.core.engine.pipeline import EngineConfig, RoomResult, complete_room
from ceilgrid_assets.core.engine.profile import Profile, get_profile
from ceilgrid_assets.core.outputs.render import COVERAGE_DEVICES, blind_zone_masks, render_room

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
PROFILE = "nfpa72"
LUMINAIRE = "generic-led-panel-600"
#: (width, height) in tiles, and the void in the top-right corner (width, height).
SHAPE = (16, 23)
VOID_CORNER = (7, 7)
TILE_SIZE_M = 0.6
CEILING_HEIGHT_M = 3.0
#: Devices the room arrives with in the blind-zone figure, at (x, y): two
#: detectors, one just below the void, one in the wide part. The first would
#: reach into the narrow arm in a straight line across the void; inside the
#: room it does not.
EXISTING: dict[str, list[tuple[int, int]]] = {"smoke_detector": [(13, 7), (6, 16)]}
#: Points per tile along a segment when testing whether it crosses the void.
SEGMENT_SAMPLES_PER_TILE = 50
#: The selector's tie-break orders compared: regularity off, then the default.
TIE_BREAKS: dict[str, tuple[str, ...]] = {
    "off": ("quality",),
    "on": get_profile(PROFILE).tie_break,
}
FIGURES: tuple[str, ...] = (
    "l-office-blind-zones.png",
    "l-office-completed.png",
    "l-office-illuminance.png",
    "l-office-regularity-off.png",
    "l-office-regularity-on.png",
)
NAMES: dict[str, tuple[str, str]] = {
    "light": ("light", "lights"),
    "air_supply": ("air supply", "air supplies"),
    "air_return": ("air return", "air returns"),
    "smoke_detector": ("smoke detector", "smoke detectors"),
}


def l_office(existing: Mapping[str, Sequence[tuple[int, int]]] = EXISTING) -> Room:
    """The L-shaped office: the grid's bounding rectangle, the missing corner ``void``."""
    width, height = SHAPE
    cells = np.zeros((height, width), dtype=np.uint8)
    cells[: VOID_CORNER[1], width - VOID_CORNER[0] :] = VOID
    for name, positions in existing.items():
        for x, y in positions:
            cells[y, x] = CODE[name]
    return Room(
        "l-office",
        cells,
        tile_size_m=TILE_SIZE_M,
        ceiling_height_m=CEILING_HEIGHT_M,
        luminaire=LUMINAIRE,
    )


def profile_with(tie_break: tuple[str, ...]) -> Profile:
    return dataclasses.replace(get_profile(PROFILE), tie_break=tie_break)


def complete(room: Room, tie_break: tuple[str, ...] = TIE_BREAKS["on"]) -> RoomResult:
    return complete_room(room, EngineConfig.create(profile_with(tie_break)))


def devices(room: Room) -> dict[str, int]:
    return {name: room.count(name) for name in DEVICE_COMPONENTS}


def counted(counts: Mapping[str, int]) -> str:
    """``"34 lights, 5 air supplies, ..."`` in series order, leaving out zeros."""
    parts = []
    for name in DEVICE_COMPONENTS:
        if counts[name]:
            singular, plural = NAMES[name]
            parts.append(f"{counts[name]} {singular if counts[name] == 1 else plural}")
    return ", ".join(parts)


def crosses_void(room: Room, start: tuple[int, int], end: tuple[int, int]) -> bool:
    """Whether the straight segment between two tile centres passes over a void tile."""
    length = max(abs(end[0] - start[0]), abs(end[1] - start[1]), 1)
    steps = np.linspace(0.0, 1.0, length * SEGMENT_SAMPLES_PER_TILE + 1)[:, None]
    points = (np.array(start) + 0.5) * (1 - steps) + (np.array(end) + 0.5) * steps
    xs = np.clip(np.floor(points[:, 0]).astype(int), 0, room.width - 1)
    ys = np.clip(np.floor(points[:, 1]).astype(int), 0, room.height - 1)
    return bool((room.cells[ys, xs] == VOID).any())


def blind_detector_points(room: Room, blind: np.ndarray, radius_m: float) -> dict[str, int]:
    """The detectors' blind points by why they are blind.

    ``far``: farther than the radius from every detector even in a straight
    line; ``across_void``: within the radius of a detector in a straight line,
    but every such line crosses the void; ``path``: within the radius of a
    detector along a straight line inside the room, yet farther along the
    in-room grid path (which is up to 2.75 % longer, docs/rulebook.md).
    """
    detectors = np.argwhere(room.cells == CODE["smoke_detector"])[:, ::-1]
    counts = {"far": 0, "across_void": 0, "path": 0}
    for y, x in np.argwhere(blind):
        near = [
            (int(dx), int(dy))
            for dx, dy in detectors
            if np.hypot(dx - x, dy - y) * room.tile_size_m <= radius_m + EPSILON_M
        ]
        if not near:
            counts["far"] += 1
        elif all(crosses_void(room, (int(x), int(y)), detector) for detector in near):
            counts["across_void"] += 1
        else:
            counts["path"] += 1
    return counts


def regularity_text(metrics: Mapping[str, Any]) -> str:
    scores = metrics["regularity"]
    return ", ".join(f"{NAMES[name][1]} {scores[name]:.3f}" for name in DEVICE_COMPONENTS)


def luminaire_file(name: str) -> str:
    [path] = [path for path in sorted(LUMINAIRE_DIR.iterdir()) if path.stem == name]
    return path.name


def build(out: Path) -> dict[str, Any]:
    """Write every figure into ``out``; the numbers and one caption per figure."""
    out.mkdir(parents=True, exist_ok=True)
    profile = get_profile(PROFILE)
    report: dict[str, Any] = {"profile": PROFILE, "captions": {}, "sizes": {}}
    captions: dict[str, str] = report["captions"]
    images: dict[str, bytes] = {}

    # (a) Blind zones before completion, and the completed layout.
    before = l_office()
    report["room"] = (
        f"The room: {before.grid_id}, an {before.room_type} of {before.width} x "
        f"{before.height} tiles of {before.tile_size_m:g} m under a "
        f"{before.ceiling_height_m:.1f} m ceiling, its top-right {VOID_CORNER[0]} x "
        f"{VOID_CORNER[1]} tiles void (outside the room), luminaire {before.luminaire}."
    )
    masks = blind_zone_masks(before, profile)
    blind = {rule: int(mask.sum()) for rule, mask in masks.items()}
    smoke_blind = masks.get("smoke.coverage", np.zeros(before.cells.shape, dtype=bool))
    why = blind_detector_points(before, smoke_blind, profile.smoke_radius_m)
    result = complete(before)
    after_masks = blind_zone_masks(result.room, profile)
    report["before"] = {
        "existing": devices(before),
        "inside_tiles": int(before.inside.sum()),
        "void_tiles": int((before.cells == VOID).sum()),
        "blind_points": blind,
        "smoke_blind": why,
    }
    report["completed"] = {
        "devices": devices(result.room),
        "total": sum(devices(result.room).values()),
        "compliant": result.compliant,
        "blind_points": {rule: int(mask.sum()) for rule, mask in after_masks.items()},
        "illuminance_avg_lx": result.metrics["illuminance_avg_lx"],
        "uniformity_u0": result.metrics["uniformity_u0"],
        "uniformity_target": result.metrics["uniformity_target"],
    }
    zones = ", ".join(
        f"{rule} {points}"
        + ("" if (before.cells == COVERAGE_DEVICES[rule]).any() else " (none of its devices yet)")
        for rule, points in blind.items()
    )
    reasons = [
        f"{why['across_void']} lie within {profile.smoke_radius_m:.2f} m of a detector "
        "in a straight line, but that line crosses the void",
        f"{why['far']} are farther than that from every detector",
    ]
    if why["path"]:
        reasons.append(
            f"{why['path']} are that close in a straight line inside the room, "
            "but farther along the in-room grid path"
        )
    captions["l-office-blind-zones.png"] = (
        f"Before completion: {report['before']['inside_tiles']} tiles inside the room, "
        f"{report['before']['void_tiles']} void; existing {counted(devices(before))}. "
        f"Points uncovered per rule: {zones}. "
        f"Of the smoke.coverage blind points, {'; '.join(reasons)}."
    )
    images["l-office-blind-zones.png"] = render_room(before, "blind_zones", profile=profile).png
    completed = report["completed"]
    captions["l-office-completed.png"] = (
        f"Completed ({PROFILE}): {completed['total']} devices "
        f"({counted(completed['devices'])}), "
        f"{'compliant' if completed['compliant'] else 'not compliant'}, "
        f"{'no blind zones' if not completed['blind_points'] else 'blind zones left'}."
    )
    subtitle = (
        f"completed: {completed['total']} devices, "
        f"{'compliant' if completed['compliant'] else 'not compliant'}, "
        f"{'no blind zones' if not completed['blind_points'] else 'blind zones left'}"
    )
    images["l-office-completed.png"] = render_room(
        result.room, "plan", profile=profile, subtitle=subtitle
    ).png

    # (b) Illuminance from the shipped luminaire file.
    luminaire = luminaire_of(result.room, profile)
    report["luminaire"] = {"name": LUMINAIRE, "file": luminaire_file(LUMINAIRE)}
    report["luminaire"]["flux_lm"] = round(luminaire.flux_lm, 1)
    captions["l-office-illuminance.png"] = (
        f"Illuminance of the completed room from {report['luminaire']['file']} "
        f"({report['luminaire']['flux_lm']:g} lm per fitting, maintenance factor "
        f"{profile.maintenance_factor:g}), over the uniformity rule's calculation area: "
        f"average {completed['illuminance_avg_lx']:.1f} lx "
        f"(required {profile.illuminance_lx[before.room_type]:g} lx), "
        f"U0 {completed['uniformity_u0']:.3f} (target {completed['uniformity_target']:.2f})."
    )
    images["l-office-illuminance.png"] = render_room(
        result.room, "illuminance", profile=profile
    ).png

    # (c) The same room without existing devices, regularity off and on.
    empty = l_office({})
    report["regularity"] = {}
    for key, tie_break in TIE_BREAKS.items():
        done = complete(empty, tie_break)
        counts = devices(done.room)
        report["regularity"][key] = {
            "tie_break": list(tie_break),
            "devices": counts,
            "total": sum(counts.values()),
            "compliant": done.compliant,
            "regularity": dict(done.metrics["regularity"]),
        }
        order = ", then ".join(tie_break)
        state = "off" if "regularity" not in tie_break else "on (the default)"
        name = f"l-office-regularity-{key}.png"
        captions[name] = (
            f"Regularity {state}, tie-break {order}: {sum(counts.values())} devices "
            f"({counted(counts)}), "
            f"{'compliant' if done.compliant else 'not compliant'}; "
            f"regularity {regularity_text(done.metrics)}."
        )
        subtitle = (
            f"tie-break {order}: {sum(counts.values())} devices, "
            f"light regularity {done.metrics['regularity']['light']:.3f}"
        )
        images[name] = render_room(done.room, "plan", profile=profile, subtitle=subtitle).png

    for name in FIGURES:
        (out / name).write_bytes(images[name])
        report["sizes"][name] = len(images[name])
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs (default: docs/img)"
    )
    args = parser.parse_args(argv)
    report = build(args.out)
    print(report["room"])
    for name in FIGURES:
        size = report["sizes"][name]
        print(f"{args.out / name} ({size / 1000:.0f} kB)")
        print(f"  {report['captions'][name]}")
    return report


if __name__ == "__main__":
    main()
