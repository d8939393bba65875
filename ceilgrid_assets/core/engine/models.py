"""The placement-model interface and the built-in (non-learned) models.

A model proposes new devices for one stage: ``place(context) -> mask | None``
(None: not applicable or skipped). The engine keeps only allowed cells, runs
the shared repair, validates and scores every proposal, so a new model plugs
in by being listed in :func:`default_models` or passed to the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ceilgrid_assets.core.engine.budgets import (
    DEFAULT_OPTIMISER_MAX_CELLS,
    DEFAULT_OPTIMISER_TIME_S,
    SPREAD_MAX_CELLS,
    STAGGERED_MAX_CELLS,
)
from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.engine.heuristics import (
    SPREAD_WALL_WEIGHT,
    array_layout,
    best_staggered,
    fewer_by_swaps,
    greedy_cover,
    spread,
    staggered_layouts,
)
from ceilgrid_assets.core.engine.optimiser import (
    BRANCH_MAX_WORK,
    BUDGET,
    NO_BETTER,
    STAGE_NODE_LIMIT,
    TOO_LARGE,
    solve_stage,
)
from ceilgrid_assets.core.engine.stages import StageContext

#: Where trained learned models are cached (gitignored): ``ceilgrid train`` writes here
#: by default and ``ceilgrid layout`` uses them when present.
DEFAULT_MODELS_DIR = Path(".ceilgrid/models")
#: How a note starts when the wall-clock safety net stopped a solve.
SAFETY_NET = "wall-clock safety net hit"


@runtime_checkable
class PlacementModel(Protocol):
    """``exact`` models run last and only when no other candidate reached the lower bound."""

    name: str
    components: tuple[str, ...]
    exact: bool

    def place(self, context: StageContext) -> np.ndarray | None: ...


@dataclass(frozen=True)
class ArrayModel:
    """Rule-based square array: the lumen-method array for lights, grids for the rest."""

    name: str = "array"
    components: tuple[str, ...] = DEVICE_COMPONENTS
    exact: bool = False

    def place(self, context: StageContext) -> np.ndarray | None:
        return array_layout(context, context.required_count)


@dataclass(frozen=True)
class GreedyCoverModel:
    """Greedy set cover of the coverage points made smaller by swaps; the repair spreads
    devices to reach the count."""

    name: str = "greedy-cover"
    components: tuple[str, ...] = DEVICE_COMPONENTS
    exact: bool = False

    def place(self, context: StageContext) -> np.ndarray | None:
        if context.radius_m is None:
            return None
        picked = greedy_cover(context.open_points, context.allowed, context.disk, context.reach)
        return fewer_by_swaps(context, picked)


@dataclass(frozen=True)
class SpreadModel:
    """Farthest-point spreading, walls weighted: even spacing, good light uniformity.

    Places one device at a time, so it is left out of rooms of more than
    ``max_cells`` usable cells (tens of thousands of lights), where the array
    and greedy models compete.
    """

    name: str = "spread"
    components: tuple[str, ...] = DEVICE_COMPONENTS
    exact: bool = False
    wall_weight: float = SPREAD_WALL_WEIGHT
    max_cells: int = SPREAD_MAX_CELLS

    def place(self, context: StageContext) -> np.ndarray | None:
        if int(context.room.usable.sum()) > self.max_cells:
            context.notes[self.name] = f"not run: more than {self.max_cells} usable cells"
            return None
        return spread(
            context,
            context.existing,
            context.allowed,
            context.required_count,
            until_covered=True,
            wall_weight=self.wall_weight,
        )


@dataclass(frozen=True)
class StaggeredModel:
    """Staggered (hexagonal) array, repaired, then redundant devices pruned.

    Where coverage sets the count (detectors, diffusers in large open areas) a
    staggered pattern needs about a fifth fewer devices than a square array.
    Rooms of at most ``min_cells`` usable cells are left to the exact optimiser,
    which competes there and finds the minimum within its budget; rooms of
    more than ``max_cells`` to the array models, as its local moves grow
    faster than the room (a 500x500-tile room spent over a minute in them).
    """

    name: str = "staggered"
    components: tuple[str, ...] = ("air_supply", "smoke_detector")
    exact: bool = False
    min_cells: int = DEFAULT_OPTIMISER_MAX_CELLS
    max_cells: int = STAGGERED_MAX_CELLS

    def place(self, context: StageContext) -> np.ndarray | None:
        usable = int(context.room.usable.sum())
        if usable <= self.min_cells:
            context.notes[self.name] = (
                f"left to the exact optimiser: at most {self.min_cells} usable cells"
            )
            return None
        if usable > self.max_cells:
            context.notes[self.name] = f"not run: more than {self.max_cells} usable cells"
            return None
        layouts = staggered_layouts(context)
        best = best_staggered(context, layouts, context.best_judged())
        if best is None and layouts:
            context.notes[self.name] = (
                f"no staggered layout starts below the {context.best_judged()} devices in hand"
            )
        return best


@dataclass(frozen=True)
class OptimiserModel:
    """Exact minimum (HiGHS MILP) within a node budget; skipped on large stages.

    The node budget is deterministic: when it runs out, the best cover found
    so far competes like any other proposal, the same on every machine. A
    solve stopped by the wall-clock safety net is discarded and the stage
    notes it (``StageContext.notes``), so the room is marked in the output:
    that outcome depends on machine speed.
    """

    name: str = "optimiser"
    components: tuple[str, ...] = DEVICE_COMPONENTS
    exact: bool = True
    max_cells: int = DEFAULT_OPTIMISER_MAX_CELLS
    time_limit_s: float = DEFAULT_OPTIMISER_TIME_S
    node_limit: int = STAGE_NODE_LIMIT

    def place(self, context: StageContext) -> np.ndarray | None:
        if int(context.room.usable.sum()) > self.max_cells:
            return None
        best = context.best_judged()
        beat = None if best is None else best - int(context.existing.sum())
        result = solve_stage(context, self.time_limit_s, self.node_limit, beat)
        if result.status == NO_BETTER:
            context.notes[self.name] = f"the LP bound shows no cover with fewer than {best} devices"
        if result.status == "limit":
            context.notes[self.name] = (
                f"{SAFETY_NET} ({self.time_limit_s:g} s) before its node budget"
            )
        if result.status == BUDGET:
            context.notes[self.name] = (
                f"node budget of {self.node_limit} spent; its best cover so far competes"
            )
        if result.status == TOO_LARGE:
            context.notes[self.name] = (
                f"no branch and bound: over {BRANCH_MAX_WORK} (device, point) pairs; "
                "its LP-rounded cover competes"
                if result.added is not None
                else f"no branch and bound: over {BRANCH_MAX_WORK} (device, point) pairs"
            )
        if result.status not in ("optimal", "trivial", BUDGET, TOO_LARGE):
            return None
        return result.added


def default_models(
    optimiser_max_cells: int = DEFAULT_OPTIMISER_MAX_CELLS,
    optimiser_time_s: float = DEFAULT_OPTIMISER_TIME_S,
) -> list[PlacementModel]:
    """The built-in candidates, in the order they are reported."""
    return [
        ArrayModel(),
        GreedyCoverModel(),
        SpreadModel(),
        # Fittings nearer the walls: often a better U0 for the same count.
        SpreadModel(name="spread-perimeter", components=("light",), wall_weight=3.5),
        StaggeredModel(min_cells=optimiser_max_cells),
        OptimiserModel(max_cells=optimiser_max_cells, time_limit_s=optimiser_time_s),
    ]
