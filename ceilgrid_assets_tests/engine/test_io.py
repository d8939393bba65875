"""Input validation (docs/format.md): every bad-input class becomes one InputError line.

Each message must be a single line that names the file, and where it applies
the room (grid_id or index), the field and the cell.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from helpers import SAMPLE_PATH, building_document, load_sample, room_document, to_json

from ceilgrid_assets.core.engine import io
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.grid import CODE, Room
from ceilgrid_assets.core.engine.io import parse_document, parse_object, read_document

SOURCE = "rooms/bad.json"


def parse_error(document, source: str = SOURCE) -> InputError:
    """The InputError raised for a document (dict/list -> JSON text first)."""
    text = document if isinstance(document, (str, bytes)) else json.dumps(document)
    with pytest.raises(InputError) as caught:
        parse_document(text, source)
    return check_one_line(caught.value, source)


def check_one_line(error: InputError, source: str = SOURCE) -> InputError:
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(source + ": "), message
    assert "Traceback" not in message
    return error


def good_room(**fields):
    return room_document(
        (3, 2), invalid=[(0, 0)], devices={"light": [(2, 1)]}, grid_id="r1", **fields
    )


def with_cell(document, index, **changes):
    document = json.loads(json.dumps(document))
    document["cells"][index].update(changes)
    return document


# ------------------------------------------------------------------ good input


def test_good_room_parses_into_the_array():
    parsed = parse_document(to_json(good_room()), SOURCE)
    assert parsed.single_room and parsed.errors == []
    [room] = parsed.rooms
    assert room.grid_id == "r1" and (room.width, room.height) == (3, 2)
    assert room.cells[0, 0] == CODE["invalid"]  # (x=0, y=0)
    assert room.cells[1, 2] == CODE["light"]  # (x=2, y=1): array is [y, x]
    assert room.count("empty") == 4
    # defaults of the format
    assert (room.tile_size_m, room.ceiling_height_m, room.room_type) == (0.6, 2.7, "office")


def test_cells_in_any_order_parse_the_same():
    document = good_room()
    shuffled = dict(document, cells=list(reversed(document["cells"])))
    a = parse_document(to_json(document)).rooms[0]
    b = parse_document(to_json(shuffled)).rooms[0]
    assert np.array_equal(a.cells, b.cells)


def test_original_editor_sample_loads_unchanged():
    raw = load_sample()
    assert set(raw) == {"grid_id", "width", "height", "cells"}  # the original format only
    parsed = read_document(SAMPLE_PATH)
    assert parsed.errors == [] and parsed.single_room
    [room] = parsed.rooms
    assert room.grid_id == raw["grid_id"]
    assert (room.width, room.height) == (raw["width"], raw["height"])
    for cell in raw["cells"]:
        assert room.cells[cell["y"], cell["x"]] == CODE[cell["component"]]
    assert room.count("invalid") == sum(c["component"] == "invalid" for c in raw["cells"])
    assert room.extra == {}
    # writing it back keeps every original cell as it was
    written = io.room_to_document(room, raw)
    assert written["cells"] == sorted(raw["cells"], key=lambda c: (c["y"], c["x"]))


def test_unknown_top_level_keys_are_kept():
    parsed = parse_document(to_json(good_room(designer="Ada", notes={"floor": 3})))
    assert parsed.rooms[0].extra == {"designer": "Ada", "notes": {"floor": 3}}


def test_output_keys_of_a_completed_layout_are_ignored_on_read():
    document = good_room(compliance={"compliant": True}, models={}, metrics={})
    assert parse_document(to_json(document)).rooms[0].extra == {}


def test_utf8_bom_and_non_ascii_ids_are_fine():
    text = to_json(good_room()).replace('"r1"', '"Büro-1"')
    parsed = parse_document(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert parsed.rooms[0].grid_id == "Büro-1"


@pytest.mark.parametrize(("tile", "ceiling"), [(3.0, 2.0), (0.1000001, 10.5), (1, 3)])
def test_range_limits_are_inclusive_where_the_format_says(tile, ceiling):
    parsed = parse_document(to_json(good_room(tile_size_m=tile, ceiling_height_m=ceiling)))
    assert parsed.rooms[0].tile_size_m == pytest.approx(tile)


def test_every_room_type_is_accepted():
    for room_type in ("office", "meeting", "classroom", "corridor", "lobby", "restroom", "storage"):
        assert (
            parse_document(to_json(good_room(room_type=room_type))).rooms[0].room_type == room_type
        )


# ------------------------------------------------------------------ malformed / file level


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"grid_id": "r1", "width": 3,', "malformed JSON"),
        ('{"grid_id": "r1",}', "malformed JSON at line 1"),
        ("{'grid_id': 'r1'}", "malformed JSON"),
        ('{"a": 1}\n{"b": 2}', "malformed JSON at line 2"),
        ('{"a": NaN}', "NaN is not allowed"),
        ('{"a": -Infinity}', "not allowed"),
        ("", "empty file"),
        ("   \n\t ", "empty file"),
        ("[" * 100_000, "nested too deeply"),
        ('{"a":' * 100_000, "nested too deeply"),
        ("[]", "top level must be a JSON object"),
        ("42", "got number"),
        ('"room"', "got string"),
        ("null", "got null"),
        ('{"name": "not a room"}', "neither a room"),
    ],
)
def test_file_level_errors(text, words):
    error = parse_error(text)
    assert words in str(error)
    assert error.room is None


def test_non_utf8_bytes():
    data = to_json(good_room()).encode("utf-8").replace(b'"r1"', b'"r\xff1"')
    error = parse_error(data)
    assert "not UTF-8" in str(error) and "byte offset" in str(error)


def test_utf16_file_is_not_utf8():
    data = to_json(good_room()).encode("utf-16")
    assert "not UTF-8" in str(parse_error(data))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError) as caught:
        read_document(tmp_path / "nope.json")
    check_one_line(caught.value, str(tmp_path / "nope.json"))
    assert "not found" in str(caught.value)
    with pytest.raises(InputError) as caught:
        read_document(tmp_path)
    check_one_line(caught.value, str(tmp_path))


def test_read_document_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"grid_id": ')
    with pytest.raises(InputError) as caught:
        read_document(path)
    check_one_line(caught.value, str(path))


def test_file_size_limit(tmp_path, monkeypatch):
    text = to_json(good_room())
    monkeypatch.setattr(io, "MAX_FILE_BYTES", len(text))
    exact = tmp_path / "exact.json"
    exact.write_text(text)
    assert read_document(exact).rooms  # exactly at the limit: fine
    big = tmp_path / "big.json"
    big.write_text(text + " ")
    with pytest.raises(InputError) as caught:
        read_document(big)
    check_one_line(caught.value, str(big))
    assert f"{len(text)} byte limit" in str(caught.value)
    # parse_document on bytes applies the same limit
    assert "byte limit" in str(parse_error((text + " ").encode()))


# ------------------------------------------------------------------ wrong types


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("width", "3", "must be an integer, got string"),
        ("width", 3.0, "must be an integer, got number"),
        ("width", True, "must be an integer, got boolean"),
        ("height", None, "must be an integer, got null"),
        ("height", [2], "must be an integer, got array"),
        ("width", 0, "at least 1"),
        ("height", -2, "at least 1"),
        ("grid_id", 7, "non-empty string"),
        ("grid_id", "", "non-empty string"),
        ("grid_id", "   ", "non-empty string"),
        ("grid_id", None, "got null"),
        ("cells", {"x": 0}, "must be a list of cells, got object"),
        ("cells", "empty", "got string"),
        ("tile_size_m", "0.6", "must be a number, got string"),
        ("tile_size_m", True, "must be a number, got boolean"),
        ("tile_size_m", None, "must be a number, got null"),
        ("ceiling_height_m", "2.7", "must be a number, got string"),
        ("ceiling_height_m", False, "got boolean"),
        ("ceiling_height_m", {"m": 2.7}, "got object"),
    ],
)
def test_wrong_field_types(field, value, words):
    error = parse_error(dict(good_room(), **{field: value}))
    assert words in str(error)
    assert error.field_name == field
    assert f"field '{field}'" in str(error)
    assert error.room is not None  # the room is named (grid_id or #index)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("x", "1", "must be an integer, got string"),
        ("x", 1.0, "must be an integer, got number"),
        ("y", True, "must be an integer, got boolean"),
        ("y", None, "got null"),
        ("component", None, "unknown value None"),
        ("component", 3, "unknown value 3"),
        ("component", ["light"], "unknown value"),
    ],
)
def test_wrong_cell_types(key, value, words):
    error = parse_error(with_cell(good_room(), 4, **{key: value}))
    assert words in str(error)
    assert error.field_name == key


def test_wrong_cell_type_names_the_cell_position():
    error = parse_error(with_cell(good_room(), 4, x="1"))
    assert "cell #4" in str(error)


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        (["0", "0", "empty"], "cell #2 must be an object, got array"),
        ("empty", "must be an object, got string"),
        (None, "got null"),
    ],
)
def test_cells_that_are_not_objects(cell, words):
    document = good_room()
    document["cells"][2] = cell
    error = parse_error(document)
    assert words in str(error) and error.field_name == "cells"


# ------------------------------------------------------------------ missing fields


@pytest.mark.parametrize("field", ["grid_id", "width", "height"])
def test_missing_required_room_field(field):
    document = good_room()
    del document[field]
    error = parse_error(document)
    assert "missing required field" in str(error)
    assert error.field_name == field


@pytest.mark.parametrize("field", ["grid_id", "width", "height", "cells"])
def test_missing_required_field_inside_a_building(field):
    document = good_room()
    del document[field]
    parsed = parse_document(to_json(building_document([document])), SOURCE)
    [error] = parsed.errors
    check_one_line(error)
    assert "missing required field" in str(error)
    assert error.field_name == field and "#0" in error.room


def test_lone_object_without_cells_is_not_a_room():
    document = good_room()
    del document["cells"]
    assert "neither a room (needs 'cells') nor a building" in str(parse_error(document))


@pytest.mark.parametrize("key", ["x", "y", "component"])
def test_missing_cell_key(key):
    document = good_room()
    del document["cells"][3][key]
    error = parse_error(document)
    assert f"cell #3 has no '{key}'" in str(error)
    assert error.field_name == key


# ------------------------------------------------------------------ counts, duplicates, bounds


def test_cell_count_mismatch_too_few():
    document = good_room()
    document["cells"].pop()
    error = parse_error(document)
    assert "has 5 cells, expected width*height = 6" in str(error)
    assert error.field_name == "cells" and error.room == "r1"


def test_cell_count_mismatch_too_many():
    document = good_room()
    document["cells"].append({"x": 0, "y": 0, "component": "empty"})
    assert "has 7 cells" in str(parse_error(document))


def test_duplicate_cell_is_named():
    # (1, 0) listed twice, (2, 1) missing: the count is right but a cell repeats
    document = good_room()
    document["cells"][-1] = {"x": 1, "y": 0, "component": "empty"}
    error = parse_error(document)
    assert "more than once" in str(error)
    assert error.cell == (1, 0)
    assert "cell (1, 0)" in str(error)


@pytest.mark.parametrize(
    ("x", "y", "field"),
    [(3, 1, "x"), (-1, 0, "x"), (0, 2, "y"), (2, -5, "y"), (99, 99, "x")],
)
def test_out_of_bounds_cell(x, y, field):
    error = parse_error(with_cell(good_room(), 5, x=x, y=y))
    assert "outside the 3x2 grid" in str(error)
    assert error.cell == (x, y) and error.field_name == field
    assert f"cell ({x}, {y})" in str(str(error))


@pytest.mark.parametrize("big", [10**20, -(10**20), 2**63, 10**400])
def test_huge_cell_coordinates_are_out_of_bounds_not_a_crash(big):
    # Python ints of any size reach the parser; they must be rejected as input
    error = parse_error(with_cell(good_room(), 0, x=big))
    assert error.field_name == "x"


@pytest.mark.parametrize("field", ["tile_size_m", "ceiling_height_m"])
def test_huge_integer_numbers_are_out_of_range_not_a_crash(field):
    error = parse_error(
        to_json(good_room()).replace('"cells"', f'"{field}": 1{"0" * 400}, "cells"')
    )
    assert error.field_name == field


def test_huge_number_literals():
    # 1e999 decodes to infinity; a 5000-digit integer exceeds Python's int() digit limit
    assert parse_error(to_json(good_room()).replace('"cells"', '"tile_size_m": 1e999, "cells"'))
    assert parse_error(to_json(good_room()).replace('"width": 3', '"width": 3' + "0" * 5000))


# ------------------------------------------------------------------ unknown values


def test_unknown_component_lists_the_allowed_values():
    error = parse_error(with_cell(good_room(), 4, component="sprinkler"))
    message = str(error)
    assert "unknown value 'sprinkler'" in message
    for allowed in (
        "empty",
        "invalid",
        "light",
        "air_supply",
        "air_return",
        "smoke_detector",
        "void",
    ):
        assert allowed in message
    assert error.field_name == "component" and error.cell == (1, 1)
    assert message == (
        f"{SOURCE}: room r1: field 'component': cell (1, 1): unknown value "
        "'sprinkler'; allowed: empty, invalid, light, air_supply, air_return, "
        "smoke_detector, void"
    )


def test_unknown_room_type_lists_the_allowed_values():
    error = parse_error(good_room(room_type="kitchen"))
    message = str(error)
    assert "unknown value 'kitchen'" in message
    for allowed in ("office", "meeting", "classroom", "corridor", "lobby", "restroom", "storage"):
        assert allowed in message
    assert error.field_name == "room_type"


def test_component_names_are_case_sensitive():
    assert "unknown value 'Light'" in str(parse_error(with_cell(good_room(), 1, component="Light")))


# ------------------------------------------------------------------ ranges


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tile_size_m", 0.1),  # the lower bound is exclusive
        ("tile_size_m", 0.0),
        ("tile_size_m", -0.6),
        ("tile_size_m", 3.0001),
        ("ceiling_height_m", 1.99),
        ("ceiling_height_m", 10.51),
        ("ceiling_height_m", 0),
    ],
)
def test_tile_and_ceiling_out_of_range(field, value):
    error = parse_error(good_room(**{field: value}))
    assert "outside the range" in str(error)
    assert error.field_name == field


# ------------------------------------------------------------------ size limits


def test_cells_per_room_limit_is_checked_before_the_cells():
    # 501 x 500 = 250,500 cells > 250,000: rejected without building any cell list
    document = {"grid_id": "huge", "width": 501, "height": 500, "cells": []}
    error = parse_error(document)
    assert "250500 cells" in str(error) and "250000 cell limit" in str(error)
    assert error.room == "huge"


def test_cells_per_room_limit_is_inclusive():
    # 500 x 500 = 250,000 is allowed: the error is about the (empty) cell list instead
    document = {"grid_id": "edge", "width": 500, "height": 500, "cells": []}
    assert "expected width*height = 250000" in str(parse_error(document))


def test_astronomical_dimensions_are_rejected_cheaply():
    document = {"grid_id": "huge", "width": 10**12, "height": 10**12, "cells": []}
    assert "cell limit" in str(parse_error(document))


def test_rooms_per_building_limit():
    # 10,001 tiny placeholders: rejected as a whole before any room is parsed
    document = {"building_id": "tower", "rooms": [{}] * 10_001}
    error = parse_error(document)
    assert "10001 rooms" in str(error) and "10000 room limit" in str(error)
    assert error.field_name == "rooms"


def test_rooms_per_building_limit_is_inclusive():
    parsed = parse_object({"building_id": "tower", "rooms": [{}] * 10_000}, SOURCE)
    assert len(parsed.errors) == 10_000 and parsed.rooms == []


# ------------------------------------------------------------------ buildings


def test_bad_room_among_good_ones_is_named_and_the_others_parse():
    bad = good_room()
    bad["grid_id"] = "kitchen"
    bad["cells"][1]["component"] = "toaster"
    rooms = [good_room(), bad, dict(good_room(), grid_id="r3")]
    parsed = parse_document(to_json(building_document(rooms, "hq")), SOURCE)
    assert parsed.building_id == "hq" and not parsed.single_room
    assert [room.grid_id for room in parsed.rooms] == ["r1", "r3"]
    assert [doc["grid_id"] for doc in parsed.room_documents] == ["r1", "r3"]
    [error] = parsed.errors
    check_one_line(error)
    assert error.room == "kitchen (#1)"
    assert "room kitchen (#1)" in str(error) and "toaster" in str(error)
    assert error.to_dict()["message"] == str(error)


def test_bad_room_without_usable_grid_id_is_named_by_index():
    rooms = [good_room(), {"width": 1}, 42]
    parsed = parse_document(to_json(building_document(rooms)), SOURCE)
    assert [error.room for error in parsed.errors] == ["#1", "#2"]
    assert "got number" in str(parsed.errors[1])
    for error in parsed.errors:
        check_one_line(error)


def test_duplicate_grid_id_in_a_building():
    rooms = [good_room(), good_room()]
    parsed = parse_document(to_json(building_document(rooms)), SOURCE)
    assert len(parsed.rooms) == 1
    [error] = parsed.errors
    assert "duplicate grid_id" in str(error) and "#0" in str(error)
    assert error.room == "r1 (#1)"


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"building_id": "b", "rooms": {}}, "must be a list of rooms, got object"),
        ({"building_id": 5, "rooms": []}, "field 'building_id'"),
        ({"building_id": "", "rooms": []}, "non-empty string"),
    ],
)
def test_bad_building_fields(document, words):
    assert words in str(parse_error(document))


def test_building_id_defaults_to_the_file_name():
    parsed = parse_document(to_json({"rooms": [good_room()]}), "in/tower-b.json")
    assert parsed.building_id == "tower-b"


def test_empty_building_is_valid():
    parsed = parse_document('{"building_id": "b", "rooms": []}')
    assert parsed.rooms == [] and parsed.errors == []


# ------------------------------------------------------------------ messages stay one line


def test_grid_id_with_a_newline_still_gives_a_one_line_message():
    document = good_room(room_type="kitchen")
    document["grid_id"] = "first\nsecond"
    check_one_line(parse_error(document))


def test_grid_id_with_a_newline_in_a_building_still_gives_a_one_line_message():
    bad = dict(good_room(), grid_id="line one\r\nline two", width="3")
    parsed = parse_document(to_json(building_document([bad])), SOURCE)
    [error] = parsed.errors
    check_one_line(error)


def test_long_values_are_truncated_in_messages():
    error = parse_error(good_room(room_type="x" * 10_000))
    assert len(str(error)) < 400


# ------------------------------------------------------------------ writing


def test_dump_document_round_trips_and_is_deterministic():
    parsed = parse_document(to_json(good_room(designer="Ada")))
    document = io.room_to_document(parsed.rooms[0], parsed.room_documents[0])
    data = io.dump_document(document)
    assert data == io.dump_document(document)
    again = parse_document(data).rooms[0]
    assert np.array_equal(again.cells, parsed.rooms[0].cells)
    assert again.extra == {"designer": "Ada"}


def test_parsed_rooms_keep_their_keys_in_order_but_not_their_cells():
    """The cell objects of a parsed file are freed (the Room holds the cells), the
    key order and unknown keys stay for the output; the caller's object is unchanged."""
    room = {"designer": "Ada", **good_room(), "floor": 3}
    document = {"building_id": "b", "rooms": [room]}
    parsed = io.parse_object(document)
    assert (
        list(parsed.room_documents[0]) == list(room) and parsed.room_documents[0]["cells"] is None
    )
    assert isinstance(room["cells"], list)
    output = io.room_to_document(parsed.rooms[0], parsed.room_documents[0])
    assert list(output)[: len(room)] == list(room) and output["cells"] == room["cells"]


def test_a_lone_surrogate_escape_survives_parse_and_dump():
    # "\ud800" is a legal JSON escape; the parser accepts it, so writing must not crash
    text = to_json(good_room()).replace('"r1"', '"r\\ud8001"')
    parsed = parse_document(text)
    data = io.dump_document(io.room_to_document(parsed.rooms[0], parsed.room_documents[0]))
    assert parse_document(data).rooms[0].grid_id == parsed.rooms[0].grid_id


def test_write_atomic_replaces_the_file(tmp_path):
    path = tmp_path / "out" / "room.json"
    io.write_atomic(path, b"one")
    io.write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["room.json"]


def test_a_room_with_other_cells_keeps_every_other_field():
    values = {
        "grid_id": "r",
        "cells": np.zeros((2, 3), dtype=np.uint8),
        "tile_size_m": 1.2,
        "ceiling_height_m": 4.5,
        "room_type": "corridor",
        "extra": {"level": 3},
        "luminaire": "some-fitting",
    }
    assert {f.name for f in dataclasses.fields(Room)} == set(values)  # every field is set here
    room = Room(**values)
    cells = np.ones((2, 3), dtype=np.uint8)
    other = room.with_cells(cells)
    assert other.cells is cells
    for name, value in values.items():
        if name != "cells":
            assert getattr(other, name) == value, name
