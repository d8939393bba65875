"""The clearance table drives every stage, the joint programme and the validator;
input conflicts are diagnosed before any search; the rescue says what it proved.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import make_room, positions, reference_rule_ids, rule_ids

from ceilgrid_assets.core.engine import constraints, optimiser, pipeline
from ceilgrid_assets.core.engine.constraints import CLEARANCES, Clearance
from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, EMPTY, LIGHT
from ceilgrid_assets.core.engine.heuristics import brighten
from ceilgrid_assets.core.engine.optimiser import (
    JOINT_NODE_LIMIT,
    UNIFORMITY_ROW_MARGIN,
    solve_joint,
    uniformity_rows,
)
from ceilgrid_assets.core.engine.photometry import illuminance_map, room_kernel
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import (
    calculation_area,
    check_layout,
    dark_points,
    input_conflicts,
)
from ceilgrid_assets.core.engine.stages import build_context

NFPA = get_profile("nfpa72")
CONFIG = EngineConfig()


def distances_m(room, first: str, second: str) -> list[float]:
    return [
        math.dist(p, q) * room.tile_size_m
        for p in positions(room, first)
        for q in positions(room, second)
    ]


def assert_completed(result) -> None:
    """Compliant by the engine, a fresh validation and the independent reference checker."""
    assert result.compliant, result.compliance["violations"]
    assert check_layout(result.room, NFPA, result.original) == []
    assert reference_rule_ids(result.room, NFPA, result.original) == set()


# ------------------------------------------------------------------ regressions


@pytest.mark.parametrize(
    ("shape", "returns"),
    [
        ((6, 6), [(3, 3)]),  # the office: supplies at (0,5) and (5,0) work
        ((8, 8), [(4, 4)]),
        ((20, 20), [(9, 10)]),
        ((20, 20), [(2, 2)]),
        ((20, 20), [(17, 12), (3, 16)]),
    ],
)
def test_existing_returns_keep_new_supplies_away(shape, returns):
    """These rooms came back with return.separation: new supplies ignored existing returns."""
    result = complete_room(make_room(shape, devices={"air_return": returns}))
    assert_completed(result)
    assert set(returns) <= positions(result.room, "air_return")
    assert min(distances_m(result.room, "air_return", "air_supply")) >= 1.8 - 1e-9


def test_the_joint_programme_keeps_new_supplies_from_existing_returns():
    room = make_room((6, 6), devices={"air_return": [(3, 3)]})
    solved = solve_joint(room, NFPA, 30.0)
    assert solved.status == "optimal"
    completed = room.with_cells(np.where(solved.added > 0, solved.added, room.cells))
    assert check_layout(completed, NFPA, room) == []


# ------------------------------------------------------------------ the table


@pytest.mark.parametrize("clearance", CLEARANCES, ids=lambda c: f"{c.subject}-{c.other}")
@pytest.mark.parametrize("direction", ["subject-existing", "other-existing"])
def test_every_clearance_shapes_allowed_cells_in_both_directions(clearance, direction):
    """A new device of either type of a row stays out of the other's zone, whichever came first."""
    existing, new = (
        (clearance.subject, clearance.other)
        if direction == "subject-existing"
        else (clearance.other, clearance.subject)
    )
    room = make_room((9, 9), devices={existing: [(4, 4)]})
    context = build_context(new, room, NFPA)
    ys, xs = np.indices(room.cells.shape)
    distance = np.hypot(xs - 4, ys - 4) * room.tile_size_m
    minimum = clearance.minimum_m(NFPA)
    expected = (room.cells == CODE["empty"]) & (distance >= minimum - 1e-9)
    assert np.array_equal(context.allowed, expected)


@pytest.mark.parametrize("clearance", CLEARANCES, ids=lambda c: f"{c.subject}-{c.other}")
def test_the_validator_reports_every_row_with_its_rule(clearance):
    room = make_room((5, 1), devices={clearance.subject: [(0, 0)], clearance.other: [(1, 0)]})
    found = [v for v in check_layout(room, NFPA) if v.rule == clearance.rule]
    assert found and found[0].cells == [[0, 0]]


def test_a_new_rule_is_one_line_and_every_consumer_obeys_it(monkeypatch):
    """Lights 1.0 m from supplies: stages, joint programme and validator all follow it."""
    extra = Clearance("light.clearance", "light", "air_supply", "smoke_to_light_m")
    monkeypatch.setattr(constraints, "CLEARANCES", (*CLEARANCES, extra))
    # the validator reports the new pair
    room = make_room((5, 1), devices={"light": [(0, 0)], "air_supply": [(1, 0)]})
    assert any(v.rule == "light.clearance" for v in check_layout(room, NFPA))
    # a supply stage keeps away from an existing light, and the reverse
    with_light = make_room((9, 9), devices={"light": [(4, 4)]})
    assert not build_context("air_supply", with_light, NFPA).allowed[4, 5]
    with_supply = make_room((9, 9), devices={"air_supply": [(4, 4)]})
    assert not build_context("light", with_supply, NFPA).allowed[4, 5]
    # whole rooms respect it, through the series (10x10) or the joint rescue (6x6, 8x8)
    for shape in [(10, 10), (8, 8), (6, 6)]:
        result = complete_room(make_room(shape))
        assert result.compliant, (shape, result.compliance)
        assert min(distances_m(result.room, "light", "air_supply")) >= 1.0 - 1e-9


# ------------------------------------------------------------------ input conflicts


def test_input_conflict_is_flagged_at_once_and_never_sent_to_the_rescue(monkeypatch):
    def no_rescue(*args, **kwargs):
        raise AssertionError("a room with conflicting input devices reached the joint rescue")

    monkeypatch.setattr(pipeline, "solve_joint", no_rescue)
    room = make_room((10, 10), devices={"smoke_detector": [(2, 2)], "light": [(3, 2)]})
    result = complete_room(room)
    violations = result.compliance["violations"]
    # exactly the input's violation, flagged as such; every other rule holds
    assert [(v["rule"], v["cause"], v["cells"]) for v in violations] == [
        ("smoke.clearance", "input", [[2, 2]])
    ]
    assert reference_rule_ids(result.room, NFPA, room) == {"smoke.clearance"}
    assert "(2,2)" in result.compliance["input_conflicts"]
    assert "(3,2)" in result.compliance["input_conflicts"]
    assert result.compliance["rescue"].startswith("not run: input devices conflict")


def test_input_conflicts_are_exactly_the_pairs_of_input_devices():
    room = make_room(
        (10, 10),
        devices={
            "smoke_detector": [(2, 2), (8, 8)],
            "air_supply": [(3, 3)],
            "air_return": [(8, 3)],
        },
    )
    conflicts = input_conflicts(room, NFPA)
    assert [(v.rule, v.cause, v.cells) for v in conflicts] == [
        ("smoke.clearance", "input", [[2, 2]])
    ]


def test_causes_split_input_pairs_from_layout_pairs():
    original = make_room((10, 10), devices={"smoke_detector": [(2, 2), (7, 7)], "light": [(3, 2)]})
    cells = original.cells.copy()
    cells[7, 8] = CODE["air_supply"]  # a new supply next to the input detector at (7, 7)
    completed = original.with_cells(cells)
    clearances = [v for v in check_layout(completed, NFPA, original) if v.rule == "smoke.clearance"]
    assert {(v.cause, tuple(map(tuple, v.cells))) for v in clearances} == {
        ("layout", ((7, 7),)),
        ("input", ((2, 2),)),
    }
    others = [v for v in check_layout(completed, NFPA, original) if v.rule != "smoke.clearance"]
    assert others and all(v.cause == "layout" for v in others)


def test_without_the_input_no_cause_is_claimed():
    room = make_room((10, 10), devices={"smoke_detector": [(2, 2)], "light": [(3, 2)]})
    assert all(v.cause is None for v in check_layout(room, NFPA))
    assert all("cause" not in v.to_dict() for v in check_layout(room, NFPA))


# ------------------------------------------------------------------ what the rescue proved


@pytest.mark.parametrize("length", [1, 2, 3])
def test_the_rescue_says_proved_infeasible_and_nothing_is_retried(length, monkeypatch):
    orders = []
    series = pipeline._series

    def recorded(room, config, order):
        orders.append(tuple(order))
        return series(room, config, order)

    monkeypatch.setattr(pipeline, "_series", recorded)
    result = complete_room(make_room((length, 1)))
    assert not result.compliant
    assert result.compliance["rescue"] == pipeline.PROVED_INFEASIBLE
    assert orders == [tuple(DEVICE_COMPONENTS)]  # no lights-last retry after a proof


def test_the_rescue_says_budget_exhausted_when_its_node_budget_runs_out():
    # a 3x10 office with a column where the series falls short and the rescue is needed
    room = make_room((3, 10), invalid=[(0, 4)])
    rescued = complete_room(room)
    assert rescued.compliant and rescued.compliance["rescue"] == pipeline.LIGHTS_KEPT
    chosen = {name: record["chosen"] for name, record in rescued.models.items()}
    assert chosen.pop("light") != pipeline.RESCUE_MODEL  # the series' lights were kept
    assert set(chosen.values()) == {pipeline.RESCUE_MODEL}
    starved = complete_room(room, EngineConfig(rescue_node_limit=0))
    assert not starved.compliant
    assert starved.compliance["rescue"].startswith("budget exhausted")


@pytest.mark.parametrize(
    "spec",
    [
        {"shape": (3, 10), "invalid": [(0, 4)]},
        {"shape": (11, 4), "invalid": [(4, 0), (6, 0), (10, 0)]},
        {"shape": (11, 5), "invalid": [(4, 1), (10, 1)]},
        {"shape": (5, 11), "invalid": [(0, 5), (1, 5)]},
    ],
    ids=["3x10", "11x4", "11x5", "5x11"],
)
def test_the_rescue_keeping_the_series_lights_places_no_more_devices_than_the_full_one(spec):
    """Narrow offices the series leaves without a place for the detector: the rescue
    first keeps the series' lights (they meet U0, which the programme cannot express)
    and places the rest; the full programme from the input room is the yardstick."""
    room = make_room(**spec)
    series = pipeline._series(room, CONFIG, DEVICE_COMPONENTS)
    assert check_layout(series.room, NFPA, room)  # the series alone is not compliant
    full, said = pipeline._rescue(room, NFPA, CONFIG)
    assert full is not None and said == "compliant layout found"
    result = complete_room(room, CONFIG)
    assert_completed(result)
    assert result.compliance["rescue"] == pipeline.LIGHTS_KEPT
    assert result.room.count("light") == series.room.count("light")
    devices = sum(result.room.count(name) for name in DEVICE_COMPONENTS)
    assert devices <= sum(full.count(name) for name in DEVICE_COMPONENTS)


def test_both_rescue_attempts_share_one_safety_net_and_each_stop_is_listed():
    """A clock already spent: the attempt around the series' lights and the one from
    the input room both stop at the safety net, and the room lists both stops."""
    room = make_room((3, 10), invalid=[(0, 4)])  # needs the rescue (see above)
    result = complete_room(room, EngineConfig(rescue_time_s=0.0))
    assert result.compliance["rescue"].startswith(pipeline.SAFETY_NET)
    net = result.compliance["safety_net"]
    assert net[0].startswith(f"joint rescue with the series' lights: {pipeline.SAFETY_NET}")
    assert net[1].startswith(f"joint rescue: {pipeline.SAFETY_NET}")


#: 9 x 23 tiles of 1.2 m under 4.69 m with full-width bands out of use (144 cells): it
#: came back not compliant while the rows were kept to rooms of at most 60 cells.
BANDED = {
    "shape": (9, 23),
    "invalid": [(x, y) for y in (6, 7, 9, 10, 19, 20, 21) for x in range(9)],
    "tile_size_m": 1.2,
    "ceiling_height_m": 4.69,
}


@pytest.mark.parametrize(
    "spec", [{"shape": (2, 5)}, {"shape": (5, 2)}, BANDED], ids=["2x5", "5x2", "banded"]
)
def test_the_rescue_solves_again_with_uniformity_rows_until_u0_holds(spec):
    """A 1.2 x 3.0 m closet and a banded room of large tiles: the joint programme
    knows no U0, and its first layout fails U0 even with every light brightening can
    add (these rooms came back not compliant); the rows of the points it left dark
    lead to a compliant one, within the rounds its size allows."""
    room = make_room(**spec)
    first = solve_joint(room, NFPA, 30)
    assert pipeline.RESCUE_ROUNDS_WORK // first.nonzeros >= 2
    solved = room.with_cells(np.where(first.added > 0, first.added, room.cells).astype(np.uint8))
    lights = build_context("light", solved, NFPA)
    brightened = lights.apply(brighten(lights, np.zeros_like(lights.allowed)))
    assert rule_ids(check_layout(brightened, NFPA, room)) == {"light.uniformity"}
    result = complete_room(room)
    assert_completed(result)
    assert result.compliance["rescue"] == "compliant layout found"
    assert result.metrics["uniformity_u0"] >= NFPA.target_u0("office")


def test_larger_programmes_get_fewer_uniformity_rounds(monkeypatch):
    """Each re-solve pays a root LP that no node budget bounds, so the solves are
    RESCUE_ROUNDS_WORK over the programme's nonzeros: set below the closet's, it
    gets the single solve and says its layout failed."""
    nonzeros = solve_joint(make_room((2, 5)), NFPA, 30).nonzeros
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return solve_joint(*args, **kwargs)

    monkeypatch.setattr(pipeline, "solve_joint", counted)
    monkeypatch.setattr(pipeline, "RESCUE_ROUNDS_WORK", nonzeros - 1)
    assert pipeline._rescue(make_room((2, 5)), NFPA, EngineConfig()) == (
        None,
        "solver status optimal, but its layout fails validation",
    )
    assert len(calls) == 1
    monkeypatch.setattr(pipeline, "RESCUE_ROUNDS_WORK", 12 * nonzeros)
    calls.clear()
    assert complete_room(make_room((2, 5))).compliant and len(calls) > 1


def test_a_joint_programme_over_the_nonzero_limit_is_not_solved(monkeypatch):
    """Above JOINT_MAX_NONZEROS the root LP alone could outlast any node budget: the
    rescue says so, deterministically, without calling HiGHS."""
    room = make_room((3, 10), invalid=[(0, 4)])  # needs the rescue (see above)
    nonzeros = solve_joint(room, NFPA, 30).nonzeros
    # Below the smaller programme of the first attempt (the series' lights kept) too.
    limit = nonzeros // 4
    monkeypatch.setattr(optimiser, "JOINT_MAX_NONZEROS", limit)
    monkeypatch.setattr(pipeline, "JOINT_MAX_NONZEROS", limit)

    def no_highs(*args, **kwargs):
        raise AssertionError("HiGHS was called")

    monkeypatch.setattr(optimiser, "_run", no_highs)
    assert solve_joint(room, NFPA, 30).status == optimiser.TOO_LARGE
    message = complete_room(room).compliance["rescue"]
    assert message == (
        f"not run: the joint programme has {nonzeros:,} nonzeros, more than {limit:,}"
    )


def test_the_joint_node_budget_shrinks_with_the_programme(monkeypatch):
    budget = optimiser.joint_node_budget
    assert budget(2_000, JOINT_NODE_LIMIT) == JOINT_NODE_LIMIT  # small rooms: unchanged
    assert budget(2_000, 7) == 7  # never above the caller's
    sizes = [5_000, 10_000, 50_000, 100_000, 230_000]
    budgets = [budget(size, JOINT_NODE_LIMIT) for size in sizes]
    assert budgets == sorted(budgets, reverse=True) and budgets[-1] < 20
    work = [nodes * size**1.5 for nodes, size in zip(budgets, sizes, strict=True)]
    assert max(work) <= optimiser.JOINT_NODE_WORK
    seen = []
    real_run = optimiser._run

    def spy(c, constraints_, upper, node_limit, time_limit_s):
        seen.append((constraints_[0].A.nnz, node_limit))
        return real_run(c, constraints_, upper, node_limit, time_limit_s)

    monkeypatch.setattr(optimiser, "_run", spy)
    monkeypatch.setattr(optimiser, "JOINT_NODE_WORK", 1e6)
    solve_joint(make_room((6, 6)), NFPA, 30)
    ((nonzeros, nodes),) = seen
    assert nodes == int(1e6 / nonzeros**1.5) < JOINT_NODE_LIMIT


def test_uniformity_rows_are_the_validators_illuminance_exactly():
    """Row p times a light layout, less its bound, is (E_p - u Eavg) / peak: the
    sign is the validator's verdict on that point, for any layout."""
    room = make_room((9, 7), invalid=[(4, 3), (0, 6)], devices={"light": [(0, 0)]})
    sites = room.cells == EMPTY
    area = calculation_area(room, NFPA)
    rows, bounds = uniformity_rows(room, NFPA, sites, area)
    target, peak = NFPA.target_u0(room.room_type), float(room_kernel(room, NFPA).max())
    rng = np.random.default_rng(7)
    verdicts = set()
    for share in np.linspace(0.05, 0.6, 12):
        chosen = rng.random(int(sites.sum())) < share
        lights = room.cells == LIGHT
        lights[sites] |= chosen
        lux = np.where(area, illuminance_map(room, NFPA, lights), np.nan)
        margin = (rows @ chosen - (bounds - UNIFORMITY_ROW_MARGIN)) * peak
        expected = lux[area] - target * np.nanmean(lux)
        np.testing.assert_allclose(margin, expected, rtol=1e-9, atol=1e-9)
        assert np.array_equal(margin < 0, dark_points(lux, target)[area])
        verdicts.add(bool((margin < 0).any()))
    assert verdicts == {True, False}  # both dark and well-lit layouts were drawn


def test_compliant_rooms_carry_no_diagnosis():
    result = complete_room(make_room((10, 10)))
    assert result.compliant
    assert set(result.compliance) == {"compliant", "profile", "violations"}


def test_the_table_names_device_types_and_profile_distances():
    """The table names only real device types, and each row's distance is a profile value."""
    for clearance in CLEARANCES:
        assert {clearance.subject, clearance.other} <= set(DEVICE_COMPONENTS)
        assert clearance.minimum_m(NFPA) > 0


def test_a_layout_on_another_grid_is_the_layouts_fault_throughout():
    original = make_room((6, 6), devices={"smoke_detector": [(2, 2)], "light": [(3, 2)]})
    other = make_room((7, 6), devices={"smoke_detector": [(2, 2)], "light": [(3, 2)]})
    violations = check_layout(other, NFPA, original)
    assert violations[0].rule == "placement"
    assert {v.cause for v in violations} == {"layout"}
    assert "smoke.clearance" in rule_ids(violations)
