"""Served buildings become training data: the stored inputs, deduplicated, in the corpus."""

from __future__ import annotations

import json

import dagster as dg
from helpers import PROJECT_ROOT

from ceilgrid_assets.contract import BUILDINGS
from ceilgrid_assets.core.engine.io import read_document
from ceilgrid_assets.core.learning.corpus import room_digest
from ceilgrid_assets.definitions import defs
from ceilgrid_assets.defs.resources import build_resources
from ceilgrid_assets.defs.training.jobs import corpus_job

EXAMPLES = PROJECT_ROOT / "ceilgrid_assets" / "examples"


def test_corpus_job_gathers_distinct_served_rooms_into_train_and_served_holdout(
    postgres_instance, ceilgrid_home
):
    resources = build_resources()
    storage = resources["layout_storage"]
    office = json.loads((EXAMPLES / "office-floor.json").read_text())
    school = json.loads((EXAMPLES / "school-wing.json").read_text())
    # The same office submitted again under another id, its rooms renamed: no new rooms.
    again = {
        "building_id": "office-again",
        "rooms": [{**room, "grid_id": f"copy-{i}"} for i, room in enumerate(office["rooms"])],
    }
    for key, document in (("office", office), ("school", school), ("office-again", again)):
        storage.blobs().put_bytes(storage.input_key(key), json.dumps(document).encode())
    # A building submitted but not yet stored by a layout run is skipped.
    postgres_instance.add_dynamic_partitions(BUILDINGS, ["office", "school", "office-again", "new"])

    result = dg.materialize(
        [*defs.assets],
        selection=corpus_job.selection,
        instance=postgres_instance,
        resources=resources,
        run_config={"ops": {"room_corpus": {"config": {"n_rooms": 8, "seed": 5}}}},
    )
    assert result.success
    served = result.output_for_node("served_rooms")
    expected = {
        room_digest(room)
        for name in ("office-floor", "school-wing")
        for room in read_document(EXAMPLES / f"{name}.json").rooms
    }
    assert {room_digest(room) for room in served} == expected  # six distinct rooms
    assert all(room.grid_id.startswith("served-") for room in served)

    corpus = result.output_for_node("room_corpus")
    served_ids = {room.grid_id for room in served}
    in_train = served_ids & {room.grid_id for room in corpus["train"]}
    in_holdout = {room.grid_id for room in corpus["served_holdout"]}
    assert in_train | in_holdout == served_ids and not in_train & in_holdout
    assert in_holdout and not in_holdout & {room.grid_id for room in corpus["holdout"]}
    assert corpus["served_rooms"] == len(expected)
    (event,) = [
        event
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("served_rooms")
    ]
    assert event.materialization.metadata["rooms_submitted"].value == 9
