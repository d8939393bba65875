"""The one table of pairwise clearances: which component keeps how far from which.

Every consumer reads :data:`CLEARANCES`: the stages' allowed cells (a new device
against new and existing devices, in both directions), the smoke-detector
look-ahead, the joint integer programme's allowed sites and conflict rows,
the validator, and the input-conflict diagnosis. Adding a clearance rule is
one line here; no stage can forget it. The distance computations that use
the table (:func:`~ceilgrid_assets.core.engine.rules.forbidden_cells`,
:func:`~ceilgrid_assets.core.engine.rules.clearance_violations`) live in the
validator module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ceilgrid_assets.core.engine.profile import Profile


@dataclass(frozen=True)
class Clearance:
    """``subject`` devices keep at least ``profile.<parameter>`` metres from ``other`` devices.

    A violation lists the ``subject`` cells that are too close, under ``rule``.
    """

    rule: str
    subject: str
    other: str
    parameter: str

    def minimum_m(self, profile: Profile) -> float:
        return float(getattr(profile, self.parameter))


#: Every pairwise clearance of the rulebook (DESIGN.md section 3), declared once.
CLEARANCES: tuple[Clearance, ...] = (
    Clearance("smoke.clearance", "smoke_detector", "air_supply", "smoke_to_air_m"),
    Clearance("smoke.clearance", "smoke_detector", "air_return", "smoke_to_air_m"),
    Clearance("smoke.clearance", "smoke_detector", "light", "smoke_to_light_m"),
    Clearance("return.separation", "air_return", "air_supply", "return_to_supply_m"),
)


def partners(component: str, profile: Profile) -> dict[float, tuple[str, ...]]:
    """Components a new ``component`` must keep clear of, grouped by minimum distance (m).

    Both directions of every rule count: a supply keeps clear of returns as
    much as a return keeps clear of supplies. Grouping by distance lets one
    distance transform serve several component types.
    """
    return dict(_partners(component, CLEARANCES, _minima(profile)))


@dataclass(frozen=True)
class ClearanceGroup:
    """Rows of the table sharing rule, subject and distance: one violation message."""

    rule: str
    subject: str
    others: tuple[str, ...]
    minimum_m: float


def clearance_groups(profile: Profile, subject: str) -> tuple[ClearanceGroup, ...]:
    """The rows whose ``subject`` is given, grouped for the validator, in table order."""
    return _groups(subject, CLEARANCES, _minima(profile))


def _minima(profile: Profile) -> tuple[float, ...]:
    return tuple(clearance.minimum_m(profile) for clearance in CLEARANCES)


# The validator and every stage ask for these again and again; the table and
# the distances are the whole key (a profile itself is not hashable).
@functools.lru_cache(maxsize=64)
def _partners(
    component: str, table: tuple[Clearance, ...], minima: tuple[float, ...]
) -> tuple[tuple[float, tuple[str, ...]], ...]:
    grouped: dict[float, tuple[str, ...]] = {}
    for clearance, minimum in zip(table, minima, strict=True):
        if component not in (clearance.subject, clearance.other):
            continue
        other = clearance.other if component == clearance.subject else clearance.subject
        if other not in grouped.get(minimum, ()):
            grouped[minimum] = (*grouped.get(minimum, ()), other)
    return tuple(grouped.items())


@functools.lru_cache(maxsize=64)
def _groups(
    subject: str, table: tuple[Clearance, ...], minima: tuple[float, ...]
) -> tuple[ClearanceGroup, ...]:
    groups: dict[tuple[str, float], tuple[str, ...]] = {}
    for clearance, minimum in zip(table, minima, strict=True):
        if clearance.subject == subject:
            key = (clearance.rule, minimum)
            groups[key] = (*groups.get(key, ()), clearance.other)
    return tuple(
        ClearanceGroup(rule, subject, others, minimum) for (rule, minimum), others in groups.items()
    )
