"""Property-based tests: random rooms are laid out compliantly or honestly flagged,
and no input, however mangled, makes the parser raise anything but InputError.

Hypothesis runs derandomized (fixed examples, no example database) so that CI
is deterministic; example counts are modest to keep the suite fast.
"""

from __future__ import annotations

import json

import numpy as np
from helpers import SAMPLE_PATH, building_document, reference_rule_ids, room_document, rule_ids
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.grid import CODE, COMPONENTS, Room
from ceilgrid_assets.core.engine.io import parse_document, parse_object
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import check_layout, compliance_report, placement_violations

settings.register_profile(
    "ceilgrid-ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CI = settings.get_profile("ceilgrid-ci")

NFPA = get_profile("nfpa72")
BS = get_profile("bs5839")
CONFIGS = {"nfpa72": EngineConfig.create("nfpa72"), "bs5839": EngineConfig.create("bs5839")}
ROOM_TYPES = ("office", "meeting", "classroom", "corridor", "lobby", "restroom", "storage")


# ------------------------------------------------------------------ random rooms


@st.composite
def rooms(draw, max_side: int = 20) -> Room:
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(1, max_side))
    cells = np.zeros((height, width), dtype=np.uint8)
    for _ in range(draw(st.integers(0, 3))):  # invalid blocks: columns, shafts, L-cuts
        x0, y0 = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
        w, h = draw(st.integers(1, max(1, width // 2))), draw(st.integers(1, max(1, height // 2)))
        cells[y0 : y0 + h, x0 : x0 + w] = CODE["invalid"]
    for _ in range(draw(st.integers(0, 4))):  # pre-existing devices, possibly conflicting
        x, y = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
        cells[y, x] = CODE[
            draw(st.sampled_from(["light", "air_supply", "air_return", "smoke_detector", "empty"]))
        ]
    return Room(
        grid_id="random",
        cells=cells,
        tile_size_m=draw(st.sampled_from([0.6, 0.6, 0.5, 1.2])),
        ceiling_height_m=draw(st.sampled_from([2.4, 2.7, 3.0, 4.5])),
        room_type=draw(st.sampled_from(ROOM_TYPES)),
    )


@settings(CI, max_examples=40)
@given(room=rooms(), profile_name=st.sampled_from(["nfpa72", "nfpa72", "bs5839"]))
def test_random_rooms_are_compliant_or_honestly_flagged(room, profile_name):
    profile = get_profile(profile_name)
    result = complete_room(room, CONFIGS[profile_name])
    # the engine itself never breaks the placement rule
    assert placement_violations(room, result.room) == []
    assert result.original is room
    # the reported verdict is exactly a fresh validation of the output (the
    # engine adds only its diagnosis: input conflicts, rescue, safety net)
    fresh = compliance_report(result.room, profile, room)
    assert {key: result.compliance[key] for key in fresh} == fresh
    assert set(result.compliance) - set(fresh) <= {"input_conflicts", "rescue", "safety_net"}
    reported = rule_ids(result.compliance["violations"])
    assert reported == rule_ids(check_layout(result.room, profile, room))
    # ... and agrees with an independent brute-force checker
    assert reported == reference_rule_ids(result.room, profile, room)
    assert result.compliance["compliant"] is (not reported)
    assert result.compliant is (not reported)
    # metrics describe the output
    for key, name in (
        ("lights", "light"),
        ("air_supply", "air_supply"),
        ("air_return", "air_return"),
        ("smoke_detector", "smoke_detector"),
    ):
        assert result.metrics[key] == result.room.count(name)


@settings(CI, max_examples=25)
@given(width=st.integers(4, 14), height=st.integers(4, 14), room_type=st.sampled_from(ROOM_TYPES))
def test_plain_rectangles_are_always_completed(width, height, room_type):
    """An empty rectangle of at least 4x4 tiles of 0.6 m has a compliant layout: e.g. the
    detector in a corner, lights on a grid of pitch 3 tiles (1.8 m, within the 2.02 m
    radius) skipping the detector's 8 neighbours, supplies at least 3 tiles away from it,
    returns 3 tiles from the supplies. So the engine must find one, not flag it."""
    room = Room(
        grid_id="plain", cells=np.zeros((height, width), dtype=np.uint8), room_type=room_type
    )
    result = complete_room(room, CONFIGS["nfpa72"])
    assert result.compliant, result.compliance["violations"]


# ------------------------------------------------------------------ parser fuzz

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "x", "light", "office", "rooms", "cells", "\n", "\ud800"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "grid_id",
                    "width",
                    "height",
                    "cells",
                    "x",
                    "y",
                    "component",
                    "rooms",
                    "building_id",
                    "tile_size_m",
                    "ceiling_height_m",
                    "room_type",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


def parse_or_input_error(data, source="fuzz.json"):
    """Parse; the only acceptable exception is a one-line InputError naming the source."""
    try:
        parsed = parse_document(data, source)
    except InputError as error:
        message = str(error)
        assert len(message.splitlines()) == 1, message
        assert message.startswith(source)
        return None
    for error in parsed.errors:
        message = str(error)
        assert len(message.splitlines()) == 1, message
        assert message.startswith(source)
    for room in parsed.rooms:
        assert room.cells.shape == (room.height, room.width)
        assert room.cells.max(initial=0) < len(COMPONENTS)
    return parsed


@settings(CI, max_examples=150)
@given(value=json_values)
def test_random_json_values_give_only_input_errors(value):
    parse_or_input_error(json.dumps(value))
    try:
        parse_object(value, "fuzz.json")
    except InputError as error:
        assert len(str(error).splitlines()) == 1


@settings(CI, max_examples=100)
@given(data=st.binary(max_size=200))
def test_random_bytes_give_only_input_errors(data):
    parse_or_input_error(data)


def _valid_room() -> dict:
    return room_document(
        (3, 2),
        invalid=[(0, 0)],
        devices={"light": [(2, 1)]},
        grid_id="r",
        tile_size_m=0.6,
        ceiling_height_m=2.7,
        room_type="office",
    )


ROOM_KEYS = ["grid_id", "width", "height", "cells", "tile_size_m", "ceiling_height_m", "room_type"]


@st.composite
def mutated_rooms(draw):
    document = _valid_room()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "set",
                    "delete",
                    "cell-set",
                    "cell-delete-key",
                    "drop-cell",
                    "duplicate-cell",
                    "replace-cell",
                ]
            )
        )
        cells = document.get("cells")
        has_cells = isinstance(cells, list) and cells
        if kind == "set":
            document[draw(st.sampled_from(ROOM_KEYS))] = draw(json_values)
        elif kind == "delete":
            document.pop(draw(st.sampled_from(ROOM_KEYS)), None)
        elif has_cells and all(isinstance(c, dict) for c in cells):
            index = draw(st.integers(0, len(cells) - 1))
            if kind == "cell-set":
                cells[index][draw(st.sampled_from(["x", "y", "component"]))] = draw(json_values)
            elif kind == "cell-delete-key":
                cells[index].pop(draw(st.sampled_from(["x", "y", "component"])), None)
            elif kind == "drop-cell":
                cells.pop(index)
            elif kind == "duplicate-cell":
                cells.append(dict(cells[index]))
            else:
                cells[index] = draw(json_values)
    return document


@settings(CI, max_examples=200)
@given(document=mutated_rooms())
def test_mutated_rooms_give_only_input_errors(document):
    parsed = parse_or_input_error(json.dumps(document))
    if parsed is not None and parsed.rooms:
        [room] = parsed.rooms
        # whatever was accepted is a well-formed room within the format's ranges
        assert room.width * room.height == len(document["cells"])
        assert 0.1 < room.tile_size_m <= 3.0
        assert 2.0 <= room.ceiling_height_m <= 10.5


@settings(CI, max_examples=60)
@given(documents=st.lists(mutated_rooms() | st.just(_valid_room()), min_size=1, max_size=4))
def test_bad_rooms_in_a_building_never_stop_the_good_ones(documents):
    for index, document in enumerate(documents):
        if isinstance(document, dict) and isinstance(document.get("grid_id"), str):
            document["grid_id"] = f"{document['grid_id']}-{index}"  # unique ids
    parsed = parse_or_input_error(json.dumps(building_document(documents)))
    assert parsed is not None  # room problems are per room, never the whole building
    assert len(parsed.rooms) + len(parsed.errors) == len(documents)
    for error in parsed.errors:
        assert error.room is not None and "#" in error.room


# ------------------------------------------------------------------ partial layouts

DEVICE_CODES = [CODE[name] for name in ("light", "air_supply", "air_return", "smoke_detector")]


@st.composite
def plain_rooms(draw, max_side: int = 12) -> Room:
    """Rooms of 3-12 tiles a side with a few invalid blocks, the size the rescue covers."""
    width = draw(st.integers(3, max_side))
    height = draw(st.integers(3, max_side))
    cells = np.zeros((height, width), dtype=np.uint8)
    for _ in range(draw(st.integers(0, 2))):
        x0, y0 = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
        w, h = draw(st.integers(1, max(1, width // 3))), draw(st.integers(1, max(1, height // 3)))
        cells[y0 : y0 + h, x0 : x0 + w] = CODE["invalid"]
    return Room(
        grid_id="plain",
        cells=cells,
        tile_size_m=draw(st.sampled_from([0.6, 0.6, 0.5])),
        ceiling_height_m=draw(st.sampled_from([2.4, 2.7, 3.0])),
        room_type=draw(st.sampled_from(ROOM_TYPES)),
    )


def keep_part(layout: Room, original: Room, data: st.DataObject) -> Room:
    """The empty room plus part of a compliant layout's devices: a random subset, one
    component type alone, or every type but one. A compliant completion exists by
    construction: the layout itself."""
    devices = np.isin(layout.cells, DEVICE_CODES)
    mode = data.draw(st.sampled_from(["subset", "one type", "all but one type"]), label="mode")
    if mode == "subset":
        flags = data.draw(
            st.lists(st.booleans(), min_size=int(devices.sum()), max_size=int(devices.sum())),
            label="kept",
        )
        keep = np.zeros_like(devices)
        keep[devices] = flags
    else:
        code = data.draw(st.sampled_from(DEVICE_CODES), label="type")
        keep = layout.cells == code if mode == "one type" else devices & (layout.cells != code)
    return original.with_cells(np.where(keep, layout.cells, original.cells).astype(np.uint8))


def assert_completed_compliantly(partial: Room) -> None:
    result = complete_room(partial, CONFIGS["nfpa72"])
    assert result.compliant, (partial.cells.tolist(), result.compliance)
    assert reference_rule_ids(result.room, NFPA, partial) == set()


@settings(CI, max_examples=60)
@given(room=plain_rooms(), data=st.data())
def test_partial_layouts_are_completed_compliantly(room, data):
    """Existing devices of every type, in any combination a compliant layout allows,
    never stop the engine from finding a compliant completion."""
    full = complete_room(room, CONFIGS["nfpa72"])
    assume(full.compliant)
    assert_completed_compliantly(keep_part(full.room, room, data))


@settings(CI, max_examples=20)
@given(data=st.data())
def test_parts_of_a_real_earlier_layout_are_completed_compliantly(data):
    """The editor sample's own layout, partly deleted, is completed again."""
    [room] = parse_document(SAMPLE_PATH.read_bytes(), "sample.json").rooms
    empty = room.with_cells(np.where(np.isin(room.cells, DEVICE_CODES), 0, room.cells))
    full = complete_room(room, CONFIGS["nfpa72"])
    assert full.compliant
    assert_completed_compliantly(keep_part(full.room, empty, data))
