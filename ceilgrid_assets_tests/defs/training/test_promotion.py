"""Blocking promotion checks: only models that are compliant and not worse reach serving."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from helpers import plain_model

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.engine.stages import StageContext
from ceilgrid_assets.core.learning import registry
from ceilgrid_assets.core.learning.corpus import generate_room
from ceilgrid_assets.core.learning.evaluation import regressions
from ceilgrid_assets.definitions import defs
from ceilgrid_assets.defs.resources import ModelStore, build_resources

SELECTION = ["model_evaluation", "promoted_models"]


class StubInputs(dg.IOManager):
    """Upstream values handed in directly; outputs kept in memory."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = dict(values)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        self.values[context.asset_key.path[-1]] = obj

    def load_input(self, context: dg.InputContext) -> Any:
        return self.values[context.asset_key.path[-1]]


@dataclass(frozen=True)
class FloodModel:
    """A deliberately bad 'learned' model: a device on every allowed cell."""

    component: str
    name: str = "learned"

    @property
    def components(self) -> tuple[str, ...]:
        return (self.component,)

    def place(self, context: StageContext) -> np.ndarray:
        return context.allowed.copy()


def small_corpus() -> dict[str, Any]:
    rooms = [generate_room(11, index) for index in range(40)]
    small = [room for room in rooms if 30 <= room.usable.sum() <= 150]
    return {
        "seed": 11,
        "hash": "test",
        "train": [],
        "holdout": small[:4],
        "served_holdout": small[4:6],
    }


def run(instance: dg.DagsterInstance, models: dict[str, Any]) -> dg.ExecuteInProcessResult:
    values = {
        "room_corpus": small_corpus(),
        **{f"{component}_model": model for component, model in models.items()},
    }
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=SELECTION,
        instance=instance,
        resources={**build_resources(), "io_manager": StubInputs(values)},
        raise_on_error=False,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


def promoted(result: dg.ExecuteInProcessResult) -> bool:
    return any(
        event.asset_key == dg.AssetKey("promoted_models")
        for event in result.get_asset_materialization_events()
    )


@pytest.fixture
def store(ceilgrid_home) -> ModelStore:
    return build_resources()["model_store"]


def test_compliant_models_are_promoted_when_none_are(postgres_instance, store):
    result = run(postgres_instance, {c: plain_model(c) for c in DEVICE_COMPONENTS})
    assert checks(result) == {
        "evaluation_fully_compliant": True,
        "evaluation_not_worse_than_promoted": True,
    }
    assert promoted(result)
    record = store.promoted_record()
    assert {(row["slice"], row["component"]) for row in record["evaluation"]} == {
        (name, component) for name in ("synthetic", "served") for component in DEVICE_COMPONENTS
    }
    served = store.load_promoted()
    assert served.version == "v0001"
    text = (Path(store.location) / "versions" / "v0001" / "promotion.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in promotion.json"))
    assert {model.component for model in served.models} == set(DEVICE_COMPONENTS)
    (event,) = [
        event
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("promoted_models")
    ]
    metadata = event.materialization.metadata
    assert metadata["version"].value == "v0001"
    assert metadata["previous_version"].value == "none"
    lineage = metadata["lineage"].value
    assert lineage["run_id"] == result.run_id and lineage["code_version"].startswith("ceilgrid ")
    assert set(lineage["training_metrics"]) == set(DEVICE_COMPONENTS)


def test_worse_model_is_not_promoted(postgres_instance, store):
    first = run(postgres_instance, {c: plain_model(c) for c in DEVICE_COMPONENTS})
    assert promoted(first)
    assert store.load_promoted().version == "v0001"
    worse = {**{c: plain_model(c) for c in DEVICE_COMPONENTS}, "light": FloodModel("light")}
    result = run(postgres_instance, worse)
    assert checks(result)["evaluation_not_worse_than_promoted"] is False
    assert not promoted(result)
    assert store.load_promoted().version == "v0001"  # serving keeps the earlier models
    assert len(registry.versions(Path(store.location))) == 1


def test_regressions_compare_device_ratio_and_compliance():
    promoted_record = {
        "evaluation": [
            {"component": "light", "devices_vs_reference": 1.05, "compliance_after_repair": 1.0}
        ]
    }
    same = pd.DataFrame(
        [{"component": "light", "devices_vs_reference": 1.055, "compliance_after_repair": 1.0}]
    )
    worse = pd.DataFrame(
        [{"component": "light", "devices_vs_reference": 1.2, "compliance_after_repair": 0.9}]
    )
    assert regressions(same, promoted_record) == []
    assert len(regressions(worse, promoted_record)) == 2
    assert regressions(worse, None) == []


def test_a_regression_on_served_rooms_alone_blocks_promotion():
    def row(name: str, ratio: float) -> dict[str, Any]:
        return {
            "slice": name,
            "component": "light",
            "devices_vs_reference": ratio,
            "compliance_after_repair": 1.0,
        }

    promoted_record = {"evaluation": [row("synthetic", 1.05), row("served", 1.02)]}
    candidate = pd.DataFrame([row("synthetic", 1.00), row("served", 1.10)])
    (found,) = regressions(candidate, promoted_record)
    assert found.startswith("served light: 1.1000")
    # A record from before slices compares with the synthetic slice only.
    legacy = {"evaluation": [{k: v for k, v in row("x", 1.05).items() if k != "slice"}]}
    assert regressions(candidate, legacy) == []


def test_promotion_run_without_its_checks_still_refuses_a_failing_evaluation(
    postgres_instance, store
):
    failing = pd.DataFrame(
        [
            {
                "slice": "served",
                "component": "light",
                "devices_vs_reference": 1.0,
                "compliance_after_repair": 0.5,
            }
        ]
    )
    values = {
        "model_evaluation": failing,
        **{f"{c}_model": plain_model(c) for c in DEVICE_COMPONENTS},
    }
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=["promoted_models"],
        instance=postgres_instance,
        resources={**build_resources(), "io_manager": StubInputs(values)},
        raise_on_error=False,
    )
    assert not result.success and not promoted(result)
    assert store.load_promoted().version is None
