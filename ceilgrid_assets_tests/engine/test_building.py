"""Buildings: the same bytes with one process or several, with or without the memo.

The building mixes what could go wrong: rooms identical in everything that
shapes a layout but with other ids and other unknown keys, a room that differs
from another only in room type or tile size (must not be taken for it), a room
that cannot be made compliant, and rejected rooms.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import building_document, rect, room_document, to_json

from ceilgrid_assets.core.engine import building as building_module
from ceilgrid_assets.core.engine import hooks
from ceilgrid_assets.core.engine.building import (
    LayoutMemo,
    complete_building,
    layout_key,
)
from ceilgrid_assets.core.engine.io import dump_document, parse_document
from ceilgrid_assets.core.engine.pipeline import EngineConfig

OFFICE = {"shape": (9, 7), "invalid": rect(0, 0, 2, 2) + [(6, 4)]}


def mixed_building(building_id: str = "mixed") -> str:
    rooms = [
        room_document(**OFFICE, grid_id="office-a", floor=1),
        room_document((6, 5), grid_id="meeting", room_type="meeting"),
        room_document(**OFFICE, grid_id="office-b", floor=2, designer="Ada"),
        room_document((3, 3), grid_id="broken", room_type="sauna"),
        room_document((6, 5), grid_id="meeting-as-office"),  # same cells, other room type
        room_document((6, 5), grid_id="meeting-big-tiles", room_type="meeting", tile_size_m=1.2),
        room_document((2, 1), grid_id="impossible-1"),
        room_document((2, 1), grid_id="impossible-2"),
        room_document(**OFFICE, grid_id="office-c"),
        {"grid_id": "no-cells", "width": 2, "height": 2},
        room_document((12, 4), devices={"smoke_detector": [(5, 2)]}, grid_id="with-detector"),
    ]
    return to_json(building_document(rooms, building_id))


def lay_out(text: str, **kwargs: Any) -> bytes:
    """The output bytes; workers are used for any size of building when jobs > 1 (and
    the rooms are then rendered as they arrive: ``BuildingResult.rooms_text``)."""
    parsed = parse_document(text, "mixed.json")
    return complete_building(parsed, pool_min_cells=0, **kwargs).dump()


@pytest.fixture(scope="module")
def single_process_fresh() -> bytes:
    """The reference: one process, every room laid out afresh."""
    return lay_out(mixed_building(), jobs=1, memo=None)


def test_reference_output_has_what_the_building_needs(single_process_fresh):
    document = json.loads(single_process_fresh)
    ids = [room["grid_id"] for room in document["rooms"]]
    assert ids == [
        "office-a",
        "meeting",
        "office-b",
        "meeting-as-office",
        "meeting-big-tiles",
        "impossible-1",
        "impossible-2",
        "office-c",
        "with-detector",
    ]
    assert [rejected["room"] for rejected in document["rejected_rooms"]] == [
        "broken (#3)",
        "no-cells (#9)",
    ]
    compliant = {room["grid_id"]: room["compliance"]["compliant"] for room in document["rooms"]}
    assert not compliant["impossible-1"] and not compliant["impossible-2"]
    assert compliant["office-a"] and compliant["with-detector"]
    by_id = {room["grid_id"]: room for room in document["rooms"]}
    # Each room keeps its own unknown keys, also when its layout was carried over.
    assert by_id["office-b"]["designer"] == "Ada" and by_id["office-b"]["floor"] == 2
    assert "designer" not in by_id["office-a"] and "floor" not in by_id["office-c"]


@pytest.mark.parametrize(
    ("jobs", "memo"),
    [(1, "fresh-memo"), (2, None), (2, "fresh-memo"), (3, "fresh-memo")],
    ids=["jobs1-memo", "jobs2-no-memo", "jobs2-memo", "jobs3-memo"],
)
def test_same_bytes_for_any_jobs_and_with_or_without_memo(single_process_fresh, jobs, memo):
    output = lay_out(mixed_building(), jobs=jobs, memo=LayoutMemo() if memo else None)
    assert output == single_process_fresh


def test_same_bytes_from_a_fork_server_when_threads_are_running(single_process_fresh):
    """With another thread alive the pool forks from a fork server, not from this process."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert threading.active_count() > 1
        assert lay_out(mixed_building(), jobs=2, memo=None) == single_process_fresh
    finally:
        stop.set()
        thread.join()


def counting_rooms(monkeypatch) -> Counter[str]:
    """Count the rooms ``complete_room`` really lays out in this process, by id."""
    computed: Counter[str] = Counter()
    real = building_module.complete_room

    def counted(room, config=None):
        computed[room.grid_id] += 1
        return real(room, config)

    monkeypatch.setattr(building_module, "complete_room", counted)
    return computed


def test_each_distinct_room_is_laid_out_once_per_building(monkeypatch, single_process_fresh):
    computed = counting_rooms(monkeypatch)
    memo = LayoutMemo()
    assert lay_out(mixed_building(), jobs=1, memo=memo) == single_process_fresh
    # office-b and office-c are carried over from office-a, impossible-2 from impossible-1.
    assert computed == Counter(
        {
            "office-a": 1,
            "meeting": 1,
            "meeting-as-office": 1,
            "meeting-big-tiles": 1,
            "impossible-1": 1,
            "with-detector": 1,
        }
    )
    assert len(memo) == 6


def test_memo_carries_layouts_across_buildings(monkeypatch, single_process_fresh):
    config = EngineConfig()
    memo = LayoutMemo()
    first = lay_out(mixed_building(), config=config, memo=memo)
    computed = counting_rooms(monkeypatch)
    second = lay_out(mixed_building(), config=config, memo=memo)
    assert computed == Counter()  # everything came from the memo
    assert first == second == single_process_fresh
    # Another configuration never sees these layouts.
    lay_out(mixed_building(), config=EngineConfig(), memo=memo)
    assert sum(computed.values()) == 6


def test_memo_stays_within_its_cell_bound():
    config = EngineConfig()
    rooms = [room_document((4 + n, 4), grid_id=f"r{n}") for n in range(6)]
    parsed = parse_document(to_json(building_document(rooms)), "b.json")
    memo = LayoutMemo(max_cells=60)  # room sizes 16, 20, ..., 36 cells
    complete_building(parsed, config, memo=memo)
    # 16 + 20 + 24 fill it; each later room pushes the oldest out until it fits.
    assert (len(memo), memo.cells) == (1, 36)
    last = parse_document(to_json(rooms[-1]), "r.json").rooms[0]
    assert memo.get(config, layout_key(last)) is not None
    first = parse_document(to_json(rooms[0]), "r.json").rooms[0]
    assert memo.get(config, layout_key(first)) is None  # evicted, least recently used


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_counts_every_good_room_once(jobs):
    calls: list[tuple[int, int]] = []
    parsed = parse_document(mixed_building(), "mixed.json")
    complete_building(
        parsed, jobs=jobs, memo=None, pool_min_cells=0, progress=lambda *call: calls.append(call)
    )
    assert calls == [(done, 9) for done in range(1, 10)]


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_delivered_room_is_reported_once_to_observers(jobs):
    """Telemetry sees each output room once, wherever it was laid out."""
    seen: list[str] = []

    def observer(event: str, step: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if event == "room":
            seen.append(args[0].grid_id)
        return step(*args, **kwargs)

    hooks.subscribe(observer)
    try:
        parsed = parse_document(mixed_building(), "m.json")
        result = complete_building(parsed, jobs=jobs, pool_min_cells=0)
    finally:
        hooks.unsubscribe(observer)
    assert Counter(seen) == Counter(room.room.grid_id for room in result.rooms)
    assert len(seen) == 9


def test_workers_lay_out_the_rooms_unless_the_building_is_too_small(monkeypatch):
    """Without this, every test above would pass with the pool never used."""
    computed = counting_rooms(monkeypatch)
    parsed = parse_document(mixed_building(), "mixed.json")
    pooled = complete_building(parsed, jobs=2, memo=None, pool_min_cells=0)
    assert sum(computed.values()) == 0  # all six distinct rooms went to workers
    assert len(pooled.rooms) == 9
    small = complete_building(parsed, jobs=2, memo=None)  # 250 cells: not worth a pool
    assert sum(computed.values()) == 6
    assert dump_document(small.document) == dump_document(pooled.document)


@dataclass(frozen=True)
class ExplodingModel:
    """A placement model with a bug that shows on rooms 7 tiles wide."""

    name: str = "exploding"
    components: tuple[str, ...] = ("light",)

    def place(self, context: Any) -> Any:
        if context.room.width == 7:
            raise RuntimeError("model bug on a 7-wide room")
        return None


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_engine_error_in_a_room_is_raised_alike_with_or_without_workers(jobs):
    rooms = [room_document((5 + n, 5), grid_id=f"r{n}") for n in range(6)]  # r2 is 7 wide
    parsed = parse_document(to_json(building_document(rooms)), "b.json")
    config = EngineConfig(models=[*EngineConfig().models, ExplodingModel()])
    with pytest.raises(RuntimeError, match="model bug on a 7-wide room"):
        complete_building(parsed, config, jobs=jobs, memo=None, pool_min_cells=0)
    assert gc.get_freeze_count() == 0  # the collector walks everything again


def test_the_collector_skips_the_parent_s_objects_only_while_workers_run():
    frozen = []
    parsed = parse_document(mixed_building(), "mixed.json")
    results = building_module._lay_out(parsed.rooms, EngineConfig(), 2)
    first = next(results)  # the pool is running
    frozen.append(gc.get_freeze_count())
    rest = list(results)
    assert frozen[0] > 1_000  # the parsed document and everything else alive before
    assert gc.get_freeze_count() == 0
    assert len([first, *rest]) == len(parsed.rooms)


def test_an_error_in_the_parent_while_workers_run_stops_the_pool_at_once():
    """A progress callback that fails mid-building: the pool is shut down and the
    collector restored before the error reaches the caller, not when the
    traceback is dropped."""
    parsed = parse_document(mixed_building(), "mixed.json")

    def failing(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt("stopped by the user")

    with pytest.raises(KeyboardInterrupt) as stopped:
        complete_building(parsed, jobs=2, memo=None, pool_min_cells=0, progress=failing)
    assert gc.get_freeze_count() == 0
    assert not multiprocessing.active_children()
    del stopped
