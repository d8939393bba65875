"""Exports of a completed layout: DXF plans for CAD and the bill of quantities.

Everything here works from a completed layout document alone (the JSON the
pipeline writes), so exports can be redone later without re-running placement.

DXF: one file per room. CAD users attach a room plan as an external reference
or open it on its own, and a per-room file keeps each drawing small and its
name meaningful. Model space is in metres (``$INSUNITS = 6``); the plan is drawn
as the PNG renders show it, row ``y = 0`` at the top: the room's lower-left
corner is the origin and JSON cell ``(x, y)`` has its centre at
``X = (x + 0.5) t``, ``Y = (height - y - 0.5) t``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ezdxf
import numpy as np
import pandas as pd
from ezdxf.document import Drawing
from ezdxf.enums import TextEntityAlignment

from ceilgrid_assets.core.engine.certificate import layout_certificate
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, SMOKE_DETECTOR, Room
from ceilgrid_assets.core.engine.io import (
    ParsedDocument,
    parse_object,
    read_document,
    safe_file_stem,
    write_atomic,
)
from ceilgrid_assets.core.engine.photometry import required_lights
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, Profile, get_profile
from ceilgrid_assets.core.engine.rules import CAUSES, compliance_report
from ceilgrid_assets.core.outputs.render import render_stages, render_views

#: CAD layer per drawing element, in the discipline-major-minor pattern of the
#: AIA/NCS layer guidelines (A architecture, E electrical, M mechanical, F fire).
LAYERS: dict[str, str] = {
    "grid": "A-CLNG-GRID",
    "invalid": "A-CLNG-OBST",
    "void": "A-CLNG-VOID",
    "light": "E-LITE-CLNG",
    "air_supply": "M-HVAC-SDFF",
    "air_return": "M-HVAC-RDFF",
    "smoke_detector": "F-ALRM-SMOK",
    "coverage": "F-ALRM-COVR",
    "text": "A-ANNO-TEXT",
}
LAYER_DESCRIPTIONS: dict[str, str] = {
    "grid": "ceiling tile grid",
    "invalid": "unusable tiles (columns, beams, bulkheads)",
    "void": "tiles outside the room (L-, U- and irregular rooms)",
    "light": "light fittings",
    "air_supply": "air supply diffusers",
    "air_return": "air return grilles",
    "smoke_detector": "smoke detectors",
    "coverage": "smoke detector coverage radius",
    "text": "room title and counts",
}
#: AutoCAD colour index per layer (close to the PNG palette).
LAYER_COLOURS: dict[str, int] = {
    "grid": 8,
    "invalid": 8,
    "void": 250,
    "light": 30,
    "air_supply": 5,
    "air_return": 3,
    "smoke_detector": 1,
    "coverage": 1,
    "text": 7,
}
#: Block name per device; blocks are drawn one tile wide (1 unit) and inserted
#: scaled by the tile size, so one definition serves every tile size.
BLOCKS: dict[str, str] = {name: f"CG_{name.upper()}" for name in DEVICE_COMPONENTS}

#: Bill-of-quantities rules per device: the count rule, its minimum, and the
#: coverage rule that takes over when more devices than the count rule are placed.
COUNT_RULES: dict[str, str | None] = {
    "light": "light.count",
    "air_supply": "supply.count",
    "air_return": "return.count",
    "smoke_detector": None,
}
COVERAGE_RULES: dict[str, str | None] = {
    "light": "light.spacing",
    "air_supply": "supply.coverage",
    "air_return": None,
    "smoke_detector": "smoke.coverage",
}
BOQ_COLUMNS: tuple[str, ...] = (
    "building_id",
    "grid_id",
    "room_type",
    "area_m2",
    "component",
    "count",
    "count_rule",
    "count_rule_min",
    "driven_by",
    "lower_bound",
    "gap",
)
TOTAL = "TOTAL"


@dataclass
class Layout:
    """A completed layout document: its rooms and each room's output objects."""

    source: str
    building_id: str
    rooms: list[Room] = field(default_factory=list)
    room_documents: list[dict[str, Any]] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    _verdicts: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)
    _certificates: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def profile(self, index: int) -> Profile:
        """The profile the room was checked against (its compliance report names it)."""
        compliance = self.room_documents[index].get("compliance")
        name = compliance.get("profile") if isinstance(compliance, dict) else None
        return get_profile(name if isinstance(name, str) else DEFAULT_PROFILE)

    def compliance(self, index: int) -> dict[str, Any]:
        """The room's verdict from the rulebook re-run on its layout, never the document's word.

        The keys of a compliance report plus ``claimed``: the document's own
        ``compliant`` (None when it has none), so a disagreement can be shown.
        The ``placement`` rule needs the input, which a layout file lacks: the
        document's own placement violations are kept (a claimed breach is
        never dropped). Violations keep the document's ``cause`` where the
        document reported the same rule at the same cells. Memoised per room,
        since a report asks for it several times.
        """
        if index in self._verdicts:
            return self._verdicts[index]
        claim = self.room_documents[index].get("compliance")
        claim = claim if isinstance(claim, dict) else {}
        claimed_violations = [v for v in claim.get("violations") or [] if isinstance(v, dict)]
        causes = {
            (v.get("rule"), json.dumps(v.get("cells"))): v["cause"]
            for v in claimed_violations
            if v.get("cause") in CAUSES
        }
        report = compliance_report(self.rooms[index], self.profile(index))
        violations = [v for v in claimed_violations if v.get("rule") == "placement"]
        for violation in report["violations"]:
            cause = causes.get((violation["rule"], json.dumps(violation["cells"])))
            violations.append(violation if cause is None else {**violation, "cause": cause})
        claimed = claim.get("compliant")
        verdict = {
            **report,
            "compliant": not violations,
            "violations": violations,
            "claimed": claimed if isinstance(claimed, bool) else None,
        }
        self._verdicts[index] = verdict
        return verdict

    def certificate(self, index: int) -> dict[str, Any]:
        """Lower bounds and gaps recomputed from the file, never the document's word.

        See :func:`~ceilgrid_assets.core.engine.certificate.layout_certificate`.
        Memoised per room.
        """
        if index not in self._certificates:
            self._certificates[index] = layout_certificate(self.rooms[index], self.profile(index))
        return self._certificates[index]


def verdict_label(compliance: Mapping[str, Any]) -> str:
    """ "compliant" or "not compliant", and the document's claim when it says otherwise."""
    verdict = "compliant" if compliance.get("compliant") else "not compliant"
    claimed = compliance.get("claimed")
    if claimed is None or claimed == bool(compliance.get("compliant")):
        return verdict
    said = "compliant" if claimed else "not compliant"
    return f"{verdict} on re-validation (the document claims {said})"


def disputed(compliance: Mapping[str, Any]) -> bool:
    """True when the document's own claim disagrees with the re-validated verdict."""
    claimed = compliance.get("claimed")
    return claimed is not None and claimed != bool(compliance.get("compliant"))


def layout_from_parsed(parsed: ParsedDocument) -> Layout:
    return Layout(
        parsed.source,
        parsed.building_id,
        list(parsed.rooms),
        list(parsed.room_documents),
        list(parsed.errors),
    )


def load_layout(path: str | os.PathLike[str]) -> Layout:
    """Read a completed layout JSON (a building or a single room)."""
    return layout_from_parsed(read_document(path))


def layout_from_document(document: Mapping[str, Any], source: str = "<document>") -> Layout:
    """A layout from an output document already in memory (``BuildingResult.document``)."""
    return layout_from_parsed(parse_object(dict(document), source))


def unique_names(grid_ids: Sequence[str]) -> list[str]:
    """Safe file stems, made unique also where a file system ignores case."""
    seen: dict[str, int] = {}
    names = []
    for grid_id in grid_ids:
        stem = safe_file_stem(grid_id, "room")
        count = seen.get(stem.lower(), 0)
        seen[stem.lower()] = count + 1
        names.append(stem if count == 0 else f"{stem}-{count + 1}")
    return names


# --------------------------------------------------------------------------- DXF


def _define_blocks(doc: Drawing) -> None:
    """Device symbols on layer 0 so each insert takes its own layer's colour."""
    half = 0.4
    square = [(-half, -half), (half, -half), (half, half), (-half, half)]
    light = doc.blocks.new(BLOCKS["light"])
    light.add_lwpolyline(square, close=True)
    light.add_circle((0, 0), 0.22)
    supply = doc.blocks.new(BLOCKS["air_supply"])
    supply.add_lwpolyline(square, close=True)
    supply.add_line((-half, -half), (half, half))
    supply.add_line((-half, half), (half, -half))
    grille = doc.blocks.new(BLOCKS["air_return"])
    grille.add_lwpolyline(square, close=True)
    for offset in (-0.2, 0.0, 0.2):
        grille.add_line((-half, offset), (half, offset))
    detector = doc.blocks.new(BLOCKS["smoke_detector"])
    detector.add_circle((0, 0), 0.3)
    detector.add_text("SD", height=0.2).set_placement(
        (0, 0), align=TextEntityAlignment.MIDDLE_CENTER
    )


def _define_layers(doc: Drawing) -> None:
    for key, name in LAYERS.items():
        layer = doc.layers.add(name, color=LAYER_COLOURS[key])
        layer.description = LAYER_DESCRIPTIONS[key]


def room_dxf(
    room: Room,
    *,
    building_id: str = "",
    compliance: Mapping[str, Any] | None = None,
    profile: Profile | str = DEFAULT_PROFILE,
) -> Drawing:
    """The reflected ceiling plan of one room as a DXF drawing (R2010, metres)."""
    profile = get_profile(profile)
    doc = ezdxf.new("R2010", setup=True, units=6)
    doc.header["$MEASUREMENT"] = 1
    doc.header["$LUNITS"] = 2
    _define_layers(doc)
    _define_blocks(doc)
    msp = doc.modelspace()
    t = room.tile_size_m
    width_m, height_m = room.width * t, room.height * t

    grid = {"layer": LAYERS["grid"]}
    for x in np.arange(room.width + 1) * t:
        msp.add_line((x, 0.0), (x, height_m), dxfattribs=grid)
    for y in np.arange(room.height + 1) * t:
        msp.add_line((0.0, y), (width_m, y), dxfattribs=grid)

    for name in ("invalid", "void"):
        tiles = room.cells == CODE[name]
        if not tiles.any():
            continue
        hatch = msp.add_hatch(dxfattribs={"layer": LAYERS[name]})
        if name == "invalid":
            hatch.set_pattern_fill("ANSI31", scale=t / 12.0)
        else:  # outside the room: solid, as on the plan images
            hatch.set_solid_fill()
        padded = np.zeros((room.height, room.width + 2), dtype=np.int8)
        padded[:, 1:-1] = tiles
        edges = np.diff(padded, axis=1)
        rows, x0 = np.nonzero(edges == 1)
        _, x1 = np.nonzero(edges == -1)
        for row, start, stop in zip(rows.tolist(), x0.tolist(), x1.tolist(), strict=True):
            top, bottom = height_m - row * t, height_m - (row + 1) * t
            hatch.paths.add_polyline_path(
                [(start * t, bottom), (stop * t, bottom), (stop * t, top), (start * t, top)],
                is_closed=True,
            )

    for name in DEVICE_COMPONENTS:
        ys, xs = np.nonzero(room.cells == CODE[name])
        attribs = {"layer": LAYERS[name], "xscale": t, "yscale": t}
        for cx, cy in zip(
            ((xs + 0.5) * t).tolist(), (height_m - (ys + 0.5) * t).tolist(), strict=True
        ):
            msp.add_blockref(BLOCKS[name], (cx, cy), dxfattribs=attribs)

    ys, xs = np.nonzero(room.cells == SMOKE_DETECTOR)
    coverage = {"layer": LAYERS["coverage"], "linetype": "DASHED"}
    for cx, cy in zip(((xs + 0.5) * t).tolist(), (height_m - (ys + 0.5) * t).tolist(), strict=True):
        msp.add_circle((cx, cy), profile.smoke_radius_m, dxfattribs=coverage)

    counts = ", ".join(f"{name.replace('_', ' ')} {room.count(name)}" for name in DEVICE_COMPONENTS)
    status = ""
    if compliance is not None:
        status = f" - {verdict_label(compliance)} ({compliance.get('profile', profile.name)})"
    heading = f"{building_id} / {room.grid_id}" if building_id else room.grid_id
    text_height = max(0.2, min(0.5, width_m / 40))
    msp.add_text(
        f"{heading} - {room.room_type} - {room.width}x{room.height} tiles of {t:g} m{status}",
        height=text_height,
        dxfattribs={"layer": LAYERS["text"]},
    ).set_placement((0.0, -1.5 * text_height))
    msp.add_text(
        counts, height=text_height * 0.8, dxfattribs={"layer": LAYERS["text"]}
    ).set_placement((0.0, -3.0 * text_height))
    doc.set_modelspace_vport(
        height=height_m * 1.3 + 4 * text_height, center=(width_m / 2, height_m / 2 - text_height)
    )
    return doc


def dxf_bytes(doc: Drawing) -> bytes:
    stream = io.StringIO()
    doc.write(stream)
    return stream.getvalue().encode(doc.output_encoding)


def write_dxf(layout: Layout, directory: str | os.PathLike[str]) -> list[Path]:
    """One DXF per room in ``directory``, named after the room id; returns the paths."""
    directory = Path(directory)
    paths = []
    names = unique_names([room.grid_id for room in layout.rooms])
    for index, (room, stem) in enumerate(zip(layout.rooms, names, strict=True)):
        doc = room_dxf(
            room,
            building_id=layout.building_id,
            compliance=layout.compliance(index),
            profile=layout.profile(index),
        )
        path = directory / f"{stem}.dxf"
        write_atomic(path, dxf_bytes(doc))
        paths.append(path)
    return paths


# ------------------------------------------------------------ bill of quantities


def _driver(component: str, count: int, minimum: int | None, usable: bool) -> str:
    """Which rule set the count: the count rule when it is binding, else coverage."""
    if not usable:
        return "no coverage points"
    count_rule, coverage_rule = COUNT_RULES[component], COVERAGE_RULES[component]
    if count_rule is None:  # a coverage rule alone sets the count
        return str(coverage_rule) if count else f"short of {coverage_rule}"
    if minimum is not None and count < minimum:
        return f"short of {count_rule}"
    if minimum is not None and count == minimum:
        return count_rule or ""
    if coverage_rule is None:
        return f"above {count_rule} (existing or extra devices)"
    return f"{coverage_rule} (coverage)"


def count_minima(room: Room, profile: Profile) -> dict[str, int | None]:
    """Each device type's count-rule minimum in a room (None: no count rule, detectors)."""
    area = room.area_m2
    return {
        "light": required_lights(room, profile),
        "air_supply": profile.min_supplies(area),
        "air_return": profile.min_returns(area, room.count("air_supply")),
        "smoke_detector": None,
    }


def drivers(room: Room, minima: Mapping[str, int | None]) -> dict[str, str]:
    """The BoQ's ``driven_by`` per device type: which rule set the room's count."""
    usable = bool(room.usable.any())
    return {
        name: _driver(name, room.count(name), minima[name], usable) for name in DEVICE_COMPONENTS
    }


def room_quantities(
    room: Room, profile: Profile, certificate: Mapping[str, Any], building_id: str = ""
) -> list[dict[str, Any]]:
    """One BoQ row per device type of a room: the rule that drove the count, the lower bound."""
    area = room.area_m2
    minima = count_minima(room, profile)
    driven_by = drivers(room, minima)
    rows = []
    for name in DEVICE_COMPONENTS:
        count = room.count(name)
        rows.append(
            {
                "building_id": building_id,
                "grid_id": room.grid_id,
                "room_type": room.room_type,
                "area_m2": round(area, 3),
                "component": name,
                "count": count,
                "count_rule": COUNT_RULES[name] or "",
                "count_rule_min": minima[name],
                "driven_by": driven_by[name],
                "lower_bound": certificate["components"][name]["lower_bound"],
                "gap": certificate["components"][name]["gap"],
            }
        )
    return rows


def bill_of_quantities(layout: Layout) -> pd.DataFrame:
    """Counts by room and device type, then one TOTAL row per type (columns :data:`BOQ_COLUMNS`).

    ``count_rule_min`` is the count rule's minimum (empty for smoke detectors,
    which only have a coverage rule); ``driven_by`` names the rule that set the
    count: the count rule when the placed count equals it, the coverage rule
    (spacing) when more devices were needed to cover the room.
    """
    rows = [
        row
        for index, room in enumerate(layout.rooms)
        for row in room_quantities(
            room, layout.profile(index), layout.certificate(index), layout.building_id
        )
    ]
    frame = pd.DataFrame(rows, columns=list(BOQ_COLUMNS))
    frame["count_rule_min"] = frame["count_rule_min"].astype("Int64")
    area = float(sum(room.area_m2 for room in layout.rooms))
    totals = pd.DataFrame(
        [
            {
                "building_id": layout.building_id,
                "grid_id": TOTAL,
                "room_type": "",
                "area_m2": round(area, 3),
                "component": name,
                "count": int(frame.loc[frame["component"] == name, "count"].sum()),
                "count_rule": COUNT_RULES[name] or "",
                "count_rule_min": (
                    frame.loc[frame["component"] == name, "count_rule_min"].sum()
                    if COUNT_RULES[name]
                    else pd.NA
                ),
                "driven_by": "",
                "lower_bound": int(frame.loc[frame["component"] == name, "lower_bound"].sum()),
                "gap": int(frame.loc[frame["component"] == name, "gap"].sum()),
            }
            for name in DEVICE_COMPONENTS
        ],
        columns=list(BOQ_COLUMNS),
    )
    totals["count_rule_min"] = totals["count_rule_min"].astype("Int64")
    return pd.concat([frame, totals], ignore_index=True)


def quantities_table(boq: pd.DataFrame) -> pd.DataFrame:
    """The BoQ as one row per room (TOTAL last) and one column per device type, plus a total."""
    table = boq.pivot_table(
        index="grid_id", columns="component", values="count", aggfunc="sum", sort=False
    ).reindex(columns=list(DEVICE_COMPONENTS))
    table = table.fillna(0).astype(int)
    table["total"] = table.sum(axis=1)
    order = [grid_id for grid_id in table.index if grid_id != TOTAL] + [TOTAL]
    return table.loc[[grid_id for grid_id in order if grid_id in table.index]]


#: A spreadsheet reads a cell starting with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def boq_csv(boq: pd.DataFrame) -> bytes:
    """The bill of quantities as CSV; text cells a spreadsheet would run are quoted with '.

    Room ids come from users: ``=HYPERLINK(...)`` as an id must open as text
    (the OWASP advice for CSV injection). Numbers are left as they are.
    """
    safe = boq.copy()
    for column in safe.columns:
        if not pd.api.types.is_string_dtype(safe[column]):
            continue  # numbers (negative ones too) stay numbers
        text = safe[column].astype(str)
        safe[column] = text.where(~text.str.startswith(FORMULA_PREFIXES), "'" + text)
    return safe.to_csv(index=False, lineterminator="\n").encode()


def write_boq_csv(layout: Layout, path: str | os.PathLike[str]) -> Path:
    write_atomic(path, boq_csv(bill_of_quantities(layout)))
    return Path(path)


# --------------------------------------------------------------------------- PNG


def write_pngs(
    layout: Layout,
    directory: str | os.PathLike[str],
    stages: Mapping[str, Sequence[Room]] | None = None,
) -> list[Path]:
    """Every view and every stage image of every room, as ``<room>-<view>.png``.

    Rooms are rendered and written one at a time, so memory stays flat however
    many rooms the building has. ``stages`` maps ``grid_id`` to the pipeline's
    per-stage rooms; rooms without an entry get stages rebuilt from the layout.
    """
    directory = Path(directory)
    paths = []
    names = unique_names([room.grid_id for room in layout.rooms])
    for index, (room, stem) in enumerate(zip(layout.rooms, names, strict=True)):
        violations = layout.compliance(index)["violations"]
        for view, image in render_views(
            room, profile=layout.profile(index), violations=violations
        ).items():
            paths.append(directory / f"{stem}-{view}.png")
            write_atomic(paths[-1], image.png)
        room_stages = (stages or {}).get(room.grid_id)
        for number, (name, image) in enumerate(render_stages(room, room_stages), start=1):
            paths.append(directory / f"{stem}-stage{number}-{name}.png")
            write_atomic(paths[-1], image.png)
    return paths
