"""Completing rooms: stages in series, candidates compete, the selector picks.

``complete_room`` is the one function that lays out a room (whole buildings:
:mod:`ceilgrid_assets.core.engine.building`). For each stage (lights -> air
supply -> air return -> smoke detectors) every model proposes, the engine
repairs, validates and scores each proposal, and :func:`select` picks the
winner. A look-ahead reserves smoke-detector cells before the first stage, and
a joint integer programme rescues small rooms the series could not complete, so
a compliant layout is found whenever one exists for realistic rooms.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ceilgrid_assets.core.engine.budgets import (
    DEFAULT_OPTIMISER_MAX_CELLS,
    DEFAULT_OPTIMISER_TIME_S,
)
from ceilgrid_assets.core.engine.certificate import room_certificate
from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, Room
from ceilgrid_assets.core.engine.heuristics import brighten, repair
from ceilgrid_assets.core.engine.hooks import observed
from ceilgrid_assets.core.engine.models import SAFETY_NET, PlacementModel, default_models
from ceilgrid_assets.core.engine.optimiser import (
    BUDGET,
    JOINT_MAX_NONZEROS,
    JOINT_NODE_LIMIT,
    TOO_LARGE,
    joint_node_budget,
    solve_joint,
)
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, Profile, get_profile
from ceilgrid_assets.core.engine.regularity import regularity
from ceilgrid_assets.core.engine.rules import (
    MAX_LISTED_CELLS,
    check_layout,
    compliance_report,
    conflict_cells,
    dark_points,
    input_conflicts,
    layout_metrics,
    uniformity_shortfall,
)
from ceilgrid_assets.core.engine.stages import StageContext, build_context, quality_score

#: The joint rescue runs on rooms with at most this many usable cells.
DEFAULT_RESCUE_MAX_CELLS = 900
#: Wall-clock safety net of the rescue; its deterministic bound is the node budget.
DEFAULT_RESCUE_TIME_S = 30.0
RESCUE_MODEL = "joint-optimiser"
#: The rescue's answer when HiGHS proved that no compliant completion exists.
PROVED_INFEASIBLE = "proved infeasible: no completion meets every rule"
#: Solves of the joint rescue, each with the uniformity rows of the points the one
#: before left too dark.
RESCUE_UNIFORMITY_ROUNDS = 12
#: Branch-and-bound nodes all those later solves may explore together (deterministic;
#: each solve's own budget also shrinks with the programme, ``joint_node_budget``).
RESCUE_UNIFORMITY_NODES = 250
#: ... and the solves themselves: at most this many nonzeros over the programme's
#: nonzeros (12 up to 20,000; one, so no re-solve, from 240,000). Each solve pays its
#: root LP, which no node budget bounds: 2-3 s at 90,000 nonzeros here.
RESCUE_ROUNDS_WORK = 240_000


@dataclass(frozen=True)
class EngineConfig:
    """Everything that shapes a layout besides the room itself."""

    profile: Profile = field(default_factory=lambda: get_profile(DEFAULT_PROFILE))
    models: Sequence[PlacementModel] = field(default_factory=default_models)
    rescue_max_cells: int = DEFAULT_RESCUE_MAX_CELLS
    rescue_time_s: float = DEFAULT_RESCUE_TIME_S
    rescue_node_limit: int = JOINT_NODE_LIMIT

    @classmethod
    def create(
        cls,
        profile: str | Profile = DEFAULT_PROFILE,
        extra_models: Sequence[PlacementModel] = (),
        optimiser_max_cells: int = DEFAULT_OPTIMISER_MAX_CELLS,
        optimiser_time_s: float = DEFAULT_OPTIMISER_TIME_S,
        **kwargs: Any,
    ) -> EngineConfig:
        """The built-in models plus ``extra_models`` (learned ones), by profile name."""
        models = [*default_models(optimiser_max_cells, optimiser_time_s), *extra_models]
        return cls(profile=get_profile(profile), models=models, **kwargs)


@dataclass
class CandidateOutcome:
    """One model's proposal for one stage, after repair and validation."""

    model: str
    added: np.ndarray | None
    compliant: bool = False
    devices: int = 0
    score: float = 0.0
    violations: int = 0
    compliant_before_repair: bool = False
    repaired: int = 0
    placed: np.ndarray | None = None  # every device of the stage's type with this proposal
    seconds: float = 0.0
    skip_reason: str = "no proposal: not applicable here, or over its size budget"
    note: str | None = None  # what the model reported about its work budget

    def to_dict(self) -> dict[str, Any]:
        if self.added is None:
            return {
                "model": self.model,
                "compliant": False,
                "devices": None,
                "score": None,
                "skipped": True,
                "reason": self.note or self.skip_reason,
            }
        document = {
            "model": self.model,
            "compliant": self.compliant,
            "devices": self.devices,
            "score": round(self.score, 4),
            "repaired": self.repaired,
        }
        if self.note is not None:
            document["note"] = self.note
        return document

    @functools.cached_property
    def regularity(self) -> float:
        """Regularity score of :attr:`placed`; computed only when a tie-break asks."""
        return 0.0 if self.placed is None else regularity(self.placed).score


@observed("candidate")
def evaluate(
    context: StageContext, model: str, proposal: np.ndarray | None, seconds: float
) -> CandidateOutcome:
    """Repair, validate and score a proposal on equal terms with the others."""
    if proposal is None:
        return CandidateOutcome(model, None, seconds=seconds)
    proposal = proposal & context.allowed
    key = proposal.tobytes()
    if key in context.judged:  # another model proposed the same layout
        return replace(context.judged[key], model=model, seconds=seconds)
    added = repair(context, proposal)
    violations = context.violations(added)
    repaired = int(np.count_nonzero(added)) - int(np.count_nonzero(proposal))
    placed = context.existing | added
    context.judged[key] = outcome = CandidateOutcome(
        model=model,
        added=added,
        compliant=not violations,
        devices=int(np.count_nonzero(placed)),
        score=quality_score(context, added),
        placed=placed,
        violations=len(violations),
        # The repair adds a device only for an uncovered point, a missing count or a
        # U0 shortfall, each a violation of the proposal as it came.
        compliant_before_repair=not (repaired or violations),
        repaired=repaired,
        seconds=seconds,
    )
    return outcome


#: How each tie-break key of a profile (``Profile.tie_break``) ranks a candidate:
#: smaller is better. Quality is compared to 0.01, a difference nobody would see.
TIE_BREAKS: dict[str, Callable[[CandidateOutcome], float]] = {
    "quality": lambda outcome: -round(outcome.score, 2),
    "regularity": lambda outcome: -round(outcome.regularity, 4),
}


def select(
    outcomes: Sequence[CandidateOutcome], tie_break: Sequence[str] = ("quality", "regularity")
) -> CandidateOutcome | None:
    """Compliant with fewest devices, then the profile's tie-breaks; else fewest violations.

    A candidate that is not compliant is only chosen when none is, and is
    flagged. The keys are applied one after another to the candidates still
    tied, so a costly key is computed only for those. Remaining ties go to the
    model listed first, so the choice is deterministic.
    """
    tied = [outcome for outcome in outcomes if outcome.added is not None]
    keys: list[Callable[[CandidateOutcome], Any]] = [
        lambda outcome: (not outcome.compliant, outcome.violations, outcome.devices),
        *(TIE_BREAKS[key] for key in tie_break),
    ]
    for key in keys:
        if len(tied) <= 1:
            break
        ranks = [key(outcome) for outcome in tied]
        best = min(ranks)
        tied = [outcome for outcome, rank in zip(tied, ranks, strict=True) if rank == best]
    return tied[0] if tied else None


@observed("stage")
def run_stage(
    context: StageContext, models: Sequence[PlacementModel]
) -> tuple[CandidateOutcome, list[CandidateOutcome]]:
    """Models propose in turn until a compliant candidate is proved to need the fewest devices.

    After that nothing can win on count: the exact models never run, and the
    other models only in stages whose tied candidates the profile compares
    (``Profile.compare_at_bound``: the lights' uniformity). Elsewhere the
    first proved layout stands; models are listed most regular first.
    """
    applicable = [model for model in models if context.component in model.components]
    compare = context.component in context.profile.compare_at_bound
    outcomes: dict[int, CandidateOutcome] = {}
    optimal, best = False, None
    for exact in (False, True):
        if exact and not optimal:
            best = select(list(outcomes.values()), context.profile.tie_break)
            optimal = best is not None and best.compliant and context.is_optimal(best.devices)
        for index, model in enumerate(applicable):
            if bool(getattr(model, "exact", False)) != exact:
                continue
            if optimal:  # a candidate already reached the lower bound: nothing to win
                # best.devices is that bound: no valid bound exceeds a compliant layout,
                # and asking the context would compute the costlier bound for the message.
                outcomes[index] = CandidateOutcome(
                    model.name,
                    None,
                    skip_reason=f"{best.model} already reached the lower "
                    f"bound of {best.devices} devices",
                )
                continue
            started = time.perf_counter()
            proposal = model.place(context)
            outcome = evaluate(context, model.name, proposal, time.perf_counter() - started)
            if model.name in context.notes:
                outcome = replace(outcome, note=context.notes[model.name])
            outcomes[index] = outcome
            if not (compare or optimal) and outcome.compliant:
                optimal = context.is_optimal(outcome.devices)
                best = outcome
    ordered = [outcomes[index] for index in sorted(outcomes)]
    chosen = select(ordered, context.profile.tie_break)
    if chosen is None:  # no model applies: place nothing, let validation report it
        chosen = evaluate(context, "none", np.zeros_like(context.allowed), 0.0)
    return chosen, ordered


@dataclass
class RoomResult:
    original: Room
    room: Room
    stages: list[Room]  # the room before the first stage and after each stage
    models: dict[str, Any]
    compliance: dict[str, Any]
    metrics: dict[str, Any]
    candidates: dict[str, list[CandidateOutcome]]
    certificate: dict[str, Any]  # per component: placed, lower bound, gap (certificate.py)
    seconds: float

    @property
    def compliant(self) -> bool:
        return bool(self.compliance["compliant"])


@observed("room")
def complete_room(room: Room, config: EngineConfig | None = None) -> RoomResult:
    """Place every missing component of one room.

    Input devices that break a clearance among themselves are found first: no
    completion can mend them, so the room is completed as far as the rules
    allow (new devices keep every clearance) and never sent to the rescue.
    """
    config = config or EngineConfig()
    started = time.perf_counter()
    profile = config.profile
    conflicts = input_conflicts(room, profile)
    series = _series(room, config, DEVICE_COMPONENTS)
    compliance = compliance_report(series.room, profile, room)
    rescue = None
    if conflicts:
        compliance["input_conflicts"] = _conflict_message(room, profile)
        if not compliance["compliant"]:
            rescue = "not run: input devices conflict, so no completion can be compliant"
    elif not compliance["compliant"]:
        if _too_large_to_rescue(room, config):
            rescue = f"not run: more than {config.rescue_max_cells} usable cells"
        else:
            rescued, rescue, placed = _rescue_series(room, series, profile, config)
            if rescued is not None:
                series.room, series.stages = rescued, _stage_views(room, rescued)
                compliance = compliance_report(rescued, profile, room)
                for component in DEVICE_COMPONENTS:
                    if component in placed:
                        series.record[component]["chosen"] = RESCUE_MODEL
                    series.record[component]["compliant"] = True
        if not compliance["compliant"] and rescue != PROVED_INFEASIBLE:
            # The series once more with the lights last: in dense-light rooms (high
            # ceilings, large tiles) the default order took the cells diffusers need.
            # Not after a proof that no compliant completion exists.
            retry = _series(room, config, LIGHTS_LAST)
            retried = compliance_report(retry.room, profile, room)
            if retried["compliant"]:
                series, compliance, rescue = retry, retried, None
                compliance["series"] = (
                    "lights placed last: the default order left the room not compliant"
                )
    current, safety_net = series.room, series.safety_net
    if rescue is not None:
        compliance["rescue"] = rescue
    if rescue is not None and rescue.startswith(SAFETY_NET):
        safety_net.append(f"joint rescue: {rescue}")
    if safety_net:
        compliance["safety_net"] = safety_net
    return RoomResult(
        original=room,
        room=current,
        stages=series.stages,
        models=series.record,
        compliance=compliance,
        metrics=layout_metrics(current, profile),
        candidates=series.candidates,
        certificate=room_certificate(room, current, profile, built=series.relaxations),
        seconds=time.perf_counter() - started,
    )


#: The order of the retry of a room the default series left not compliant.
LIGHTS_LAST = ("air_supply", "air_return", "smoke_detector", "light")


@dataclass
class _Series:
    """One pass of the stages in series: the completed room and what each stage chose."""

    room: Room
    stages: list[Room]
    record: dict[str, Any]
    candidates: dict[str, list[CandidateOutcome]]
    safety_net: list[str]
    #: Stage contexts of the input room as it came (the detector look-ahead's), which
    #: are also the certificate's relaxations of those components.
    relaxations: dict[str, StageContext]


def _series(room: Room, config: EngineConfig, order: Sequence[str]) -> _Series:
    """The stages in ``order``, the smoke detectors planned first (a look-ahead whose
    cells the other stages keep clear of)."""
    profile, models = config.profile, config.models
    plan_context = build_context("smoke_detector", room, profile)
    detector_plan, plan_outcomes = run_stage(plan_context, models)
    reserved: np.ndarray | None = detector_plan.added
    current = room
    stages = [room]
    record: dict[str, Any] = {}
    candidates: dict[str, list[CandidateOutcome]] = {}
    safety_net: list[str] = [f"smoke_detector look-ahead: {note}" for note in _safety(plan_context)]
    for component in order:
        context = build_context(component, current, profile, reserved)
        if component == "smoke_detector" and reserved is not None:
            # The look-ahead proposals stay valid (earlier stages kept clear of
            # them); re-judge them against the room as it now is (a skipped one stays
            # skipped, with its reason).
            outcomes = [
                plan if plan.added is None else _rejudge(context, plan) for plan in plan_outcomes
            ]
            chosen = select(outcomes, profile.tie_break) or evaluate(
                context, "none", np.zeros_like(context.allowed), 0
            )
        else:
            chosen, outcomes = run_stage(context, models)
            if not chosen.compliant and reserved is not None:
                # The cells kept for detectors left this stage no compliant layout
                # (a narrow room's return, say): free them; detectors go last instead.
                safety_net += [f"{component}: {note}" for note in _safety(context)]
                reserved = None
                context = build_context(component, current, profile)
                chosen, outcomes = run_stage(context, models)
            safety_net += [f"{component}: {note}" for note in _safety(context)]
        current = context.apply(chosen.added)
        stages.append(current)
        candidates[component] = outcomes
        record[component] = {
            "chosen": chosen.model,
            "compliant": chosen.compliant,
            "candidates": [outcome.to_dict() for outcome in outcomes],
        }
    if tuple(order) != tuple(DEVICE_COMPONENTS):  # reports list the stages in one order
        stages = _stage_views(room, current)
        record = {component: record[component] for component in DEVICE_COMPONENTS}
        candidates = {component: candidates[component] for component in DEVICE_COMPONENTS}
    return _Series(
        current, stages, record, candidates, safety_net, {"smoke_detector": plan_context}
    )


def _rejudge(context: StageContext, plan: CandidateOutcome) -> CandidateOutcome:
    """A look-ahead proposal judged again in the room as it now is, with its note."""
    outcome = evaluate(context, plan.model, plan.added, plan.seconds)
    return replace(outcome, note=plan.note)


def _too_large_to_rescue(room: Room, config: EngineConfig) -> bool:
    return int(room.usable.sum()) > config.rescue_max_cells


def _safety(context: StageContext) -> list[str]:
    """Notes of models the wall-clock safety net stopped in this stage."""
    return [
        f"{model}: {note}" for model, note in context.notes.items() if note.startswith(SAFETY_NET)
    ]


def _conflict_message(room: Room, profile: Profile) -> str:
    """One line naming the input cells whose devices break a clearance among themselves."""
    cells = conflict_cells(room, profile)
    listed = " ".join(f"({x},{y})" for x, y in cells[:MAX_LISTED_CELLS])
    more = f" and {len(cells) - MAX_LISTED_CELLS} more" if len(cells) > MAX_LISTED_CELLS else ""
    return (
        f"input devices at {listed}{more} break a clearance among themselves; "
        "the room is completed as far as the rules allow and not sent to the rescue"
    )


#: What the rescue says when it kept the series' lights and placed the rest.
LIGHTS_KEPT = "compliant layout found, the series' lights kept"


def _rescue_series(
    room: Room, series: _Series, profile: Profile, config: EngineConfig
) -> tuple[Room | None, str, tuple[str, ...]]:
    """The joint rescue of a room the series left not compliant: its layout (or None),
    what it established, and the components it placed.

    First with the series' new lights kept as if given: they already meet U0, which
    the linear programme cannot express, and without their variables the programme
    solves several times faster (on 137 rescued rooms: 108 of the 119 the full
    rescue made compliant, none with more devices, 32 with fewer; measured once by
    script). Only when that finds no compliant layout does the rescue start from the
    input room; what the first attempt proved or spent says nothing about that one,
    except a wall-clock stop, which is listed in the room's safety net.
    """
    deadline = time.perf_counter() + config.rescue_time_s  # one safety net for both
    lights = series.room.cells == CODE["light"]
    if (lights & (room.cells != CODE["light"])).any():  # the series placed lights
        with_lights = room.with_cells(np.where(lights, CODE["light"], room.cells).astype(np.uint8))
        rescued, rescue = _rescue(with_lights, profile, config, deadline)
        if rescued is not None:
            return rescued, LIGHTS_KEPT, tuple(c for c in DEVICE_COMPONENTS if c != "light")
        if rescue.startswith(SAFETY_NET):
            series.safety_net.append(f"joint rescue with the series' lights: {rescue}")
    rescued, rescue = _rescue(room, profile, config, deadline)
    return rescued, rescue, DEVICE_COMPONENTS


def _rescue(
    room: Room, profile: Profile, config: EngineConfig, deadline: float | None = None
) -> tuple[Room | None, str]:
    """The joint optimiser's compliant layout (or None) and what it established.

    ``proved infeasible`` is a proof that no compliant completion exists;
    ``budget exhausted`` is the deterministic node budget running out first.
    The joint programme is linear and U0 is a ratio: lights are first added where
    the uniformity rule asks, on cells clear of every device; if U0 still misses,
    the programme is solved again with the uniformity rows of the points left
    dark (:func:`~ceilgrid_assets.core.engine.optimiser.uniformity_rows`), up to
    ``RESCUE_UNIFORMITY_ROUNDS`` times, fewer in larger programmes
    (``RESCUE_ROUNDS_WORK``). ``deadline`` (``time.perf_counter()``) is the safety net,
    by default ``config.rescue_time_s`` from now.
    """
    if deadline is None:
        deadline = time.perf_counter() + config.rescue_time_s
    uniform_at = np.zeros(room.cells.shape, dtype=bool)
    nodes_left, solves = config.rescue_node_limit, 0
    while True:
        if solves == 1:  # the uniformity rounds share a budget of their own
            nodes_left = min(config.rescue_node_limit, RESCUE_UNIFORMITY_NODES)
        result = solve_joint(room, profile, deadline - time.perf_counter(), nodes_left, uniform_at)
        nodes_left -= result.nodes
        solves += 1
        status = result.status
        if solves == 1:
            rounds = min(RESCUE_UNIFORMITY_ROUNDS, RESCUE_ROUNDS_WORK // max(result.nonzeros, 1))
        if status == TOO_LARGE:
            return None, (
                f"not run: the joint programme has {result.nonzeros:,} nonzeros, more than "
                f"{JOINT_MAX_NONZEROS:,}"
            )
        if status == "infeasible":
            return None, PROVED_INFEASIBLE
        if status == "limit":
            return None, f"{SAFETY_NET} ({config.rescue_time_s:g} s) before the node budget"
        if status == BUDGET and result.added is None and solves == 1:
            nodes = joint_node_budget(result.nonzeros, config.rescue_node_limit)
            return None, f"budget exhausted: {nodes} nodes, no layout found"
        if result.added is None and solves > 1:
            break
        if result.added is None or status not in ("optimal", BUDGET):
            return None, f"solver status {status}"
        solved = room.with_cells(
            np.where(result.added > 0, result.added, room.cells).astype(np.uint8)
        )
        lights = build_context("light", solved, profile)
        completed = lights.apply(brighten(lights, np.zeros_like(lights.allowed)))
        if not check_layout(completed, profile, room):
            return completed, "compliant layout found"
        # Only U0 can fail (the programme holds every other rule): constrain the points
        # the solution itself left dark; brightening raises Eavg, so not its darkest.
        lux = uniformity_shortfall(solved, profile)
        if lux is None or solves >= rounds:
            break
        dark = dark_points(lux, profile.target_u0(room.room_type))
        if not (dark & ~uniform_at).any() or nodes_left <= 0:
            break
        uniform_at |= dark
    if solves == 1:  # no solve with uniformity rows
        return None, f"solver status {status}, but its layout fails validation"
    return None, (
        f"no layout meeting light.uniformity found: {solves - 1} rounds of uniformity rows on "
        f"{int(uniform_at.sum())} points"
    )


def _stage_views(original: Room, completed: Room) -> list[Room]:
    """Per-stage snapshots of a layout made in one piece (for stage renders)."""
    views = [original]
    cells = original.cells.copy()
    for component in DEVICE_COMPONENTS:
        code = CODE[component]
        cells = np.where(completed.cells == code, code, cells).astype(np.uint8)
        views.append(original.with_cells(cells.copy()))
    return views
