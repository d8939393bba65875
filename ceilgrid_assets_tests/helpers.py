"""Small builders and an independent rule checker shared by the layout-engine tests.

Coordinates are always ``(x, y)`` as in the JSON format and in violations;
``shape`` is ``(width, height)`` in tiles. The numpy array inside a Room is
indexed ``[y, x]``, which these helpers hide.

Pictures make small rooms readable: one text row per ``y``, one character per
``x``::

    D . . L
    . # . .

``.`` empty, ``#`` invalid, ``L`` light, ``S`` air supply, ``R`` air return,
``D`` smoke detector, ``~`` void (outside the room; spaces are ignored).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ceilgrid_assets.core.engine.grid import CODE, COMPONENTS, Room
from ceilgrid_assets.core.engine.profile import Profile

DATA_DIR = Path(__file__).parent / "data"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = PROJECT_ROOT / "ceilgrid_assets" / "examples"
SAMPLE_PATH = DATA_DIR / "room-ceiling-editor-sample.json"

PICTURE_CODES = {
    ".": "empty",
    "#": "invalid",
    "L": "light",
    "S": "air_supply",
    "R": "air_return",
    "D": "smoke_detector",
    "~": "void",
}
DEVICE_NAMES = ("light", "air_supply", "air_return", "smoke_detector")

Cell = tuple[int, int]


def make_cells(
    shape: tuple[int, int],
    invalid: Iterable[Cell] = (),
    devices: Mapping[str, Iterable[Cell]] | None = None,
) -> np.ndarray:
    """A ``(height, width)`` code array with ``invalid`` cells and ``devices`` at ``(x, y)``."""
    width, height = shape
    cells = np.full((height, width), CODE["empty"], dtype=np.uint8)
    for x, y in invalid:
        cells[y, x] = CODE["invalid"]
    for name, positions in (devices or {}).items():
        for x, y in positions:
            cells[y, x] = CODE[name]
    return cells


def make_room(
    shape: tuple[int, int],
    invalid: Iterable[Cell] = (),
    devices: Mapping[str, Iterable[Cell]] | None = None,
    *,
    grid_id: str = "room",
    tile_size_m: float = 0.6,
    ceiling_height_m: float = 2.7,
    room_type: str = "office",
) -> Room:
    """A Room of ``shape = (width, height)`` tiles."""
    return Room(
        grid_id=grid_id,
        cells=make_cells(shape, invalid, devices),
        tile_size_m=tile_size_m,
        ceiling_height_m=ceiling_height_m,
        room_type=room_type,
    )


def room_from_picture(picture: str, **kwargs: Any) -> Room:
    """A Room drawn as text (see the module docstring)."""
    rows = [row.replace(" ", "") for row in picture.strip().splitlines()]
    rows = [row for row in rows if row]
    width = len(rows[0])
    assert all(len(row) == width for row in rows), "picture rows differ in length"
    cells = np.array([[CODE[PICTURE_CODES[ch]] for ch in row] for row in rows], dtype=np.uint8)
    kwargs.setdefault("grid_id", "room")
    return Room(cells=cells, **kwargs)


def rect(x0: int, y0: int, x1: int, y1: int) -> list[Cell]:
    """Cells with ``x0 <= x < x1`` and ``y0 <= y < y1``."""
    return [(x, y) for y in range(y0, y1) for x in range(x0, x1)]


def positions(room: Room, component: str) -> set[Cell]:
    """The ``(x, y)`` cells holding ``component``."""
    ys, xs = np.nonzero(room.cells == CODE[component])
    return set(zip(xs.tolist(), ys.tolist(), strict=True))


def rule_ids(violations: Iterable[Any]) -> set[str]:
    """Rule ids of Violation objects or of their dict form."""
    return {v["rule"] if isinstance(v, dict) else v.rule for v in violations}


def only(violations: Iterable[Any], rule: str) -> list[Any]:
    return [v for v in violations if (v["rule"] if isinstance(v, dict) else v.rule) == rule]


# ----------------------------------------------------------------- JSON builders


def room_document(
    shape: tuple[int, int],
    invalid: Iterable[Cell] = (),
    devices: Mapping[str, Iterable[Cell]] | None = None,
    *,
    grid_id: str = "room",
    **fields: Any,
) -> dict[str, Any]:
    """A room in the interchange format (row-major cells), plus any extra ``fields``."""
    cells = make_cells(shape, invalid, devices)
    height, width = cells.shape
    document: dict[str, Any] = {
        "grid_id": grid_id,
        "width": width,
        "height": height,
        "cells": [
            {"x": x, "y": y, "component": COMPONENTS[int(cells[y, x])]}
            for y in range(height)
            for x in range(width)
        ],
    }
    document.update(fields)
    return document


def building_document(rooms: list[Any], building_id: str = "building") -> dict[str, Any]:
    return {"building_id": building_id, "rooms": rooms}


def to_json(document: Any) -> str:
    return json.dumps(document)


def load_sample() -> dict[str, Any]:
    return json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))


# ------------------------------------------------ independent reference checker


def reference_rule_ids(room: Room, profile: Profile, original: Room | None = None) -> set[str]:
    """Broken rule ids, computed from docs/rulebook.md by brute force.

    Deliberately shares no code with ``ceilgrid_assets.core.engine.rules``: plain
    pairwise distances between tile centres instead of distance transforms,
    formulas written out from the rulebook text.
    """
    eps = 1e-9
    broken: set[str] = set()
    cells = room.cells
    if original is not None:
        if original.cells.shape != cells.shape:
            return {"placement"}
        before, after = original.cells, cells
        for (y, x), old in np.ndenumerate(before):
            new = after[y, x]
            if old != new and (old != CODE["empty"] or new == CODE["invalid"]):
                broken.add("placement")
                break
    height, width = cells.shape
    t = room.tile_size_m

    def centres(code: int | None) -> list[tuple[float, float]]:
        out = []
        for y in range(height):
            for x in range(width):
                value = int(cells[y, x])
                if (code is None and value != CODE["invalid"]) or value == code:
                    out.append(((x + 0.5) * t, (y + 0.5) * t))
        return out

    points = centres(None)
    if not points:
        return broken
    lights, supplies = centres(CODE["light"]), centres(CODE["air_supply"])
    returns, detectors = centres(CODE["air_return"]), centres(CODE["smoke_detector"])

    def all_covered(devices: list[tuple[float, float]], radius: float) -> bool:
        return all(any(math.dist(p, d) <= radius + eps for d in devices) for p in points)

    def all_clear(
        a: list[tuple[float, float]], b: list[tuple[float, float]], minimum: float
    ) -> bool:
        return all(math.dist(p, q) >= minimum - eps for p in a for q in b)

    def ceil(value: float) -> int:
        return math.ceil(value - 1e-9)

    area = len(points) * t * t
    hm = room.ceiling_height_m - 0.8
    lumens = profile.lamp_flux_lm * profile.utilisation_factor * profile.maintenance_factor
    need_lights = ceil(profile.illuminance_lx[room.room_type] * area / lumens)
    need_supplies = max(1, ceil(profile.supply_rate_l_s_m2 * area / profile.diffuser_flow_l_s))
    need_returns = ceil(len(supplies) / 2) if area >= 9.0 - eps else 0

    if not all_covered(detectors, profile.smoke_radius_m):
        broken.add("smoke.coverage")
    if not (all_clear(detectors, supplies + returns, 1.5) and all_clear(detectors, lights, 1.0)):
        broken.add("smoke.clearance")
    if len(lights) < need_lights:
        broken.add("light.count")
    if not all_covered(lights, 1.5 * hm / math.sqrt(2)):
        broken.add("light.spacing")
    if len(supplies) < need_supplies:
        broken.add("supply.count")
    if not all_covered(
        supplies, math.sqrt(profile.diffuser_flow_l_s / profile.supply_rate_l_s_m2) / math.sqrt(2)
    ):
        broken.add("supply.coverage")
    if len(returns) < need_returns:
        broken.add("return.count")
    if not all_clear(returns, supplies, 1.8):
        broken.add("return.separation")
    if lights and reference_u0(room, profile) < profile.target_u0(room.room_type) - eps:
        broken.add("light.uniformity")
    return broken


def reference_u0(room: Room, profile: Profile) -> float:
    """U0 = Emin / Eavg of the rulebook, by brute force over points and fittings.

    Lambertian fittings of the profile's lamp flux: E = F MF cos^4 / (pi h^2);
    the calculation area leaves out points whose centre is closer than band + t/2
    to the centre of a tile outside the room (or beyond the grid edge), band =
    min(0.5 m, 15 % of the usable extent's shorter side); all points when none is left.
    """
    assert room.luminaire is None and profile.luminaire is None, "Lambertian rooms only"
    t, h = room.tile_size_m, room.ceiling_height_m - 0.8
    height, width = room.cells.shape
    usable = [(x, y) for y in range(height) for x in range(width) if room.usable[y, x]]
    inside = set(usable)
    outside = [
        (x, y) for y in range(-1, height + 1) for x in range(-1, width + 1) if (x, y) not in inside
    ]
    lights = [(x, y) for x, y in usable if room.cells[y, x] == CODE["light"]]
    xs, ys = [x for x, _ in usable], [y for _, y in usable]
    shorter = min(max(xs) - min(xs) + 1, max(ys) - min(ys) + 1) * t
    band = min(0.5, 0.15 * shorter)
    area = [
        p for p in usable if min(math.dist(p, q) for q in outside) * t >= band + t / 2 - 1e-9
    ] or usable
    flux = profile.lamp_flux_lm * profile.maintenance_factor
    lux = [
        sum(
            flux * (h * h / (h * h + (math.dist(p, q) * t) ** 2)) ** 2 / (math.pi * h * h)
            for q in lights
        )
        for p in area
    ]
    average = sum(lux) / len(lux)
    return min(lux) / average if average > 0 else 0.0


def example_building(directory: Path, name: str, example: str) -> tuple[Path, str]:
    """A copy of a shipped example under a fresh building id ``name-xxxxxxxx``: its path and id."""
    building_id = f"{name}-{uuid.uuid4().hex[:8]}"
    document = json.loads((EXAMPLES_DIR / example).read_bytes())
    document["building_id"] = building_id
    path = directory / f"{building_id}.json"
    path.write_text(json.dumps(document))
    return path, building_id


def load_module(name: str, path: Path) -> ModuleType:
    """Import a script that is not in a package (the deploy helpers) as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def inbox_tick(instance: Any, cursor: str | None) -> Any:
    """One tick of the real inbox sensor, applying its partition requests as the daemon does."""
    import dagster as dg

    from ceilgrid_assets.defs.resources import build_resources
    from ceilgrid_assets.defs.serving.sensors import inbox_sensor

    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=build_resources())
    result = inbox_sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
    return result


def plain_model(component: str) -> Any:
    """A real LearnedModel whose classifier scores every cell alike (decoder does the work):
    fitted on identical rows, it learns the prior only. Cheap, for registry and promotion tests."""
    import pandas as pd
    import sklearn

    from ceilgrid_assets.core.learning.features import FEATURES
    from ceilgrid_assets.core.learning.learned import CARD_FORMAT, LearnedModel, TreeEnsemble
    from ceilgrid_assets.core.learning.training import ensemble_graph, new_estimator

    estimator = (
        new_estimator(seed=11)
        .set_params(max_iter=1)
        .fit(pd.DataFrame(np.zeros((4, len(FEATURES))), columns=list(FEATURES)), [0, 1, 0, 1])
    )
    model = LearnedModel(component, TreeEnsemble(ensemble_graph(estimator)))
    model.card = {
        "format": CARD_FORMAT,
        "component": component,
        "name": model.name,
        "sklearn_version": sklearn.__version__,
        "features": list(FEATURES),
        "decoder": {
            "spacing_factor": model.spacing_factor,
            "gain_power": model.gain_power,
            "shortlist": model.shortlist,
        },
        "corpus": {"seed": 11},
    }
    return model
