"""The rulebook validator (docs/rulebook.md) and the quality metrics.

Distances are computed with Euclidean distance transforms over the tile grid
(``scipy.ndimage.distance_transform_edt`` with the tile size as sampling), so
"distance from every coverage point to the nearest detector" is one O(n) pass
instead of a pairwise matrix. In a room with ``void`` cells the coverage rules
measure along in-room paths instead (:mod:`~ceilgrid_assets.core.engine.inroom`);
clearances stay straight-line, as a clearance is about devices' plumes and
diffuser throws, which a nearby wall does not lengthen.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage

from ceilgrid_assets.core.engine import constraints
from ceilgrid_assets.core.engine.constraints import clearance_groups, partners
from ceilgrid_assets.core.engine.grid import (
    AIR_RETURN,
    AIR_SUPPLY,
    CODE,
    DEVICE_COMPONENTS,
    EMPTY,
    EPSILON_M,
    INVALID,
    LIGHT,
    SMOKE_DETECTOR,
    VOID,
    Room,
    flat_to_xy,
)
from ceilgrid_assets.core.engine.inroom import reached
from ceilgrid_assets.core.engine.photometry import (
    illuminance_map,
    illuminance_summary,
    required_lights,
)
from ceilgrid_assets.core.engine.profile import Profile
from ceilgrid_assets.core.engine.regularity import regularity

#: Violations list at most this many cells; the message gives the full count.
MAX_LISTED_CELLS = 200

RULE_IDS: tuple[str, ...] = (
    "placement",
    "smoke.coverage",
    "smoke.spacing",
    "smoke.clearance",
    "light.count",
    "light.spacing",
    "light.uniformity",
    "supply.count",
    "supply.coverage",
    "return.count",
    "return.separation",
)


#: Distance maps of masks up to this many cells are memoised (read-only results) ...
MEMOISED_DISTANCE_CELLS = 10_000
#: ... and of larger masks, the few most recent: a candidate's repair, validation
#: and score ask for the same layer in turn (15 ms a map in a 500x500 room).
MEMOISED_LARGE_MAPS = 6


def distance_to(mask: np.ndarray, tile_size_m: float) -> np.ndarray:
    """Distance (m) from every cell centre to the nearest cell where ``mask`` holds.

    ``inf`` everywhere when the mask is empty. Repair, validation and scoring
    ask for the same device layers again and again, so small rooms' maps are
    memoised; they come back read-only, as every caller only compares them.
    """
    if not np.count_nonzero(mask):
        return np.full(mask.shape, np.inf)
    key = (mask.astype(bool, copy=False).tobytes(), mask.shape, tile_size_m)
    if mask.size <= MEMOISED_DISTANCE_CELLS:
        return _memoised_distance(*key)
    return _memoised_large_distance(*key)


def _distance_map(mask_bytes: bytes, shape: tuple[int, ...], tile_size_m: float) -> np.ndarray:
    mask = np.frombuffer(mask_bytes, dtype=bool).reshape(shape)
    distance = ndimage.distance_transform_edt(~mask, sampling=tile_size_m)
    distance.setflags(write=False)
    return distance


_memoised_distance = functools.lru_cache(maxsize=256)(_distance_map)
_memoised_large_distance = functools.lru_cache(maxsize=MEMOISED_LARGE_MAPS)(_distance_map)


#: Why a violation exists, when the input is known: the input devices alone break
#: the rule (no completion can mend it), or the completed layout does.
CAUSES: tuple[str, ...] = ("input", "layout")


@dataclass
class Violation:
    rule: str
    message: str
    cells: list[list[int]] = field(default_factory=list)
    cause: str | None = None  # one of CAUSES; None when the input is unknown
    points: int | None = None  # cells at fault in all, when more may be than listed

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"rule": self.rule, "message": self.message, "cells": self.cells}
        if self.cause is not None:
            document["cause"] = self.cause
        return document


def _violation(rule: str, message: str, mask: np.ndarray, cause: str | None = None) -> Violation:
    flat = np.flatnonzero(mask)
    total = flat.size
    listed = flat[:MAX_LISTED_CELLS]
    if total > MAX_LISTED_CELLS:
        message += f" ({total} cells, first {MAX_LISTED_CELLS} listed)"
    return Violation(rule, message, flat_to_xy(listed, mask.shape[1]), cause, total)


#: Rules that ask every coverage point to be reached: their uncovered points are
#: the room's blind zones.
COVERAGE_RULES: tuple[str, ...] = (
    "light.spacing",
    "supply.coverage",
    "smoke.coverage",
    "smoke.spacing",
)


def uncovered_points(room: Room, devices: np.ndarray, radius_m: float) -> np.ndarray:
    """Coverage points farther than ``radius_m`` from every device.

    Straight-line distance in a room without void; with void, the length of
    the shortest in-room path (:mod:`~ceilgrid_assets.core.engine.inroom`), so
    coverage never crosses outside the room.
    """
    if room.has_void:
        near = reached(devices, room.inside, room.tile_size_m, radius_m)
    else:
        near = distance_to(devices, room.tile_size_m) <= radius_m + EPSILON_M
    return room.usable & ~near


def coverage_violation(
    rule: str, what: str, devices: np.ndarray, room: Room, radius_m: float
) -> Violation | None:
    """Points farther than ``radius_m`` from every device, or None when all are covered."""
    uncovered = uncovered_points(room, devices, radius_m)
    if not np.count_nonzero(uncovered):
        return None
    return _violation(
        rule,
        f"{int(uncovered.sum())} coverage points farther than {radius_m:.2f} m from any {what}",
        uncovered,
    )


#: How violation messages name each device type (singular, plural).
NOUNS: dict[str, tuple[str, str]] = {
    "light": ("light", "lights"),
    "air_supply": ("air supply", "air supplies"),
    "air_return": ("air return", "air returns"),
    "smoke_detector": ("smoke detector", "smoke detectors"),
}


def too_close(devices: np.ndarray, minimum_m: float, tile_size_m: float) -> np.ndarray:
    """Cells whose centre is strictly closer than ``minimum_m`` to a ``devices`` cell."""
    if not np.count_nonzero(devices):
        return np.zeros(devices.shape, dtype=bool)
    return distance_to(devices, tile_size_m) < minimum_m - EPSILON_M


def device_layers(cells: np.ndarray) -> dict[str, np.ndarray]:
    """One (h, w) mask per device type."""
    return {name: cells == CODE[name] for name in NOUNS}


def forbidden_cells(
    component: str, layers: dict[str, np.ndarray], profile: Profile, tile_size_m: float
) -> np.ndarray:
    """Cells where a new ``component`` would break a clearance of the table against ``layers``.

    ``layers`` maps every device type to the devices already placed or
    planned, existing and new alike; both directions of every rule count.
    """
    forbidden = np.zeros(layers[component].shape, dtype=bool)
    for minimum, others in partners(component, profile).items():
        near = layers[others[0]]
        for other in others[1:]:
            near = near | layers[other]
        forbidden |= too_close(near, minimum, tile_size_m)
    return forbidden


def clearance_violations(
    room: Room, profile: Profile, subject: str, original: Room | None = None
) -> list[Violation]:
    """Every clearance of the table whose ``subject`` is given, one violation per group.

    With ``original`` (the input room) each violation is split by cause: a
    pair of input devices is ``input``; a pair with a new device is ``layout``.
    """
    cells, t = room.cells, room.tile_size_m
    violations: list[Violation] = []
    groups = clearance_groups(profile, subject)
    if not groups:
        return violations
    devices = cells == CODE[subject]
    if not np.count_nonzero(devices):
        return violations
    for group in groups:
        others = cells == CODE[group.others[0]]
        for other in group.others[1:]:
            others |= cells == CODE[other]
        if not np.count_nonzero(others):
            continue
        if original is None:
            found = {None: devices & too_close(others, group.minimum_m, t)}
        else:
            kept = original.cells == cells  # input devices still in place
            old_devices, old_others = devices & kept, others & kept
            new_devices, new_others = devices & ~kept, others & ~kept
            found = {
                "input": old_devices & too_close(old_others, group.minimum_m, t),
                "layout": (new_devices & too_close(others, group.minimum_m, t))
                | (old_devices & too_close(new_others, group.minimum_m, t)),
            }
        for cause, mask in found.items():
            if np.count_nonzero(mask):
                nearest = " or ".join(NOUNS[other][0] for other in group.others)
                article = "an" if nearest[0] in "aeiou" else "a"
                message = (
                    f"{int(mask.sum())} {NOUNS[subject][1]} closer than "
                    f"{group.minimum_m:.2f} m to {article} {nearest}"
                )
                violations.append(_violation(group.rule, message, mask, cause))
    return violations


def conflict_cells(room: Room, profile: Profile) -> list[list[int]]:
    """``[x, y]`` of every device on either side of a clearance broken in ``room``."""
    layers = device_layers(room.cells)
    involved = np.zeros(room.cells.shape, dtype=bool)
    for clearance in constraints.CLEARANCES:
        subject, other = layers[clearance.subject], layers[clearance.other]
        minimum = clearance.minimum_m(profile)
        involved |= subject & too_close(other, minimum, room.tile_size_m)
        involved |= other & too_close(subject, minimum, room.tile_size_m)
    return flat_to_xy(np.flatnonzero(involved), room.cells.shape[1])


def input_conflicts(room: Room, profile: Profile) -> list[Violation]:
    """Clearance violations among the input devices alone (no completion can mend them)."""
    return [
        replace(violation, cause="input")
        for subject in NOUNS
        for violation in clearance_violations(room, profile, subject)
    ]


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
                cause="layout",
            )
        ]
    before, after = original.cells, completed.cells
    changed = before != after
    bad = changed & ((before != EMPTY) | (after == INVALID) | (after == VOID))
    if not bad.any():
        return []
    return [_violation("placement", "cells changed that must stay as in the input", bad, "layout")]


def light_violations(room: Room, profile: Profile, original: Room | None = None) -> list[Violation]:
    lights = room.cells == LIGHT
    return _with_clearances(
        "light",
        room,
        profile,
        original,
        [
            count_violation(
                "light.count",
                "lights",
                int(np.count_nonzero(lights)),
                required_lights(room, profile),
                f"lumen method, E = {profile.illuminance_lx[room.room_type]:g} lx",
            ),
            coverage_violation(
                "light.spacing",
                "light",
                lights,
                room,
                profile.light_radius_m(room.ceiling_height_m),
            ),
            uniformity_violation(room, profile),
        ],
    )


def wall_distance(usable: np.ndarray, tile_size_m: float) -> np.ndarray:
    """Distance (m) from each cell centre to the nearest wall: the grid edge or an unusable tile."""
    padded = np.zeros((usable.shape[0] + 2, usable.shape[1] + 2), dtype=bool)  # np.pad's result
    padded[1:-1, 1:-1] = usable
    edt = distance_to(~padded, tile_size_m)[1:-1, 1:-1]
    return np.maximum(edt - tile_size_m / 2, 0.0)


def calculation_area(room: Room, profile: Profile) -> np.ndarray:
    """Points of the uniformity rule: coverage points clear of the wall band.

    The band is ``wall_band_m``, or ``wall_band_share`` of the shorter side of
    the room's extent when that is less (EN 12464-1). A room whose every point
    lies in the band (a ring of narrow arms) is judged on all its points.
    """
    usable = room.usable
    band = (profile.wall_band_m, profile.wall_band_share)
    if usable.size <= MEMOISED_DISTANCE_CELLS:  # every candidate of a room asks again
        return _memoised_area(usable.tobytes(), usable.shape, room.tile_size_m, band)
    return _inner_area(usable, room.tile_size_m, band)


def _inner_area(usable: np.ndarray, tile_size_m: float, band: tuple[float, float]) -> np.ndarray:
    """``band``: the profile's wall band (m) and its share of the shorter side."""
    if not usable.any():
        return usable
    rows, cols = np.nonzero(usable)
    shorter = min(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) * tile_size_m
    band_m = min(band[0], band[1] * shorter)
    inner = usable & (wall_distance(usable, tile_size_m) >= band_m - EPSILON_M)
    return inner if inner.any() else usable


@functools.lru_cache(maxsize=64)
def _memoised_area(
    usable_bytes: bytes, shape: tuple[int, ...], tile_size_m: float, band: tuple[float, float]
) -> np.ndarray:
    usable = np.frombuffer(usable_bytes, dtype=bool).reshape(shape)
    area = _inner_area(usable, tile_size_m, band).copy()
    area.setflags(write=False)
    return area


def uniformity_shortfall(
    room: Room, profile: Profile, lights: np.ndarray | None = None
) -> np.ndarray | None:
    """Illuminance over the calculation area (NaN elsewhere) when U0 misses the target.

    None when U0 = Emin / Eavg is at least the target, or without any light
    (count and spacing report that room). ``lights`` overrides the room's own.
    """
    return shortfall_of(room, profile, illuminance_map(room, profile, lights))


def shortfall_of(room: Room, profile: Profile, lux: np.ndarray) -> np.ndarray | None:
    """:func:`uniformity_shortfall` of an illuminance map already computed."""
    area = calculation_area(room, profile)
    summary = illuminance_summary(lux, area)
    if (
        summary.average_lx <= 0
        or summary.uniformity_u0 >= profile.target_u0(room.room_type) - EPSILON_M
    ):
        return None
    return np.where(area, lux, np.nan)


def dark_points(lux: np.ndarray, target: float) -> np.ndarray:
    """Calculation points (not NaN in ``lux``) darker than ``target`` x Eavg: where U0
    needs more light."""
    average = illuminance_summary(lux).average_lx
    return ~np.isnan(lux) & (np.nan_to_num(lux, nan=np.inf) < target * average)


def uniformity_violation(room: Room, profile: Profile) -> Violation | None:
    """``light.uniformity``: U0 = Emin / Eavg over the calculation area at least the target.

    The cells listed are the points darker than target x Eavg, where more
    light is needed.
    """
    lux = uniformity_shortfall(room, profile)
    if lux is None:
        return None
    summary = illuminance_summary(lux)
    target = profile.target_u0(room.room_type)
    area = ~np.isnan(lux)
    dark = dark_points(lux, target)
    return _violation(
        "light.uniformity",
        f"U0 = Emin/Eavg = {summary.minimum_lx:.0f}/{summary.average_lx:.0f} lx = "
        f"{summary.uniformity_u0:.2f} over {int(area.sum())} calculation points, "
        f"at least {target:.2f} required in a room of type {room.room_type} (EN 12464-1)",
        dark,
    )


def supply_violations(
    room: Room, profile: Profile, original: Room | None = None
) -> list[Violation]:
    supplies = room.cells == AIR_SUPPLY
    return _with_clearances(
        "air_supply",
        room,
        profile,
        original,
        [
            count_violation(
                "supply.count",
                "air supplies",
                int(np.count_nonzero(supplies)),
                profile.min_supplies(room.area_m2),
                f"{profile.supply_rate_l_s_m2:g} L/s/m2",
            ),
            coverage_violation(
                "supply.coverage", "air supply", supplies, room, profile.supply_radius_m
            ),
        ],
    )


def return_violations(
    room: Room, profile: Profile, original: Room | None = None
) -> list[Violation]:
    supplies, returns = room.cells == AIR_SUPPLY, room.cells == AIR_RETURN
    return _with_clearances(
        "air_return",
        room,
        profile,
        original,
        [
            count_violation(
                "return.count",
                "air returns",
                int(np.count_nonzero(returns)),
                profile.min_returns(room.area_m2, int(np.count_nonzero(supplies))),
                "half the supplies",
            )
        ],
    )


def smoke_violations(room: Room, profile: Profile, original: Room | None = None) -> list[Violation]:
    detectors = room.cells == SMOKE_DETECTOR
    return _with_clearances(
        "smoke_detector",
        room,
        profile,
        original,
        [
            coverage_violation(
                "smoke.coverage", "smoke detector", detectors, room, profile.smoke_radius_m
            ),
            spacing_violation(room, profile, detectors),
        ],
    )


def narrow_cells(inside: np.ndarray, tile_size_m: float, width_m: float) -> np.ndarray:
    """Cells of the room in a stretch no wider than ``width_m`` across one axis.

    The width of a cell's stretch is the run of inside cells through it along
    its row or its column, whichever is shorter: a corridor, or a narrow arm
    of an L-shaped room. Vectorised: run lengths from cumulative sums.
    """

    def runs(mask: np.ndarray) -> np.ndarray:
        """Length of the run along its row that each True cell belongs to."""
        starts = mask & ~np.pad(mask, ((0, 0), (1, 0)))[:, :-1]
        run = np.cumsum(starts.ravel()).reshape(mask.shape)  # a row's runs never join the next
        lengths = np.bincount(run.ravel(), weights=mask.ravel())
        return np.where(mask, lengths[run], 0.0)

    across = np.minimum(runs(inside), runs(inside.T).T)
    return inside & (across * tile_size_m <= width_m + EPSILON_M)


def spacing_half_tiles(profile: Profile, tile_size_m: float) -> int:
    """Half side, in tiles, of the square each detector covers under the spacing method.

    A tile counts only when all of it lies within S/2 of the detector along
    both axes: ``|offset| * t + t/2 <= S/2``. Detectors of squares that meet
    are then at most S apart, and the outer tiles' wall edges within S/2.
    """
    return int(np.floor((profile.listed_spacing_m / tile_size_m - 1) / 2 + EPSILON_M))


def spacing_uncovered(room: Room, profile: Profile, detectors: np.ndarray) -> np.ndarray:
    """Coverage points the spacing method leaves out (all False under the radius method).

    Points in corridor stretches (:func:`narrow_cells`) are exempt: there the
    0.7 S radius of ``smoke.coverage`` is the whole rule.
    """
    if profile.detector_method != "spacing" or not room.usable.any():
        return np.zeros(room.cells.shape, dtype=bool)
    side = 2 * spacing_half_tiles(profile, room.tile_size_m) + 1
    squared = ndimage.maximum_filter(detectors, size=side, mode="constant", cval=False)
    corridor = narrow_cells(room.inside, room.tile_size_m, profile.corridor_width_m)
    return room.usable & ~corridor & ~squared


def spacing_violation(room: Room, profile: Profile, detectors: np.ndarray) -> Violation | None:
    """``smoke.spacing``: every point outside corridors in the S x S square of a detector."""
    uncovered = spacing_uncovered(room, profile, detectors)
    if not uncovered.any():
        return None
    half = spacing_half_tiles(profile, room.tile_size_m) * room.tile_size_m
    return _violation(
        "smoke.spacing",
        f"{int(uncovered.sum())} coverage points outside every detector's square "
        f"(within {half:.2f} m along both axes; spacing method, "
        f"S = {profile.listed_spacing_m:g} m)",
        uncovered,
    )


def _with_clearances(
    component: str,
    room: Room,
    profile: Profile,
    original: Room | None,
    checks: list[Violation | None],
) -> list[Violation]:
    """A component's count and coverage violations, then its clearances from the table.

    With ``original``, count and coverage shortfalls are the layout's (input
    devices can only help them); clearances are split by cause.
    """
    own = [check for check in checks if check is not None]
    if original is not None:
        own = [replace(violation, cause="layout") for violation in own]
    return own + clearance_violations(room, profile, component, original)


#: Every rule that concerns each placed component (count, coverage, and its
#: clearances from the table), in series order.
COMPONENT_CHECKS = {
    "light": light_violations,
    "air_supply": supply_violations,
    "air_return": return_violations,
    "smoke_detector": smoke_violations,
}


def check_layout(room: Room, profile: Profile, original: Room | None = None) -> list[Violation]:
    """Every rule of the rulebook for a completed room.

    ``original`` enables the ``placement`` rule and the violations' causes (a
    layout file read on its own has no input to compare with). A layout on
    another grid than its input is the layout's fault throughout.
    """
    violations = placement_violations(original, room) if original is not None else []
    if not room.usable.any():
        return violations
    same_grid = original is not None and original.cells.shape == room.cells.shape
    for check in COMPONENT_CHECKS.values():
        found = check(room, profile, original if same_grid else None)
        if original is not None and not same_grid:
            found = [replace(violation, cause="layout") for violation in found]
        violations += found
    return violations


def layout_metrics(room: Room, profile: Profile) -> dict[str, Any]:
    """Device counts; illuminance (average, U0) over the uniformity rule's calculation area."""
    area = calculation_area(room, profile)
    illuminance = illuminance_summary(illuminance_map(room, profile), area)
    return {
        "lights": room.count("light"),
        "air_supply": room.count("air_supply"),
        "air_return": room.count("air_return"),
        "smoke_detector": room.count("smoke_detector"),
        "illuminance_avg_lx": round(illuminance.average_lx, 1),
        "uniformity_u0": round(illuminance.uniformity_u0, 3),
        "uniformity_target": profile.target_u0(room.room_type),
        "area_m2": round(room.area_m2, 3),
        "regularity": {
            name: round(regularity(room.cells == CODE[name]).score, 3) for name in DEVICE_COMPONENTS
        },
    }


def compliance_report(room: Room, profile: Profile, original: Room | None = None) -> dict[str, Any]:
    """The ``compliance`` object of the output document."""
    violations = check_layout(room, profile, original)
    report: dict[str, Any] = {
        "compliant": not violations,
        "profile": profile.name,
        "violations": [violation.to_dict() for violation in violations],
    }
    blind = [violation for violation in violations if violation.rule in COVERAGE_RULES]
    if blind:
        report["blind_zones"] = [
            {"rule": violation.rule, "points": violation.points, "cells": violation.cells}
            for violation in blind
        ]
    return report
