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

from dataclasses import dataclass
from typing import Any

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


#: Every pairwise clearance of the rulebook (docs/rulebook.md), declared once.
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
    return dict(_memoised("partners", component, profile))


@dataclass(frozen=True)
class ClearanceGroup:
    """Rows of the table sharing rule, subject and distance: one violation message."""

    rule: str
    subject: str
    others: tuple[str, ...]
    minimum_m: float


def clearance_groups(profile: Profile, subject: str) -> tuple[ClearanceGroup, ...]:
    """The rows whose ``subject`` is given, grouped for the validator, in table order."""
    return _memoised("groups", subject, profile)


#: Lookups by (kind, component, table identity, profile identity); the value keeps
#: the table and profile it was made from, so a replaced table is never served stale.
_LOOKUPS: dict[tuple[str, str, int, int], tuple[object, object, Any]] = {}


def _memoised(kind: str, component: str, profile: Profile) -> Any:
    """The validator and every stage ask for the same lookups again and again."""
    table = CLEARANCES
    key = (kind, component, id(table), id(profile))
    hit = _LOOKUPS.get(key)
    if hit is not None and hit[0] is table and hit[1] is profile:
        return hit[2]
    value = (_partners if kind == "partners" else _groups)(component, table, profile)
    _LOOKUPS[key] = (table, profile, value)
    return value


def _partners(
    component: str, table: tuple[Clearance, ...], profile: Profile
) -> tuple[tuple[float, tuple[str, ...]], ...]:
    grouped: dict[float, tuple[str, ...]] = {}
    for clearance in table:
        if component not in (clearance.subject, clearance.other):
            continue
        other = clearance.other if component == clearance.subject else clearance.subject
        minimum = clearance.minimum_m(profile)
        if other not in grouped.get(minimum, ()):
            grouped[minimum] = (*grouped.get(minimum, ()), other)
    return tuple(grouped.items())


def _groups(
    subject: str, table: tuple[Clearance, ...], profile: Profile
) -> tuple[ClearanceGroup, ...]:
    groups: dict[tuple[str, float], tuple[str, ...]] = {}
    for clearance in table:
        if clearance.subject == subject:
            key = (clearance.rule, clearance.minimum_m(profile))
            groups[key] = (*groups.get(key, ()), clearance.other)
    return tuple(
        ClearanceGroup(rule, subject, others, minimum) for (rule, minimum), others in groups.items()
    )
