"""The exact stage solver and its geometry: search, rounded LP and MILP find the same minima;
coverage matrices and disk counts agree with direct counts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import make_room

from ceilgrid_assets.core.engine import optimiser, stages
from ceilgrid_assets.core.engine.models import OptimiserModel
from ceilgrid_assets.core.engine.optimiser import smallest_cover, solve_stage
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.stages import (
    build_context,
    coverage_matrix,
    disk_counts,
    disk_stencil,
)

NFPA = get_profile("nfpa72")


def brute_force_minimum(cover: np.ndarray, largest: int) -> int | None:
    """Size of the smallest set of columns covering every row, by trying every combination."""
    for size in range(1, largest + 1):
        for sites in itertools.combinations(range(cover.shape[1]), size):
            if cover[:, list(sites)].any(axis=1).all():
                return size
    return None


@pytest.mark.parametrize("seed", range(40))
def test_exhaustive_search_finds_the_minimum_or_declines(seed):
    rng = np.random.default_rng(seed)
    cover = rng.random((int(rng.integers(3, 12)), int(rng.integers(3, 9)))) < 0.35
    cover[:, 0] |= ~cover.any(axis=1)  # every row coverable
    minimum = brute_force_minimum(cover, cover.shape[1])
    chosen = smallest_cover(cover, 1, 3, branches=10_000)
    if minimum <= 3:
        assert chosen is not None
        assert cover[:, chosen].any(axis=1).all()
        assert int(chosen.sum()) == minimum
    else:
        assert chosen is None


def test_exhaustive_search_declines_when_its_budget_runs_out():
    cover = np.eye(12, dtype=bool) | np.eye(12, k=1, dtype=bool)  # a path: minimum 6 sites
    assert smallest_cover(cover, 1, 6, branches=3) is None
    assert int(smallest_cover(cover, 1, 6, branches=10_000).sum()) == 6


def pairs_one_by_one(cover: np.ndarray, order: np.ndarray, left: int) -> tuple[object, int]:
    """The size-2 step as plain branching: each first site in turn (one branch each),
    then the first site covering what it leaves; the answer and the branches left
    (-1: the budget ran out)."""
    for site in order.tolist():
        left -= 1
        if left < 0:
            return None, -1
        rest = cover[~cover[:, site]]
        if rest.shape[0] == 0:
            return [site], left
        full = np.flatnonzero(rest.all(axis=0))
        if full.size:
            return [site, int(full[0])], left
    return None, left


@pytest.mark.parametrize("seed", range(60))
def test_the_pair_step_answers_and_spends_as_branching_pair_by_pair(seed):
    rng = np.random.default_rng(seed)
    cover = rng.random((int(rng.integers(1, 30)), int(rng.integers(2, 30)))) < rng.uniform(0.1, 0.6)
    order = rng.permutation(cover.shape[1])[: int(rng.integers(1, cover.shape[1] + 1))]
    for branches in (1, 3, 10_000):
        expected, left = pairs_one_by_one(cover, order, branches)
        budget = optimiser._BranchBudget(branches)
        try:
            found = optimiser._pair_with(cover, order, budget)
        except optimiser._BranchBudget.Spent:
            found = None
        assert (found, budget.left) == (expected, left)


@pytest.mark.parametrize("radius_m", [1.2, 2.0, 3.46])
def test_dense_and_offset_coverage_matrices_agree(monkeypatch, radius_m):
    rng = np.random.default_rng(7)
    points, sites = rng.random((2, 9, 13)) < 0.6
    disk = disk_stencil(radius_m, 0.6)
    dense = coverage_matrix(points, sites, disk).toarray()
    monkeypatch.setattr(stages, "DENSE_COVERAGE_PAIRS", 0)
    by_offset = coverage_matrix(points, sites, disk).toarray()
    np.testing.assert_array_equal(dense, by_offset)
    py, px = np.nonzero(points)
    sy, sx = np.nonzero(sites)
    distance = np.hypot(py[:, None] - sy[None, :], px[:, None] - sx[None, :]) * 0.6
    np.testing.assert_array_equal(dense.astype(bool), distance <= radius_m + 1e-9)


@pytest.mark.parametrize(("shape", "radius_m"), [((10, 10), 3.46), ((7, 40), 2.0), ((60, 40), 6.4)])
def test_disk_counts_sparse_and_fft_agree_with_a_direct_count(monkeypatch, shape, radius_m):
    rng = np.random.default_rng(3)
    mask = rng.random(shape) < 0.5
    disk = disk_stencil(radius_m, 0.6)
    ys, xs = np.indices(shape)
    direct = np.array(
        [
            (mask & (np.hypot(ys - y, xs - x) * 0.6 <= radius_m + 1e-9)).sum()
            for y, x in zip(ys.ravel(), xs.ravel(), strict=True)
        ]
    ).reshape(shape)
    np.testing.assert_array_equal(disk_counts(mask, disk), direct)
    monkeypatch.setattr(stages, "SPARSE_DISK_PAIRS", 0)
    np.testing.assert_array_equal(disk_counts(mask, disk), direct)


def _solve_with(monkeypatch, methods: set[str], component: str, room):
    """solve_stage with only ``methods`` of search / rounding / dive / milp allowed to settle it."""
    with monkeypatch.context() as patch:
        if "search" not in methods:
            patch.setattr(optimiser, "SEARCH_MAX_PAIRS", -1)
        if "rounding" not in methods:  # every site: never meets the bound
            patch.setattr(optimiser, "rounded_cover", lambda cover, x, need: np.ones(x.size, bool))
        if "dive" not in methods:
            patch.setattr(optimiser, "dived_cover", lambda *args: (None, "optimal"))
        if "milp" not in methods:
            patch.setattr(optimiser, "_run", lambda *args: pytest.fail("the MILP ran"))
        else:  # with rounding disabled the cap is every site: over the work limit
            patch.setattr(optimiser, "BRANCH_MAX_WORK", 10**9)
        # The wall clock is only a safety net here: the node budget decides.
        return solve_stage(build_context(component, room, NFPA), 120.0)


@pytest.mark.parametrize(
    ("shape", "component"),
    [
        ((10, 10), "air_supply"),
        ((7, 12), "air_supply"),
        ((9, 9), "smoke_detector"),
        ((16, 6), "smoke_detector"),
        ((5, 5), "light"),
        ((12, 3), "air_supply"),
        ((18, 16), "air_supply"),  # (20, 20): 16 s of root node for the MILP-only reference
        ((17, 13), "air_supply"),
        ((20, 20), "light"),
        ((40, 12), "smoke_detector"),
    ],
)
def test_every_exact_method_finds_the_milp_minimum(monkeypatch, shape, component):
    room = make_room(shape, invalid=[(shape[0] // 2, shape[1] // 2), (1, 2)])
    reference = _solve_with(monkeypatch, {"milp"}, component, room)
    assert reference.status == "optimal"
    for methods in (
        {"search", "rounding", "dive", "milp"},
        {"rounding", "dive", "milp"},
        {"dive", "milp"},
    ):
        solved = _solve_with(monkeypatch, methods, component, room)
        assert solved.status == "optimal"
        assert int(solved.added.sum()) == int(reference.added.sum()), methods
        found = build_context(component, room, NFPA).violations(solved.added)
        # U0 is not linear: the programme leaves it to the shared repair (brighten)
        assert [violation for violation in found if violation.rule != "light.uniformity"] == []


def test_rounded_relaxation_settles_a_diffuser_stage_without_branch_and_bound(monkeypatch):
    room = make_room((15, 15), invalid=[(7, 7)])
    solved = _solve_with(monkeypatch, {"rounding"}, "air_supply", room)
    reference = _solve_with(monkeypatch, {"milp"}, "air_supply", room)
    assert solved.status == "optimal"
    assert int(solved.added.sum()) == int(reference.added.sum())


def test_a_dive_meets_the_lp_bound_where_rounding_misses_it(monkeypatch):
    # An 18x20 office with a column every 6 tiles: rounding gives 8 supplies,
    # the LP bound is 6; the dive reaches 6 without branch and bound (which
    # spent 1-2 s at its root on such rooms).
    columns = [(x, y) for x in (3, 9, 15) for y in (5, 11, 17)]
    room = make_room((18, 20), invalid=[*columns, (4, 10)])
    context = build_context("air_supply", room, NFPA)
    solved = _solve_with(monkeypatch, {"rounding", "dive"}, "air_supply", room)
    assert solved.status == "optimal"
    assert int(solved.added.sum()) == context.lower_bound == 6
    assert context.violations(solved.added) == []
    without_dive = _solve_with(monkeypatch, {"rounding", "milp"}, "air_supply", room)
    assert int(without_dive.added.sum()) == 6  # the same optimum, by branch and bound


def test_small_diffuser_stage_is_proved_optimal_without_the_milp(monkeypatch):
    def no_milp(*args, **kwargs):
        raise AssertionError("the MILP ran")

    monkeypatch.setattr(optimiser, "_run", no_milp)
    result = solve_stage(build_context("air_supply", make_room((10, 10)), NFPA), 5.0)
    assert (result.status, int(result.added.sum())) == ("optimal", 2)


def test_branch_and_bound_is_not_started_on_a_problem_over_its_work_limit(monkeypatch):
    """Lights under a 2.0 m ceiling in a 20 x 20 room: the cover needs ~40 small disks
    over ~400 points, where HiGHS's root alone took seconds; the LP-rounded cover is
    returned instead, the same on every machine, and the optimiser model says why."""
    room = make_room((20, 20), ceiling_height_m=2.0, room_type="storage")
    context = build_context("light", room, NFPA)
    monkeypatch.setattr(optimiser, "_run", lambda *args: pytest.fail("the MILP ran"))
    result = solve_stage(context, 120.0)
    assert result.status == optimiser.TOO_LARGE
    placed = int(result.added.sum())
    assert placed * int(context.open_points.sum()) > optimiser.BRANCH_MAX_WORK
    assert [v for v in context.violations(result.added) if v.rule != "light.uniformity"] == []
    model = OptimiserModel()
    assert model.place(context) is not None
    assert "no branch and bound" in context.notes[model.name]


def test_implied_points_and_dominated_sites_left_out_of_the_lp_keep_its_optimum():
    from scipy import sparse
    from scipy.optimize import LinearConstraint

    def lp(rows: np.ndarray, need: int = 0) -> float:
        constraints = [LinearConstraint(sparse.csr_matrix(rows, dtype=float), lb=1, ub=np.inf)]
        if need:
            constraints.append(LinearConstraint(np.ones((1, rows.shape[1])), lb=need))
        x, _, status = optimiser.lp_relaxation(constraints, rows.shape[1], 10.0)
        assert status == "optimal"
        return float(x.sum())

    rng = np.random.default_rng(11)
    for _ in range(20):
        points, sites = int(rng.integers(5, 60)), int(rng.integers(3, 40))
        cover = rng.random((points, sites)) < 0.2
        cover[np.arange(points), rng.integers(sites, size=points)] = True  # coverable
        cover[rng.integers(points, size=5)] = cover[rng.integers(points, size=5)]  # equal rows
        rows = optimiser.essential_rows(sparse.csr_matrix(cover))
        for point in np.flatnonzero(~rows):  # some kept row's sites are all among its own
            assert any(not (cover[kept] & ~cover[point]).any() for kept in np.flatnonzero(rows))
        for kept, other in itertools.combinations(np.flatnonzero(rows), 2):
            assert not np.array_equal(cover[kept], cover[other])
        reduced = cover[rows]
        columns = optimiser.essential_columns(sparse.csr_matrix(reduced))
        for site in np.flatnonzero(~columns):  # another kept site covers all of its points
            assert any(
                not (reduced[:, site] & ~reduced[:, kept]).any() for kept in np.flatnonzero(columns)
            )
        full = lp(cover)
        assert lp(reduced) == pytest.approx(full, abs=1e-7)
        assert lp(reduced[:, columns]) == pytest.approx(full, abs=1e-7)
        need = int(
            rng.integers(1, sites + 1)
        )  # the count row: max(need, LP) as the certificate takes it
        assert max(need, lp(reduced[:, columns])) == pytest.approx(lp(cover, need), abs=1e-7)


def test_with_a_cover_in_hand_the_lp_value_alone_shows_there_is_none_smaller(monkeypatch):
    """Supplies of a 20 x 10 office: the count rule asks for 3, the fewest is 4. With 4
    in hand the reduced LP answers before any search or rounding; with 5 in hand
    the optimiser finds a cover of 4."""
    context = build_context("air_supply", make_room((20, 10)), NFPA)
    assert context.lower_bound == 3
    searched = []
    real_search = optimiser.smallest_cover
    monkeypatch.setattr(
        optimiser, "smallest_cover", lambda *args: searched.append(args) or real_search(*args)
    )
    assert solve_stage(context, 10.0, beat=4).status == optimiser.NO_BETTER
    assert searched == []
    found = solve_stage(context, 10.0, beat=5)
    assert found.status == "optimal" and int(found.added.sum()) == 4
    assert searched
