"""Learned placement models at layout time: scoring, decoding, and the model files.

A model (trained by :mod:`training`) is a boosted tree ensemble per component.
:class:`LearnedModel.place` scores every allowed cell in one ONNX Runtime call
and decodes the scores into a layout with spacing-aware selection: take the
best-scoring cell that still helps (it reaches an uncovered point, or the count
is not met), suppress its neighbours within a spacing derived from the stage,
repeat; the engine's repair then guarantees the hard rules.

A model is saved as ``<component>.onnx`` beside ``<component>.json``, its card
(feature list, training corpus seed and hash, decoder setting, metrics, file
checksum, the scikit-learn that trained it). The ONNX file is data: a graph of
two standard operators (the tree ensemble, an addition) that ONNX Runtime
evaluates; nothing in it is code, unlike a pickle. Reading it needs neither
scikit-learn nor pandas, so a model set loads in milliseconds. Loading refuses
a card of another format or feature list, or a graph whose input and output
are not the ones :func:`training.ensemble_graph` writes, with a one-line error;
the card's checksum only detects a damaged file, it proves nothing about who
wrote it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from scipy import ndimage

from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.engine.heuristics import (
    best_staggered,
    polish,
    repair,
    staggered_layouts,
    take_disk_points,
)
from ceilgrid_assets.core.engine.models import SAFETY_NET, PlacementModel, StaggeredModel
from ceilgrid_assets.core.engine.optimiser import BUDGET, TOO_LARGE, solve_stage
from ceilgrid_assets.core.engine.stages import (
    StageContext,
    disk_counts,
    disk_stencil,
    stencil_window,
)
from ceilgrid_assets.core.learning.features import FEATURES, feature_matrix, stage_spacing_m

#: 3: the model is an ONNX tree ensemble (2 was a skops file, 1 a joblib pickle;
#: neither is loaded any more).
CARD_FORMAT = 3
MODEL_SUFFIX = ".onnx"
#: A card's ``model_file``: a bare file name in the card's folder, never a path.
_MODEL_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.onnx")
#: The graph's input (cells x features, float64) and output (raw score, cells x 1).
GRAPH_INPUT, GRAPH_OUTPUT = "features", "raw_score"
MODEL_NAME = "learned"
#: Branch-and-bound nodes of the restricted exact solve: the deterministic bound on
#: its work (when they run out, its best cover so far is used).
REFINE_NODE_LIMIT = 500
#: Solves of the refinement's neighbourhood search, and how far (tiles) around the
#: best cover so far the next solve may move devices.
REFINE_ROUNDS = 3
REFINE_REACH = 2
#: ... for covers of at most this many devices: the shortlist grows by a neighbourhood
#: per device, and around a hall's fifty diffusers each solve takes seconds for a
#: device or two in a hundred, where the hall's twenty detectors gain several per cent.
REFINE_SEARCH_MAX_DEVICES = 30
#: Wall-clock safety net of those solves together; a stage it stops is noted, so the
#: room is marked in the output (that outcome depends on machine speed).
REFINE_SAFETY_NET_S = 10.0


class ModelCardError(InputError):
    """A model file that this installation must not load; ``str`` is one line.

    An :class:`InputError`, so the command line reports it on one line (exit 2).
    """


class TreeEnsemble:
    """A binary boosted tree ensemble as an ONNX graph, scored by ONNX Runtime.

    The graph sums the trees' leaves and the baseline in float64, as
    scikit-learn does (the scores agree to rounding); the logistic link is
    applied here. One thread: a score never depends on the machine's cores.
    Pickles as its graph bytes, so models reach worker processes.
    """

    def __init__(self, graph: bytes) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        signature = (
            [(node.name, node.type, node.shape[1:]) for node in session.get_inputs()],
            [(node.name, node.type, node.shape[1:]) for node in session.get_outputs()],
        )
        expected = (
            [(GRAPH_INPUT, "tensor(double)", [len(FEATURES)])],
            [(GRAPH_OUTPUT, "tensor(double)", [1])],
        )
        if signature != expected:
            raise ValueError(f"graph takes and gives {signature}, expected {expected}")
        self.graph = graph
        self._session = session

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(class 1) of every row of a (rows x :data:`FEATURES`) matrix."""
        inputs = {GRAPH_INPUT: np.asarray(features, dtype=np.float64)}
        raw = self._session.run([GRAPH_OUTPUT], inputs)[0][:, 0]
        return 1.0 / (1.0 + np.exp(-raw))

    def __getstate__(self) -> bytes:
        return self.graph

    def __setstate__(self, graph: bytes) -> None:
        self.__init__(graph)  # type: ignore[misc]


@dataclass
class LearnedModel:
    """A :class:`PlacementModel` for one component backed by a boosted tree ensemble."""

    component: str
    ensemble: TreeEnsemble
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
        flat, matrix = feature_matrix(context)
        if flat.size == 0:
            return flat, np.empty(0)
        return flat, self.ensemble.probability(matrix)

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
    """Exact set cover restricted to the model's shortlist, then around its answer.

    The shortlist holds ``shortlist`` x (devices of the repaired proposal) of
    the model's best-scoring cells plus the repaired proposal itself, so a
    solution always exists (skipped when the repaired proposal already meets
    the stage's lower bound); restricted to so few columns HiGHS finishes in
    milliseconds where the full programme takes seconds. A neighbourhood
    search follows: the cells within :data:`REFINE_REACH` tiles of the best
    cover join the shortlist and it is solved again, up to
    :data:`REFINE_ROUNDS` solves, for covers of at most
    :data:`REFINE_SEARCH_MAX_DEVICES` devices (a device one or two tiles off
    is what the model's ranking most often misses). Each solve's work is bounded by
    ``node_limit`` (the best cover found within it is used), never by the
    clock, so the result is the same on every machine; a solve the safety net
    stops ends the search, is noted, and the best cover so far is kept.
    """
    base = repair(context, proposal & context.allowed)
    if context.is_optimal(int((context.existing | base).sum())):
        return proposal  # provably optimal already: nothing to refine
    ranked = flat[np.argsort(-probability, kind="stable")]
    candidates = base.copy()
    candidates.flat[ranked[: int(np.ceil(shortlist * max(int(base.sum()), 1)))]] = True
    best, fewest = proposal, int(base.sum())
    pattern = staggered_candidates(context, fewest)
    if pattern is not None:
        candidates |= pattern
        if int(pattern.sum()) < fewest:
            best, fewest = pattern, int(pattern.sum())
    candidates &= context.allowed
    reach = np.ones((2 * REFINE_REACH + 1,) * 2, dtype=bool)
    deadline = time.perf_counter() + REFINE_SAFETY_NET_S
    for solves in range(1, REFINE_ROUNDS + 1):
        result = solve_stage(
            replace(context, allowed=candidates), deadline - time.perf_counter(), node_limit
        )
        if result.status == "limit":
            context.notes[MODEL_NAME] = (
                f"{SAFETY_NET} ({REFINE_SAFETY_NET_S:g} s) in the refinement before its node budget"
            )
            break
        if result.status not in ("optimal", BUDGET, TOO_LARGE) or result.added is None:
            break
        if int(result.added.sum()) <= fewest:
            best, fewest = result.added, int(result.added.sum())
        if solves == REFINE_ROUNDS or fewest > REFINE_SEARCH_MAX_DEVICES:
            break
        grown = candidates | (ndimage.binary_dilation(best, reach) & context.allowed)
        if not (grown & ~candidates).any():
            break
        candidates = grown
    return best


def staggered_candidates(context: StageContext, added: int) -> np.ndarray | None:
    """The engine's best staggered layout that ties or beats ``added`` new devices, or None.

    Where coverage sets the count (the staggered model's components), a
    hexagonal array is often within a device of the minimum in large open
    rooms, where the model's one-at-a-time ranking leaves a device or two too
    many; its cells join the refinement's shortlist, so the restricted solve
    can take the better of both or mix them. Not on stages the staggered
    model leaves alone for their size.
    """
    usable = int(context.room.usable.sum())
    if context.component not in StaggeredModel.components or usable > StaggeredModel.max_cells:
        return None
    in_hand = max(int(context.existing.sum()) + added, context.required_count)
    return best_staggered(context, staggered_layouts(context), in_hand + 1)


def _stamp(grid: np.ndarray, stencil: np.ndarray, y: int, x: int, value: Any) -> None:
    """Set ``grid`` to ``value`` where the stencil centred at (y, x) holds."""
    rows, cols, s_rows, s_cols = stencil_window(grid.shape, y, x, stencil.shape[0] // 2)
    view = grid[rows, cols]
    view[stencil[s_rows, s_cols]] = value


def save_model(model: LearnedModel, directory: str | Path) -> Path:
    """Write ``<component>.onnx`` and its card ``<component>.json``; returns the card path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / f"{model.component}{MODEL_SUFFIX}"
    model_path.write_bytes(model.ensemble.graph)
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
    if card.get("features") != list(FEATURES):
        raise refuse("feature list differs from this version of ceilgrid")
    name = card.get("model_file")
    if not isinstance(name, str) or not _MODEL_FILE.fullmatch(name):
        raise refuse(f"model_file {name!r} must be a bare *{MODEL_SUFFIX} file name")
    model_path = card_path.parent / name
    if not model_path.is_file() or _sha256(model_path) != card.get("sha256"):
        raise refuse(f"{model_path.name} is missing or does not match the card's checksum")
    try:
        ensemble = TreeEnsemble(model_path.read_bytes())
    except Exception as exc:  # not an ONNX graph, or not one this module wrote
        reason = " ".join(str(exc).split())[:300]
        raise refuse(f"{model_path.name} is not a ceilgrid tree ensemble ({reason})") from None
    decoder = card["decoder"]
    return LearnedModel(
        card["component"],
        ensemble,
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
