"""Exact placement as integer programmes, solved by HiGHS through ``scipy.optimize.milp``.

Two programmes:

- :func:`solve_stage` — one component: minimum devices on allowed cells such
  that every coverage point is reached and the count rule holds (set cover
  with a cardinality floor). It labels the training corpus and competes at
  serving time within a time budget.
- :func:`solve_joint` — all four components at once, with every clearance of
  the table (:mod:`~ceilgrid_assets.core.engine.constraints`) as allowed sites
  and pairwise conflict rows. Used as a rescue for small rooms where the
  series could not find a compliant layout: if one exists, this finds it.

Work is bounded deterministically: the exhaustive search by a branch count,
branch and bound by a HiGHS node limit (``mip_max_nodes``, scipy's
``node_limit``), so a slow or loaded machine reaches the same answer. The
wall-clock limit stays only as a safety net; a solve it stops reports status
``"limit"`` and the caller marks the room, since that outcome may differ
between machines.

``scipy.optimize`` (a quarter of a second to import) is imported by the functions
that call HiGHS, so a command or room the exhaustive search settles never loads it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from ceilgrid_assets.core.engine import constraints
from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, EMPTY, Room
from ceilgrid_assets.core.engine.photometry import illuminance_map, required_lights, room_kernel
from ceilgrid_assets.core.engine.profile import Profile
from ceilgrid_assets.core.engine.rules import (
    EPSILON_M,
    calculation_area,
    device_layers,
    forbidden_cells,
)
from ceilgrid_assets.core.engine.stages import (
    DENSE_COVERAGE_PAIRS,
    StageContext,
    coverage_matrix,
    coverage_relation,
    disk_stencil,
    uncovered_by,
)

if TYPE_CHECKING:
    from scipy.optimize import LinearConstraint

#: HiGHS statuses as scipy reports them (1: the wall-clock safety net stopped it).
STATUS = {0: "optimal", 1: "limit", 2: "infeasible", 3: "unbounded", 4: "error"}
#: Status of a branch and bound stopped by its node budget: deterministic.
BUDGET = "budget"
#: Status of a stage whose LP bound shows no cover beats the one in hand.
NO_BETTER = "no better"
#: Branch-and-bound nodes one stage solve may explore (the deterministic work budget).
STAGE_NODE_LIMIT = 2_000
#: Branch-and-bound nodes the joint rescue may explore.
JOINT_NODE_LIMIT = 5_000
#: Nonzeros of the largest joint programme solved. Above it (rooms of 500-800 cells
#: under 0.6 m tiles) HiGHS's root alone took 5-13 s here, before any node, so no
#: node budget bounds the time and the safety net would decide.
JOINT_MAX_NONZEROS = 300_000
#: Work of one joint solve: nodes x nonzeros^1.5. A node took about 1e-8 nonzeros^1.5
#: seconds here (10 ms at 10,000 nonzeros, 0.6-1.7 s at 230,000), so this keeps the
#: branch and bound near 10 s on this 2-core machine, a third of the safety net.
JOINT_NODE_WORK = 1e9
#: Status of a stage whose branch and bound was not started: over BRANCH_MAX_WORK.
TOO_LARGE = "too large"
#: Branch and bound runs only where the cap on devices times the points to cover is at
#: most this. Above it (lights under low ceilings: many small disks) HiGHS's root alone
#: took 1-10 s here before any node, so a node budget no longer bounds the time and the
#: wall-clock safety net, not the work, would decide the layout on a loaded machine.
BRANCH_MAX_WORK = 4_000
#: LP solves one dive may take (each fixes one more site at 1).
DIVE_MAX_LPS = 12
#: An LP value this close to 0 or 1 counts as integral.
INTEGRAL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SolveResult:
    """An optimiser outcome; ``added`` is None when no usable solution was found.

    ``status``: optimal | trivial | infeasible (proved) | budget (node budget
    spent, deterministic) | limit (wall-clock safety net, machine-dependent) |
    error.
    """

    added: np.ndarray | None
    status: str
    gap: float | None
    seconds: float
    nodes: int = 0  # branch-and-bound nodes HiGHS explored
    nonzeros: int = 0  # of the programme's constraint matrix (joint solves)


#: The exhaustive search gives up (and the LP runs) after this many branches ...
SEARCH_MAX_BRANCHES = 400
#: ... looks for covers of up to this many new devices, or of the lower bound if larger ...
SEARCH_MAX_DEVICES = 3
#: ... on at most this many (point, site) pairs.
SEARCH_MAX_PAIRS = 250_000


class _BranchBudget:
    """Counts branches of the exhaustive search; raises once the budget is spent."""

    class Spent(Exception):
        pass

    def __init__(self, branches: int) -> None:
        self.left = branches

    def spend(self, branches: int = 1) -> None:
        """Spend ``branches``; raises when that is more than is left, as spending
        them one at a time would on the first over the budget."""
        if branches > self.left:
            self.left = -1
            raise self.Spent
        self.left -= branches


def _cover_with(cover: np.ndarray, size: int, budget: _BranchBudget) -> list[int] | None:
    """Sites (columns) covering every row of ``cover`` with at most ``size`` of them, or None.

    Branches on the row with the fewest covering sites (one of them must be
    taken), trying first the sites that cover most rows, so the first dive is
    a greedy cover; a branch is cut when even the best site could not cover
    the remaining rows in time. The last two devices are found for all sites
    at once (:func:`_pair_with`).
    """
    if cover.shape[0] == 0:
        return []
    gains = cover.sum(axis=0)
    if size * int(gains.max()) < cover.shape[0]:
        return None
    if size == 1:
        return [int(np.argmax(gains))]  # the bound above left only a site covering all
    hardest = int(np.argmin(cover.sum(axis=1)))
    sites = np.flatnonzero(cover[hardest])
    order = sites[np.argsort(-gains[sites], kind="stable")]
    if size == 2:
        return _pair_with(cover, order, budget)
    for site in order.tolist():
        budget.spend()
        rest = _cover_with(cover[~cover[:, site]], size - 1, budget)
        if rest is not None:
            return [site, *rest]
    return None


def _pair_with(cover: np.ndarray, order: np.ndarray, budget: _BranchBudget) -> list[int] | None:
    """:func:`_cover_with` of size 2 branching on the sites ``order`` lists, in one product.

    Rows site a leaves to site b are those both miss: a pair covers every row
    when the product of their "missed" columns is 0. The answer, and the
    branches spent, are those of trying each first site in turn and then the
    first site covering what it leaves (none when it leaves nothing).
    """
    missed = ~cover
    left = missed[:, order].T.astype(np.float32) @ missed.astype(np.float32)
    complete = (left == 0).any(axis=1)
    first = int(np.argmax(complete)) if complete.any() else None
    budget.spend(len(order) if first is None else first + 1)
    if first is None:
        return None
    site = int(order[first])
    if left[first, site] == 0:  # this site alone leaves no row
        return [site]
    return [site, int(np.argmax(left[first] == 0))]


def smallest_cover(
    cover: np.ndarray, lower: int, upper: int, branches: int = SEARCH_MAX_BRANCHES
) -> np.ndarray | None:
    """Exhaustive search for a minimum set cover of ``lower`` to ``upper`` sites.

    ``cover`` is the dense (points x sites) boolean matrix and ``lower`` a
    proved lower bound. Returns the chosen sites as a boolean vector when they
    are minimal (every size from ``lower`` up was tried in turn), or None when
    the minimum lies above ``upper`` or the branch budget ran out: the caller
    then solves the LP.
    """
    budget = _BranchBudget(branches)
    try:
        for size in range(max(1, lower), upper + 1):
            found = _cover_with(cover, size, budget)
            if found is not None:
                chosen = np.zeros(cover.shape[1], dtype=bool)
                chosen[found] = True
                return chosen
    except _BranchBudget.Spent:
        return None
    return None


#: Covers of at most this many (point, site) pairs are reduced before their LP (one
#: small BLAS product); in larger ones the products cost more than the LP saves.
REDUCED_MAX_PAIRS = DENSE_COVERAGE_PAIRS


def _nested(cover: sparse.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) of rows whose sets of columns nest, a's within b's, where a is the
    smaller set or, of equal sets, the earlier row. Dense: for small covers only."""
    dense = sparse.csr_matrix(cover).toarray().astype(np.float32)
    size = dense.sum(axis=1)
    a, b = np.nonzero(dense @ dense.T == size[:, None])
    first = (size[a] < size[b]) | ((size[a] == size[b]) & (a < b))
    return a[first], b[first]


def essential_rows(cover: sparse.csr_matrix) -> np.ndarray:
    """Rows (points) of a set cover no other row implies, as a boolean mask.

    A point every one of whose covering sites also covers another point is
    covered whenever that other point is: its row can be left out of the
    covering LP without changing its optimum. Of rows with equal site sets
    the first is kept. In a room most points are implied by a point nearer a
    wall or a corner (a 17 x 20 office's supplies: 330 rows to 187).
    """
    _, implied = _nested(cover)
    keep = np.ones(cover.shape[0], dtype=bool)
    keep[implied] = False
    return keep


def essential_columns(cover: sparse.csr_matrix) -> np.ndarray:
    """Columns (sites) of a set cover no other column dominates, as a boolean mask.

    A site whose points another site all covers too can give its share of an
    LP solution to that site (capped at 1, every point stays covered, the
    total does not grow): leaving it out keeps the optimum of the covering LP
    with 0 <= x <= 1 (not of one with a count row). Of equal columns the last
    is kept. After :func:`essential_rows`, most sites are dominated (the 17 x
    20 office: 330 columns to 129, the LP about 3x faster than with all rows
    and columns).
    """
    dominated, _ = _nested(sparse.csr_matrix(cover).T)
    keep = np.ones(cover.shape[1], dtype=bool)
    keep[dominated] = False
    return keep


def covering_lp_bound(cover: sparse.csr_matrix, need: int, time_limit_s: float) -> tuple[int, str]:
    """The covering LP's bound: its optimum with at least ``need`` sites, rounded up,
    and the LP's status (the bound holds only when ``optimal``).

    Only the value is asked for, so a small cover leaves out implied points and
    dominated sites (:func:`essential_rows`, :func:`essential_columns`; the same
    optimum) and the count enters as max(need, LP), as any cover can be topped
    up to the count: a 17 x 20 office's supply LP shrinks from 330 x 330 to 187
    x 129 and solves about 3x faster. Large programmes keep the count row,
    with which HiGHS settles them faster.
    """
    from scipy.optimize import LinearConstraint

    n_sites = cover.shape[1]
    if cover.shape[0] * n_sites <= REDUCED_MAX_PAIRS:
        cover = cover[essential_rows(cover)]
        cover = cover[:, essential_columns(cover)]
        constraints = [LinearConstraint(cover, lb=1, ub=np.inf)]
    else:
        constraints = [LinearConstraint(cover, lb=1, ub=np.inf)]
        if need:
            constraints.append(LinearConstraint(np.ones((1, n_sites)), lb=need))
    _, bound, status = lp_relaxation(constraints, cover.shape[1], time_limit_s)
    return max(need, bound), status


def lp_relaxation(
    constraints: list[LinearConstraint],
    n_sites: int,
    time_limit_s: float,
    fixed: np.ndarray | None = None,
) -> tuple[np.ndarray | None, int, str]:
    """The LP relaxation's solution, its lower bound (the optimum rounded up) and status.

    ``fixed`` marks sites held at 1 (a dive's choices so far).
    """
    from scipy.optimize import Bounds, milp

    relaxed = milp(
        np.ones(n_sites),
        constraints=constraints,
        integrality=np.zeros(n_sites),
        bounds=Bounds(np.zeros(n_sites) if fixed is None else fixed.astype(float), 1),
        options={"time_limit": max(0.05, time_limit_s)},
    )
    if relaxed.status != 0:  # only an optimal LP value is a lower bound
        return None, 0, STATUS.get(relaxed.status, "error")
    return relaxed.x, int(np.ceil(relaxed.fun - 1e-6)), "optimal"


def rounded_cover(cover: sparse.csr_matrix, x: np.ndarray, need: int) -> np.ndarray:
    """A cover rounded from the LP solution ``x``.

    Sites are taken in decreasing LP value while they reach an uncovered
    point, then redundant ones dropped (lowest value first), then the count
    rule is met in LP order. When the rounded cover meets the LP bound it is
    optimal, which is usually the case for these covering problems and costs a
    fraction of branch and bound.
    """
    n_sites = cover.shape[1]
    order = np.lexsort((np.arange(n_sites), -x)).tolist()
    columns = cover.tocsc()
    points_of = [
        columns.indices[columns.indptr[site] : columns.indptr[site + 1]] for site in range(n_sites)
    ]
    times_covered = np.zeros(cover.shape[0], dtype=np.int64)
    chosen = np.zeros(n_sites, dtype=bool)
    for site in order:
        if not (times_covered[points_of[site]] == 0).any():
            continue
        chosen[site] = True
        times_covered[points_of[site]] += 1
        if times_covered.all():
            break
    for site in reversed(order):
        if chosen[site] and (times_covered[points_of[site]] >= 2).all():
            chosen[site] = False
            times_covered[points_of[site]] -= 1
    for site in order:
        if int(chosen.sum()) >= need:
            break
        chosen[site] = True
    return chosen


def dived_cover(
    constraints: list[LinearConstraint],
    x: np.ndarray,
    time_limit_s: float,
    max_lps: int = DIVE_MAX_LPS,
) -> tuple[np.ndarray | None, str]:
    """A cover found by diving from the LP solution ``x`` (or None), and the LPs' status.

    The site with the largest fractional value is fixed at 1 and the LP
    solved again, until its solution is integral. Where rounding misses the
    LP bound by one device, a dive of two or three LPs usually meets it, in
    milliseconds where branch and bound spends seconds at its root (cuts and
    sub-MIPs on these highly symmetric covers). The LP count bounds the work.
    """
    fixed = np.zeros(x.size, dtype=bool)
    for _ in range(max_lps):
        fractional = (x > INTEGRAL_TOLERANCE) & (x < 1 - INTEGRAL_TOLERANCE)
        if not fractional.any():
            return x > 0.5, "optimal"
        fixed[int(np.argmax(np.where(fractional, x, -1.0)))] = True
        x, _, status = lp_relaxation(constraints, x.size, time_limit_s, fixed)
        if x is None:  # fixing sites of a cover at 1 keeps it feasible: the clock stopped it
            return None, status
    return None, "optimal"


def _run(
    c: np.ndarray,
    constraints: list[LinearConstraint],
    upper: np.ndarray,
    node_limit: int,
    time_limit_s: float,
) -> tuple[np.ndarray | None, str, float | None, int]:
    """Branch and bound within ``node_limit`` nodes; ``time_limit_s`` is only a safety net.

    Returns the choice, the status, the gap and the nodes explored.

    An incumbent found within the node budget is returned with status
    ``budget``: the same on every machine. One stopped by the clock (``limit``)
    is returned too, and the caller must not let it change a layout silently.
    """
    if time_limit_s <= 0:
        return None, "limit", None, 0
    from scipy.optimize import Bounds, milp

    result = milp(
        c,
        constraints=constraints,
        integrality=np.ones_like(c),
        bounds=Bounds(np.zeros_like(c), upper),
        options={"node_limit": node_limit, "time_limit": time_limit_s, "presolve": True},
    )
    status = STATUS.get(result.status, "error")
    if status == "error" and "Solution limit" in str(result.message):  # HiGHS: mip_max_nodes
        status = BUDGET
    gap = getattr(result, "mip_gap", None)
    nodes = int(getattr(result, "mip_node_count", None) or 0)
    if result.x is None:
        return None, status, gap, nodes
    chosen = np.round(result.x).astype(bool)
    return chosen, status, (float(gap) if gap is not None else None), nodes


def solve_stage(
    context: StageContext,
    time_limit_s: float,
    node_limit: int = STAGE_NODE_LIMIT,
    beat: int | None = None,
    search: bool = True,
) -> SolveResult:
    """Fewest devices of one type on allowed cells meeting coverage and count.

    Cheapest proof first: :func:`smallest_cover` settles stages needing a few
    devices, :func:`rounded_cover` most others (a rounded LP solution meeting
    the LP bound), :func:`dived_cover` most of the rest; branch and bound (the
    MILP) runs only when all fail, within ``node_limit`` nodes, and only on problems
    of at most ``BRANCH_MAX_WORK`` (device, point) pairs (else status ``too large``,
    with the best cover in hand if any). ``time_limit_s`` is the safety net.
    With ``beat`` (new devices of a cover already in hand), branch and bound
    is skipped when the LP bound proves it cannot find fewer, and otherwise
    searches only below ``beat``; status ``no better`` when nothing is.
    ``search=False``: the caller already ran the same exhaustive search, in vain.
    """
    started = time.perf_counter()
    sites = context.allowed
    need = max(0, context.required_count - int(context.existing.sum()))
    uncovered = context.open_points
    n_sites = int(sites.sum())

    def result(chosen: np.ndarray | None, status: str, gap: float | None) -> SolveResult:
        added = None
        if chosen is not None:
            added = np.zeros_like(sites)
            added[sites] = chosen
        return SolveResult(added, status, gap, time.perf_counter() - started)

    if need == 0 and not uncovered.any():
        return result(np.zeros(n_sites, dtype=bool), "trivial", 0.0)
    if n_sites == 0:
        return result(None, "infeasible", None)
    if beat is not None and uncovered.any() and int(uncovered.sum()) * n_sites <= SEARCH_MAX_PAIRS:
        # Only a cover with fewer than ``beat`` devices is wanted: the LP's value alone
        # (of a reduced programme) most often shows there is none, before any search.
        cover = sparse.csr_matrix(context.open_cover, dtype=np.float64)
        bound, lp_status = covering_lp_bound(cover, need, time_limit_s)
        if lp_status == "optimal" and bound >= beat:
            return result(None, NO_BETTER, None)
    cover = None
    if uncovered.any():
        fewest = context.lower_bound - int(context.existing.sum())
        if int(uncovered.sum()) * n_sites <= SEARCH_MAX_PAIRS:
            dense = context.open_cover
            if not dense.any(axis=1).all():
                return result(None, "infeasible", None)
            chosen = (
                smallest_cover(dense, fewest, max(fewest, SEARCH_MAX_DEVICES)) if search else None
            )
            if chosen is not None and int(chosen.sum()) >= need:  # else the count rule binds
                return result(chosen, "optimal", 0.0)
            cover = sparse.csr_matrix(dense, dtype=np.float64)
        else:
            cover = coverage_matrix(uncovered, sites, context.disk, context.reach)
            if not (np.asarray(cover.sum(axis=1)).ravel() > 0).all():
                return result(None, "infeasible", None)
    from scipy.optimize import LinearConstraint  # only now: the search did not settle it

    constraints = []
    if cover is not None:
        constraints.append(LinearConstraint(cover, lb=1, ub=np.inf))
    if need:
        constraints.append(LinearConstraint(np.ones((1, n_sites)), lb=need, ub=np.inf))
    in_hand: np.ndarray | None = None  # the best cover found without branching
    if uncovered.any():
        x, bound, lp_status = lp_relaxation(constraints, n_sites, time_limit_s)
        if lp_status == "limit":  # the safety net: never let the clock pick another route
            return result(None, "limit", None)
        if x is not None:
            rounded = rounded_cover(cover, x, need)
            if int(rounded.sum()) <= bound:
                return result(rounded, "optimal", 0.0)
            if beat is not None and bound >= beat:
                return result(None, NO_BETTER, None)
            remaining_s = time_limit_s - (time.perf_counter() - started)
            if remaining_s <= 0:
                return result(None, "limit", None)
            dived, dive_status = dived_cover(constraints, x, remaining_s)
            if dive_status == "limit":
                return result(None, "limit", None)
            if dived is not None and int(dived.sum()) <= bound:
                return result(dived, "optimal", 0.0)
            in_hand = rounded if dived is None or rounded.sum() <= dived.sum() else dived
    # Branch and bound looks only for covers better than any in hand: a cap on
    # the count proves optimality (or finds the improvement) several times
    # faster than an open search.
    caps = [count for count in (beat, None if in_hand is None else int(in_hand.sum())) if count]
    cap = min(caps) if caps else None
    if cover is not None and (cap or n_sites) * cover.shape[0] > BRANCH_MAX_WORK:
        return result(in_hand, TOO_LARGE, None)
    if cap is not None:
        constraints.append(LinearConstraint(np.ones((1, n_sites)), lb=0, ub=cap - 1))
    remaining_s = time_limit_s - (time.perf_counter() - started)
    chosen, status, gap, _ = _run(
        np.ones(n_sites), constraints, np.ones(n_sites), node_limit, remaining_s
    )
    if cap is not None and status == "infeasible":  # nothing with fewer than ``cap`` devices
        if in_hand is not None and int(in_hand.sum()) == cap:
            return result(in_hand, "optimal", 0.0)
        return result(None, NO_BETTER, None)
    if chosen is None and status == BUDGET and in_hand is not None:
        return result(in_hand, BUDGET, gap)
    return result(chosen, status, gap)


def _conflict_rows(
    sites_a: np.ndarray,
    var_a: np.ndarray,
    sites_b: np.ndarray,
    var_b: np.ndarray,
    minimum_m: float,
    tile_size_m: float,
    n_vars: int,
) -> sparse.csr_matrix:
    """Rows ``x_a + x_b <= 1`` for every pair closer than ``minimum_m``."""
    # disk_stencil is inclusive; shrinking the radius makes "strictly closer".
    stencil = disk_stencil(minimum_m - 2 * EPSILON_M, tile_size_m)
    offsets = np.argwhere(stencil) - stencil.shape[0] // 2
    height, width = sites_a.shape
    ay, ax = np.nonzero(sites_a)
    rows_a, rows_b = [], []
    for dy, dx in offsets:
        by, bx = ay + dy, ax + dx
        inside = (by >= 0) & (by < height) & (bx >= 0) & (bx < width)
        inside[inside] = sites_b[by[inside], bx[inside]]
        rows_a.append(var_a[ay[inside], ax[inside]])
        rows_b.append(var_b[by[inside], bx[inside]])
    a = np.concatenate(rows_a) if rows_a else np.empty(0, dtype=np.int64)
    b = np.concatenate(rows_b) if rows_b else np.empty(0, dtype=np.int64)
    n = a.size
    data = np.ones(2 * n)
    return sparse.csr_matrix(
        (data, (np.concatenate([np.arange(n), np.arange(n)]), np.concatenate([a, b]))),
        shape=(n, n_vars),
    )


#: Slack of a uniformity row, as a share of one fitting's peak illuminance: keeps a
#: solution HiGHS accepts within its feasibility tolerance (1e-6) on the right side
#: of the validator's exact check.
UNIFORMITY_ROW_MARGIN = 1e-5


def uniformity_rows(
    room: Room, profile: Profile, sites: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``A x >= b`` over the light ``sites``: U0 >= target at each of ``points``.

    U0 = Emin / Eavg >= u holds when every calculation point p has
    E_p >= u Eavg; both sides are sums over fittings, so each point's inequality
    is linear in the lights placed: sum_j (K_pj - u mean_q K_qj) x_j >=
    u Eavg0 - E0_p, where K_pj is what a light on site j gives point p and E0
    the input lights' map. Each row is necessary for the rule, so a programme
    they make infeasible proves no compliant layout exists; rows are scaled to
    one fitting's peak.
    """
    area = calculation_area(room, profile)
    kernel = room_kernel(room, profile)
    height, width = room.cells.shape
    target = profile.target_u0(room.room_type)
    ay, ax = np.nonzero(area)
    sy, sx = np.nonzero(sites)
    # Illuminance each light site gives each calculation point, (points x sites).
    reach = kernel[height - 1 + ay[:, None] - sy[None, :], width - 1 + ax[:, None] - sx[None, :]]
    existing = np.nan_to_num(illuminance_map(room, profile))[ay, ax]
    chosen = points[ay, ax]
    scale = float(kernel.max())
    rows = (reach[chosen] - target * reach.mean(axis=0)) / scale
    bounds = (target * existing.mean() - existing[chosen]) / scale + UNIFORMITY_ROW_MARGIN
    return rows, bounds


def solve_joint(
    room: Room,
    profile: Profile,
    time_limit_s: float,
    node_limit: int = JOINT_NODE_LIMIT,
    uniform_at: np.ndarray | None = None,
) -> SolveResult:
    """All four components at once; ``added`` holds component codes (0 where nothing new).

    ``uniform_at`` (calculation points) adds :func:`uniformity_rows` for them.
    Status ``infeasible`` is a proof that no completion exists; ``budget`` means
    the node budget ran out first (deterministic); ``limit`` the safety net;
    ``too large`` that the programme has more than ``JOINT_MAX_NONZEROS``
    nonzeros and was not solved. ``node_limit`` is lowered to
    :func:`joint_node_budget` of the programme's size.
    """
    started = time.perf_counter()
    cells, t = room.cells, room.tile_size_m
    empty = cells == EMPTY
    existing = device_layers(cells)
    # Cells where each type may go at all, given the devices already in the input.
    sites = {
        name: empty & ~forbidden_cells(name, existing, profile, t) for name in DEVICE_COMPONENTS
    }
    # Variable numbering: one block per component.
    var: dict[str, np.ndarray] = {}
    offset = 0
    for name in DEVICE_COMPONENTS:
        index = np.full(cells.shape, -1, dtype=np.int64)
        count = int(sites[name].sum())
        index[sites[name]] = offset + np.arange(count)
        var[name], offset = index, offset + count
    n_vars = offset
    if n_vars == 0:
        return SolveResult(None, "infeasible", None, time.perf_counter() - started)
    blocks: list[sparse.csr_matrix] = []
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []

    def add(matrix: sparse.spmatrix, lb: float | np.ndarray, ub: float | np.ndarray) -> None:
        matrix = sparse.csr_matrix(matrix)
        blocks.append(matrix)
        lower.append(np.broadcast_to(np.asarray(lb, dtype=float), (matrix.shape[0],)))
        upper.append(np.broadcast_to(np.asarray(ub, dtype=float), (matrix.shape[0],)))

    def selector(name: str) -> sparse.csr_matrix:
        """(n_sites x n_vars) picking the block of one component."""
        columns = var[name][sites[name]]
        return sparse.csr_matrix(
            (np.ones(columns.size), (np.arange(columns.size), columns)),
            shape=(columns.size, n_vars),
        )

    # One device per cell.
    cell_of_var = np.full(n_vars, -1, dtype=np.int64)
    for name in DEVICE_COMPONENTS:
        cell_of_var[var[name][sites[name]]] = np.flatnonzero(sites[name].ravel())
    add(
        sparse.csr_matrix(
            (np.ones(n_vars), (cell_of_var, np.arange(n_vars))), shape=(cells.size, n_vars)
        ),
        -np.inf,
        1,
    )
    # Coverage.
    area = room.area_m2
    radii = {
        "light": profile.light_radius_m(room.ceiling_height_m),
        "air_supply": profile.supply_radius_m,
        "smoke_detector": profile.smoke_radius_m,
    }
    for name, radius in radii.items():
        reach = coverage_relation(room, profile, name, radius)
        uncovered = uncovered_by(room, existing[name], radius, reach)
        if uncovered.any():
            cover = coverage_matrix(uncovered, sites[name], disk_stencil(radius, t), reach)
            if (np.asarray(cover.sum(axis=1)).ravel() == 0).any():
                return SolveResult(None, "infeasible", None, time.perf_counter() - started)
            add(cover @ selector(name), 1, np.inf)
    # Counts.
    ones = {name: np.asarray(selector(name).sum(axis=0)) for name in DEVICE_COMPONENTS}
    n_existing = {name: int(existing[name].sum()) for name in DEVICE_COMPONENTS}
    add(ones["light"], required_lights(room, profile) - n_existing["light"], np.inf)
    add(ones["air_supply"], profile.min_supplies(area) - n_existing["air_supply"], np.inf)
    if area >= profile.return_min_area_m2:
        # 2 * returns >= supplies  <=>  returns >= ceil(supplies / 2)
        add(
            2 * ones["air_return"] - ones["air_supply"],
            n_existing["air_supply"] - 2 * n_existing["air_return"],
            np.inf,
        )
    if uniform_at is not None and uniform_at.any():
        rows, bounds = uniformity_rows(room, profile, sites["light"], uniform_at)
        add(sparse.csr_matrix(rows) @ selector("light"), bounds, np.inf)
    # Pairwise clearances between new devices, from the table.
    for clearance in constraints.CLEARANCES:
        first, second = clearance.subject, clearance.other
        rows = _conflict_rows(
            sites[first],
            var[first],
            sites[second],
            var[second],
            clearance.minimum_m(profile),
            t,
            n_vars,
        )
        if rows.shape[0]:
            add(rows, -np.inf, 1)
    from scipy.optimize import LinearConstraint

    matrix = sparse.vstack(blocks).tocsr()
    if matrix.nnz > JOINT_MAX_NONZEROS:
        elapsed = time.perf_counter() - started
        return SolveResult(None, TOO_LARGE, None, elapsed, nonzeros=matrix.nnz)
    constraint = LinearConstraint(matrix, np.concatenate(lower), np.concatenate(upper))
    remaining_s = time_limit_s - (time.perf_counter() - started)
    chosen, status, gap, nodes = _run(
        np.ones(n_vars),
        [constraint],
        np.ones(n_vars),
        joint_node_budget(matrix.nnz, node_limit),
        remaining_s,
    )
    elapsed = time.perf_counter() - started
    if chosen is None:
        return SolveResult(None, status, gap, elapsed, nodes, matrix.nnz)
    codes = np.zeros(cells.size, dtype=np.uint8)
    for name in DEVICE_COMPONENTS:
        picked = chosen[var[name][sites[name]]]
        codes[np.flatnonzero(sites[name].ravel())[picked]] = CODE[name]
    return SolveResult(codes.reshape(cells.shape), status, gap, elapsed, nodes, matrix.nnz)


def joint_node_budget(nonzeros: int, node_limit: int) -> int:
    """Nodes a joint programme of ``nonzeros`` may explore: ``node_limit``, lowered so
    that nodes x nonzeros^1.5 stays within ``JOINT_NODE_WORK`` (a node of a larger
    programme costs more, and the work, not the clock, must end the search)."""
    return int(min(node_limit, JOINT_NODE_WORK / max(nonzeros, 1) ** 1.5))
