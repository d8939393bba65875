"""A corpus of malformed input files, generated at test time (nothing large is committed).

Every class of bad input of docs/format.md appears twice: as a file of
its own (the whole file is rejected) and as one room inside ``mixed.json``, a
building whose good rooms must still be laid out. On top of the format's
classes come the hostile files: truncated JSON, binary garbage, a declared
width of 10**9, a sparse file over the 200 MB limit, deep nesting, huge
literals. Each entry lists words its one-line reason must contain, so a test
can tell a precise message from a generic one.

The inbox extras (symlink loops, directories, dangling links, FIFOs) are not
files at all; :func:`make_inbox_oddities` creates them.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ceilgrid_assets.core.engine.io import MAX_FILE_BYTES, MAX_ROOMS_PER_BUILDING

GOOD_ROOM_SHAPE = (5, 4)


def room(
    grid_id: str = "good-1",
    width: int = GOOD_ROOM_SHAPE[0],
    height: int = GOOD_ROOM_SHAPE[1],
    **fields: Any,
) -> dict[str, Any]:
    """A small valid room (one invalid tile) that lays out in well under a second."""
    cells = [
        {"x": x, "y": y, "component": "invalid" if (x, y) == (0, 0) else "empty"}
        for y in range(height)
        for x in range(width)
    ]
    return {"grid_id": grid_id, "width": width, "height": height, "cells": cells, **fields}


def building(building_id: str, rooms: list[Any]) -> dict[str, Any]:
    return {"building_id": building_id, "rooms": rooms}


def _with(grid_id: str, **fields: Any) -> dict[str, Any]:
    """A good room's cells with some fields overridden (cells stay 5x4)."""
    return {**room(grid_id), **fields}


def _set_cell(document: dict[str, Any], index: int, value: Any) -> dict[str, Any]:
    document["cells"][index] = value
    return document


def _without(document: dict[str, Any], key: str) -> dict[str, Any]:
    del document[key]
    return document


#: Room-level defects: (name, room document, words of the reason). Each name is
#: also the room's grid_id when the defect leaves grid_id usable.
def room_defects() -> list[tuple[str, Any, tuple[str, ...]]]:
    return [
        ("missing-grid-id", _without(room(), "grid_id"), ("grid_id", "missing")),
        ("missing-width", _without(room("missing-width"), "width"), ("width", "missing")),
        ("missing-cells", _without(room("missing-cells"), "cells"), ("cells", "missing")),
        ("empty-grid-id", room(""), ("grid_id", "non-empty")),
        ("width-string", _with("width-string", width="5"), ("width", "integer")),
        ("width-float", _with("width-float", width=5.0), ("width", "integer")),
        ("width-bool", _with("width-bool", width=True), ("width", "integer")),
        ("width-zero", _with("width-zero", width=0), ("width", "at least 1")),
        ("height-negative", _with("height-negative", height=-3), ("height", "at least 1")),
        ("width-1e9", _with("width-1e9", width=10**9, height=10**9), ("width", "cell limit")),
        ("too-few-cells", _with("too-few-cells", width=6), ("cells", "expected")),
        ("cells-not-list", _with("cells-not-list", cells={"x": 0}), ("cells", "list")),
        (
            "cell-not-object",
            _set_cell(room("cell-not-object"), 3, [1, 0, "empty"]),
            ("cell #3", "object"),
        ),
        (
            "cell-missing-component",
            _set_cell(room("cell-missing-component"), 2, {"x": 2, "y": 0}),
            ("component",),
        ),
        (
            "cell-x-string",
            _set_cell(room("cell-x-string"), 1, {"x": "1", "y": 0, "component": "empty"}),
            ("'x'", "integer"),
        ),
        (
            "cell-out-of-bounds",
            _set_cell(room("cell-out-of-bounds"), 1, {"x": 9, "y": 0, "component": "empty"}),
            ("cell (9, 0)", "outside"),
        ),
        (
            "cell-negative",
            _set_cell(room("cell-negative"), 1, {"x": 1, "y": -1, "component": "empty"}),
            ("cell (1, -1)", "outside"),
        ),
        (
            "cell-duplicate",
            _set_cell(room("cell-duplicate"), 1, {"x": 2, "y": 0, "component": "empty"}),
            ("cell (2, 0)", "more than once"),
        ),
        (
            "cell-huge-coordinate",
            _set_cell(room("cell-huge-coordinate"), 1, {"x": 10**30, "y": 0, "component": "empty"}),
            ("outside",),
        ),
        (
            "unknown-component",
            _set_cell(room("unknown-component"), 4, {"x": 4, "y": 0, "component": "sprinkler"}),
            ("cell (4, 0)", "sprinkler", "smoke_detector"),
        ),
        (
            "component-null",
            _set_cell(room("component-null"), 4, {"x": 4, "y": 0, "component": None}),
            ("component", "None"),
        ),
        ("tile-too-small", room("tile-too-small", tile_size_m=0.1), ("tile_size_m", "range")),
        ("tile-too-big", room("tile-too-big", tile_size_m=3.5), ("tile_size_m", "range")),
        ("tile-string", room("tile-string", tile_size_m="0.6"), ("tile_size_m", "number")),
        (
            "ceiling-too-low",
            room("ceiling-too-low", ceiling_height_m=1.9),
            ("ceiling_height_m", "range"),
        ),
        (
            "ceiling-too-high",
            room("ceiling-too-high", ceiling_height_m=11),
            ("ceiling_height_m", "range"),
        ),
        (
            "unknown-room-type",
            room("unknown-room-type", room_type="ballroom"),
            ("room_type", "ballroom", "office", "storage"),
        ),
        ("room-not-object", "not a room", ("object",)),
    ]


@dataclass(frozen=True)
class BadFile:
    """One malformed file: how to create it and what its one-line reason must say."""

    name: str
    create: Callable[[Path], None] = field(repr=False)
    words: tuple[str, ...]

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        self.create(path)
        return path


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _json(document: Any) -> Callable[[Path], None]:
    return _bytes(json.dumps(document).encode())


def _sparse(size: int) -> Callable[[Path], None]:
    """A file of ``size`` bytes that takes no disk space (a hole, as ``truncate -s``)."""

    def create(path: Path) -> None:
        with open(path, "wb") as handle:
            handle.truncate(size)

    return create


def _truncated(path: Path) -> None:
    text = json.dumps(building("truncated", [room("t1"), room("t2")]))
    path.write_text(text[: len(text) * 2 // 3])


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(8).randbytes(64 * 1024))


def file_defects() -> list[BadFile]:
    """Files rejected as a whole: file-level defects, then each room defect on its own."""
    too_many_rooms = building("too-many", [{}] * (MAX_ROOMS_PER_BUILDING + 1))
    files = [
        BadFile("empty.json", _bytes(b""), ("empty",)),
        BadFile("whitespace.json", _bytes(b" \n\t \n"), ("empty",)),
        BadFile("truncated.json", _truncated, ("malformed JSON", "line")),
        BadFile("garbage.bin.json", _garbage, ("UTF-8",)),
        BadFile("latin1.json", _bytes('{"grid_id": "caf\xe9"}'.encode("latin-1")), ("UTF-8",)),
        BadFile("utf16.json", _bytes(json.dumps(room()).encode("utf-16")), ("UTF-8",)),
        BadFile("trailing-comma.json", _bytes(b'{"rooms": [],}'), ("malformed JSON",)),
        BadFile(
            "nan.json",
            _bytes(
                json.dumps(room("nan"))
                .replace('"grid_id"', '"tile_size_m": NaN, "grid_id"')
                .encode()
            ),
            ("NaN",),
        ),
        BadFile(
            "huge-integer.json",
            _bytes(b'{"grid_id": "h", "width": 1' + b"0" * 5000 + b', "height": 1, "cells": []}'),
            ("invalid",),
        ),
        BadFile(
            "huge-float.json",
            _bytes(
                json.dumps(room("huge-float"))
                .replace('"grid_id"', '"ceiling_height_m": 1e999, "grid_id"')
                .encode()
            ),
            ("ceiling_height_m", "finite"),
        ),
        BadFile("deep-nesting.json", _bytes(b"[" * 200_000 + b"]" * 200_000), ("deeply",)),
        BadFile("top-level-array.json", _json([room()]), ("top level", "array")),
        BadFile("top-level-string.json", _json("room"), ("top level", "string")),
        BadFile("neither.json", _json({"grid": []}), ("neither",)),
        BadFile(
            "rooms-not-list.json", _json({"building_id": "b", "rooms": {"a": 1}}), ("rooms", "list")
        ),
        BadFile(
            "building-id-number.json", _json({"building_id": 7, "rooms": []}), ("building_id",)
        ),
        BadFile("too-many-rooms.json", _json(too_many_rooms), ("rooms", "room limit")),
        BadFile("over-200mb.json", _sparse(MAX_FILE_BYTES + 1), ("bytes", "limit")),
        BadFile("over-200mb-by-far.json", _sparse(3 * MAX_FILE_BYTES), ("bytes", "limit")),
    ]
    # Alone in a file, these two are no longer recognisable as a room at all.
    alone = {"missing-cells": ("neither",), "room-not-object": ("top level", "string")}
    for name, document, words in room_defects():
        files.append(BadFile(f"room-{name}.json", _json(document), alone.get(name, words)))
    return files


def mixed_building() -> tuple[dict[str, Any], list[str], dict[str, tuple[str, ...]]]:
    """A building of good rooms with every room defect between them.

    Returns the document, the grid_ids of the good rooms and, per bad room
    label as the error names it (``grid_id (#index)`` or ``#index``), the words
    its reason must contain.
    """
    rooms: list[Any] = [room("good-first")]
    expected: dict[str, tuple[str, ...]] = {}
    for _name, document, words in room_defects():
        index = len(rooms)
        grid_id = document.get("grid_id") if isinstance(document, dict) else None
        label = f"{grid_id} (#{index})" if isinstance(grid_id, str) and grid_id else f"#{index}"
        rooms.append(document)
        expected[label] = words
    rooms.append(room("good-last", width=3, height=3, room_type="corridor"))
    # A second room with an id already used: the duplicate is rejected, the first kept.
    expected[f"good-first (#{len(rooms)})"] = ("duplicate",)
    rooms.append(room("good-first"))
    return building("mixed", rooms), ["good-first", "good-last"], expected


def write_corpus(folder: Path) -> Iterator[tuple[Path, BadFile]]:
    """Write every whole-file defect into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for bad in file_defects():
        yield bad.write(folder), bad


def make_inbox_oddities(inbox: Path) -> list[str]:
    """Entries that are not regular files: the sensor must survive them and go on.

    Returns their names. A FIFO would block a reader that opens it.
    """
    (inbox / "loop-a.json").symlink_to("loop-b.json")
    (inbox / "loop-b.json").symlink_to("loop-a.json")
    (inbox / "self-loop.json").symlink_to("self-loop.json")
    (inbox / "dangling.json").symlink_to("does-not-exist.json")
    (inbox / "a-directory.json").mkdir()
    (inbox / "a-directory.json" / "inner.json").write_text(json.dumps(room("inner")))
    os.mkfifo(inbox / "fifo.json")
    return [
        "loop-a.json",
        "loop-b.json",
        "self-loop.json",
        "dangling.json",
        "a-directory.json",
        "fifo.json",
    ]
