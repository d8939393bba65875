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

Labelling is the costly part of training, and most rooms come back night after
night (the seeded synthetic set, served rooms already seen), so a
:class:`LabelCache` keeps each room's solved stages by content: a room is
labelled once. A cached room is replayed, not unpickled: its contexts are
rebuilt from the room and the profile and only the solver's results (the cells
it placed, status, gap) are read back from JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
#: Part of every cache key: bump it when the solver's results for a stage can change.
LABELLER_VERSION = 1
#: Statuses that depend on the machine (the wall-clock safety net): never cached.
UNCACHED_STATUSES = ("limit",)


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
    replayed: bool = False  # read back from a LabelCache, not solved in this run

    @property
    def timed_out(self) -> bool:
        return any(stage.status == "limit" for stage in self.stages)


def label_room(
    room: Room,
    profile: Profile | str = DEFAULT_PROFILE,
    time_limit_s: float = DEFAULT_LABEL_TIME_S,
    recorded: Sequence[dict[str, Any]] | None = None,
) -> RoomLabels:
    """The optimiser's layout of one room, stage by stage.

    ``recorded`` (a cache entry, see :func:`stage_records`) replays the solver's
    results instead of solving again; the contexts are rebuilt the same way.
    """
    profile = get_profile(profile)
    started = time.perf_counter()
    replay = iter(recorded) if recorded is not None else None

    def solve(context: StageContext, stage: str) -> StageLabel:
        if replay is None:
            return _solve(room.grid_id, context, stage, time_limit_s)
        return _replayed(room.grid_id, context, stage, next(replay))

    plan_context = build_context("smoke_detector", room, profile)
    plan = solve(plan_context, PLAN_STAGE)
    stages = [plan]
    plan_added = _continuation(plan)
    current = room
    for component in DEVICE_COMPONENTS:
        context = build_context(component, current, profile, plan_added)
        label = solve(context, "series")
        stages.append(label)
        current = context.apply(_continuation(label))
    return RoomLabels(room.grid_id, stages, time.perf_counter() - started)


def stage_records(labels: RoomLabels) -> list[dict[str, Any]]:
    """The solver's results of a labelled room as JSON-ready records (cells as flat indices)."""
    return [
        {
            "component": stage.component,
            "stage": stage.stage,
            "added": None if stage.added is None else np.flatnonzero(stage.added).tolist(),
            "status": stage.status,
            "gap": stage.gap,
            "seconds": stage.seconds,
        }
        for stage in labels.stages
    ]


def _replayed(
    grid_id: str, context: StageContext, stage: str, record: dict[str, Any]
) -> StageLabel:
    if (record["component"], record["stage"]) != (context.component, stage):
        raise ValueError(f"label cache entry of {grid_id} does not match its stages")
    added = None
    if record["added"] is not None:
        cells = np.asarray(record["added"], dtype=np.int64)
        if cells.size and (cells.min() < 0 or cells.max() >= context.allowed.size):
            raise ValueError(f"label cache entry of {grid_id} names cells outside the room")
        added = np.zeros(context.allowed.size, dtype=bool)
        added[cells] = True
        added = added.reshape(context.allowed.shape)
    return StageLabel(
        grid_id,
        context.component,
        stage,
        context,
        added,
        record["status"],
        record["gap"],
        record["seconds"],
    )


class LabelCache:
    """Solved stages by room content, one JSON file each under ``directory``.

    The key hashes everything a label depends on (cells, tile size, ceiling
    height, room type, profile, time limit, :data:`LABELLER_VERSION`), never the
    room's id, so identical rooms share a label and ids never become paths.
    Entries are written atomically; an unreadable one is labelled again.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(room: Room, profile: Profile, time_limit_s: float) -> str:
        digest = hashlib.sha256()
        header = [
            LABELLER_VERSION,
            list(room.cells.shape),
            room.tile_size_m,
            room.ceiling_height_m,
            room.room_type,
            repr(profile),
            time_limit_s,
        ]
        digest.update(json.dumps(header).encode())
        digest.update(np.ascontiguousarray(room.cells, dtype=np.uint8).tobytes())
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> list[dict[str, Any]] | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, labels: RoomLabels) -> None:
        if any(stage.status in UNCACHED_STATUSES for stage in labels.stages):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self._path(key).with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(stage_records(labels)), encoding="utf-8")
        os.replace(partial, self._path(key))


def label_rooms(
    rooms: Sequence[Room],
    profile: Profile | str = DEFAULT_PROFILE,
    time_limit_s: float = DEFAULT_LABEL_TIME_S,
    n_jobs: int = 1,
    cache: LabelCache | None = None,
) -> list[RoomLabels]:
    """Label many rooms; ``n_jobs`` processes (rooms are independent).

    With a ``cache``, rooms labelled before are replayed and only the others
    are solved (and then cached); :func:`count_replayed` tells how many.
    """
    profile = get_profile(profile)
    labels: list[RoomLabels | None] = [None] * len(rooms)
    keys = [LabelCache.key(room, profile, time_limit_s) for room in rooms] if cache else []
    for index, key in enumerate(keys):
        record = cache.get(key) if cache is not None else None
        if record is not None:
            labels[index] = _replay(rooms[index], profile, time_limit_s, record)
    todo = [room for room, labelled in zip(rooms, labels, strict=True) if labelled is None]
    if n_jobs == 1:
        solved = [label_room(room, profile, time_limit_s) for room in todo]
    else:
        solved = Parallel(n_jobs=n_jobs, batch_size=4)(
            delayed(label_room)(room, profile, time_limit_s) for room in todo
        )
    fresh = iter(solved)
    for index, labelled in enumerate(labels):
        if labelled is None:
            labels[index] = labelled = next(fresh)
            if cache is not None:
                cache.put(keys[index], labelled)
    return [labelled for labelled in labels if labelled is not None]


def _replay(room: Room, profile: Profile, time_limit_s: float, record: Any) -> RoomLabels | None:
    """A cached room replayed, or None when the entry does not fit (then it is solved again)."""
    try:
        labelled = label_room(room, profile, time_limit_s, recorded=record)
    except (ValueError, KeyError, TypeError, IndexError, StopIteration):
        return None
    labelled.replayed = True
    return labelled


def count_replayed(labels: Sequence[RoomLabels]) -> int:
    """How many rooms came from the label cache rather than the solver."""
    return sum(room.replayed for room in labels)


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
