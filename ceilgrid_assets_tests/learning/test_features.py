"""Per-cell feature table: shape, values on known rooms, and no label leakage."""

from __future__ import annotations

import numpy as np

from ceilgrid_assets.core.engine.grid import EMPTY, INVALID, SMOKE_DETECTOR, Room
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.stages import build_context
from ceilgrid_assets.core.learning.corpus import CorpusSpec, generate_rooms
from ceilgrid_assets.core.learning.features import FEATURES, cell_features
from ceilgrid_assets.core.learning.labels import label_room

PROFILE = get_profile("nfpa72")


def test_one_row_per_allowed_cell_with_every_feature():
    for room in generate_rooms(CorpusSpec(seed=3, n_rooms=25)):
        for component in ("light", "smoke_detector"):
            context = build_context(component, room, PROFILE)
            table = cell_features(context)
            assert list(table.columns) == list(FEATURES)
            assert np.array_equal(table.index.to_numpy(), np.flatnonzero(context.allowed))
            assert np.isfinite(table.to_numpy()).all()


def test_positions_and_run_lengths_on_a_known_room():
    cells = np.zeros((4, 6), dtype=np.uint8)
    cells[:, 3] = INVALID  # a beam splits the room into 4x3 and 4x2 parts
    room = Room("r", cells, tile_size_m=0.5)
    table = cell_features(build_context("light", room, PROFILE))
    first = table.loc[0]  # cell (0, 0)
    assert first["left_m"] == 0 and first["right_m"] == 1.0 and first["row_span_m"] == 1.5
    assert table.loc[5]["row_span_m"] == 1.0  # cell (5, 0) in the 2-wide part
    assert table.loc[0]["inner_invalid_m"] == 1.5
    assert first["wall_m"] == 0.25  # centre to the wall: half a tile
    assert table["area_m2"].iloc[0] == 20 * 0.25


def test_no_label_leakage():
    """Features see the context only: the optimiser's picks are still empty cells there,
    and the table equals the one built from the engine's own context (training input ==
    inference input)."""
    room = generate_rooms(CorpusSpec(seed=3, n_rooms=10))[4]
    labels = label_room(room, time_limit_s=5.0)
    plan = labels.stages[0]
    assert plan.usable
    checked = 0
    for stage in labels.stages:
        if not stage.usable:
            continue
        context = stage.context
        assert (context.room.cells[stage.added] == EMPTY).all()
        detector_plan = None if stage.stage == "plan" else plan.added
        engine_context = build_context(stage.component, context.room, PROFILE, detector_plan)
        table = cell_features(context)
        assert table.equals(cell_features(engine_context))
        assert stage.added[context.allowed].sum() == stage.added.sum()
        checked += 1
    assert checked >= 4


def test_earlier_stage_devices_are_features():
    cells = np.zeros((10, 10), dtype=np.uint8)
    cells[0, 0] = SMOKE_DETECTOR
    room = Room("r", cells)
    table = cell_features(build_context("air_supply", room, PROFILE))
    assert table["smoke_detector_m"].min() >= PROFILE.smoke_to_air_m - 1e-6
    assert table["light_m"].max() == 60.0  # no light yet: capped distance
