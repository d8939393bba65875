"""The rulebook validator (DESIGN.md section 3) and the quality metrics.

Distances are computed with Euclidean distance transforms over the tile grid
(``scipy.ndimage.distance_transform_edt`` with the tile size as sampling), so
"distance from every coverage point to the nearest detector" is one O(n) pass
instead of a pairwise matrix.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ceilgrid_assets.core.engine.grid import (
    AIR_RETURN,
    AIR_SUPPLY,
    EMPTY,
    INVALID,
    LIGHT,
    SMOKE_DETECTOR,
    Room,
    flat_to_xy,
)
from ceilgrid_assets.core.engine.photometry import illuminance_map, illuminance_summary
from ceilgrid_assets.core.engine.profile import Profile

#: Tolerance for "within" and "at least" comparisons of float distances.
EPSILON_M = 1e-9
#: Violations list at most this many cells; the message gives the full count.
MAX_LISTED_CELLS = 200

RULE_IDS: tuple[str, ...] = (
    "placement",
    "smoke.coverage",
    "smoke.clearance",
    "light.count",
    "light.spacing",
    "supply.count",
    "supply.coverage",
    "return.count",
    "return.separation",
)


#: Distance maps of masks up to this many cells are memoised (read-only results).
MEMOISED_DISTANCE_CELLS = 10_000


def distance_to(mask: np.ndarray, tile_size_m: float) -> np.ndarray:
    """Distance (m) from every cell centre to the nearest cell where ``mask`` holds.

    ``inf`` everywhere when the mask is empty. Repair, validation and scoring
    ask for the same device layers again and again, so small rooms' maps are
    memoised; they come back read-only, as every caller only compares them.
    """
    if not mask.any():
        return np.full(mask.shape, np.inf)
    if mask.size <= MEMOISED_DISTANCE_CELLS:
        return _memoised_distance(mask.astype(bool, copy=False).tobytes(), mask.shape, tile_size_m)
    return ndimage.distance_transform_edt(~mask, sampling=tile_size_m)


@functools.lru_cache(maxsize=256)
def _memoised_distance(mask_bytes: bytes, shape: tuple[int, ...], tile_size_m: float) -> np.ndarray:
    mask = np.frombuffer(mask_bytes, dtype=bool).reshape(shape)
    distance = ndimage.distance_transform_edt(~mask, sampling=tile_size_m)
    distance.setflags(write=False)
    return distance


@dataclass
class Violation:
    rule: str
    message: str
    cells: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "cells": self.cells}


def _violation(rule: str, message: str, mask: np.ndarray) -> Violation:
    flat = np.flatnonzero(mask)
    total = flat.size
    listed = flat[:MAX_LISTED_CELLS]
    if total > MAX_LISTED_CELLS:
        message += f" ({total} cells, first {MAX_LISTED_CELLS} listed)"
    return Violation(rule, message, flat_to_xy(listed, mask.shape[1]))


def coverage_violation(
    rule: str,
    what: str,
    devices: np.ndarray,
    usable: np.ndarray,
    radius_m: float,
    tile_size_m: float,
) -> Violation | None:
    """Points farther than ``radius_m`` from every device, or None when all are covered."""
    uncovered = usable & (distance_to(devices, tile_size_m) > radius_m + EPSILON_M)
    if not uncovered.any():
        return None
    return _violation(
        rule,
        f"{int(uncovered.sum())} coverage points farther than {radius_m:.2f} m from any {what}",
        uncovered,
    )


def clearance_violation(
    rule: str,
    what: str,
    near: str,
    devices: np.ndarray,
    others: np.ndarray,
    minimum_m: float,
    tile_size_m: float,
) -> Violation | None:
    """Devices closer than ``minimum_m`` to any of ``others``, or None."""
    if not devices.any() or not others.any():
        return None
    too_close = devices & (distance_to(others, tile_size_m) < minimum_m - EPSILON_M)
    if not too_close.any():
        return None
    return _violation(
        rule, f"{int(too_close.sum())} {what} closer than {minimum_m:.2f} m to a {near}", too_close
    )


def count_violation(
    rule: str, what: str, placed: int, required: int, drivers: str
) -> Violation | None:
    if placed >= required:
        return None
    return Violation(rule, f"{placed} {what}, at least {required} required ({drivers})")


def placement_violations(original: Room, completed: Room) -> list[Violation]:
    """The ``placement`` rule: same grid, invalid untouched, inputs kept, new devices on empties."""
    if original.cells.shape != completed.cells.shape:
        return [
            Violation(
                "placement",
                f"grid is {completed.width}x{completed.height}, input was "
                f"{original.width}x{original.height}",
            )
        ]
    before, after = original.cells, completed.cells
    changed = before != after
    bad = changed & ((before != EMPTY) | (after == INVALID))
    if not bad.any():
        return []
    return [_violation("placement", "cells changed that must stay as in the input", bad)]


def light_violations(room: Room, profile: Profile) -> list[Violation]:
    lights = room.cells == LIGHT
    return _present(
        [
            count_violation(
                "light.count",
                "lights",
                int(lights.sum()),
                profile.min_lights(room.area_m2, room.room_type),
                f"lumen method, E = {profile.illuminance_lx[room.room_type]:g} lx",
            ),
            coverage_violation(
                "light.spacing",
                "light",
                lights,
                room.usable,
                profile.light_radius_m(room.ceiling_height_m),
                room.tile_size_m,
            ),
        ]
    )


def supply_violations(room: Room, profile: Profile) -> list[Violation]:
    supplies = room.cells == AIR_SUPPLY
    return _present(
        [
            count_violation(
                "supply.count",
                "air supplies",
                int(supplies.sum()),
                profile.min_supplies(room.area_m2),
                f"{profile.supply_rate_l_s_m2:g} L/s/m2",
            ),
            coverage_violation(
                "supply.coverage",
                "air supply",
                supplies,
                room.usable,
                profile.supply_radius_m,
                room.tile_size_m,
            ),
        ]
    )


def return_violations(room: Room, profile: Profile) -> list[Violation]:
    supplies, returns = room.cells == AIR_SUPPLY, room.cells == AIR_RETURN
    return _present(
        [
            count_violation(
                "return.count",
                "air returns",
                int(returns.sum()),
                profile.min_returns(room.area_m2, int(supplies.sum())),
                "half the supplies",
            ),
            clearance_violation(
                "return.separation",
                "air returns",
                "air supply",
                returns,
                supplies,
                profile.return_to_supply_m,
                room.tile_size_m,
            ),
        ]
    )


def smoke_violations(room: Room, profile: Profile) -> list[Violation]:
    cells, t = room.cells, room.tile_size_m
    detectors = cells == SMOKE_DETECTOR
    return _present(
        [
            coverage_violation(
                "smoke.coverage",
                "smoke detector",
                detectors,
                room.usable,
                profile.smoke_radius_m,
                t,
            ),
            clearance_violation(
                "smoke.clearance",
                "smoke detectors",
                "diffuser or grille",
                detectors,
                (cells == AIR_SUPPLY) | (cells == AIR_RETURN),
                profile.smoke_to_air_m,
                t,
            ),
            clearance_violation(
                "smoke.clearance",
                "smoke detectors",
                "light",
                detectors,
                cells == LIGHT,
                profile.smoke_to_light_m,
                t,
            ),
        ]
    )


def _present(checks: list[Violation | None]) -> list[Violation]:
    return [check for check in checks if check is not None]


#: The rules that concern each placed component, in series order.
COMPONENT_CHECKS = {
    "light": light_violations,
    "air_supply": supply_violations,
    "air_return": return_violations,
    "smoke_detector": smoke_violations,
}


def check_layout(room: Room, profile: Profile, original: Room | None = None) -> list[Violation]:
    """Every rule of the rulebook for a completed room.

    ``original`` enables the ``placement`` rule (a layout file read on its own
    has no input to compare with).
    """
    violations = placement_violations(original, room) if original is not None else []
    if not room.usable.any():
        return violations
    for check in COMPONENT_CHECKS.values():
        violations += check(room, profile)
    return violations


def layout_metrics(room: Room, profile: Profile) -> dict[str, Any]:
    """Device counts and point-by-point illuminance (average, U0) of a room."""
    illuminance = illuminance_summary(illuminance_map(room, profile))
    return {
        "lights": room.count("light"),
        "air_supply": room.count("air_supply"),
        "air_return": room.count("air_return"),
        "smoke_detector": room.count("smoke_detector"),
        "illuminance_avg_lx": round(illuminance.average_lx, 1),
        "uniformity_u0": round(illuminance.uniformity_u0, 3),
        "uniformity_target": profile.target_u0(room.room_type),
        "area_m2": round(room.area_m2, 3),
    }


def compliance_report(room: Room, profile: Profile, original: Room | None = None) -> dict[str, Any]:
    """The ``compliance`` object of the output document."""
    violations = check_layout(room, profile, original)
    return {
        "compliant": not violations,
        "profile": profile.name,
        "violations": [violation.to_dict() for violation in violations],
    }
