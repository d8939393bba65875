"""How far a layout is from optimal: per component, a bound no compliant completion beats.

For each device type the bound comes from a relaxation of the room's problem:
the new devices of that type may go on every empty cell the *input* devices'
clearances allow (the clearances between new devices of different types are
ignored), they must cover every coverage point and meet the count rule. Any
compliant completion is a solution of that relaxation, so its optimum, or any
lower bound of it, is a lower bound on the devices the room needs.

The cheapest bound that proves the placed count optimal is used, tried in this
order (on relaxations of at most ``EXACT_MAX_SITES`` cells, the exhaustive
search for a cover of a few devices comes before the LP: it costs a fraction
of an LP solve there and gives the optimum itself):

- ``count rule``: the rulebook's minimum count (returns from the supplies' bound);
- ``disk packing``: uncovered points over the most any one cell can cover;
- ``point packing``: points no one cell covers two of, each needing its own
  device (small rooms);
- ``LP``: the linear relaxation of the set cover, rounded up;
- ``set-cover optimum``: the integer optimum of the relaxation, for rooms small
  enough to find it by the exhaustive search or within the optimiser's node budget.

Work is bounded by problem size (never by the clock), so the certificate is the
same on every machine. ``gap`` is placed minus bound; it can be negative only
for a layout that is not compliant, since the bound holds for compliant ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import ndimage

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS, EMPTY, Room
from ceilgrid_assets.core.engine.optimiser import (
    SEARCH_MAX_DEVICES,
    SEARCH_MAX_PAIRS,
    smallest_cover,
)
from ceilgrid_assets.core.engine.profile import Profile
from ceilgrid_assets.core.engine.stages import StageContext, build_context, coverage_matrix

#: The LP bound is computed when coverage has at most this many (point, site) pairs
#: (rooms up to about 900 cells): milliseconds. Larger rooms keep the cheap bounds,
#: unless the caller asks for an LP over a sample of points (``sample_pairs``), as
#: the quality benchmark does for tighter bounds at a cost of seconds per room.
LP_MAX_PAIRS = 150_000
#: The integer optimum is sought for relaxations with at most this many candidate cells.
EXACT_MAX_SITES = 400
#: ... and only when the LP bound is within this many devices of the placed count:
#: wider gaps are seldom closed within the node budget, and the root of such a
#: branch and bound alone can take seconds (low ceilings: many small disks).
EXACT_MAX_GAP = 2
#: Safety net of one LP or integer solve (s); its deterministic bound is the problem size.
SOLVE_SAFETY_NET_S = 60.0

METHODS: tuple[str, ...] = (
    "count rule",
    "disk packing",
    "point packing",
    "LP",
    "set-cover optimum",
)


def component_bound(
    context: StageContext, placed: int, sample_pairs: int | None = None
) -> tuple[int, str]:
    """A lower bound on this component's devices in any compliant completion, and its method.

    Stops at the first bound that reaches ``placed`` (the layout is then proved
    optimal for this component); stronger methods run only while a gap remains.
    """
    bound, method = context.cheap_bound
    if bound >= placed or context.radius_m is None:
        return bound, method
    bound, method = context.bound
    if bound >= placed:
        return bound, method
    existing = int(context.existing.sum())
    uncovered = context.open_points
    sites = context.allowed
    n_sites = int(sites.sum())
    if not uncovered.any() or n_sites == 0:
        return bound, method
    need = max(0, context.required_count - existing)
    if n_sites <= EXACT_MAX_SITES and int(uncovered.sum()) * n_sites <= SEARCH_MAX_PAIRS:
        # Small relaxations: the exhaustive search for a cover of a few devices
        # settles most of them in a fraction of an LP solve, with the optimum itself.
        fewest = bound - existing
        chosen = smallest_cover(context.open_cover, fewest, max(fewest, SEARCH_MAX_DEVICES))
        if chosen is not None:
            return existing + max(int(chosen.sum()), need), "set-cover optimum"
    disk_cells = int(context.disk.sum())
    if int(uncovered.sum()) * disk_cells <= LP_MAX_PAIRS:
        points = uncovered
    elif sample_pairs is not None:
        points = sampled_points(uncovered, disk_cells, sample_pairs)
    else:
        return bound, method
    # scipy.optimize loads only when an LP is solved: most rooms are settled by the
    # cheap bounds or too large for the LP, and ``ceilgrid validate`` should not pay
    # for it to start (0.4 s of the 500x500-tile room's layout).
    from ceilgrid_assets.core.engine.optimiser import covering_lp_bound, solve_stage

    cover = coverage_matrix(points, sites, context.disk, context.reach)
    if not (cover.getnnz(axis=1) > 0).all():  # some point no site reaches: no compliant layout
        return bound, method
    lp_bound, status = covering_lp_bound(cover, need, SOLVE_SAFETY_NET_S)
    if status == "optimal" and existing + lp_bound > bound:
        bound, method = existing + lp_bound, "LP"
    if bound >= placed or n_sites > EXACT_MAX_SITES or placed - bound > EXACT_MAX_GAP:
        return bound, method
    # Its exhaustive search would be the one above, which found nothing.
    exact = solve_stage(context, SOLVE_SAFETY_NET_S, search=False)
    if exact.status in ("optimal", "trivial") and exact.added is not None:
        optimum = existing + int(exact.added.sum())
        if optimum >= bound:
            return optimum, "set-cover optimum"
    return bound, method


def sampled_points(uncovered: np.ndarray, disk_cells: int, max_pairs: int) -> np.ndarray:
    """Coverage points the LP bound asks to be covered: all of them, or a subset.

    Dropping points only relaxes the set cover, so the bound stays valid. Large
    rooms keep a lattice of points plus every so many points of the boundary of
    the uncovered area (its corners and edges are the hardest points to reach),
    thinned until the LP has at most ``max_pairs`` (point, site) pairs.
    """
    boundary = uncovered & ~ndimage.binary_erosion(uncovered)
    ys, xs = np.indices(uncovered.shape)
    stride = 1
    while True:
        lattice = (ys % stride == 0) & (xs % stride == 0)
        along_boundary = boundary & ((xs + ys) % stride == 0)
        points = uncovered & (lattice | along_boundary)
        if int(points.sum()) * disk_cells <= max_pairs or stride > max(uncovered.shape):
            return points
        stride += 1


def relaxation_contexts(
    original: Room, profile: Profile, built: Mapping[str, StageContext] | None = None
) -> dict[str, StageContext]:
    """Each component's relaxation: the stage context of the input room (input devices only).

    ``built``: relaxations the caller already has (the engine's detector
    look-ahead is one), whose memoised coverage and bounds are then reused.
    The count of returns depends on the supplies; the relaxation takes the
    supplies' own bound, the fewest any compliant layout can have.
    """
    built = built or {}
    return {
        name: built[name] if name in built else build_context(name, original, profile)
        for name in DEVICE_COMPONENTS
    }


def room_certificate(
    original: Room,
    completed: Room,
    profile: Profile,
    sample_pairs: int | None = None,
    built: Mapping[str, StageContext] | None = None,
) -> dict[str, Any]:
    """Per component the devices placed, a lower bound, its method and the gap; then totals.

    ``sample_pairs``: see :data:`LP_MAX_PAIRS` (None: the serving default);
    ``built``: see :func:`relaxation_contexts`.
    """
    contexts = relaxation_contexts(original, profile, built)
    components: dict[str, dict[str, Any]] = {}
    for component in DEVICE_COMPONENTS:
        context = contexts[component]
        if component == "air_return":
            supplies = components["air_supply"]["lower_bound"]
            context = replace(
                context, required_count=profile.min_returns(original.area_m2, supplies)
            )
        placed = completed.count(component)
        bound, method = component_bound(context, placed, sample_pairs)
        components[component] = {
            "placed": placed,
            "lower_bound": bound,
            "gap": placed - bound,
            "method": method,
        }
    placed = sum(entry["placed"] for entry in components.values())
    bound = sum(entry["lower_bound"] for entry in components.values())
    return {"components": components, "placed": placed, "lower_bound": bound, "gap": placed - bound}


def layout_certificate(room: Room, profile: Profile) -> dict[str, Any]:
    """The certificate of a layout file, which does not say which devices were given.

    Taken against the room with every device removed: still a valid bound,
    possibly lower than the one the engine computed knowing the input devices
    (they can force extra devices). ``ceilgrid validate`` and the reports use it,
    so they never rely on a bound the file merely claims.
    """
    cells = room.cells.copy()
    cells[room.usable & (cells != EMPTY)] = EMPTY
    return room_certificate(room.with_cells(cells), room, profile)
