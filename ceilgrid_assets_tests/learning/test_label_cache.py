"""The label cache: each room is solved once, later runs replay the same labels."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
from helpers import make_room

from ceilgrid_assets.core.learning.labels import (
    LabelCache,
    count_replayed,
    label_room,
    label_rooms,
)

ROOMS = [
    make_room((6, 5), grid_id="closet"),
    make_room((12, 9), [(4, 4), (5, 4)], grid_id="office"),
    make_room((14, 2), room_type="corridor", grid_id="corridor"),
    make_room((8, 8), devices={"light": [(0, 0)]}, grid_id="with-light"),
]


def same_labels(first, second) -> bool:
    for a, b in zip(first.stages, second.stages, strict=True):
        if (a.component, a.stage, a.status) != (b.component, b.stage, b.status):
            return False
        if (a.added is None) != (b.added is None):
            return False
        if a.added is not None and not np.array_equal(a.added, b.added):
            return False
        if not np.array_equal(a.context.allowed, b.context.allowed):
            return False
    return True


def test_second_run_replays_every_room_with_identical_labels(tmp_path):
    cache = LabelCache(tmp_path / "labels")
    first = label_rooms(ROOMS, time_limit_s=5.0, cache=cache)
    assert count_replayed(first) == 0
    names = sorted(path.name for path in (tmp_path / "labels").iterdir())
    assert len(names) == len(ROOMS)
    assert all(re.fullmatch(r"[0-9a-f]{64}\.json", name) for name in names)  # ids never paths
    second = label_rooms(ROOMS, time_limit_s=5.0, cache=cache)
    assert count_replayed(second) == len(ROOMS)
    for fresh, replayed in zip(first, second, strict=True):
        assert same_labels(fresh, replayed)
        assert replayed.grid_id == fresh.grid_id


def test_a_room_is_labelled_once_whatever_its_id(tmp_path):
    cache = LabelCache(tmp_path)
    label_rooms(ROOMS[:1], time_limit_s=5.0, cache=cache)
    renamed = replace(ROOMS[0], grid_id="another-id")
    (labels,) = label_rooms([renamed], time_limit_s=5.0, cache=cache)
    assert labels.replayed and labels.grid_id == "another-id"
    changed = make_room((6, 5), [(0, 0)], grid_id="closet")
    (labels,) = label_rooms([changed], time_limit_s=5.0, cache=cache)
    assert not labels.replayed


def test_a_damaged_entry_is_solved_again_and_rewritten(tmp_path):
    cache = LabelCache(tmp_path)
    (fresh,) = label_rooms(ROOMS[1:2], time_limit_s=5.0, cache=cache)
    (entry,) = tmp_path.iterdir()
    entry.write_text('[{"component": "light", "stage": "plan", "added": [99999]}]')
    (again,) = label_rooms(ROOMS[1:2], time_limit_s=5.0, cache=cache)
    assert not again.replayed and same_labels(fresh, again)
    (replayed,) = label_rooms(ROOMS[1:2], time_limit_s=5.0, cache=cache)
    assert replayed.replayed and same_labels(fresh, replayed)


def test_labels_stopped_by_the_wall_clock_are_not_kept(tmp_path):
    cache = LabelCache(tmp_path)
    big = make_room((40, 40), grid_id="big")
    rushed = label_room(big, time_limit_s=1e-6)
    assert any(stage.status == "limit" for stage in rushed.stages)
    cache.put(LabelCache.key(big, rushed.stages[0].context.profile, 1e-6), rushed)
    assert list(tmp_path.iterdir()) == []
