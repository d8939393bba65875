"""Reading and writing the JSON interchange format, with strict validation.

Every input problem becomes an :class:`InputError` whose ``str`` is one line
naming the file, the room (``grid_id`` or index), the field and the cell. A
building is validated room by room: a bad room is reported in
``ParsedDocument.errors`` and the good rooms are still returned.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ceilgrid_assets.core.engine.errors import InputError, MissingFileError
from ceilgrid_assets.core.engine.grid import (
    CODE,
    COMPONENTS,
    DEFAULT_CEILING_HEIGHT_M,
    DEFAULT_ROOM_TYPE,
    DEFAULT_TILE_SIZE_M,
    Room,
)
from ceilgrid_assets.core.engine.luminaires import luminaire_names
from ceilgrid_assets.core.engine.profile import PROFILES

MAX_CELLS_PER_ROOM = 250_000
MAX_ROOMS_PER_BUILDING = 10_000
MAX_FILE_BYTES = 200 * 1024 * 1024
TILE_SIZE_RANGE_M = (0.1, 3.0)  # (exclusive, inclusive]
CEILING_HEIGHT_RANGE_M = (2.0, 10.5)  # inclusive
ROOM_TYPES: tuple[str, ...] = tuple(PROFILES["nfpa72"].illuminance_lx)
#: Keys ceilgrid writes into an output room; ignored when a completed layout is read back.
OUTPUT_KEYS = ("compliance", "models", "metrics")


@dataclass
class ParsedDocument:
    """A building as read: the good rooms and one error per bad room.

    ``room_documents`` holds each good room's JSON object (same order as
    ``rooms``; its ``cells`` left out, as ``None``) so that the output can keep
    keys ceilgrid does not interpret.
    """

    source: str
    building_id: str
    rooms: list[Room] = field(default_factory=list)
    room_documents: list[dict[str, Any]] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    single_room: bool = False


def read_limited(path: str | os.PathLike[str], source: str | None = None) -> bytes:
    """A file's bytes, refused before reading when over :data:`MAX_FILE_BYTES`.

    Checking the size first keeps a huge file out of memory; reading at most one
    byte more than the limit catches a file that grew in between.
    """
    source = str(path) if source is None else source
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            raise InputError(
                f"file is {size} bytes, more than the {MAX_FILE_BYTES} byte limit", source=source
            )
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise MissingFileError("file not found", source=source) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a JSON file", source=source) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", source=source) from None


def read_document(path: str | os.PathLike[str]) -> ParsedDocument:
    """Read and validate a room or building file; file-level problems raise InputError."""
    return parse_document(read_limited(path), str(path))


_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FILE_STEM = 100


def safe_file_stem(identifier: str, fallback: str) -> str:
    """A file name (and partition key) for a user-given id: distinct ids, distinct names.

    Ids that are already safe are kept as they are; others are cleaned (no path
    separator, no leading dot) and get a short hash of the original, so that
    ``a b`` and ``a_b`` never share a file.
    """
    cleaned = _UNSAFE_FILE_CHARACTERS.sub("-", identifier).strip(".-")[:MAX_FILE_STEM]
    if cleaned == identifier:
        return identifier
    digest = hashlib.sha256(identifier.encode()).hexdigest()[:8]
    return f"{cleaned or fallback}-{digest}"


def parse_document(data: bytes | str, source: str = "<input>") -> ParsedDocument:
    """Parse JSON text of a room or a building; file-level problems raise InputError."""
    return parse_object(load_json(data, source), source)


def load_json(data: bytes | str, source: str = "<input>") -> Any:
    """Decode UTF-8 JSON with the size limit; every failure is an InputError."""
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"more than the {MAX_FILE_BYTES} byte limit", source=source)
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte offset {exc.start})", source=source) from None
    else:
        text = data
    if not text.strip():
        raise InputError("empty file, expected a JSON object", source=source)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=source
        ) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", source=source) from None
    except ValueError as exc:  # _reject_constant, or int() of a huge literal
        raise InputError(f"invalid JSON value: {exc}", source=source) from None


def _template(room_document: dict[str, Any]) -> dict[str, Any]:
    """A good room's JSON object without its cells, which its :class:`Room` holds: the
    output keeps the object's key order and unknown keys, and a building's cell
    objects (nearly all of a parsed file) are freed once parsed."""
    return {**room_document, "cells": None}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_object(document: Any, source: str = "<input>") -> ParsedDocument:
    """Validate an already-decoded JSON value as a room or a building."""
    if not isinstance(document, dict):
        raise InputError(
            f"top level must be a JSON object (a room or a building), got {_json_type(document)}",
            source=source,
        )
    if "rooms" in document:
        building_id = document.get("building_id", Path(source).stem)
        if not isinstance(building_id, str) or not building_id:
            raise InputError("must be a non-empty string", source=source, field_name="building_id")
        rooms = document["rooms"]
        if not isinstance(rooms, list):
            raise InputError(
                f"must be a list of rooms, got {_json_type(rooms)}",
                source=source,
                field_name="rooms",
            )
        if len(rooms) > MAX_ROOMS_PER_BUILDING:
            raise InputError(
                f"{len(rooms)} rooms, more than the {MAX_ROOMS_PER_BUILDING} room limit",
                source=source,
                field_name="rooms",
            )
        luminaire = document.get("luminaire")
        if luminaire is not None:
            luminaire = _luminaire_name(
                luminaire, lambda reason, name: InputError(reason, source=source, field_name=name)
            )
        parsed = ParsedDocument(source=source, building_id=building_id)
        seen: dict[str, int] = {}
        for index, room_document in enumerate(rooms):
            try:
                room = parse_room(room_document, source, index, luminaire)
                if room.grid_id in seen:
                    raise InputError(
                        f"duplicate grid_id, already used by room #{seen[room.grid_id]}",
                        source=source,
                        room=_room_label(room_document, index),
                        field_name="grid_id",
                    )
            except InputError as error:
                parsed.errors.append(error)
                continue
            seen[room.grid_id] = index
            parsed.rooms.append(room)
            parsed.room_documents.append(_template(room_document))
        return parsed
    if "cells" in document:
        room = parse_room(document, source, None)
        return ParsedDocument(
            source=source,
            building_id=room.grid_id,
            rooms=[room],
            room_documents=[_template(document)],
            single_room=True,
        )
    raise InputError("neither a room (needs 'cells') nor a building (needs 'rooms')", source=source)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _room_label(room_document: Any, index: int | None) -> str:
    grid_id = room_document.get("grid_id") if isinstance(room_document, dict) else None
    if isinstance(grid_id, str) and grid_id:
        return grid_id if index is None else f"{grid_id} (#{index})"
    return "#0" if index is None else f"#{index}"


def _is_int(value: Any) -> bool:
    return type(value) is int


def _number(room_document: dict, name: str, default: float, err) -> float:
    value = room_document.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise err(f"must be a number, got {_json_type(value)}", name)
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise err("must be a finite number", name)
    return number


def _luminaire_name(value: Any, err) -> str:
    """A ``luminaire`` value: the name of a shipped luminaire file, never a path."""
    names = luminaire_names()
    if not isinstance(value, str) or value not in names:
        raise err(f"unknown value {value!r:.40}; allowed: {', '.join(names)}", "luminaire")
    return value


def parse_room(
    room_document: Any,
    source: str = "<input>",
    index: int | None = None,
    luminaire: str | None = None,
) -> Room:
    """Validate one room object into a :class:`Room`; any problem raises InputError.

    ``luminaire`` is the building's, used when the room names none.
    """
    label = _room_label(room_document, index)

    def err(reason: str, field_name: str | None = None, cell: tuple[int, int] | None = None):
        return InputError(reason, source=source, room=label, field_name=field_name, cell=cell)

    if not isinstance(room_document, dict):
        raise err(f"a room must be a JSON object, got {_json_type(room_document)}")
    for required in ("grid_id", "width", "height", "cells"):
        if required not in room_document:
            raise err("missing required field", required)
    grid_id = room_document["grid_id"]
    if not isinstance(grid_id, str) or not grid_id.strip():
        raise err(f"must be a non-empty string, got {_json_type(grid_id)}", "grid_id")
    width, height = room_document["width"], room_document["height"]
    for name, value in (("width", width), ("height", height)):
        if not _is_int(value):
            raise err(f"must be an integer, got {_json_type(value)} {value!r:.40}", name)
        if value < 1:
            raise err(f"must be at least 1, got {value}", name)
    if width * height > MAX_CELLS_PER_ROOM:
        raise err(
            f"{width}x{height} = {width * height} cells, more than the "
            f"{MAX_CELLS_PER_ROOM} cell limit",
            "width",
        )
    tile = _number(room_document, "tile_size_m", DEFAULT_TILE_SIZE_M, err)
    if not TILE_SIZE_RANGE_M[0] < tile <= TILE_SIZE_RANGE_M[1]:
        raise err(f"{tile} m is outside the range (0.1, 3.0]", "tile_size_m")
    ceiling = _number(room_document, "ceiling_height_m", DEFAULT_CEILING_HEIGHT_M, err)
    if not CEILING_HEIGHT_RANGE_M[0] <= ceiling <= CEILING_HEIGHT_RANGE_M[1]:
        raise err(f"{ceiling} m is outside the range [2.0, 10.5]", "ceiling_height_m")
    room_type = room_document.get("room_type", DEFAULT_ROOM_TYPE)
    if room_type not in ROOM_TYPES:
        raise err(f"unknown value {room_type!r:.40}; allowed: {', '.join(ROOM_TYPES)}", "room_type")
    if "luminaire" in room_document:
        luminaire = _luminaire_name(room_document["luminaire"], err)
    cells = _parse_cells(room_document["cells"], width, height, err)
    extra = {
        key: value
        for key, value in room_document.items()
        if key
        not in (
            "grid_id",
            "width",
            "height",
            "cells",
            "tile_size_m",
            "ceiling_height_m",
            "room_type",
            "luminaire",
        )
        + OUTPUT_KEYS
    }
    return Room(
        grid_id=grid_id,
        cells=cells,
        tile_size_m=tile,
        ceiling_height_m=ceiling,
        room_type=room_type,
        extra=extra,
        luminaire=luminaire,
    )


def _parse_cells(cells: Any, width: int, height: int, err) -> np.ndarray:
    """Cells list to a ``(height, width)`` code array, checked in bulk with numpy."""
    if not isinstance(cells, list):
        raise err(f"must be a list of cells, got {_json_type(cells)}", "cells")
    expected = width * height
    if len(cells) != expected:
        raise err(f"has {len(cells)} cells, expected width*height = {expected}", "cells")
    try:
        xs = [cell["x"] for cell in cells]
        ys = [cell["y"] for cell in cells]
        names = [cell["component"] for cell in cells]
    except (TypeError, KeyError):
        raise _first_bad_cell_shape(cells, err) from None
    for name, values in (("x", xs), ("y", ys)):
        if not all(map(_is_int, values)):
            position = next(i for i, value in enumerate(values) if not _is_int(value))
            raise err(
                f"cell #{position}: must be an integer, got {_json_type(values[position])}", name
            )
    try:
        x = np.asarray(xs, dtype=np.int64)
        y = np.asarray(ys, dtype=np.int64)
    except OverflowError:  # beyond int64, so certainly outside the grid
        x = np.asarray([min(max(value, -1), width) for value in xs], dtype=np.int64)
        y = np.asarray([min(max(value, -1), height) for value in ys], dtype=np.int64)
    out_of_bounds = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if out_of_bounds.any():
        i = int(np.argmax(out_of_bounds))
        raise err(
            f"outside the {width}x{height} grid (0 <= x < {width}, 0 <= y < {height})",
            "x" if not 0 <= x[i] < width else "y",
            (xs[i], ys[i]),
        )
    flat = y * width + x
    counts = np.bincount(flat, minlength=expected)
    if (counts > 1).any():
        first = int(np.argmax(counts > 1))
        raise err("listed more than once", "cells", (first % width, first // width))
    try:
        codes = np.fromiter((CODE[name] for name in names), dtype=np.uint8, count=expected)
    except (KeyError, TypeError):
        position = next(
            i for i, name in enumerate(names) if not isinstance(name, str) or name not in CODE
        )
        raise err(
            f"unknown value {names[position]!r:.40}; allowed: {', '.join(COMPONENTS)}",
            "component",
            (xs[position], ys[position]),
        ) from None
    grid = np.empty(expected, dtype=np.uint8)
    grid[flat] = codes
    return grid.reshape(height, width)


def _first_bad_cell_shape(cells: list, err) -> InputError:
    for position, cell in enumerate(cells):
        if not isinstance(cell, dict):
            return err(f"cell #{position} must be an object, got {_json_type(cell)}", "cells")
        for key in ("x", "y", "component"):
            if key not in cell:
                return err(f"cell #{position} has no '{key}'", key)
    return err("malformed cells", "cells")


def room_to_document(
    room: Room, template: dict[str, Any] | None = None, *, cells: Any = None
) -> dict[str, Any]:
    """A room as a JSON-ready dict, keeping the input's key order and unknown keys.

    ``cells``: what the ``cells`` key holds instead of a dict per cell
    (:data:`CELLS_PLACEHOLDER`, for :func:`room_text` to render from the grid).
    """
    height, width = room.cells.shape
    document: dict[str, Any] = dict(template) if template else {}
    for key in OUTPUT_KEYS:
        document.pop(key, None)
    document.update(
        {
            "grid_id": room.grid_id,
            "width": width,
            "height": height,
            "cells": cell_dicts(room.cells) if cells is None else cells,
            "tile_size_m": room.tile_size_m,
            "ceiling_height_m": room.ceiling_height_m,
            "room_type": room.room_type,
        }
    )
    if room.luminaire is not None:  # a building's luminaire is written into each room
        document["luminaire"] = room.luminaire
    for key, value in room.extra.items():
        document.setdefault(key, value)
    return document


def _cell_columns(grid: np.ndarray) -> tuple[list[int], list[int], list[str]]:
    """x, y and component name of every cell of ``grid``, in row-major order."""
    height, width = grid.shape
    ys, xs = np.divmod(np.arange(height * width), width)
    names = np.asarray(COMPONENTS, dtype=object)[grid.ravel()]
    return xs.tolist(), ys.tolist(), names.tolist()


def cell_dicts(grid: np.ndarray) -> list[dict[str, Any]]:
    """The interchange format's cells of ``grid``: ``{"x", "y", "component"}`` per cell."""
    return [
        {"x": x, "y": y, "component": name} for x, y, name in zip(*_cell_columns(grid), strict=True)
    ]


def dump_document(document: dict[str, Any], rooms_text: Sequence[str] | None = None) -> bytes:
    """Deterministic JSON bytes: one cell per line keeps diffs and files readable.

    The bytes are those of ``json.dumps(document, indent=1, ensure_ascii=False)``.
    With an indent, the standard library encodes in pure Python, and cells are
    nearly all of a document; so every cells list in the interchange format is
    rendered from one template (see :func:`_cells_text`) and spliced into the
    encoding of the rest. ``rooms_text``: the building's rooms already rendered by
    :func:`room_text`, spliced in the same way (:func:`splice_rooms`).
    """
    rooms = document.get("rooms")
    if rooms_text is not None and isinstance(rooms, list) and len(rooms_text) == len(rooms):
        spliced = splice_rooms(document, rooms_text)
        if spliced is not None:
            return spliced
    # A lone surrogate (legal as a JSON escape in the input) is written back as its escape.
    return _dumps(document).encode("utf-8", "backslashreplace")


def splice_rooms(document: dict[str, Any], rooms_text: Sequence[str]) -> bytes | None:
    """:func:`dump_document` of ``document`` with its rooms, whatever it holds there, being
    ``rooms_text`` (:func:`room_text` of each); None when a string of the document
    itself reads like a room's placeholder (then dump the whole document)."""
    tokens = [f"{_ROOM_TOKEN}{index}" for index in range(len(rooms_text))]
    spliced = _splice(_encode({**document, "rooms": tokens}), _ROOM_PATTERN, rooms_text)
    return None if spliced is None else spliced.encode("utf-8", "backslashreplace")


def room_text(room: dict[str, Any], grid: np.ndarray | None = None) -> str:
    """One room of a building as :func:`dump_document` writes it among the rooms.

    The room alone, indented two levels deeper: JSON strings never hold a raw
    line break, so every line break is the encoder's own. ``grid``: the room's
    cells, when ``room["cells"]`` is :data:`CELLS_PLACEHOLDER`; they are rendered
    straight from the array, the same text as from :func:`cell_dicts` without
    making a dict per cell (the engine's own output rooms).
    """
    text = None
    if grid is not None and grid.size and room.get("cells") == CELLS_PLACEHOLDER:
        cells = _cells_list(_format_cells(*_cell_columns(grid), depth=2), depth=2)
        text = _splice(_encode(room), _CELLS_PATTERN, [cells])
    if text is None:
        text = _dumps(room if grid is None else {**room, "cells": cell_dicts(grid)})
    return text.rstrip("\n").replace("\n", "\n  ")


def _dumps(document: dict[str, Any]) -> str:
    """:func:`dump_document` as text."""
    rooms = document.get("rooms")
    if isinstance(rooms, list) and all(type(room) is dict for room in rooms):
        # Elements of a room's cells list sit 4 levels deep in a building, 2 in a room.
        holders, depth = rooms, 4
    else:
        holders, depth = [document], 2
    rendered = [_cells_text(holder.get("cells"), depth) for holder in holders]
    if any(text is not None for text in rendered):
        swapped = [
            holder if text is None else {**holder, "cells": f"{_CELLS_TOKEN}{index}"}
            for index, (holder, text) in enumerate(zip(holders, rendered, strict=True))
        ]
        outer = {**document, "rooms": swapped} if depth == 4 else swapped[0]
        lists = [None if text is None else _cells_list(text, depth) for text in rendered]
        spliced = _splice(_encode(outer), _CELLS_PATTERN, lists)
        if spliced is not None:
            return spliced
    return _encode(document)


def _splice(encoded: str, pattern: re.Pattern[str], texts: Sequence[str | None]) -> str | None:
    """``encoded`` with each token ``pattern`` finds replaced by its text, or None when
    the tokens found are not exactly those of the texts given, in order (the
    document itself held such a string)."""
    pieces = pattern.split(encoded)
    indices = [int(index) for index in pieces[1::2]]
    if indices != [index for index, text in enumerate(texts) if text is not None]:
        return None
    for position, index in enumerate(indices, start=1):
        pieces[2 * position - 1] = texts[index]
    return "".join(pieces)


def _encode(document: Any) -> str:
    """``json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False)`` and a line
    break: the same text, built without the standard library's pure-Python encoder
    (its generators cost most of an output room's rendering) for documents of
    dicts with string keys, lists, strings, integers, finite floats, booleans and
    None; anything else is left to the standard library, which also raises."""
    parts: list[str] = []
    try:
        _encode_into(parts, document, "\n")
    except (_Unusual, RecursionError):  # RecursionError: deeply nested, or circular
        return json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    parts.append("\n")
    return "".join(parts)


class _Unusual(Exception):
    """A value :func:`_encode_into` leaves to the standard library."""


_encode_string = json.encoder.encode_basestring  # the C function json.dumps uses here


def _encode_into(parts: list[str], value: Any, newline: str) -> None:
    """Append the text of ``value`` at the indent ``newline`` carries (a line break
    and one space per level)."""
    kind = type(value)
    if kind is str:
        parts.append(_encode_string(value))
    elif kind is dict or kind is list:
        opening, closing = ("{", "}") if kind is dict else ("[", "]")
        if not value:
            parts.append(opening + closing)
            return
        inner = newline + " "
        separator = opening + inner
        for key, item in value.items() if kind is dict else enumerate(value):
            parts.append(separator)
            if kind is dict:
                if type(key) is not str:
                    raise _Unusual
                parts.append(_encode_string(key) + ": ")
            _encode_into(parts, item, inner)
            separator = "," + inner
        parts.append(newline + closing)
    elif kind is int:
        parts.append(int.__repr__(value))
    elif kind is float and math.isfinite(value):
        parts.append(float.__repr__(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    else:  # tuples, subclasses, NaN and infinities (an error), other types
        raise _Unusual


#: Stands in for a rendered cells list while the rest is encoded; JSON escapes the
#: NUL characters, and a document that happens to hold the same text anyway is
#: caught by the index check and encoded the plain way.
_CELLS_TOKEN = "\x00ceilgrid-cells\x00"
_CELLS_PATTERN = re.compile(r'"\\u0000ceilgrid-cells\\u0000(\d+)"')
#: What an output room's ``cells`` holds when :func:`room_text` renders them from the grid.
CELLS_PLACEHOLDER = f"{_CELLS_TOKEN}0"
_ROOM_TOKEN = "\x00ceilgrid-room\x00"
_ROOM_PATTERN = re.compile(r'"\\u0000ceilgrid-room\\u0000(\d+)"')
_CELL_KEYS = ["x", "y", "component"]
_COMPONENT_NAMES = frozenset(COMPONENTS)


def _cells_text(cells: Any, depth: int) -> str | None:
    """The elements of a cells list as ``json.dumps(indent=1)`` writes them at ``depth``.

    Only for the interchange format's cells (``{"x": int, "y": int, "component":
    name}`` in that key order); anything else is None and encoded the plain way.
    """
    if not isinstance(cells, list) or not cells:
        return None
    try:
        if not all(map(_CELL_KEYS.__eq__, map(list, cells))):
            return None
        xs = list(map(operator.itemgetter("x"), cells))
        ys = list(map(operator.itemgetter("y"), cells))
        names = list(map(operator.itemgetter("component"), cells))
        if not ({*map(type, xs), *map(type, ys)} <= {int} and set(names) <= _COMPONENT_NAMES):
            return None
    except (TypeError, KeyError):  # not dicts, or unhashable names
        return None
    return _format_cells(xs, ys, names, depth)


def _cells_list(elements: str, depth: int) -> str:
    """A cells list around its elements rendered at ``depth`` (:func:`_format_cells`)."""
    return f"[\n{elements}\n{' ' * (depth - 1)}]"


def _format_cells(xs: list[int], ys: list[int], names: list[str], depth: int) -> str:
    """Cells of the interchange format (names that need no escaping) as
    ``json.dumps(indent=1)`` writes the elements of their list at ``depth``."""
    outer, inner = " " * depth, " " * (depth + 1)
    template = (
        f'{outer}{{{{\n{inner}"x": {{}},\n{inner}"y": {{}},\n'
        f'{inner}"component": "{{}}"\n{outer}}}}}'
    )
    return ",\n".join(map(template.format, xs, ys, names))


def content_hash(data: bytes) -> str:
    """Short SHA-256 of a document's bytes: how submissions and layouts are matched up."""
    return hashlib.sha256(data).hexdigest()[:16]


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write via a temporary file and rename, so no reader ever sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
