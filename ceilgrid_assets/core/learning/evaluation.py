"""Learned models against the exact optimiser, on held-out generated and awkward rooms.

For each room two things are measured:

- the **final layout** of the engine with the learned models among the
  candidates (``complete_room``): is it compliant, how long did it take;
- **per stage**, the learned model and the optimiser on the *same* context
  (the room with earlier stages placed by the learned models, detector plan
  from the learned smoke model): devices after the engine's repair, compliance
  before and after repair, seconds (features + predict + decode + repair for
  the learned model; the HiGHS solve for the optimiser, whose status says
  whether it finished within its time limit).

:func:`evaluate_models` returns one row per room and stage;
:func:`summarise` aggregates it into the README table.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS, INVALID, LIGHT, SMOKE_DETECTOR, Room
from ceilgrid_assets.core.engine.models import PlacementModel
from ceilgrid_assets.core.engine.optimiser import solve_stage
from ceilgrid_assets.core.engine.pipeline import EngineConfig, RoomResult, complete_room, evaluate
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, Profile, get_profile
from ceilgrid_assets.core.engine.stages import build_context

#: Optimiser seconds per stage when it serves as the reference (generous: it should finish).
REFERENCE_TIME_S: dict[str, float] = {
    "light": 30.0,
    "air_supply": 5.0,
    "air_return": 5.0,
    "smoke_detector": 30.0,
}
LARGE_SIDE_TILES = 40


def awkward_rooms() -> list[Room]:
    """Hand-made rooms that stress the models: slivers, obstacles, odd tiles, existing devices."""

    def room(grid_id: str, cells: np.ndarray, **kwargs) -> Room:
        return Room(grid_id, cells.astype(np.uint8), **kwargs)

    rooms = []
    rooms.append(room("awkward-corridor-1x100", np.zeros((1, 100)), room_type="corridor"))
    ring = np.zeros((30, 30))
    ring[8:22, 8:22] = INVALID
    rooms.append(room("awkward-ring", ring, room_type="lobby", ceiling_height_m=4.0))
    columns = np.zeros((45, 45))
    columns[::4, ::4] = INVALID
    rooms.append(room("awkward-dense-columns-45", columns))
    beams = np.zeros((40, 60))
    beams[::5, :] = INVALID
    rooms.append(room("awkward-beams-every-5", beams, tile_size_m=0.61, room_type="classroom"))
    comb = np.zeros((24, 40))
    comb[:18, 3::4] = INVALID
    rooms.append(room("awkward-comb", comb, room_type="storage"))
    diagonal = np.where(np.add.outer(np.arange(50), np.arange(50)) < 49, 0, INVALID)
    rooms.append(room("awkward-triangle-50", diagonal, ceiling_height_m=6.0, room_type="lobby"))
    existing = np.zeros((20, 26))
    existing[0, 0] = SMOKE_DETECTOR
    existing[10, 13] = LIGHT
    rooms.append(room("awkward-existing-corner-detector", existing, room_type="meeting"))
    rooms.append(
        room("awkward-closet-3x3", np.zeros((3, 3)), ceiling_height_m=2.4, room_type="storage")
    )
    hall = np.zeros((100, 60))
    hall[5::12, 5::12] = INVALID
    hall[:30, :20] = INVALID
    rooms.append(room("awkward-L-hall-60m", hall, room_type="lobby", ceiling_height_m=5.0))
    return rooms


def evaluate_room(
    room: Room,
    models: Sequence[PlacementModel],
    profile: Profile | str,
    reference_time_s: Mapping[str, float] = REFERENCE_TIME_S,
    room_set: str = "held-out",
) -> list[dict]:
    """Rows for one room: one per stage, each with the room's final-layout outcome."""
    profile = get_profile(profile)
    learned = {component: model for model in models for component in model.components}
    final = complete_room(room, EngineConfig.create(profile, extra_models=list(models)))
    plan_context = build_context("smoke_detector", room, profile)
    plan = _timed(learned["smoke_detector"], plan_context)[0]
    current = room
    rows = []
    for component in DEVICE_COMPONENTS:
        context = build_context(component, current, profile, plan.added)
        outcome, seconds = _timed(learned[component], context)
        reference = solve_stage(context, reference_time_s[component])
        finished = reference.status in ("optimal", "trivial")
        rows.append(
            {
                "grid_id": room.grid_id,
                "set": room_set,
                "room_type": room.room_type,
                "height": room.height,
                "width": room.width,
                "large": min(room.height, room.width) >= LARGE_SIDE_TILES,
                "usable_cells": int(room.usable.sum()),
                "component": component,
                "learned_devices": outcome.devices,
                "learned_compliant_before_repair": outcome.compliant_before_repair,
                "learned_compliant": outcome.compliant,
                "learned_repaired": outcome.repaired,
                "learned_seconds": seconds,
                "optimiser_status": reference.status,
                "optimiser_gap": reference.gap,
                "optimiser_devices": (
                    int((context.existing | reference.added).sum()) if finished else np.nan
                ),
                "optimiser_seconds": reference.seconds,
                "final_compliant": final.compliant,
                "final_chosen": final.models[component]["chosen"],
                "final_seconds": final.seconds,
            }
        )
        current = context.apply(outcome.added)
    return rows


def evaluate_models(
    rooms: Sequence[Room],
    models: Sequence[PlacementModel],
    profile: Profile | str = DEFAULT_PROFILE,
    room_set: str = "held-out",
    reference_time_s: Mapping[str, float] = REFERENCE_TIME_S,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """One row per room and stage (see the module docstring for what is measured)."""
    profile = get_profile(profile)
    if n_jobs == 1:
        results = [
            evaluate_room(room, models, profile, reference_time_s, room_set) for room in rooms
        ]
    else:
        results = Parallel(n_jobs=n_jobs)(
            delayed(evaluate_room)(room, models, profile, reference_time_s, room_set)
            for room in rooms
        )
    return pd.DataFrame([row for rows in results for row in rows])


def summarise(report: pd.DataFrame) -> pd.DataFrame:
    """Per set, size class and component: compliance, devices and time against the optimiser."""
    frames = [report.assign(size="all"), report[report["large"]].assign(size=">=40x40")]
    rows = []
    for (room_set, size, component), group in pd.concat(frames).groupby(
        ["set", "size", "component"], sort=False
    ):
        done = group[group["optimiser_status"].isin(["optimal", "trivial"])]
        rows.append(
            {
                "set": room_set,
                "rooms": size,
                "component": component,
                "n": len(group),
                "final_compliant_%": 100 * group["final_compliant"].mean(),
                "before_repair_%": 100 * group["learned_compliant_before_repair"].mean(),
                "after_repair_%": 100 * group["learned_compliant"].mean(),
                "optimiser_finished": len(done),
                "devices_vs_optimiser": (
                    done["learned_devices"].sum() / done["optimiser_devices"].sum()
                    if len(done)
                    else np.nan
                ),
                "learned_s_median": group["learned_seconds"].median(),
                "optimiser_s_median": group["optimiser_seconds"].median(),
                "speedup_total": (
                    group["optimiser_seconds"].sum() / max(group["learned_seconds"].sum(), 1e-9)
                ),
            }
        )
    return pd.DataFrame(rows).round(3)


def _timed(model: PlacementModel, context):
    """The model's proposal through the engine's repair and validation, and the seconds taken."""
    started = time.perf_counter()
    proposal = model.place(context)
    outcome = evaluate(context, model.name, proposal, 0.0)
    return outcome, time.perf_counter() - started


#: The names the engine gives the learned candidate and the exact optimiser.
LEARNED = "learned"
OPTIMISER = "optimiser"


def candidate_frame(results: Sequence[RoomResult]) -> pd.DataFrame:
    """Per component: the learned candidate against the best other candidate on each stage.

    The reference is the fewest devices among the compliant non-learned
    candidates: the optimiser's optimum where it ran (the engine skips it when a
    heuristic already meets the lower bound, which is then optimal too).
    Compliance is after the engine's repair; times are per room.
    """
    rows = []
    for component in DEVICE_COMPONENTS:
        scored, pairs = [], []
        for result in results:
            outcomes = [o for o in result.candidates[component] if o.added is not None]
            ours = next((o for o in outcomes if o.model == LEARNED), None)
            others = [o for o in outcomes if o.model != LEARNED and o.compliant]
            if ours is None:
                continue
            scored.append(ours)
            if others:
                pairs.append((ours, min(others, key=lambda o: o.devices)))
        reference = sum(best.devices for _, best in pairs)
        exact = [
            o
            for r in results
            for o in r.candidates[component]
            if o.model == OPTIMISER and o.added is not None
        ]
        rows.append(
            {
                "component": component,
                "rooms": len(scored),
                "compliance_after_repair": (
                    sum(o.compliant for o in scored) / len(scored) if scored else 0.0
                ),
                "compliance_before_repair": (
                    sum(o.compliant_before_repair for o in scored) / len(scored) if scored else 0.0
                ),
                "devices_vs_reference": (
                    sum(ours.devices for ours, _ in pairs) / reference if reference else 1.0
                ),
                "reference_rooms": len(pairs),
                "learned_seconds_per_room": (
                    sum(o.seconds for o in scored) / len(scored) if scored else 0.0
                ),
                "optimiser_seconds_per_room": (
                    sum(o.seconds for o in exact) / len(exact) if exact else None
                ),
            }
        )
    return pd.DataFrame(rows)


def evaluate_slices(
    slices: Mapping[str, Sequence[Room]], models: Sequence[PlacementModel]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The promotion evaluation: :func:`candidate_frame` per slice of held-out rooms (a
    ``slice`` column; empty slices are left out) and each slice's share of compliant layouts.

    Every model is heard in every stage (``compare_at_bound`` lists every component), so
    the learned candidates are judged also where a built-in one settles a stage first.
    """
    engine = EngineConfig.create(extra_models=list(models))
    engine = replace(
        engine, profile=replace(engine.profile, compare_at_bound=tuple(DEVICE_COMPONENTS))
    )
    frames, compliant = [], {}
    for name, rooms in slices.items():
        if not rooms:
            continue
        results = [complete_room(room, engine) for room in rooms]
        frames.append(candidate_frame(results).assign(slice=name))
        compliant[name] = sum(result.compliant for result in results) / len(results)
    frame = pd.concat(frames, ignore_index=True)
    return frame[["slice", *[column for column in frame.columns if column != "slice"]]], compliant


#: A new model may place at most this much more (relative) than the promoted one.
DEVICE_RATIO_TOLERANCE = 0.01
SYNTHETIC = "synthetic"


def noncompliant(evaluation: pd.DataFrame) -> list[str]:
    """Slices and components whose learned candidate was not compliant on every room."""
    failing = evaluation[evaluation["compliance_after_repair"] < 1.0]
    return [f"{row['slice']} {row['component']}" for row in failing.to_dict("records")]


def regressions(
    candidate: pd.DataFrame,
    promoted: dict[str, Any] | None,
    tolerance: float = DEVICE_RATIO_TOLERANCE,
) -> list[str]:
    """Slices and components whose device ratio to the reference, or compliance, is worse
    than the promoted models' (a slice or component the promoted set was not evaluated on
    has nothing to regress from; records from before slices were synthetic only)."""
    if promoted is None:
        return []
    before = {_slice_key(row): row for row in promoted["evaluation"]}
    found = []
    for row in candidate.to_dict(orient="records"):
        old = before.get(_slice_key(row))
        if old is None:
            continue
        where = f"{row.get('slice', SYNTHETIC)} {row['component']}"
        if row["devices_vs_reference"] > old["devices_vs_reference"] * (1 + tolerance):
            found.append(
                f"{where}: {row['devices_vs_reference']:.4f} devices per "
                f"reference device, promoted {old['devices_vs_reference']:.4f}"
            )
        if row["compliance_after_repair"] < old["compliance_after_repair"]:
            found.append(
                f"{where}: compliance {row['compliance_after_repair']:.4f}, "
                f"promoted {old['compliance_after_repair']:.4f}"
            )
    return found


def _slice_key(row: dict[str, Any]) -> tuple[str, str]:
    return (row.get("slice", SYNTHETIC), row["component"])
