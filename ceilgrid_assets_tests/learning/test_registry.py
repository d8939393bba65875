"""The model registry on disk: versions with lineage, promote, rollback, compare, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ceilgrid_assets.cli import main
from ceilgrid_assets.core.learning import registry


def candidate(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / f"candidate-{name}"
    folder.mkdir()
    (folder / "light.json").write_text(json.dumps({"component": "light", "name": name}))
    return folder


def record(ratio: float, served: int = 0) -> dict:
    return {
        "promoted_at": "2026-03-02T02:30:00Z",
        "corpus": {"sha256": f"{ratio:.3f}" * 8, "served_rooms": served},
        "evaluation": [
            {"component": "light", "devices_vs_reference": ratio, "compliance_after_repair": 1.0}
        ],
    }


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Three promotions: v0001, v0002, v0003 (serving)."""
    root = tmp_path / "store"
    for number, ratio in enumerate((1.10, 1.05, 1.02), start=1):
        version = registry.add_version(root, candidate(tmp_path, str(number)), record(ratio))
        registry.activate(root, version.id, "promote")
    return root


def test_promotions_are_numbered_frozen_versions_and_the_link_follows(store):
    assert [version.id for version in registry.versions(store)] == ["v0001", "v0002", "v0003"]
    serving = registry.current(store)
    assert serving.id == "v0003" and serving.record["version"] == "v0003"
    assert json.loads((store / "promoted" / "light.json").read_text())["name"] == "3"
    # Each version keeps its own files: nothing was overwritten.
    assert json.loads((store / "versions/v0001/light.json").read_text())["name"] == "1"


def test_rollback_steps_back_one_version_at_a_time_and_promote_goes_anywhere(store):
    assert registry.rollback(store).id == "v0002"
    assert registry.current(store).id == "v0002"
    assert registry.rollback(store).id == "v0001"
    with pytest.raises(registry.RegistryError, match="oldest"):
        registry.rollback(store)
    assert registry.activate(store, "v0003", "promote").id == "v0003"
    actions = [(line["version"], line["action"]) for line in registry.history(store)]
    assert actions[-3:] == [("v0002", "rollback"), ("v0001", "rollback"), ("v0003", "promote")]
    with pytest.raises(registry.RegistryError, match="no model version 'v0009'"):
        registry.activate(store, "v0009", "promote")


def test_compare_pairs_evaluation_rows_by_slice_and_component(store):
    old, new = registry.get_version(store, "v0001"), registry.get_version(store, "v0003")
    (row,) = registry.compare(old, new)
    assert row["slice"] == "synthetic" and row["component"] == "light"
    assert row["devices_vs_reference v0001"] == 1.10
    assert row["devices_vs_reference v0003"] == 1.02


def test_empty_store_has_no_current_version_and_nothing_to_roll_back(tmp_path):
    assert registry.current(tmp_path) is None
    assert registry.versions(tmp_path) == []
    with pytest.raises(registry.RegistryError, match="nothing is promoted"):
        registry.rollback(tmp_path)


def test_cli_lists_shows_rolls_back_and_promotes(store, capsys):
    assert main(["models", "--store", str(store), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:1] for line in lines] == [" ", " ", "*"]
    assert json.loads(lines[0][2:])["version"] == "v0001"
    assert main(["models", "--store", str(store), "show", "v0002"]) == 0
    assert json.loads(capsys.readouterr().out)["evaluation"][0]["devices_vs_reference"] == 1.05
    assert main(["models", "--store", str(store), "rollback"]) == 0
    assert capsys.readouterr().out.strip() == "serving v0002"
    assert main(["models", "--store", str(store), "promote", "v0003"]) == 0
    assert registry.current(store).id == "v0003"
    assert main(["models", "--store", str(store), "show", "v0042"]) == 2
    assert "no model version 'v0042'" in capsys.readouterr().err
    assert main(["models", "--store", str(store), "history"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["version"], line["action"]) for line in lines][-2:] == [
        ("v0002", "rollback"),
        ("v0003", "promote"),
    ]


def test_the_default_store_follows_the_platform_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("CEILGRID_MODEL_STORE", raising=False)
    monkeypatch.setenv("CEILGRID_HOME", str(tmp_path))
    assert registry.default_store() == tmp_path / "model-store"
    monkeypatch.setenv("CEILGRID_MODEL_STORE", str(tmp_path / "elsewhere"))
    assert registry.default_store() == tmp_path / "elsewhere"
