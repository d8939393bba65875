"""``dump_document`` writes exactly the bytes of ``json.dumps(indent=1)``, only faster.

Cells are rendered from a template and spliced in; every shape of document,
the interchange format's and anything else, must come out byte for byte as the
standard library writes it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from helpers import building_document, room_document, to_json
from hypothesis import given, settings
from hypothesis import strategies as st

from ceilgrid_assets.core.engine import io
from ceilgrid_assets.core.engine.building import complete_building, room_output, room_output_text
from ceilgrid_assets.core.engine.io import _cells_text, dump_document, parse_document, room_text


def reference(document: Any) -> bytes:
    text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    return text.encode("utf-8", "backslashreplace")


def completed_building() -> dict[str, Any]:
    rooms = [
        room_document((6, 4), grid_id="a", floor=1, note="naïve ✓"),
        room_document((3, 3), grid_id="bad", room_type="sauna"),
        room_document((2, 1), grid_id="impossible"),
        room_document((5, 5), devices={"light": [(2, 2)]}, grid_id="lit"),
    ]
    parsed = parse_document(to_json(building_document(rooms, "dump")), "dump.json")
    return complete_building(parsed).document


BUILDING = completed_building()
ROOM = BUILDING["rooms"][0]


def variant(document: dict[str, Any], change) -> dict[str, Any]:
    document = copy.deepcopy(document)
    change(document)
    return document


def set_cell(index: int, value: Any):
    return lambda room: room["cells"].__setitem__(index, value)


DOCUMENTS = {
    "building": BUILDING,
    "room": ROOM,
    "bool x": variant(ROOM, set_cell(3, {"x": True, "y": 0, "component": "empty"})),
    "keys reordered": variant(ROOM, set_cell(2, {"y": 0, "x": 2, "component": "empty"})),
    "extra cell key": variant(ROOM, set_cell(2, {"x": 2, "y": 0, "component": "empty", "z": 1})),
    "name needing escape": variant(ROOM, set_cell(1, {"x": 1, "y": 0, "component": 'la"mp\n'})),
    "unhashable name": variant(ROOM, set_cell(1, {"x": 1, "y": 0, "component": ["light"]})),
    "float coordinate": variant(ROOM, set_cell(1, {"x": 1.0, "y": 0, "component": "light"})),
    "cell not a dict": variant(ROOM, set_cell(0, [0, 0, "empty"])),
    "empty cells": variant(ROOM, lambda room: room.__setitem__("cells", [])),
    "no cells": variant(ROOM, lambda room: room.pop("cells")),
    "placeholder text in a value": variant(
        ROOM, lambda room: room.__setitem__("note", "\x00ceilgrid-cells\x000")
    ),
    "placeholder text in a building": variant(
        BUILDING, lambda building: building.__setitem__("z", "\x00ceilgrid-cells\x001")
    ),
    "lone surrogate": variant(BUILDING, lambda building: building.__setitem__("id", "a\ud800")),
    "room not a dict": variant(BUILDING, lambda building: building["rooms"].append("text")),
    "rooms not a list": {"rooms": {"cells": ROOM["cells"]}, "cells": ROOM["cells"]},
    "nested cells key": {"wrapper": {"cells": ROOM["cells"]}},
}


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_dump_document_is_byte_identical_to_the_standard_library(name):
    document = DOCUMENTS[name]
    assert dump_document(document) == reference(document)


def test_the_building_has_what_the_fast_path_must_handle():
    assert "rejected_rooms" in BUILDING and len(BUILDING["rooms"]) == 3
    assert {cell["component"] for cell in BUILDING["rooms"][2]["cells"]} > {"empty", "light"}
    assert ROOM["note"] == "naïve ✓"


def test_cells_of_the_interchange_format_take_the_template_and_others_do_not():
    """Without this the tests above would pass with the fast path never taken."""
    cells = ROOM["cells"]
    text = _cells_text(cells, 2)
    assert text is not None
    assert json.dumps({"cells": cells}, indent=1) == '{\n "cells": [\n' + text + "\n ]\n}"
    for name in ("bool x", "keys reordered", "name needing escape", "cell not a dict"):
        assert _cells_text(DOCUMENTS[name]["cells"], 2) is None, name


def building_variant(room: dict[str, Any]) -> dict[str, Any]:
    """A building holding the room of one of the documents above among its own rooms."""
    return {**BUILDING, "rooms": [*BUILDING["rooms"][:2], room, BUILDING["rooms"][2]]}


ROOM_VARIANTS = {
    name: building_variant(document)
    for name, document in DOCUMENTS.items()
    if "rooms" not in document and "wrapper" not in document
}
ROOM_VARIANTS["room token in a value"] = variant(
    BUILDING, lambda building: building["rooms"][0].__setitem__("note", "\x00ceilgrid-room\x001")
)
ROOM_VARIANTS["room token in the building"] = variant(
    BUILDING, lambda building: building.__setitem__("z", "\x00ceilgrid-room\x000")
)
ROOM_VARIANTS["lone surrogate in a room"] = variant(
    BUILDING, lambda building: building["rooms"][1].__setitem__("id", "a\ud800")
)


@pytest.mark.parametrize("name", list(ROOM_VARIANTS))
def test_rooms_rendered_one_by_one_give_the_same_bytes(name):
    """A building laid out by workers renders each room as it arrives
    (``BuildingResult.rooms_text``); spliced together they must give the bytes of
    the whole document, whatever its rooms hold."""
    building = ROOM_VARIANTS[name]
    texts = [room_text(room) for room in building["rooms"]]
    assert dump_document(building, texts) == reference(building)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_building_result_dumps_the_bytes_of_its_document(jobs):
    rooms = [room_document((6 + n, 4), grid_id=f"r{n}", note="naïve ✓") for n in range(4)]
    parsed = parse_document(to_json(building_document(rooms, "dump")), "dump.json")
    result = complete_building(parsed, jobs=jobs, memo=None, pool_min_cells=0)
    assert result.rooms_text is not None  # each room rendered as it was delivered
    assert result.dump() == reference(result.document)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"note": "naïve ✓", "floor": 2},
        {"note": "\x00ceilgrid-cells\x000"},  # the placeholder's own text in a value
        {"note": "\x00ceilgrid-room\x000"},  # a room's placeholder text in a room
        {"id": "a\ud800"},  # a lone surrogate
    ],
)
def test_output_rooms_rendered_from_their_grids_give_the_bytes_of_the_document(extra):
    """The engine renders its output rooms from the grid, without a dict per cell; the
    file must hold the bytes of the document with the dicts."""
    rooms = [room_document((5 + n, 4), grid_id=f"r{n}", **extra) for n in range(3)]
    rooms[1]["cells"][3]["component"] = "invalid"
    parsed = parse_document(to_json(building_document(rooms, "dump")), "dump.json")
    result = complete_building(parsed, memo=None)
    assert result.dump() == reference(result.document)
    for room, template in zip(result.rooms, parsed.room_documents, strict=True):
        with_dicts = room_text(room_output(room, template))
        assert room_output_text(room, template) == with_dicts


def test_output_rooms_are_rendered_without_a_dict_per_cell(monkeypatch):
    """Without this the test above would pass with the grid never rendered directly."""
    parsed = parse_document(to_json(room_document((6, 4), grid_id="r", note="naïve ✓")), "r.json")
    result = complete_building(parsed, memo=None)
    expected = room_text(room_output(result.rooms[0], parsed.room_documents[0]))

    def no_dicts(grid):
        raise AssertionError("a dict per cell was made")

    monkeypatch.setattr(io, "cell_dicts", no_dicts)
    assert room_output_text(result.rooms[0], parsed.room_documents[0]) == expected


def test_a_single_room_result_dumps_the_bytes_of_the_room():
    parsed = parse_document(to_json(room_document((6, 4), grid_id="one", note="x")), "one.json")
    result = complete_building(parsed)
    assert result.rooms_text is None and result.document["grid_id"] == "one"
    assert result.dump() == reference(result.document)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # lone surrogates, quotes, control characters, non-ASCII
)
JSON_KEYS = st.text() | st.integers() | st.booleans() | st.none() | st.floats()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(JSON_KEYS, inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_the_encoder_writes_what_the_standard_library_writes_or_raises_as_it_does(value):
    """Keys that are not strings, tuples, NaN and infinities are left to the standard
    library, so the text, or the error, is the same for any value."""
    try:
        expected = json.dumps(value, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError as error:
        with pytest.raises(type(error)):
            io._encode(value)
    else:
        assert io._encode(value) == expected


def test_the_encoder_leaves_deep_nesting_and_cycles_to_the_standard_library():
    deep: Any = []
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        json.dumps(deep, indent=1)
    with pytest.raises(RecursionError):
        io._encode(deep)
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference"):
        io._encode(cycle)
