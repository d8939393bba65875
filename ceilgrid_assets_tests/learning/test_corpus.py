"""The synthetic corpus: seeded, valid documents, distributions within their documented bounds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ceilgrid_assets.core.engine.grid import INVALID, Room
from ceilgrid_assets.core.engine.io import dump_document, parse_document, room_to_document
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import return_violations, smoke_violations
from ceilgrid_assets.core.learning.corpus import (
    CEILING_BOUNDS_M,
    MAX_SIDE_TILES,
    ROOM_TYPE_WEIGHTS,
    TILE_SIZES_M,
    CorpusSpec,
    corpus_hash,
    generate_room,
    generate_rooms,
    room_digest,
    served_corpus,
)
from ceilgrid_assets.core.learning.labels import label_room, labels_table

SPEC = CorpusSpec(seed=11, n_rooms=400)


@pytest.fixture(scope="module")
def rooms():
    return generate_rooms(SPEC)


def test_seeded_and_independent_of_corpus_size(rooms):
    again = generate_rooms(CorpusSpec(seed=11, n_rooms=50))
    assert corpus_hash(again) == corpus_hash(rooms[:50])
    assert corpus_hash(generate_rooms(CorpusSpec(seed=12, n_rooms=50))) != corpus_hash(again)
    single = generate_room(11, 37)
    assert np.array_equal(single.cells, rooms[37].cells)


def test_rooms_are_valid_documents(rooms):
    for room in rooms[:60]:
        parsed = parse_document(dump_document(room_to_document(room)))
        assert not parsed.errors
        assert np.array_equal(parsed.rooms[0].cells, room.cells)
        assert parsed.rooms[0].room_type == room.room_type


def test_distribution_bounds(rooms):
    types = {room.room_type for room in rooms}
    assert types == set(ROOM_TYPE_WEIGHTS)
    assert {room.tile_size_m for room in rooms} == set(TILE_SIZES_M)
    ceilings = np.array([room.ceiling_height_m for room in rooms])
    assert CEILING_BOUNDS_M[0] <= ceilings.min() and ceilings.max() <= CEILING_BOUNDS_M[1]
    for room in rooms:
        short, long = sorted(room.cells.shape)
        assert long <= MAX_SIDE_TILES
        if room.room_type == "corridor":
            assert 1 <= short <= 3
        else:
            assert short >= 3
        assert room.usable.any()
    # The range the issue asks for: 3x3-tile closets up to 60 m halls, some >= 40x40 tiles.
    assert min(min(room.cells.shape) for room in rooms if room.room_type == "storage") == 3
    assert max(max(room.cells.shape) * room.tile_size_m for room in rooms) >= 55
    assert sum(min(room.cells.shape) >= 40 for room in rooms) >= 5


def test_shapes_structure_and_existing_devices_occur(rooms):
    cut = [room for room in rooms if (room.cells == INVALID).any()]
    assert len(cut) > 0.2 * len(rooms)
    with_devices = [room for room in rooms if (room.cells >= 2).any()]
    assert 0.1 * len(rooms) < len(with_devices) < 0.35 * len(rooms)


def test_existing_devices_are_legal(rooms):
    profile = get_profile("nfpa72")
    for room in rooms:
        clearance = [v for v in smoke_violations(room, profile) if v.rule == "smoke.clearance"]
        separation = [v for v in return_violations(room, profile) if v.rule == "return.separation"]
        assert not clearance and not separation, room.grid_id


def test_labels_record_status_and_mark_time_outs():
    room = generate_room(11, 3)
    labels = label_room(room, time_limit_s=5.0)
    table = labels_table([labels])
    assert list(table["component"]) == [
        "smoke_detector",
        "light",
        "air_supply",
        "air_return",
        "smoke_detector",
    ]
    assert set(table["status"]) <= {"optimal", "limit", "trivial", "infeasible", "error"}
    assert (table["usable"] == (table["status"] == "optimal")).all()
    big = max(generate_rooms(CorpusSpec(seed=11, n_rooms=60)), key=lambda r: r.cells.size)
    rushed = label_room(big, time_limit_s=0.05)
    assert rushed.timed_out
    assert not any(stage.usable for stage in rushed.stages if stage.status == "limit")


def test_served_rooms_are_deduplicated_anonymous_bounded_and_order_independent():
    rooms = [generate_room(7, index) for index in range(12)]
    renamed = [
        replace(room, grid_id=f"client-{index}", extra={"owner": "acme"})
        for index, room in enumerate(rooms)
    ]
    submitted = rooms + renamed + rooms[:3]  # every room at least twice, under other ids
    served = served_corpus(submitted, max_rooms=100)
    assert len(served) == len(rooms)
    assert {room_digest(room) for room in served} == {room_digest(room) for room in rooms}
    assert all(room.grid_id.startswith("served-") and not room.extra for room in served)
    assert corpus_hash(served_corpus(submitted[::-1], max_rooms=100)) == corpus_hash(served)
    bounded = served_corpus(submitted, max_rooms=5)
    assert [room.grid_id for room in bounded] == [room.grid_id for room in served[:5]]


def test_served_rooms_longer_than_the_corpus_allows_are_left_out():
    long_corridor = Room("corridor", np.zeros((2, MAX_SIDE_TILES + 1), dtype=np.uint8))
    room = generate_room(7, 0)
    (kept,) = served_corpus([long_corridor, room], max_rooms=10)
    assert kept.grid_id == f"served-{room_digest(room)[:16]}"
