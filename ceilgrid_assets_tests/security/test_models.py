"""Only model files written here load: never implicitly from the working folder, never a pickle.

A planted model store (card + pickle whose loading would create a marker file)
sits in the working folder of a real ``ceilgrid layout`` process; the marker
must never appear, whether the store is left implicit or named explicitly.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import sklearn
from helpers import building_document, room_document
from onnx import TensorProto, helper

from ceilgrid_assets.core.learning.features import FEATURES
from ceilgrid_assets.core.learning.learned import (
    CARD_FORMAT,
    GRAPH_INPUT,
    GRAPH_OUTPUT,
    LearnedModel,
    ModelCardError,
    TreeEnsemble,
    load_models,
    save_model,
)
from ceilgrid_assets.core.learning.training import ensemble_graph, new_estimator

CEILGRID = str(Path(sys.executable).parent / "ceilgrid")


class _Payload:
    """Unpickling this creates ``marker``: stands for any code a pickle may run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _card(model_file: str, data: bytes) -> dict:
    return {
        "format": CARD_FORMAT,
        "component": "light",
        "sklearn_version": sklearn.__version__,
        "features": list(FEATURES),
        "decoder": {"spacing_factor": 0.8, "gain_power": 1.0, "shortlist": 0.0},
        "model_file": model_file,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _plant(directory: Path, marker: Path, model_file: str, card_format: int = CARD_FORMAT) -> None:
    """A store whose card matches its (pickle) file byte for byte: the checksum proves nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    data = pickle.dumps(_Payload(marker))
    (directory / Path(model_file).name).write_bytes(data)
    card = {**_card(model_file, data), "format": card_format}
    (directory / "light.json").write_text(json.dumps(card))


def _layout(cwd: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    (cwd / "room.json").write_text(json.dumps(building_document([room_document((6, 6))], "b-1")))
    environment = {k: v for k, v in os.environ.items() if k != "CEILGRID_MODELS_DIR"}
    return subprocess.run(
        [CEILGRID, "layout", "room.json", "-o", "out.json", *extra],
        cwd=cwd,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("card_format", [1, CARD_FORMAT])
def test_planted_store_in_the_working_folder_is_never_loaded(tmp_path, card_format):
    marker = tmp_path / "PWNED"
    _plant(tmp_path / ".ceilgrid" / "models", marker, "light.joblib", card_format)
    done = _layout(tmp_path)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    assert "learned" not in (tmp_path / "out.json").read_text()


def test_planted_pickle_named_explicitly_is_refused_unrun(tmp_path):
    marker = tmp_path / "PWNED"
    store = tmp_path / "store"
    # Named like a model file, checksum matching: still a pickle, still refused.
    _plant(store, marker, "light.onnx")
    for extra, env in ((("--models", str(store)), None), ((), {"CEILGRID_MODELS_DIR": str(store)})):
        done = _layout(tmp_path, *extra, env=env)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "light.json" in lines[0]
        assert "is not a ceilgrid tree ensemble" in lines[0]
        assert "Traceback" not in done.stderr
        assert not marker.exists()


@pytest.mark.parametrize(
    "model_file",
    ["../light.onnx", "/tmp/light.onnx", "sub/light.onnx", "light.skops", "light.joblib", ""],
)
def test_model_file_must_be_a_bare_onnx_name(tmp_path, model_file):
    marker = tmp_path / "PWNED"
    store = tmp_path / "store"
    store.mkdir()
    data = pickle.dumps(_Payload(marker))
    (tmp_path / "light.onnx").write_bytes(data)  # what "../light.onnx" would reach
    (store / "light.json").write_text(json.dumps(_card(model_file, data)))
    with pytest.raises(ModelCardError, match="bare"):
        load_models(store)
    assert not marker.exists()


def _fitted() -> LearnedModel:
    rng = np.random.default_rng(0)
    features = rng.integers(0, 5, size=(400, len(FEATURES))).astype(float)
    estimator = new_estimator(0).fit(features, (features[:, 1] > 2).astype(int))
    card = _card("x", b"")
    del card["model_file"], card["sha256"]
    return LearnedModel("light", TreeEnsemble(ensemble_graph(estimator)), card=card)


def test_trusted_store_round_trips_and_serves_layout(tmp_path):
    store = tmp_path / "store"
    card_path = save_model(_fitted(), store)
    assert json.loads(card_path.read_text())["model_file"] == "light.onnx"
    assert [model.component for model in load_models(store)] == ["light"]
    done = _layout(tmp_path, "--models", str(store))
    assert done.returncode in (0, 1), done.stderr
    assert "learned" in (tmp_path / "out.json").read_text()


def _graph(width: int) -> bytes:
    """A valid ONNX graph of another shape than a ceilgrid tree ensemble's."""
    node = helper.make_node("Identity", [GRAPH_INPUT], [GRAPH_OUTPUT])
    graph = helper.make_graph(
        [node],
        "other",
        [helper.make_tensor_value_info(GRAPH_INPUT, TensorProto.DOUBLE, [None, width])],
        [helper.make_tensor_value_info(GRAPH_OUTPUT, TensorProto.DOUBLE, [None, width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.checker.check_model(model)  # valid ONNX: refused for its shape alone
    return model.SerializeToString()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x08\x07garbage", "is not a ceilgrid tree ensemble"),
        (_graph(len(FEATURES)), "expected"),  # features in, features out
        (_graph(3), "expected"),  # another feature count
    ],
)
def test_onnx_files_of_another_shape_are_refused(tmp_path, data, reason):
    path = tmp_path / "light.onnx"
    path.write_bytes(data)
    (tmp_path / "light.json").write_text(json.dumps(_card("light.onnx", data)))
    with pytest.raises(ModelCardError, match=reason) as refused:
        load_models(tmp_path)
    assert "\n" not in str(refused.value)
