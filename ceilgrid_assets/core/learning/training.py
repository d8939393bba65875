"""Training the learned models: feature tables, fitting, decoder tuning, the ONNX graph.

Every usable optimiser label (see :mod:`labels`) becomes feature rows
(:func:`features.cell_features`) with target 1 on the cells the optimiser chose;
scikit-learn fits a ``HistGradientBoostingClassifier`` per component, and
:func:`ensemble_graph` writes its trees as an ONNX graph, which is what
:mod:`learned` serves. The decoder's suppression factor, gain power and
shortlist are tuned on the 20 % of rooms held out from fitting, scored by that
very graph, so the card's metrics describe the saved model. This module is
the training stack (scikit-learn, pandas, onnx); serving never imports it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import pandas as pd
import sklearn
from onnx import TensorProto, helper, numpy_helper
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.engine.heuristics import repair
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, Profile, get_profile
from ceilgrid_assets.core.learning.corpus import CorpusSpec, corpus_hash, generate_rooms
from ceilgrid_assets.core.learning.features import FEATURES, cell_features
from ceilgrid_assets.core.learning.labels import (
    DEFAULT_LABEL_TIME_S,
    RoomLabels,
    StageLabel,
    label_rooms,
    labels_table,
)
from ceilgrid_assets.core.learning.learned import (
    CARD_FORMAT,
    GRAPH_INPUT,
    GRAPH_OUTPUT,
    MODEL_NAME,
    LearnedModel,
    TreeEnsemble,
    decode,
    finish,
)

#: Operator sets of a written graph: ai.onnx.ml 5 has ``TreeEnsemble``, which keeps
#: the input's float64 through the sum (version 3's regressor rounds to float32).
ONNX_OPSETS = {"": 21, "ai.onnx.ml": 5}
ONNX_IR_VERSION = 10

#: Suppression radius = factor x stage spacing; the factor is tuned among these.
SPACING_FACTORS: tuple[float, ...] = (0.6, 0.8, 0.9, 1.0, 1.1)
#: Weight of the remaining coverage gain in the decoder's merit; tuned among these.
GAIN_POWERS: tuple[float, ...] = (0.0, 1.0, 4.0)
#: Shortlist sizes (x devices) for the exact refinement; 0 switches it off. Tuned per component.
SHORTLISTS: tuple[float, ...] = (0.0, 3.0, 6.0, 10.0)
#: Shortlists whose validation devices/optimiser is within this of the best are tied.
SHORTLIST_TIE = 0.005

VALIDATION_SHARE = 0.2
#: Negative rows kept per room and stage, at most (positives are all kept): bounds training time.
MAX_NEGATIVES_PER_STAGE = 4000


def ensemble_graph(estimator: HistGradientBoostingClassifier) -> bytes:
    """The ONNX graph of a fitted binary ``HistGradientBoostingClassifier`` on
    numeric features: its trees in one ``TreeEnsemble`` plus the baseline.

    A tree that is a single leaf only shifts the baseline (an ensemble of such
    trees alone becomes one split that adds nothing either way). Categorical splits
    have no place here (the features are all numeric; ``room_type`` is its index).
    """
    baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])
    features, splits, missing_left, roots = [], [], [], []
    true_ids, true_leaf, false_ids, false_leaf, leaf_values = [], [], [], [], []
    for (predictor,) in estimator._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits cannot be written; encode the feature as a number")
        leaf = nodes["is_leaf"].astype(bool)
        if leaf[0]:
            baseline += float(nodes["value"][0])
            continue
        inner, leaves = np.flatnonzero(~leaf), np.flatnonzero(leaf)
        position = np.zeros(len(nodes), dtype=np.int64)
        position[inner] = len(features) + np.arange(inner.size)
        position[leaves] = len(leaf_values) + np.arange(leaves.size)
        roots.append(int(position[0]))
        left, right = nodes["left"][inner], nodes["right"][inner]
        features += nodes["feature_idx"][inner].tolist()
        splits += nodes["num_threshold"][inner].tolist()
        missing_left += nodes["missing_go_to_left"][inner].astype(int).tolist()
        true_ids += position[left].tolist()
        true_leaf += leaf[left].astype(int).tolist()
        false_ids += position[right].tolist()
        false_leaf += leaf[right].astype(int).tolist()
        leaf_values += nodes["value"][leaves].tolist()
    if not roots:  # every tree a leaf: one split whose both sides add nothing
        roots, features, splits, missing_left = [0], [0], [0.0], [0]
        true_ids, true_leaf, false_ids, false_leaf, leaf_values = [0], [1], [0], [1], [0.0]
    ensemble = helper.make_node(
        "TreeEnsemble",
        [GRAPH_INPUT],
        ["trees"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function=1,  # sum
        post_transform=0,  # none: the logistic link is applied by the reader
        tree_roots=roots,
        nodes_featureids=features,
        nodes_modes=numpy_helper.from_array(np.zeros(len(features), dtype=np.uint8)),  # <=
        nodes_splits=numpy_helper.from_array(np.asarray(splits, dtype=np.float64)),
        nodes_truenodeids=true_ids,
        nodes_trueleafs=true_leaf,
        nodes_falsenodeids=false_ids,
        nodes_falseleafs=false_leaf,
        nodes_missing_value_tracks_true=missing_left,
        leaf_targetids=[0] * len(leaf_values),
        leaf_weights=numpy_helper.from_array(np.asarray(leaf_values, dtype=np.float64)),
    )
    shift = helper.make_node("Add", ["trees", "baseline"], [GRAPH_OUTPUT])
    graph = helper.make_graph(
        [ensemble, shift],
        "ceilgrid-learned",
        [helper.make_tensor_value_info(GRAPH_INPUT, TensorProto.DOUBLE, [None, len(FEATURES)])],
        [helper.make_tensor_value_info(GRAPH_OUTPUT, TensorProto.DOUBLE, [None, 1])],
        initializer=[numpy_helper.from_array(np.array([baseline]), name="baseline")],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, v) for domain, v in ONNX_OPSETS.items()],
        ir_version=ONNX_IR_VERSION,
        producer_name="ceilgrid",
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


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
    """The classifier to fit; every feature numeric, so :func:`ensemble_graph` can write it."""
    return HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features=None,
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
    # The decoder is tuned on the graph that is saved, not on the estimator.
    model = LearnedModel(component, TreeEnsemble(ensemble_graph(estimator)))
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
    # Near-ties go to the longer shortlist: validation rooms are mostly small, where
    # shortlists differ by a device or two either way, and the rare large room is
    # where a longer one pays (held-out rooms of at least 40x40 tiles: detectors 1.08
    # of the optimiser at 3 x devices, 1.03 at 10; diffusers 3 % fewer), at a cost
    # bounded by the refinement's node budget.
    sizes = sorted({0.0, *shortlists})
    fewest = min(sweep[(factor, power, size)]["devices_vs_optimiser"] for size in sizes)
    best = max(
        (factor, power, size)
        for size in sizes
        if sweep[(factor, power, size)]["devices_vs_optimiser"] <= fewest + SHORTLIST_TIE
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
