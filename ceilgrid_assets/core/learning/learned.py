"""Learned placement models: one gradient-boosted classifier per component.

Training: every usable optimiser label (see :mod:`labels`) becomes feature rows
(:func:`features.cell_features`) with target 1 on the cells the optimiser
chose. Inference: :class:`LearnedModel.place` scores every allowed cell in one
``predict_proba`` call and decodes the scores into a layout with spacing-aware
selection: take the best-scoring cell that still helps (it reaches an uncovered
point, or the count is not met), suppress its neighbours within a spacing
derived from the stage, repeat. The suppression factor is tuned per component
on held-out labelled rooms to minimise the device count after the engine's
repair, which then guarantees the hard rules.

A model is saved as ``<component>.skops`` beside ``<component>.json``, its card
(scikit-learn version, feature list, training corpus seed and hash, decoder
setting, metrics, file checksum). Loading refuses a card whose scikit-learn
version or feature list differs from this installation, with a one-line error.
The file is read with ``skops.io`` (scikit-learn's recommended secure
persistence), which builds only the types in :data:`TRUSTED_TYPES` and never
runs code from the file, unlike a pickle; the card's checksum only detects a
damaged file, it proves nothing about who wrote it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.engine.heuristics import polish, repair, take_disk_points
from ceilgrid_assets.core.engine.models import SAFETY_NET, PlacementModel
from ceilgrid_assets.core.engine.optimiser import BUDGET, TOO_LARGE, solve_stage
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, Profile, get_profile
from ceilgrid_assets.core.engine.stages import (
    StageContext,
    disk_counts,
    disk_stencil,
    stencil_window,
)
from ceilgrid_assets.core.learning.corpus import CorpusSpec, corpus_hash, generate_rooms
from ceilgrid_assets.core.learning.features import FEATURES, cell_features, stage_spacing_m
from ceilgrid_assets.core.learning.labels import (
    DEFAULT_LABEL_TIME_S,
    RoomLabels,
    StageLabel,
    label_rooms,
    labels_table,
)

#: 2: the estimator is a skops file (format 1 was a joblib pickle, no longer loaded).
CARD_FORMAT = 2
MODEL_SUFFIX = ".skops"
#: A card's ``model_file``: a bare file name in the card's folder, never a path.
_MODEL_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.skops")
#: Types a model file may contain beyond those skops trusts by default (numpy
#: arrays, builtins, scikit-learn estimators): exactly what a fitted
#: HistGradientBoostingClassifier holds, as ``skops.io.get_untrusted_types``
#: lists them. ``functools.partial`` only ever wraps a trusted function here:
#: skops checks every nested object against this list too.
TRUSTED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)
MODEL_NAME = "learned"
#: Suppression radius = factor x stage spacing; the factor is tuned among these.
SPACING_FACTORS: tuple[float, ...] = (0.6, 0.8, 0.9, 1.0, 1.1)
#: Weight of the remaining coverage gain in the decoder's merit; tuned among these.
GAIN_POWERS: tuple[float, ...] = (0.0, 1.0, 4.0)
#: Shortlist sizes (x devices) for the exact refinement; 0 switches it off. Tuned per component.
SHORTLISTS: tuple[float, ...] = (0.0, 3.0, 6.0, 10.0)
#: Branch-and-bound nodes of the restricted exact solve: the deterministic bound on
#: its work (when they run out, its best cover so far is used).
REFINE_NODE_LIMIT = 500
#: Wall-clock safety net of that solve; a stage it stops is noted, so the room is
#: marked in the output (that outcome depends on machine speed).
REFINE_SAFETY_NET_S = 10.0
VALIDATION_SHARE = 0.2
#: Negative rows kept per room and stage, at most (positives are all kept): bounds training time.
MAX_NEGATIVES_PER_STAGE = 4000


class ModelCardError(InputError):
    """A model file that this installation must not load; ``str`` is one line.

    An :class:`InputError`, so the command line reports it on one line (exit 2).
    """


@dataclass
class LearnedModel:
    """A :class:`PlacementModel` for one component backed by a fitted classifier."""

    component: str
    estimator: HistGradientBoostingClassifier
    spacing_factor: float = 0.8
    gain_power: float = 1.0
    shortlist: float = 0.0
    card: dict[str, Any] = field(default_factory=dict)
    name: str = MODEL_NAME
    exact: bool = False  # a fast proposer: runs before the engine's exact models

    @property
    def components(self) -> tuple[str, ...]:
        return (self.component,)

    def scores(self, context: StageContext) -> tuple[np.ndarray, np.ndarray]:
        """(flat indices of allowed cells, probability the optimiser would pick each)."""
        table = cell_features(context)
        if table.empty:
            return table.index.to_numpy(), np.empty(0)
        with threadpool_limits(limits=1):
            probability = self.estimator.predict_proba(table)[:, 1]
        return table.index.to_numpy(), probability

    def place(self, context: StageContext) -> np.ndarray | None:
        if not _needs_devices(context):
            return np.zeros_like(context.allowed)
        flat, probability = self.scores(context)
        decoded = decode(context, flat, probability, self.spacing_factor, self.gain_power)
        return finish(context, flat, probability, decoded, self.shortlist)


def _needs_devices(context: StageContext) -> bool:
    return int(context.existing.sum()) < context.required_count or bool(context.open_points.any())


def decode(
    context: StageContext,
    flat: np.ndarray,
    probability: np.ndarray,
    spacing_factor: float,
    gain_power: float = 1.0,
) -> np.ndarray:
    """Spacing-aware selection: best cell that helps, suppress its neighbourhood, repeat.

    While points are uncovered, a cell's merit is its probability times the
    uncovered points it reaches relative to the best cell's, to the power
    ``gain_power`` (0: the model's ranking alone; large: greedy cover with the
    model breaking ties); once all are covered, the probability alone fills
    the count. Loops once per placed device (not per cell); each step touches
    only the window around the pick. When suppression leaves nothing eligible
    before coverage and count hold, selection goes on without it; the engine's
    repair finishes anything still missing (cells no device may take).
    """
    room = context.room
    height, width = room.cells.shape
    t = room.tile_size_m
    priority = np.full(height * width, -np.inf)
    priority[flat] = probability
    priority = priority.reshape(height, width)
    placed = np.zeros((height, width), dtype=bool)
    need = context.required_count - int(context.existing.sum())
    uncovered = context.open_points.copy()
    disk = context.disk
    gain = disk_counts(uncovered, disk) if disk is not None else None
    suppress = disk_stencil(spacing_factor * stage_spacing_m(context), t)
    unsuppressed = priority.copy()
    relaxed = False
    while need > 0 or uncovered.any():
        if gain is not None and uncovered.any():
            useful = gain > 0
            eligible = np.full_like(priority, -np.inf)
            eligible[useful] = priority[useful] * (gain[useful] / gain.max()) ** gain_power
        else:
            eligible = priority
        pick = int(np.argmax(eligible))
        if not np.isfinite(eligible.flat[pick]):
            if relaxed:
                break
            # Suppression left gaps (odd shapes): finish with the same merit, unsuppressed.
            priority = np.where(placed, -np.inf, unsuppressed)
            relaxed = True
            continue
        y, x = divmod(pick, width)
        placed[y, x] = True
        need -= 1
        if relaxed:
            priority[y, x] = -np.inf
        else:
            _stamp(priority, suppress, y, x, -np.inf)
        if gain is not None:
            take_disk_points(uncovered, gain, disk, y, x)
    return placed


def finish(
    context: StageContext,
    flat: np.ndarray,
    probability: np.ndarray,
    decoded: np.ndarray,
    shortlist: float,
) -> np.ndarray:
    """The decoded layout polished by the engine's local moves, then refined exactly.

    Decoding places devices one at a time in the model's order, so large rooms
    end with devices a move or a removal makes redundant (:func:`polish`, as
    the staggered model does); with a ``shortlist``, :func:`refine` follows.
    """
    proposal = polish(context, decoded)
    if shortlist <= 0:
        return proposal
    return refine(context, flat, probability, proposal, shortlist)


def refine(
    context: StageContext,
    flat: np.ndarray,
    probability: np.ndarray,
    proposal: np.ndarray,
    shortlist: float,
    node_limit: int = REFINE_NODE_LIMIT,
) -> np.ndarray:
    """Exact set cover restricted to the model's shortlist: its best-scoring cells.

    The shortlist holds ``shortlist`` x (devices of the repaired proposal) cells
    plus the repaired proposal itself, so a solution always exists (skipped when
    the repaired proposal already meets the stage's lower bound); restricted
    to so few columns HiGHS finishes in milliseconds where the full programme
    takes seconds. Its work is bounded by ``node_limit`` (the best cover found
    within it is used), never by the clock, so the result is the same on every
    machine; a solve the safety net stops is noted and the proposal kept.
    """
    base = repair(context, proposal & context.allowed)
    if context.is_optimal(int((context.existing | base).sum())):
        return proposal  # provably optimal already: nothing to refine
    ranked = flat[np.argsort(-probability, kind="stable")]
    candidates = base.copy()
    candidates.flat[ranked[: int(np.ceil(shortlist * max(int(base.sum()), 1)))]] = True
    candidates &= context.allowed
    result = solve_stage(replace(context, allowed=candidates), REFINE_SAFETY_NET_S, node_limit)
    if result.status == "limit":
        context.notes[MODEL_NAME] = (
            f"{SAFETY_NET} ({REFINE_SAFETY_NET_S:g} s) in the refinement before its node budget"
        )
    elif result.status in ("optimal", BUDGET, TOO_LARGE) and result.added is not None:
        return result.added if result.added.sum() <= base.sum() else proposal
    return proposal


def _stamp(grid: np.ndarray, stencil: np.ndarray, y: int, x: int, value: Any) -> None:
    """Set ``grid`` to ``value`` where the stencil centred at (y, x) holds."""
    rows, cols, s_rows, s_cols = stencil_window(grid.shape, y, x, stencil.shape[0] // 2)
    view = grid[rows, cols]
    view[stencil[s_rows, s_cols]] = value


# --- training ---------------------------------------------------------------------------


@dataclass
class TrainingTable:
    """Feature rows of one component with targets and the room each row came from."""

    component: str
    features: pd.DataFrame
    target: np.ndarray
    room: np.ndarray  # room position in the label list, for grouped splits
    stages: list[StageLabel]
    stage_rooms: list[int]  # room position of each stage


def training_table(labels: Sequence[RoomLabels], component: str, seed: int = 0) -> TrainingTable:
    """Rows from every usable label of ``component``; negatives subsampled per stage."""
    rng = np.random.default_rng(seed)
    frames, targets, rooms, stages, stage_rooms = [], [], [], [], []
    for position, room in enumerate(labels):
        for stage in room.stages:
            if stage.component != component or not stage.usable:
                continue
            frame = cell_features(stage.context)
            if frame.empty:
                continue
            target = stage.added.ravel()[frame.index.to_numpy()]
            negatives = np.flatnonzero(~target)
            if negatives.size > MAX_NEGATIVES_PER_STAGE:
                keep = np.sort(
                    np.concatenate(
                        [
                            np.flatnonzero(target),
                            rng.choice(negatives, MAX_NEGATIVES_PER_STAGE, replace=False),
                        ]
                    )
                )
                frame, target = frame.iloc[keep], target[keep]
            frames.append(frame)
            targets.append(target)
            rooms.append(np.full(target.size, position))
            stages.append(stage)
            stage_rooms.append(position)
    if not frames:
        return TrainingTable(
            component,
            pd.DataFrame(columns=list(FEATURES), dtype=np.float32),
            np.zeros(0, dtype=bool),
            np.zeros(0, dtype=int),
            [],
            [],
        )
    return TrainingTable(
        component,
        pd.concat(frames),
        np.concatenate(targets),
        np.concatenate(rooms),
        stages,
        stage_rooms,
    )


def new_estimator(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features=[FEATURES.index("room_type")],
        random_state=seed,
    )


def fit_model(
    labels: Sequence[RoomLabels],
    component: str,
    seed: int = 0,
    n_threads: int = 2,
    spacing_factors: Sequence[float] = SPACING_FACTORS,
    gain_powers: Sequence[float] = GAIN_POWERS,
    shortlists: Sequence[float] = SHORTLISTS,
) -> LearnedModel:
    """Fit on most rooms, tune the decoder on the held-out rest; metrics go to the card.

    The model is not refitted on the held-out rooms, so the card's validation
    metrics describe exactly the model that is saved.
    """
    started = time.perf_counter()
    table = training_table(labels, component, seed)
    if table.target.sum() == 0:
        raise ValueError(f"no usable {component} labels: label more rooms or raise the time limit")
    held_out = set(_held_out_rooms(len(labels), seed).tolist())
    train_rows = ~np.isin(table.room, list(held_out))
    estimator = new_estimator(seed)
    with threadpool_limits(limits=n_threads):
        estimator.fit(table.features[train_rows], table.target[train_rows])
    model = LearnedModel(component, estimator)
    validation = [
        stage
        for stage, position in zip(table.stages, table.stage_rooms, strict=True)
        if position in held_out
    ]
    scored = [(stage, *model.scores(stage.context)) for stage in validation]
    sweep = {
        (factor, power, 0.0): _layout_stats(scored, factor, power, 0.0)
        for factor in spacing_factors
        for power in gain_powers
    }
    factor, power, _ = min(
        sweep,
        key=lambda key: (
            sweep[key]["devices_vs_optimiser"],
            -sweep[key]["compliant_before_repair"],
            key,
        ),
    )
    sweep.update(
        {
            (factor, power, size): _layout_stats(scored, factor, power, size)
            for size in shortlists
            if size > 0
        }
    )
    best = min(
        ((factor, power, size) for size in {0.0, *shortlists}),
        key=lambda key: (sweep[key]["devices_vs_optimiser"], key[2]),
    )
    model.spacing_factor, model.gain_power, model.shortlist = best
    target_val = table.target[~train_rows]
    probability = np.concatenate([p for _, _, p in scored]) if scored else np.empty(0)
    flat_targets = (
        np.concatenate([stage.added.ravel()[flat] for stage, flat, _ in scored])
        if scored
        else np.empty(0, dtype=bool)
    )
    metrics = {
        "rows": int(table.target.size),
        "positives": int(table.target.sum()),
        "train_rows": int(train_rows.sum()),
        "stages": len(table.stages),
        "validation_stages": len(validation),
        "validation_positives": int(target_val.sum()),
        "validation_average_precision": (
            round(float(average_precision_score(flat_targets, probability)), 4)
            if flat_targets.any()
            else None
        ),
        "decoder_sweep": {
            "/".join(map(str, key)): stats["devices_vs_optimiser"] for key, stats in sweep.items()
        },
        **{f"validation_{key}": value for key, value in sweep[best].items()},
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    model.card = {
        "format": CARD_FORMAT,
        "component": component,
        "name": MODEL_NAME,
        "estimator": type(estimator).__name__,
        "sklearn_version": sklearn.__version__,
        "features": list(FEATURES),
        "seed": seed,
        "decoder": {"spacing_factor": best[0], "gain_power": best[1], "shortlist": best[2]},
        "metrics": metrics,
    }
    return model


def _held_out_rooms(n_rooms: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 1])
    return np.sort(rng.choice(n_rooms, max(1, round(VALIDATION_SHARE * n_rooms)), replace=False))


def _layout_stats(
    scored: Sequence[tuple[StageLabel, np.ndarray, np.ndarray]],
    factor: float,
    power: float,
    shortlist: float,
) -> dict[str, float]:
    """Decode, finish and repair on labelled contexts: devices against the optimiser,
    the decoded layout's compliance before any repair, seconds per stage."""
    ours = optimum = before = 0
    seconds = 0.0
    for stage, flat, probability in scored:
        context = stage.context
        started = time.perf_counter()
        decoded = decode(context, flat, probability, factor, power)
        proposal = finish(context, flat, probability, decoded, shortlist)
        seconds += time.perf_counter() - started
        before += not context.violations(decoded & context.allowed)
        ours += int((context.existing | repair(context, proposal & context.allowed)).sum())
        optimum += int((context.existing | stage.added).sum())
    count = max(len(scored), 1)
    return {
        "devices_vs_optimiser": round(ours / optimum, 4) if optimum else 1.0,
        "compliant_before_repair": round(before / count, 4),
        "decode_seconds_per_stage": round(seconds / count, 4),
    }


# --- persistence ------------------------------------------------------------------------


def save_model(model: LearnedModel, directory: str | Path) -> Path:
    """Write ``<component>.skops`` and its card ``<component>.json``; returns the card path.

    A file that would need a type outside :data:`TRUSTED_TYPES` to load is
    refused here, at training time, rather than by every later load.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / f"{model.component}{MODEL_SUFFIX}"
    skops.io.dump(model.estimator, model_path)
    untrusted = set(skops.io.get_untrusted_types(file=model_path)) - set(TRUSTED_TYPES)
    if untrusted:
        model_path.unlink()
        raise ModelCardError(
            f"model needs types outside the trusted list: {', '.join(sorted(untrusted))}",
            source=str(model_path),
        )
    card = {**model.card, "model_file": model_path.name, "sha256": _sha256(model_path)}
    card_path = directory / f"{model.component}.json"
    card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return card_path


def load_model(card_path: str | Path) -> LearnedModel:
    """Load one model after checking its card; a mismatch raises :class:`ModelCardError`."""
    card_path = Path(card_path)

    def refuse(reason: str) -> ModelCardError:
        return ModelCardError(
            f"{reason}; retrain with `ceilgrid train --out {card_path.parent}`",
            source=str(card_path),
        )

    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise refuse(f"unreadable model card ({exc})") from None
    if card.get("format") != CARD_FORMAT:
        raise refuse(f"card format {card.get('format')!r}, expected {CARD_FORMAT}")
    if card.get("sklearn_version") != sklearn.__version__:
        raise refuse(
            f"model trained with scikit-learn {card.get('sklearn_version')}, this "
            f"installation has {sklearn.__version__}: refusing to load it"
        )
    if card.get("features") != list(FEATURES):
        raise refuse("feature list differs from this version of ceilgrid")
    name = card.get("model_file")
    if not isinstance(name, str) or not _MODEL_FILE.fullmatch(name):
        raise refuse(f"model_file {name!r} must be a bare *{MODEL_SUFFIX} file name")
    model_path = card_path.parent / name
    if not model_path.is_file() or _sha256(model_path) != card.get("sha256"):
        raise refuse(f"{model_path.name} is missing or does not match the card's checksum")
    try:
        estimator = skops.io.load(model_path, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # untrusted types, or not a skops file at all
        reason = " ".join(str(exc).split())[:300]
        raise refuse(f"{model_path.name} cannot be loaded safely ({reason})") from None
    if not isinstance(estimator, HistGradientBoostingClassifier):
        raise refuse(
            f"{model_path.name} holds a {type(estimator).__name__}, "
            "expected HistGradientBoostingClassifier"
        )
    decoder = card["decoder"]
    return LearnedModel(
        card["component"],
        estimator,
        float(decoder["spacing_factor"]),
        float(decoder["gain_power"]),
        float(decoder["shortlist"]),
        card,
    )


def load_models(directory: str | Path) -> list[PlacementModel]:
    """Every model with a card in ``directory`` (series order); none found is an error."""
    directory = Path(directory)
    cards = [directory / f"{component}.json" for component in DEVICE_COMPONENTS]
    present = [card for card in cards if card.is_file()]
    if not present:
        raise ModelCardError(
            f"no model cards found; train with `ceilgrid train --out {directory}`",
            source=str(directory),
        )
    return [load_model(card) for card in present]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the whole training step ------------------------------------------------------------

DEFAULT_TRAIN_ROOMS = 300
DEFAULT_TRAIN_SEED = 2026


@dataclass
class TrainingRun:
    models: list[LearnedModel]
    labels: pd.DataFrame
    seconds: dict[str, float]


def train_models(
    spec: CorpusSpec,
    profile: Profile | str = DEFAULT_PROFILE,
    label_time_s: float = DEFAULT_LABEL_TIME_S,
    n_jobs: int = 2,
    components: Sequence[str] = DEVICE_COMPONENTS,
) -> TrainingRun:
    """Generate the corpus, label it, fit one model per component; cards name the corpus."""
    profile = get_profile(profile)
    clock = time.perf_counter()
    rooms = generate_rooms(spec, profile)
    digest = corpus_hash(rooms)
    labelled = label_rooms(rooms, profile, label_time_s, n_jobs=n_jobs)
    seconds = {"label": time.perf_counter() - clock}
    table = labels_table(labelled)
    corpus = {
        "seed": spec.seed,
        "rooms": spec.n_rooms,
        "sha256": digest,
        "profile": profile.name,
        "label_time_limit_s": label_time_s,
        "stages_timed_out": int((table["status"] == "limit").sum()),
        "rooms_timed_out": int(sum(room.timed_out for room in labelled)),
    }
    models = []
    for component in components:
        clock = time.perf_counter()
        model = fit_model(labelled, component, seed=spec.seed, n_threads=n_jobs)
        model.card["corpus"] = corpus
        models.append(model)
        seconds[f"fit_{component}"] = time.perf_counter() - clock
    return TrainingRun(models, table, seconds)
