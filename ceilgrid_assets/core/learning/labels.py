"""Optimiser labels for the corpus: per component, in series, with status and gap.

Each room is labelled the way the engine lays it out: a smoke-detector plan on
the bare room first (it shapes where lights and diffusers may go), then lights,
air supply, air return and smoke detectors, each solved exactly by
:func:`solve_stage` on the context the earlier stages left. A stage is a
training label only when HiGHS proved it optimal; a stage that hit the time
limit (or found nothing) is kept in the record with ``status`` and ``gap`` and
``usable=False``, never silently used. To keep the series going after such a
stage, its incumbent (or, lacking one, the shared repair of an empty proposal)
is applied, so the later stages still get labelled on a realistic room.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS, Room
from ceilgrid_assets.core.engine.heuristics import repair
from ceilgrid_assets.core.engine.optimiser import solve_stage
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, Profile, get_profile
from ceilgrid_assets.core.engine.stages import StageContext, build_context

#: Seconds HiGHS may spend on one stage of one room when labelling.
DEFAULT_LABEL_TIME_S = 2.0
#: Statuses whose solution is a trustworthy label.
LABEL_STATUSES = ("optimal",)
PLAN_STAGE = "plan"


@dataclass
class StageLabel:
    """One solved stage: the context the model will see and what the optimiser placed."""

    grid_id: str
    component: str
    stage: str  # "plan" (detector look-ahead on the bare room) or "series"
    context: StageContext
    added: np.ndarray | None
    status: str
    gap: float | None
    seconds: float

    @property
    def usable(self) -> bool:
        """Only proven optima train a model; time-outs and trivial stages do not."""
        return self.status in LABEL_STATUSES and self.added is not None


@dataclass
class RoomLabels:
    grid_id: str
    stages: list[StageLabel]
    seconds: float

    @property
    def timed_out(self) -> bool:
        return any(stage.status == "limit" for stage in self.stages)


def label_room(
    room: Room, profile: Profile | str = DEFAULT_PROFILE, time_limit_s: float = DEFAULT_LABEL_TIME_S
) -> RoomLabels:
    """The optimiser's layout of one room, stage by stage."""
    profile = get_profile(profile)
    started = time.perf_counter()
    plan_context = build_context("smoke_detector", room, profile)
    plan = _solve(room.grid_id, plan_context, PLAN_STAGE, time_limit_s)
    stages = [plan]
    plan_added = _continuation(plan)
    current = room
    for component in DEVICE_COMPONENTS:
        context = build_context(component, current, profile, plan_added)
        label = _solve(room.grid_id, context, "series", time_limit_s)
        stages.append(label)
        current = context.apply(_continuation(label))
    return RoomLabels(room.grid_id, stages, time.perf_counter() - started)


def label_rooms(
    rooms: Sequence[Room],
    profile: Profile | str = DEFAULT_PROFILE,
    time_limit_s: float = DEFAULT_LABEL_TIME_S,
    n_jobs: int = 1,
) -> list[RoomLabels]:
    """Label many rooms; ``n_jobs`` processes (rooms are independent)."""
    profile = get_profile(profile)
    if n_jobs == 1:
        return [label_room(room, profile, time_limit_s) for room in rooms]
    return Parallel(n_jobs=n_jobs, batch_size=4)(
        delayed(label_room)(room, profile, time_limit_s) for room in rooms
    )


def labels_table(labels: Sequence[RoomLabels]) -> pd.DataFrame:
    """One row per stage: status, gap, time, devices; what a platform asset shows."""
    rows = [
        {
            "grid_id": stage.grid_id,
            "component": stage.component,
            "stage": stage.stage,
            "status": stage.status,
            "gap": stage.gap,
            "seconds": stage.seconds,
            "required": stage.context.required_count,
            "allowed_cells": int(stage.context.allowed.sum()),
            "devices": None if stage.added is None else int(stage.added.sum()),
            "usable": stage.usable,
        }
        for room in labels
        for stage in room.stages
    ]
    return pd.DataFrame(rows)


def _solve(grid_id: str, context: StageContext, stage: str, time_limit_s: float) -> StageLabel:
    result = solve_stage(context, time_limit_s)
    return StageLabel(
        grid_id,
        context.component,
        stage,
        context,
        result.added,
        result.status,
        result.gap,
        result.seconds,
    )


def _continuation(label: StageLabel) -> np.ndarray:
    """What the series continues with: the solver's layout, or the shared repair."""
    if label.added is not None:
        return label.added
    return repair(label.context, np.zeros_like(label.context.allowed))
