"""Completing buildings: each distinct room laid out once, rooms spread over processes.

``complete_building`` is the one function the CLI and the serving asset call for
a parsed document. Real floors repeat rooms (hotel rooms, offices, classrooms):
rooms identical in everything that shapes a layout (see :func:`layout_key`) are
laid out once and the result is carried over to each room's own id. Distinct
rooms go to a process pool when ``jobs`` > 1. Neither changes a byte of the
output: each room's layout depends only on its own content and the engine
configuration, and the document is assembled in input order.

Every delivered room passes through the observed ``room`` step once, whether it
was laid out here, in a worker or carried over, so telemetry counts each room
of the output exactly once (spans of stages and candidates exist only for rooms
laid out in this process).
"""

from __future__ import annotations

import copy
import functools
import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Hashable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any

from ceilgrid_assets.core.engine import hooks
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.grid import Room
from ceilgrid_assets.core.engine.hooks import observed
from ceilgrid_assets.core.engine.io import (
    CELLS_PLACEHOLDER,
    ParsedDocument,
    dump_document,
    room_text,
    room_to_document,
    splice_rooms,
)
from ceilgrid_assets.core.engine.pipeline import EngineConfig, RoomResult, complete_room

#: Below this many cells to lay out in all, rooms stay in this process: starting
#: workers (and, on a first use with threads running, a fork server that imports
#: the engine) costs more than a second core saves on a few small rooms.
POOL_MIN_CELLS = 10_000
#: The memo of room layouts keeps at most this many cells' worth of rooms
#: (about 30 bytes a cell once stages and candidates are counted: ~60 MB).
MEMO_MAX_CELLS = 2_000_000


@dataclass
class BuildingResult:
    """A completed building: its rooms' results, what was rejected and why, and the output.

    The output document is built only when asked for (:attr:`document`): writing
    the file (:meth:`dump`) splices the rooms as they were rendered on arrival
    (:attr:`rooms_text`) and never makes a dict per cell.
    """

    building_id: str
    rooms: list[RoomResult]
    errors: list[InputError]
    #: Each delivered room's input document, in the order of :attr:`rooms`: the
    #: output keeps its key order and the keys ceilgrid does not interpret.
    templates: list[dict[str, Any]]
    #: Whether the input was one room rather than a building (the output is then that room).
    single_room: bool = False
    #: The building's rooms as :func:`~.io.room_text` renders them; None for a single room.
    rooms_text: list[str] | None = None

    @functools.cached_property
    def document(self) -> dict[str, Any]:
        """The output document: the completed room, or the building with its rooms."""
        outputs = [
            room_output(result, template)
            for result, template in zip(self.rooms, self.templates, strict=True)
        ]
        if self.single_room and outputs:
            return outputs[0]
        return self._building(outputs)

    def _building(self, rooms: list[Any]) -> dict[str, Any]:
        document: dict[str, Any] = {"building_id": self.building_id, "rooms": rooms}
        if self.errors:
            document["rejected_rooms"] = [error.to_dict() for error in self.errors]
        return document

    def dump(self) -> bytes:
        """The output file's bytes: :func:`~.io.dump_document` of :attr:`document`."""
        if self.rooms_text is not None:
            spliced = splice_rooms(self._building([]), self.rooms_text)
            if spliced is not None:
                return spliced
        return dump_document(self.document)

    @property
    def all_compliant(self) -> bool:
        return all(result.compliant for result in self.rooms)

    @property
    def exit_code(self) -> int:
        """CLI convention: 2 bad input, 1 a room not compliant, 0 all good."""
        if self.errors:
            return 2
        return 0 if self.all_compliant else 1


def room_output(
    result: RoomResult, template: dict[str, Any] | None, cells: Any = None
) -> dict[str, Any]:
    """One output room: the input's keys, the completed cells and the engine's verdicts.

    ``cells``: see :func:`~.io.room_to_document`.
    """
    document = room_to_document(result.room, template, cells=cells)
    document["compliance"] = result.compliance
    document["models"] = result.models
    document["metrics"] = result.metrics
    document["certificate"] = result.certificate
    return document


def room_output_text(result: RoomResult, template: dict[str, Any] | None) -> str:
    """:func:`~.io.room_text` of :func:`room_output`, the cells rendered from the grid."""
    return room_text(room_output(result, template, CELLS_PLACEHOLDER), result.room.cells)


def default_jobs() -> int:
    """The processors this process may run on (all cores unless pinned)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def layout_key(room: Room) -> Hashable:
    """Everything of a room that shapes its layout; the id and unknown keys do not."""
    return (
        room.cells.shape,
        room.cells.tobytes(),
        room.tile_size_m,
        room.ceiling_height_m,
        room.room_type,
        room.luminaire,
    )


def carried_over(result: RoomResult, room: Room) -> RoomResult:
    """The layout of an identical room, as ``room``'s own (its id and extra keys).

    The verdicts are copied so that no two output rooms share a mutable object;
    ``seconds`` is 0 because nothing was computed for this room.
    """

    def own(view: Room) -> Room:
        return replace(view, grid_id=room.grid_id, extra=room.extra)

    return replace(
        result,
        original=room,
        room=own(result.room),
        stages=[own(view) for view in result.stages],
        models=copy.deepcopy(result.models),
        compliance=copy.deepcopy(result.compliance),
        metrics=copy.deepcopy(result.metrics),
        certificate=copy.deepcopy(result.certificate),
        seconds=0.0,
    )


class LayoutMemo:
    """Room layouts by engine configuration and :func:`layout_key`, least recently used out.

    Bounded by the total cells of the rooms held. An entry keeps its
    configuration alive, so the configuration's ``id`` in the key cannot be
    reused by another while the entry exists.
    """

    def __init__(self, max_cells: int = MEMO_MAX_CELLS) -> None:
        self.max_cells = max_cells
        self.cells = 0
        self._entries: OrderedDict[tuple[int, Hashable], tuple[EngineConfig, RoomResult]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, config: EngineConfig, key: Hashable) -> RoomResult | None:
        entry = self._entries.get((id(config), key))
        if entry is None:
            return None
        self._entries.move_to_end((id(config), key))
        return entry[1]

    def put(self, config: EngineConfig, key: Hashable, result: RoomResult) -> None:
        size = result.room.cells.size
        if size > self.max_cells or (id(config), key) in self._entries:
            return
        self._entries[(id(config), key)] = (config, result)
        self.cells += size
        while self.cells > self.max_cells:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.cells -= evicted.room.cells.size

    def clear(self) -> None:
        self._entries.clear()
        self.cells = 0


#: This process's memo, shared by every building it lays out.
MEMO = LayoutMemo()


@observed("room")
def deliver(room: Room, result: RoomResult) -> RoomResult:
    """A room laid out elsewhere (a worker, or an identical room), reported as this room."""
    return result


@observed("building")
def complete_building(
    parsed: ParsedDocument,
    config: EngineConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    jobs: int = 1,
    memo: LayoutMemo | None = MEMO,
    pool_min_cells: int = POOL_MIN_CELLS,
) -> BuildingResult:
    """Lay out every good room of a parsed document; bad rooms are listed, not fatal.

    ``jobs`` > 1 lays distinct rooms out in that many worker processes when
    they hold at least ``pool_min_cells`` cells in all; ``memo=None`` lays out
    every distinct room afresh. ``progress(done, total)``
    is called once per room as rooms complete.
    """
    config = config or EngineConfig()
    rooms = parsed.rooms
    groups: dict[Hashable, list[int]] = {}
    for index, room in enumerate(rooms):
        groups.setdefault(layout_key(room), []).append(index)
    results: list[RoomResult | None] = [None] * len(rooms)
    remembered = {key: memo.get(config, key) for key in groups} if memo is not None else {}
    todo = [rooms[indices[0]] for key, indices in groups.items() if remembered.get(key) is None]
    if sum(room.cells.size for room in todo) < pool_min_cells:
        jobs = 1
    # Each room is rendered as it is delivered: with workers, while they lay out the rest.
    texts: list[str] | None = None if parsed.single_room else [""] * len(rooms)
    done = 0
    # Closed on the way out, also on an error: a pool never outlives the building.
    with closing(_lay_out(todo, config, jobs)) as computed:
        for key, indices in groups.items():
            layout = remembered.get(key)
            if layout is None:
                layout = next(computed)
                results[indices[0]] = layout
                if memo is not None:
                    memo.put(config, key, layout)
            for index in indices:
                result = results[index]
                if result is None:
                    result = results[index] = deliver(
                        rooms[index], carried_over(layout, rooms[index])
                    )
                if texts is not None:
                    texts[index] = room_output_text(result, parsed.room_documents[index])
                done += 1
                if progress is not None:
                    progress(done, len(rooms))
    return BuildingResult(
        parsed.building_id,
        [result for result in results if result is not None],
        list(parsed.errors),
        list(parsed.room_documents),
        parsed.single_room,
        texts,
    )


def _lay_out(
    rooms: Sequence[Room], config: EngineConfig, jobs: int
) -> Generator[RoomResult, None, None]:
    """``complete_room`` of each room, in order: here, or over ``jobs`` worker processes."""
    workers = min(jobs, len(rooms))
    if workers <= 1:
        for room in rooms:
            yield complete_room(room, config)
        return
    # Imported only now: 10 ms of every start-up, for buildings large enough for workers.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Fork is cheapest (workers inherit the imported engine and its caches) but is
    # only safe while this process runs a single Python thread (a lock held by
    # another would stay locked in the child; OpenBLAS's native threads handle fork
    # themselves); otherwise a fork server.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([__name__])
    # Small chunks balance rooms of very different cost; results come back in order.
    chunksize = max(1, len(rooms) // (workers * 48))
    # What exists now (the parsed document above all: hundreds of thousands of
    # objects) lives until the pool is done: kept out of the garbage collector's
    # walks meanwhile, in the parent as results arrive and in forked workers, where
    # a walk would also copy every page they share with the parent.
    gc.freeze()
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(config,)
    )
    try:
        for room, result in zip(rooms, pool.map(_work, rooms, chunksize=chunksize), strict=True):
            yield deliver(room, result)
    finally:  # on an error, rooms not yet started are dropped rather than waited for
        pool.shutdown(cancel_futures=True)
        gc.unfreeze()


_worker_config: EngineConfig | None = None


def _start_worker(config: EngineConfig) -> None:
    """Keep the configuration; observers belong to the parent, which reports every room."""
    global _worker_config
    _worker_config = config
    for observer in hooks.observers():
        hooks.unsubscribe(observer)


def _work(room: Room) -> RoomResult:
    return complete_room(room, _worker_config)
