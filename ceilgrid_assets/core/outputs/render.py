"""PNG pictures of a room's reflected ceiling plan, with overlays.

Engineers judge a layout by looking at it, so every view shares one drawing:
cell colours from a single ``imshow``, one ``scatter`` per component type for
the symbols, invalid cells as one hatched compound path, grid lines as two
line collections. Nothing is drawn per cell, so a 250,000-cell room renders in
about the time of a small one.

The plan is drawn as the JSON grid reads: row ``y = 0`` at the top, axes in
metres (tile centres at ``((x + 0.5) t, (y + 0.5) t)``). Figures use a fixed
pixel layout and the Agg canvas directly (no pyplot state, safe in threads);
the PNG is encoded from the canvas buffer without metadata, so the same input
gives the same bytes. :class:`RenderedImage` carries the pixel position of
every cell centre, taken from the axes transform, so callers and tests can
locate cells in the picture.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import EllipseCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from PIL import Image

from ceilgrid_assets.core.engine.grid import (
    AIR_SUPPLY,
    CODE,
    COMPONENTS,
    DEVICE_COMPONENTS,
    EMPTY,
    INVALID,
    LIGHT,
    SMOKE_DETECTOR,
    VOID,
    Room,
)
from ceilgrid_assets.core.engine.photometry import illuminance_map, illuminance_summary
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, Profile, get_profile
from ceilgrid_assets.core.engine.rules import (
    COVERAGE_RULES,
    calculation_area,
    spacing_uncovered,
    uncovered_points,
)

#: Colour per component (Okabe-Ito palette: distinguishable with colour-blindness).
COLOURS: dict[str, str] = {
    "empty": "#ffffff",
    "invalid": "#b0b0b0",
    "light": "#e69f00",
    "air_supply": "#0072b2",
    "air_return": "#009e73",
    "smoke_detector": "#d55e00",
    "void": "#3c3c3c",  # outside the room: solid and dark, unlike the hatched light invalid
}
#: Matplotlib marker per device; the marker face covers the cell centre.
MARKERS: dict[str, str] = {
    "light": "s",
    "air_supply": "X",
    "air_return": "D",
    "smoke_detector": "o",
}
#: Outline colour per rule in the violations view.
RULE_COLOURS: dict[str, str] = {
    "placement": "#000000",
    "smoke.coverage": "#cc79a7",
    "smoke.spacing": "#f0e442",
    "smoke.clearance": "#7b2d8e",
    "light.spacing": "#8c6d00",
    "supply.coverage": "#56b4e9",
    "return.separation": "#004d40",
}
OTHER_RULE_COLOUR = "#444444"
HATCH_COLOUR = "#5a5a5a"
GRID_COLOUR = "#cfcfcf"
UNCOVERED_COLOUR = "#cc79a7"
UNCOVERED_ALPHA = 0.6
#: Hatch over the cells of a coverage rule's violation: the room's blind zones.
BLIND_HATCH = "xx"
#: Device cells are filled with this fraction of their colour (rest white), so the
#: symbol stands out while a tiny cell without a symbol is still identifiable.
TINT = 0.3
VIEWS: tuple[str, ...] = ("plan", "coverage", "illuminance", "violations")
#: Views :func:`render_room` draws on request only (not in :func:`render_views` or exports).
EXTRA_VIEWS: tuple[str, ...] = ("blind_zones",)
#: Pipeline stages: the input, then the room after each component in series order.
STAGES: tuple[str, ...] = ("input",) + DEVICE_COMPONENTS
STAGE_CAPTIONS: dict[str, str] = {
    "input": "input, before placement",
    "light": "after lights",
    "air_supply": "after air supply",
    "air_return": "after air return",
    "smoke_detector": "after smoke detectors (complete)",
}

DPI = 100
MAX_CELL_PX = 32.0
MAX_PLAN_PX = (960.0, 720.0)  # width, height budget of the plan area
MIN_SYMBOL_CELL_PX = 4.0  # below this, cells are filled in full colour without symbols
MIN_GRID_CELL_PX = 6.0
MARGIN_PX = {"left": 64, "right": 240, "top": 84, "bottom": 64}
MIN_PLOT_HEIGHT_PX = 220  # room for the legend next to a short room


@dataclass(frozen=True)
class RenderedImage:
    """A PNG and where each cell centre landed in it.

    ``cell_px[y, x]`` is ``(column, row)`` in PNG pixels (row 0 at the top).
    """

    png: bytes
    cell_px: np.ndarray
    size: tuple[int, int]  # (width, height) pixels
    title: str


def _cell_px(room: Room) -> float:
    width_budget, height_budget = MAX_PLAN_PX
    return min(MAX_CELL_PX, width_budget / room.width, height_budget / room.height)


def _new_figure(room: Room) -> tuple[Figure, Axes, float]:
    """Figure with the plan axes at an exact pixel rectangle: square cells by construction."""
    cell = _cell_px(room)
    plot_w, plot_h = room.width * cell, room.height * cell
    fig_w = MARGIN_PX["left"] + plot_w + MARGIN_PX["right"]
    fig_h = MARGIN_PX["top"] + max(plot_h, MIN_PLOT_HEIGHT_PX) + MARGIN_PX["bottom"]
    fig_w, fig_h = math.ceil(fig_w), math.ceil(fig_h)
    fig = Figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    bottom = fig_h - MARGIN_PX["top"] - plot_h
    ax = fig.add_axes((MARGIN_PX["left"] / fig_w, bottom / fig_h, plot_w / fig_w, plot_h / fig_h))
    extent_x, extent_y = room.width * room.tile_size_m, room.height * room.tile_size_m
    ax.set_xlim(0, extent_x)
    ax.set_ylim(extent_y, 0)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("x (m)", fontsize=8)
    ax.set_ylabel("y (m)", fontsize=8)
    ax.tick_params(labelsize=7)
    return fig, ax, cell


def cell_pixel_centres(ax: Axes, shape: tuple[int, int], tile_size_m: float) -> np.ndarray:
    """Pixel ``(column, row)`` of every cell centre, shape ``(height, width, 2)``.

    Uses the axes' data transform, so it is exact for whatever layout the figure
    has; rows are counted from the top of the PNG.
    """
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width]
    points = np.column_stack(((xs.ravel() + 0.5) * tile_size_m, (ys.ravel() + 0.5) * tile_size_m))
    display = ax.transData.transform(points)
    fig_height_px = ax.figure.bbox.height
    pixels = np.column_stack((display[:, 0], fig_height_px - display[:, 1]))
    return pixels.reshape(height, width, 2)


def _palette(full_colour: bool) -> np.ndarray:
    """RGB per component code; devices tinted unless cells are too small for symbols."""
    colours = np.array([to_rgb(COLOURS[name]) for name in COMPONENTS])
    if not full_colour:
        devices = [CODE[name] for name in DEVICE_COMPONENTS]
        colours[devices] = 1.0 - TINT * (1.0 - colours[devices])
    return colours


def _row_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of True cells as ``(y, x_start, x_stop)``: fewer polygons than cells."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    starts_y, starts_x = np.nonzero(edges == 1)
    _, stops_x = np.nonzero(edges == -1)
    return starts_y, starts_x, stops_x


def _cells_path(mask: np.ndarray, tile_size_m: float) -> Path:
    """One compound path of rectangles covering ``mask`` (row runs merged)."""
    y, x0, x1 = _row_runs(mask)
    t = tile_size_m
    polys = np.stack(
        (
            np.column_stack((x0 * t, y * t)),
            np.column_stack((x1 * t, y * t)),
            np.column_stack((x1 * t, (y + 1) * t)),
            np.column_stack((x0 * t, (y + 1) * t)),
        ),
        axis=1,
    )
    return Path.make_compound_path_from_polys(polys)


def _draw_cells(ax: Axes, room: Room, cell: float, fill: bool = True) -> None:
    """Cell colours, hatched invalid cells and grid lines."""
    extent = (0, room.width * room.tile_size_m, room.height * room.tile_size_m, 0)
    if fill:
        rgb = _palette(full_colour=cell < MIN_SYMBOL_CELL_PX)[room.cells]
        ax.imshow(rgb, extent=extent, interpolation="nearest", aspect="auto", zorder=0)
    void = room.cells == VOID
    if void.any():  # also over a heat map, which leaves the outside blank
        ax.add_patch(
            PathPatch(
                _cells_path(void, room.tile_size_m),
                facecolor=COLOURS["void"],
                linewidth=0,
                zorder=1,
            )
        )
    invalid = room.cells == INVALID
    if invalid.any():
        ax.add_patch(
            PathPatch(
                _cells_path(invalid, room.tile_size_m),
                facecolor=COLOURS["invalid"],
                edgecolor=HATCH_COLOUR,
                linewidth=0,
                hatch="////",
                zorder=1,
            )
        )
    if cell >= MIN_GRID_CELL_PX:
        t = room.tile_size_m
        ax.vlines(
            np.arange(room.width + 1) * t,
            0,
            room.height * t,
            colors=GRID_COLOUR,
            linewidths=0.5,
            zorder=2,
        )
        ax.hlines(
            np.arange(room.height + 1) * t,
            0,
            room.width * t,
            colors=GRID_COLOUR,
            linewidths=0.5,
            zorder=2,
        )


def _marker_size(cell: float) -> float:
    """Scatter ``s`` (points^2) for a symbol about 60 % of a tile wide."""
    side_pt = 0.6 * cell * 72.0 / DPI
    return side_pt**2


def _draw_symbols(
    ax: Axes, room: Room, cell: float, components: Sequence[str] = DEVICE_COMPONENTS
) -> None:
    """One scatter per component type; skipped when tiles are too small to show a symbol."""
    if cell < MIN_SYMBOL_CELL_PX:
        return
    t = room.tile_size_m
    for name in components:
        ys, xs = np.nonzero(room.cells == CODE[name])
        if xs.size:
            ax.scatter(
                (xs + 0.5) * t,
                (ys + 0.5) * t,
                s=_marker_size(cell),
                marker=MARKERS[name],
                c=COLOURS[name],
                edgecolors="#202020",
                linewidths=0.6,
                zorder=4,
            )


def _component_legend(ax: Axes, room: Room, extra: Sequence[Any] = ()) -> None:
    counts = np.bincount(room.cells.ravel(), minlength=len(COMPONENTS))
    handles: list[Any] = [
        Patch(facecolor=COLOURS["empty"], edgecolor=GRID_COLOUR, label=f"empty ({counts[EMPTY]})"),
        Patch(
            facecolor=COLOURS["invalid"],
            edgecolor=HATCH_COLOUR,
            hatch="////",
            label=f"invalid ({counts[INVALID]})",
        ),
    ]
    if counts[VOID]:
        handles.append(Patch(facecolor=COLOURS["void"], label=f"outside the room ({counts[VOID]})"))
    handles += [
        Line2D(
            [],
            [],
            linestyle="none",
            marker=MARKERS[name],
            markersize=9,
            markerfacecolor=COLOURS[name],
            markeredgecolor="#202020",
            label=f"{name.replace('_', ' ')} ({counts[CODE[name]]})",
        )
        for name in DEVICE_COMPONENTS
    ]
    ax.legend(
        handles=handles + list(extra),
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        frameon=False,
        fontsize=8,
    )


def _nice_length(span_m: float) -> float:
    """A 1-2-5 length close to a fifth of the span, for the scale bar."""
    target = max(span_m / 5.0, 1e-3)
    magnitude = 10 ** math.floor(math.log10(target))
    return next(step * magnitude for step in (5, 2, 1) if step * magnitude <= target)


def _scale_bar(ax: Axes, room: Room) -> None:
    length = _nice_length(room.width * room.tile_size_m)
    bar = AnchoredSizeBar(
        ax.transData,
        length,
        f"{length:g} m",
        loc="upper left",
        bbox_to_anchor=(0.0, -0.015),
        bbox_transform=ax.transAxes,
        borderpad=0.0,
        pad=0.2,
        sep=3,
        frameon=False,
        size_vertical=0,
        fontproperties={"size": 8},
    )
    ax.add_artist(bar)


def _title(fig: Figure, room: Room, subtitle: str) -> str:
    """Draw the title as plain text: ids are user input, and ``$`` would start math text."""
    head = (
        f"{room.grid_id} · {room.room_type} · {room.width}×{room.height} tiles of "
        f"{room.tile_size_m:g} m · ceiling {room.ceiling_height_m:g} m"
    )
    fig.text(
        MARGIN_PX["left"] / fig.bbox.width,
        1 - 8 / fig.bbox.height,
        head,
        fontsize=10,
        fontweight="bold",
        va="top",
        parse_math=False,
    )
    fig.text(
        MARGIN_PX["left"] / fig.bbox.width,
        1 - 24 / fig.bbox.height,
        subtitle,
        fontsize=9,
        va="top",
        parse_math=False,
    )
    return f"{room.grid_id}: {subtitle}"


def _encode(fig: Figure, ax: Axes, room: Room, title: str) -> RenderedImage:
    """Draw once, read the pixels and encode them without metadata (deterministic bytes)."""
    canvas = fig.canvas
    with warnings.catch_warnings():
        # A name with a character the font lacks (an emoji) shows a box, not a warning.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    buffer = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buffer, format="PNG", optimize=False, compress_level=6)
    return RenderedImage(
        png=buffer.getvalue(),
        cell_px=cell_pixel_centres(ax, room.cells.shape, room.tile_size_m),
        size=(rgba.shape[1], rgba.shape[0]),
        title=title,
    )


def _plan(fig: Figure, ax: Axes, room: Room, cell: float) -> None:
    _draw_cells(ax, room, cell)
    _draw_symbols(ax, room, cell)
    _scale_bar(ax, room)


def _detector_circles(ax: Axes, room: Room, profile: Profile) -> Line2D:
    """A dashed circle of the profile's smoke radius round each detector (the
    straight-line reach); the legend entry."""
    t = room.tile_size_m
    radius = profile.smoke_radius_m
    ys, xs = np.nonzero(room.cells == SMOKE_DETECTOR)
    if xs.size:
        ax.add_collection(
            EllipseCollection(
                widths=2 * radius,
                heights=2 * radius,
                angles=0.0,
                units="x",
                offsets=np.column_stack(((xs + 0.5) * t, (ys + 0.5) * t)),
                offset_transform=ax.transData,
                facecolors=COLOURS["smoke_detector"] + "14",
                edgecolors=COLOURS["smoke_detector"],
                linewidths=1.2,
                linestyles="--",
                zorder=3,
            )
        )
    return Line2D(
        [], [], color=COLOURS["smoke_detector"], linestyle="--", label=f"R = {radius:.2f} m"
    )


def _coverage(fig: Figure, ax: Axes, room: Room, cell: float, profile: Profile) -> str:
    """Detector circles of the profile radius and the coverage points the detectors
    miss (in-room reach, and the spacing method's squares under that profile)."""
    _plan(fig, ax, room, cell)
    t = room.tile_size_m
    radius = profile.smoke_radius_m
    detectors = room.cells == SMOKE_DETECTOR
    circles = _detector_circles(ax, room, profile)
    uncovered = uncovered_points(room, detectors, radius)
    uncovered |= spacing_uncovered(room, profile, detectors)
    overlay = np.zeros(room.cells.shape + (4,))
    overlay[uncovered] = (*to_rgb(UNCOVERED_COLOUR), UNCOVERED_ALPHA)
    ax.imshow(
        overlay,
        extent=(0, room.width * t, room.height * t, 0),
        interpolation="nearest",
        aspect="auto",
        zorder=3.5,
    )
    extra = [
        circles,
        Patch(
            facecolor=UNCOVERED_COLOUR,
            alpha=UNCOVERED_ALPHA,
            label=f"uncovered ({int(uncovered.sum())})",
        ),
    ]
    _component_legend(ax, room, extra)
    points = int(room.usable.sum())
    return (
        f"smoke detector coverage ({profile.name}, R = {radius:.2f} m): "
        f"{points - int(uncovered.sum())} of {points} coverage points covered"
    )


def _illuminance(fig: Figure, ax: Axes, room: Room, cell: float, profile: Profile) -> str:
    """Point-by-point work-plane illuminance as a heat map, lights as outlines.

    The caption's figures are those of ``light.uniformity``: over its calculation area.
    """
    lux = illuminance_map(room, profile)
    summary = illuminance_summary(lux, calculation_area(room, profile))
    t = room.tile_size_m
    finite = lux[np.isfinite(lux)]
    image = ax.imshow(
        np.ma.masked_invalid(lux),
        extent=(0, room.width * t, room.height * t, 0),
        cmap="viridis",
        vmin=0.0,
        vmax=max(float(finite.max()) if finite.size else 0, 1.0),
        interpolation="nearest",
        aspect="auto",
        zorder=0,
    )
    _draw_cells(ax, room, cell, fill=False)
    if cell >= MIN_SYMBOL_CELL_PX:
        ys, xs = np.nonzero(room.cells == LIGHT)
        ax.scatter(
            (xs + 0.5) * t,
            (ys + 0.5) * t,
            s=_marker_size(cell),
            marker="s",
            facecolors="none",
            edgecolors="white",
            linewidths=1.0,
            zorder=4,
        )
    bbox = ax.get_position()
    cax = fig.add_axes((bbox.x1 + 16 / fig.bbox.width, bbox.y0, 14 / fig.bbox.width, bbox.height))
    colorbar = fig.colorbar(image, cax=cax)
    colorbar.set_label("maintained illuminance (lx)", fontsize=8)
    cax.tick_params(labelsize=7)
    _scale_bar(ax, room)
    target = profile.target_u0(room.room_type)
    required = profile.illuminance_lx[room.room_type]
    return (
        f"illuminance at work plane: Eavg {summary.average_lx:.0f} lx "
        f"(E {required:g} lx), Emin {summary.minimum_lx:.0f} lx, "
        f"U0 {summary.uniformity_u0:.2f} (target {target:.2f})"
    )


def _violations(
    fig: Figure, ax: Axes, room: Room, cell: float, violations: Sequence[Mapping[str, Any]]
) -> str:
    """The plan with the cells each violation names filled and outlined in the rule's colour."""
    _plan(fig, ax, room, cell)
    by_rule: dict[str, np.ndarray] = {}
    for violation in violations:
        mask = by_rule.setdefault(violation["rule"], np.zeros(room.cells.shape, dtype=bool))
        cells = np.asarray(violation.get("cells") or [], dtype=np.int64).reshape(-1, 2)
        inside = (
            (cells[:, 0] >= 0)
            & (cells[:, 0] < room.width)
            & (cells[:, 1] >= 0)
            & (cells[:, 1] < room.height)
        )
        mask[cells[inside, 1], cells[inside, 0]] = True
    _component_legend(ax, room, _rule_cells(ax, room, cell, by_rule))
    if not violations:
        return "compliant: no violations"
    rules = ", ".join(sorted(by_rule))
    return f"{len(violations)} violation(s): {rules}"


def _rule_cells(
    ax: Axes,
    room: Room,
    cell: float,
    by_rule: Mapping[str, np.ndarray],
    blind_label: str = "{rule} blind zone ({where})",
) -> list[Any]:
    """Each rule's cells filled and outlined in its colour (coverage rules hatched as
    blind zones); the legend entries, a rule without cells marked room-wide."""
    extra: list[Any] = []
    for rule, mask in by_rule.items():
        colour = RULE_COLOURS.get(rule, OTHER_RULE_COLOUR)
        blind = rule in COVERAGE_RULES
        if mask.any():
            ax.add_patch(
                PathPatch(
                    _cells_path(mask, room.tile_size_m),
                    facecolor=colour + "66",
                    edgecolor=colour,
                    linewidth=max(1.0, cell / 10),
                    hatch=BLIND_HATCH if blind else None,
                    zorder=5,
                )
            )
        where = f"{int(mask.sum())} cells" if mask.any() else "room-wide"
        label = blind_label.format(rule=rule, where=where) if blind else f"{rule} ({where})"
        extra.append(
            Patch(
                facecolor=colour + "66",
                edgecolor=colour,
                hatch=BLIND_HATCH if blind else None,
                label=label,
            )
        )
    return extra


#: The device type whose reach each coverage rule measures.
COVERAGE_DEVICES: dict[str, int] = {
    "light.spacing": LIGHT,
    "supply.coverage": AIR_SUPPLY,
    "smoke.coverage": SMOKE_DETECTOR,
    "smoke.spacing": SMOKE_DETECTOR,
}


def blind_zone_masks(room: Room, profile: Profile) -> dict[str, np.ndarray]:
    """Per coverage rule with blind points, every point its devices leave uncovered.

    The same checks as the rules (in-room distances where the room has void;
    ``smoke.spacing`` under the spacing method only), but the whole mask, not
    the first cells a violation lists.
    """
    detectors = room.cells == SMOKE_DETECTOR
    masks = {
        "light.spacing": uncovered_points(
            room, room.cells == LIGHT, profile.light_radius_m(room.ceiling_height_m)
        ),
        "supply.coverage": uncovered_points(
            room, room.cells == AIR_SUPPLY, profile.supply_radius_m
        ),
        "smoke.coverage": uncovered_points(room, detectors, profile.smoke_radius_m),
        "smoke.spacing": spacing_uncovered(room, profile, detectors),
    }
    return {rule: mask for rule, mask in masks.items() if mask.any()}


def _blind_zones(fig: Figure, ax: Axes, room: Room, cell: float, profile: Profile) -> str:
    """The plan with each coverage rule's blind zone hatched in the rule's colour,
    and the detectors' radius drawn as in the coverage view: where a circle
    reaches over a void into a hatched zone, the reach would cross outside the room.

    A rule whose device type the room has none of is blind everywhere: it is
    listed as room-wide rather than hatched over the whole plan, so the zones
    the placed devices leave stay readable.
    """
    _plan(fig, ax, room, cell)
    circles = _detector_circles(ax, room, profile)
    masks = blind_zone_masks(room, profile)
    drawn = {
        rule: mask if (room.cells == COVERAGE_DEVICES[rule]).any() else np.zeros_like(mask)
        for rule, mask in masks.items()
    }
    zones = _rule_cells(ax, room, cell, drawn, "{rule}: {where}")
    _component_legend(ax, room, [circles, *zones])
    if not masks:
        return f"no blind zones: every coverage point reached ({profile.name})"
    zones = ", ".join(
        f"{rule} {int(mask.sum())}" for rule, mask in masks.items() if drawn[rule].any()
    )
    wide = ", ".join(rule for rule in masks if not drawn[rule].any())
    parts = [f"points uncovered: {zones}"] if zones else []
    parts += [f"no device yet: {wide}"] if wide else []
    return f"blind zones ({profile.name}), " + "; ".join(parts)


def render_room(
    room: Room,
    view: str = "plan",
    *,
    profile: Profile | str = DEFAULT_PROFILE,
    violations: Sequence[Mapping[str, Any]] = (),
    subtitle: str | None = None,
) -> RenderedImage:
    """One PNG of ``room``: ``view`` is one of :data:`VIEWS` or :data:`EXTRA_VIEWS`.

    ``violations`` are the compliance report's dicts (``rule``, ``cells``), used
    by the ``violations`` view; ``subtitle`` replaces the view's own caption.
    """
    if view not in VIEWS + EXTRA_VIEWS:
        views = ", ".join(VIEWS + EXTRA_VIEWS)
        raise ValueError(f"unknown view {view!r}; choose one of {views}")
    profile = get_profile(profile)
    fig, ax, cell = _new_figure(room)
    if view == "plan":
        _plan(fig, ax, room, cell)
        _component_legend(ax, room)
        caption = "reflected ceiling plan"
    elif view == "coverage":
        caption = _coverage(fig, ax, room, cell, profile)
    elif view == "illuminance":
        caption = _illuminance(fig, ax, room, cell, profile)
    elif view == "blind_zones":
        caption = _blind_zones(fig, ax, room, cell, profile)
    else:
        caption = _violations(fig, ax, room, cell, violations)
    title = _title(fig, room, subtitle or caption)
    return _encode(fig, ax, room, title)


def render_views(
    room: Room,
    *,
    profile: Profile | str = DEFAULT_PROFILE,
    violations: Sequence[Mapping[str, Any]] = (),
) -> dict[str, RenderedImage]:
    """Every view of a room, keyed by view name."""
    return {view: render_room(room, view, profile=profile, violations=violations) for view in VIEWS}


def stages_from_completed(room: Room) -> list[Room]:
    """The pipeline stages rebuilt from a completed room alone.

    Stage ``k`` keeps the devices of the first ``k`` components in series order
    and empties the rest. Without the input document, a device that was already
    placed in the input shows up at its component's stage rather than at the start.
    """
    stages = []
    for index in range(len(STAGES)):
        hidden = [CODE[name] for name in DEVICE_COMPONENTS[index:]]
        stages.append(
            room.with_cells(
                np.where(np.isin(room.cells, hidden), EMPTY, room.cells).astype(np.uint8)
            )
        )
    return stages


def render_stages(
    room: Room, stages: Sequence[Room] | None = None
) -> list[tuple[str, RenderedImage]]:
    """One plan image per pipeline stage (input -> lights -> supply -> return -> detectors).

    ``stages`` are the rooms the pipeline records (``RoomResult.stages``: the
    input, then the room after each component); without them they are rebuilt
    with :func:`stages_from_completed`.
    """
    stages = list(stages) if stages is not None else stages_from_completed(room)
    images = []
    for number, (name, stage_room) in enumerate(zip(STAGES, stages, strict=True), start=1):
        caption = f"stage {number}/{len(stages)}: {STAGE_CAPTIONS[name]}"
        images.append((name, render_room(stage_room, "plan", subtitle=caption)))
    return images
