"""PNG renders: not blank, colours where the components are, deterministic and fast."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image
from sample_rooms import OFFICE_DEVICES, grid_room, office_room

from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, EMPTY, INVALID, Room
from ceilgrid_assets.core.engine.photometry import illuminance_map, illuminance_summary
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import calculation_area
from ceilgrid_assets.core.outputs import render


def pixels(image: render.RenderedImage) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image.png)).convert("RGB")).astype(int)


def rgb255(colour: str) -> np.ndarray:
    return np.round(np.array(to_rgb(colour)) * 255).astype(int)


def at(array: np.ndarray, image: render.RenderedImage, x: int, y: int) -> np.ndarray:
    column, row = image.cell_px[y, x]
    return array[int(row), int(column)]


def close(actual: np.ndarray, expected: np.ndarray, tolerance: int = 12) -> bool:
    return bool(np.abs(actual - expected).max() <= tolerance)


def test_plan_is_not_blank_and_has_the_expected_size():
    image = render.render_room(office_room())
    array = pixels(image)
    assert array.shape[:2] == (image.size[1], image.size[0])
    non_white = (array < 245).any(axis=2).mean()
    assert non_white > 0.05
    assert len(np.unique(array.reshape(-1, 3), axis=0)) > 20


def test_cell_centres_are_on_a_square_grid_inside_the_image():
    room = office_room()
    image = render.render_room(room)
    px = image.cell_px
    assert px.shape == (room.height, room.width, 2)
    step_x = np.diff(px[..., 0], axis=1)
    step_y = np.diff(px[..., 1], axis=0)
    assert np.allclose(step_x, step_x[0, 0]) and np.allclose(step_y, step_x[0, 0])
    assert (px[..., 0] > 0).all() and (px[..., 0] < image.size[0]).all()
    assert (px[..., 1] > 0).all() and (px[..., 1] < image.size[1]).all()


def test_colours_match_component_positions():
    room = office_room()
    image = render.render_room(room)
    array = pixels(image)
    for name, positions in OFFICE_DEVICES.items():
        for x, y in positions:
            assert close(at(array, image, x, y), rgb255(render.COLOURS[name])), (name, x, y)
    white = np.array([255, 255, 255])
    for y, x in zip(*np.nonzero(room.cells == EMPTY), strict=True):
        assert close(at(array, image, x, y), white), (x, y)


def test_invalid_cells_are_grey_and_hatched():
    room = office_room()
    image = render.render_room(room)
    array = pixels(image)
    half = int((image.cell_px[0, 1, 0] - image.cell_px[0, 0, 0]) / 3)
    for y, x in zip(*np.nonzero(room.cells == INVALID), strict=True):
        column, row = image.cell_px[y, x].astype(int)
        block = array[row - half : row + half, column - half : column + half].reshape(-1, 3)
        grey = (np.abs(block - rgb255(render.COLOURS["invalid"])).max(axis=1) <= 12).mean()
        hatch = (np.abs(block - rgb255(render.HATCH_COLOUR)).max(axis=1) <= 30).mean()
        assert grey > 0.3 and hatch > 0.05, (x, y, grey, hatch)


def test_same_input_gives_same_bytes():
    room = office_room()
    violations = [{"rule": "smoke.coverage", "message": "m", "cells": [[0, 5]]}]
    for view in render.VIEWS:
        first = render.render_room(room, view, violations=violations)
        second = render.render_room(room, view, violations=violations)
        assert first.png == second.png, view
        assert Image.open(io.BytesIO(first.png)).info.get("Software") is None


def test_coverage_view_highlights_uncovered_points():
    cells = np.zeros((4, 30), dtype=np.uint8)
    cells[1, 1] = CODE["smoke_detector"]
    room = Room("corridor", cells, room_type="corridor")
    plan, coverage = render.render_room(room), render.render_room(room, "coverage")
    plan_px, coverage_px = pixels(plan), pixels(coverage)
    # (25, 2) is 14.4 m from the detector; (4, 2) is 1.9 m away.
    assert not close(at(coverage_px, coverage, 25, 2), at(plan_px, plan, 25, 2), 40)
    assert close(at(coverage_px, coverage, 4, 2), at(plan_px, plan, 4, 2), 20)
    assert "R = 6.40 m" in coverage.title
    bs = render.render_room(room, "coverage", profile="bs5839")
    assert "R = 7.50 m" in bs.title


def test_illuminance_view_states_u0():
    # the caption gives U0 over the uniformity rule's calculation area, as the metrics do
    room, profile = office_room(), get_profile("nfpa72")
    image = render.render_room(room, "illuminance")
    lux = illuminance_map(room, profile)
    inner = illuminance_summary(np.where(calculation_area(room, profile), lux, np.nan))
    assert f"U0 {inner.uniformity_u0:.2f}" in image.title
    whole = illuminance_summary(lux)
    assert f"U0 {whole.uniformity_u0:.2f}" not in image.title  # the wall band is left out
    array = pixels(image)
    # a heat map: most cells are neither white nor a plan colour
    samples = np.array([at(array, image, x, y) for x in range(2, 10) for y in range(2, 6)])
    assert (np.abs(samples - 255).max(axis=1) > 40).mean() > 0.9


def test_violation_cells_are_highlighted_and_others_untouched():
    room = office_room()
    violations = [
        {"rule": "smoke.coverage", "message": "uncovered", "cells": [[9, 0], [8, 0]]},
        {"rule": "light.count", "message": "too few", "cells": []},
    ]
    plan, marked = (
        render.render_room(room),
        render.render_room(room, "violations", violations=violations),
    )
    plan_px, marked_px = pixels(plan), pixels(marked)
    for x, y in ((9, 0), (8, 0)):
        assert not close(at(marked_px, marked, x, y), at(plan_px, plan, x, y), 30)
    for x, y in ((4, 3), (9, 4), (3, 1)):
        assert close(at(marked_px, marked, x, y), at(plan_px, plan, x, y), 3)
    assert "smoke.coverage" in marked.title and "light.count" in marked.title


def test_stage_images_add_one_component_at_a_time():
    room = office_room()
    images = render.render_stages(room)
    assert [name for name, _ in images] == list(render.STAGES)
    for number, (_, image) in enumerate(images):
        array = pixels(image)
        for index, name in enumerate(DEVICE_COMPONENTS):
            x, y = OFFICE_DEVICES[name][0]
            expected = render.COLOURS[name] if index < number else "#ffffff"
            assert close(at(array, image, x, y), rgb255(expected)), (number, name)
    assert pixels(images[-1][1])[50:].tolist() == pixels(render.render_room(room))[50:].tolist()


def test_stages_from_the_pipeline_are_used_as_given():
    room = office_room()
    given = [room.with_cells(np.where(room.cells == INVALID, INVALID, EMPTY).astype(np.uint8))] * 5
    images = render.render_stages(room, given)
    x, y = OFFICE_DEVICES["light"][0]
    assert close(at(pixels(images[-1][1]), images[-1][1], x, y), np.array([255, 255, 255]))


def test_large_room_cells_are_filled_in_full_colour():
    room = grid_room(400, 300)
    cells = room.cells.copy()
    cells[100:103, 200:203] = CODE["light"]
    room = room.with_cells(cells)
    image = render.render_room(room)
    assert close(at(pixels(image), image, 201, 101), rgb255(render.COLOURS["light"]))


def test_unknown_view_is_rejected():
    with pytest.raises(ValueError, match="unknown view"):
        render.render_room(office_room(), "section")


def test_coverage_circle_has_the_profile_radius():
    cells = np.zeros((3, 40), dtype=np.uint8)
    cells[1, 1] = CODE["smoke_detector"]
    room = Room("long", cells)
    image = render.render_room(room, "coverage")
    array = pixels(image)
    inside = at(array, image, 11, 1)  # 6.0 m from the detector: tinted by the circle
    outside = at(array, image, 12, 1)  # 6.6 m: uncovered, pink
    assert 200 < inside.min() and inside[1] < 250 and inside[2] < 245
    assert close(outside, at(array, image, 30, 1), 3)
    assert not close(inside, outside, 30)


def test_void_cells_are_solid_dark_and_unlike_invalid_ones():
    cells = np.zeros((6, 8), dtype=np.uint8)
    cells[:3, 4:] = CODE["void"]
    cells[4, 1] = INVALID
    room = Room("l-shape", cells)
    image = render.render_room(room)
    array = pixels(image)
    half = int((image.cell_px[0, 1, 0] - image.cell_px[0, 0, 0]) / 3)

    def dark_share(x: int, y: int) -> float:
        column, row = image.cell_px[y, x].astype(int)
        block = array[row - half : row + half, column - half : column + half].reshape(-1, 3)
        return (np.abs(block - rgb255(render.COLOURS["void"])).max(axis=1) <= 12).mean()

    assert dark_share(5, 1) == 1.0  # void: solid
    assert dark_share(1, 4) == 0.0  # invalid: light grey with a hatch
    # over the heat map too: the outside stays dark, never a lux colour
    lux = render.render_room(room, "illuminance")
    assert close(at(pixels(lux), lux, 5, 1), rgb255(render.COLOURS["void"]))


def test_coverage_view_shows_the_blind_zone_round_a_corner():
    # 0.6 m tiles, a U: void x 2..9 on rows 0..8. The detector at (0, 0) tops the
    # left arm; (10, 0) tops the right arm, 6.0 m away in a straight line but far
    # more along any path inside the room.
    cells = np.zeros((12, 12), dtype=np.uint8)
    cells[:9, 2:10] = CODE["void"]
    cells[0, 0] = CODE["smoke_detector"]
    room = Room("u-shape", cells)
    image = render.render_room(room, "coverage")
    array = pixels(image)
    assert not close(at(array, image, 10, 0), at(array, image, 0, 3), 40)  # blind vs covered
    straight = room.with_cells(np.where(cells == CODE["void"], INVALID, cells).astype(np.uint8))
    before = render.render_room(straight, "coverage")
    assert close(at(pixels(before), before, 10, 0), at(pixels(before), before, 0, 3), 12)


def test_blind_zones_view_hatches_each_rule_and_lists_rules_without_devices_as_room_wide():
    # The U of the coverage test, with one air supply beside the detector and no light.
    # The detector's in-room blind zone is the right arm; the supply (reach 3.46 m)
    # leaves everything beyond about 5.8 tiles blind for supply.coverage, the right
    # arm included; light.spacing is blind everywhere, as the room has no light.
    cells = np.zeros((12, 12), dtype=np.uint8)
    cells[:9, 2:10] = CODE["void"]
    cells[0, 0] = CODE["smoke_detector"]
    cells[11, 0] = CODE["air_supply"]
    room = Room("u-shape", cells)
    profile = get_profile("nfpa72")
    masks = render.blind_zone_masks(room, profile)
    assert set(masks) == {"light.spacing", "supply.coverage", "smoke.coverage"}
    assert masks["light.spacing"].sum() == room.usable.sum()
    assert masks["smoke.coverage"][0, 10] and not masks["smoke.coverage"][3, 0]
    # (0, 3) is 8 rows = 4.8 m from the supply: blind for supply.coverage only.
    assert masks["supply.coverage"][3, 0] and not masks["supply.coverage"][9, 0]

    image = render.render_room(room, "blind_zones", profile=profile)
    assert "smoke.coverage" in image.title and "no device yet: light.spacing" in image.title
    array = pixels(image)
    # (1, 10) is reached by both devices but in light.spacing's room-wide zone, which
    # is not drawn: near white (the detector circle's faint tint), not hatched.
    assert masks["light.spacing"][10, 1]
    plain = at(array, image, 1, 10)
    assert plain.min() >= 225
    supply_only, both = at(array, image, 0, 3), at(array, image, 10, 0)
    assert not close(supply_only, plain, 20) and not close(both, plain, 20)
    assert not close(supply_only, both, 10)  # two rules' tints over the right arm
