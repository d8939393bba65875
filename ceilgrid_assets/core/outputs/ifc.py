"""IFC4 export of a completed layout for BIM users (IfcOpenShell).

One model per building: IfcProject > IfcSite > IfcBuilding > one
IfcBuildingStorey > an IfcSpace per room, with the room's ceiling as an
IfcCovering (CEILING) and every device as an occurrence contained in the space:
IfcLightFixture, IfcAirTerminal (DIFFUSER for supply, GRILLE for return) and
IfcSensor (SMOKESENSOR). Lengths are metres. The space and its ceiling cover
the room's inside tiles (every tile but ``void``), as rectangles merged row by
row (:func:`footprint_rectangles`), so an L-shaped room's space is an L.

Coordinates follow the DXF export, so a room's DXF plan lies exactly over its
IFC space: the room's lower-left corner is the space origin and JSON cell
``(x, y)`` has its device at ``X = (x + 0.5) t``, ``Y = (height - y - 0.5) t``,
``Z = ceiling_height_m``. The layout format holds no room positions, so rooms
are laid side by side along X in document order, :data:`ROOM_GAP_M` apart.

The same layout gives the same bytes: GlobalIds are UUID5s of the building,
room and cell, and the header carries a fixed time stamp instead of the clock.
The shipped IDS (:data:`IDS_PATH`) states what every export satisfies.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ifcopenshell
import ifcopenshell.api.context
import ifcopenshell.api.project
import ifcopenshell.api.unit
import ifcopenshell.guid
import numpy as np
from ifcopenshell.util.shape_builder import ShapeBuilder

from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, Room
from ceilgrid_assets.core.engine.io import write_atomic
from ceilgrid_assets.core.outputs.export import (
    COUNT_RULES,
    COVERAGE_RULES,
    Layout,
    count_minima,
    drivers,
)

#: The IDS every export passes (shipped as package data).
IDS_PATH = Path(__file__).with_name("ceilgrid.ids")

#: IFC class and PredefinedType per device (None: the class alone says it).
DEVICE_CLASSES: dict[str, tuple[str, str | None]] = {
    "light": ("IfcLightFixture", None),
    "air_supply": ("IfcAirTerminal", "DIFFUSER"),
    "air_return": ("IfcAirTerminal", "GRILLE"),
    "smoke_detector": ("IfcSensor", "SMOKESENSOR"),
}
#: Property sets of our own: the ``Pset_`` prefix is reserved for buildingSMART's.
PLACEMENT_PSET = "Ceilgrid_Placement"
ROOM_PSET = "Ceilgrid_Room"
#: Free space between rooms laid side by side, in metres.
ROOM_GAP_M = 1.0
#: Ceiling build-up drawn above the ceiling plane; the layout format does not give one.
CEILING_THICKNESS_M = 0.02
#: Device bodies hang this far below the ceiling plane (a symbol, not a product size).
DEVICE_DEPTH_M = 0.05
#: A fixed header time stamp: the file must not change with the clock.
TIME_STAMP = "1970-01-01T00:00:00+00:00"
#: IfcLabel is STRING(255) in IFC4; full room ids are kept in :data:`ROOM_PSET`.
MAX_LABEL = 255
GUID_NAMESPACE = uuid.UUID("0b0c6e2a-5c1e-5f43-9a57-6365696c6772")


def _guid(*parts: object) -> str:
    """A GlobalId from the parts that identify an object, stable across runs."""
    key = "\x1f".join(str(part) for part in parts)
    return ifcopenshell.guid.compress(uuid.uuid5(GUID_NAMESPACE, key).hex)


def _device_rule(component: str, driven_by: str) -> str:
    """The rule id a bill-of-quantities ``driven_by`` text names ("" when it names none)."""
    words = driven_by.split()
    rules = (COUNT_RULES[component], COVERAGE_RULES[component])
    return next((rule for rule in rules if rule and rule in words), "")


def _chosen_models(room_document: Mapping[str, Any]) -> dict[str, str]:
    """The model each stage kept, from the room's ``models`` record ("" without one).

    A layout does not say which devices were already in the input, so this names
    the stage's model for every device of that type.
    """
    models = room_document.get("models")
    models = models if isinstance(models, dict) else {}
    chosen = {}
    for name in DEVICE_COMPONENTS:
        record = models.get(name)
        value = record.get("chosen") if isinstance(record, dict) else None
        chosen[name] = value if isinstance(value, str) else ""
    return chosen


def _placement(model: ifcopenshell.file, relative_to: Any, xyz: tuple[float, float, float]) -> Any:
    """A local placement at ``xyz`` (metres) in the frame of ``relative_to``."""
    point = model.createIfcCartesianPoint([float(value) for value in xyz])
    return model.createIfcLocalPlacement(relative_to, model.createIfcAxis2Placement3D(point))


def _property_set(
    model: ifcopenshell.file,
    product: Any,
    name: str,
    values: Mapping[str, tuple[str, Any]],
    guid: tuple[object, ...],
) -> None:
    """Attach a property set of ``{property: (IFC value type, value)}`` to ``product``.

    Written directly rather than through ``ifcopenshell.api.pset``, which is
    slower per device and picks the value types by guessing.
    """
    properties = [
        model.createIfcPropertySingleValue(key, None, model.create_entity(kind, value), None)
        for key, (kind, value) in values.items()
    ]
    pset = model.createIfcPropertySet(_guid(*guid, name), None, name, None, properties)
    model.createIfcRelDefinesByProperties(
        _guid(*guid, name, "rel"), None, None, None, [product], pset
    )


def _body(
    model: ifcopenshell.file,
    context: Any,
    corner: tuple[float, float, float],
    size: tuple[float, float],
    depth: float,
) -> Any:
    """A body representation: a ``size`` rectangle from ``corner`` extruded ``depth`` up."""
    return _boxes(model, context, [(corner[0], corner[1], *size)], corner[2], depth)


def _boxes(
    model: ifcopenshell.file,
    context: Any,
    rectangles: list[tuple[float, float, float, float]],
    z: float,
    depth: float,
) -> Any:
    """A body of ``(x, y, width, height)`` rectangles, each extruded ``depth`` up from ``z``.

    One SweptSolid representation holding one extrusion per rectangle; the
    rectangles only touch, so the body's volume is their sum.
    """
    builder = ShapeBuilder(model)
    items = [
        builder.extrude(
            builder.profile(builder.rectangle(size=(w, h), position=(x, y))),
            magnitude=depth,
            position=(0.0, 0.0, z),
        )
        for x, y, w, h in rectangles
    ]
    return builder.get_representation(context, items)


def footprint_rectangles(inside: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The ``True`` cells of ``inside`` as rectangles ``(x0, y0, x1, y1)`` of cells, ends excluded.

    Each row is cut into runs of inside cells, and a run continues the
    rectangle above when that rectangle spans exactly the same columns: a
    rectangular room is one rectangle, an L two. Rows and columns are the JSON
    grid's (``y = 0`` at the top); the rectangles never overlap.
    """
    padded = np.zeros((inside.shape[0], inside.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = inside
    edges = np.diff(padded, axis=1)
    open_runs: dict[tuple[int, int], int] = {}  # (x0, x1) -> first row
    rectangles = []
    for y in range(inside.shape[0] + 1):
        runs = set()
        if y < inside.shape[0]:
            starts, stops = np.flatnonzero(edges[y] == 1), np.flatnonzero(edges[y] == -1)
            runs = set(zip(starts.tolist(), stops.tolist(), strict=True))
        for run in sorted(set(open_runs) - runs):
            rectangles.append((run[0], open_runs.pop(run), run[1], y))
        for run in sorted(runs - set(open_runs)):
            open_runs[run] = y
    return sorted(rectangles, key=lambda r: (r[1], r[0]))


def _room_footprint(room: Room) -> list[tuple[float, float, float, float]]:
    """The room's inside cells (all but ``void``) as ``(x, y, width, height)`` in metres.

    In the space's frame: the grid's lower-left corner at the origin, Y up.
    """
    t = room.tile_size_m
    return [
        tuple(round(value * t, 9) for value in (x0, room.height - y1, x1 - x0, y1 - y0))
        for x0, y0, x1, y1 in footprint_rectangles(room.inside)
    ]


def _entity(
    model: ifcopenshell.file,
    ifc_class: str,
    guid: tuple[object, ...],
    name: str,
    predefined_type: str | None = None,
) -> Any:
    """A rooted entity with its GlobalId derived from ``guid`` and a Name cut to an IfcLabel.

    Created directly: ``ifcopenshell.api.root.create_entity`` gives a random
    GlobalId and is slower per device.
    """
    attributes = {"GlobalId": _guid(*guid), "Name": name[:MAX_LABEL]}
    if predefined_type is not None:
        attributes["PredefinedType"] = predefined_type
    return model.create_entity(ifc_class, **attributes)


def _device_types(
    model: ifcopenshell.file, body: Any, tile_size_m: float, building_id: str
) -> dict[str, tuple[Any, Any]]:
    """Per device a type (for one tile size) and the shape its occurrences share.

    The body is a symbol hanging under the ceiling plane, not a product size.
    One mapped representation per type is shared by all its occurrences (an
    IfcProductDefinitionShape may shape several products), which keeps the file
    small; the occurrence's placement puts it on its tile.
    """
    origin = model.createIfcAxis2Placement3D(model.createIfcCartesianPoint([0.0, 0.0, 0.0]))
    operator = model.createIfcCartesianTransformationOperator3D(
        None, None, model.createIfcCartesianPoint([0.0, 0.0, 0.0]), None, None
    )
    types = {}
    for name, (ifc_class, predefined) in DEVICE_CLASSES.items():
        device_type = _entity(
            model, f"{ifc_class}Type", (building_id, "type", name, tile_size_m), name, predefined
        )
        side = tile_size_m * (0.3 if name == "smoke_detector" else 0.8)
        corner = (-side / 2, -side / 2, -DEVICE_DEPTH_M)
        symbol = model.createIfcRepresentationMap(
            origin, _body(model, body, corner, (side, side), DEVICE_DEPTH_M)
        )
        device_type.RepresentationMaps = [symbol]
        shape = model.createIfcProductDefinitionShape(
            None,
            None,
            [
                model.createIfcShapeRepresentation(
                    body,
                    "Body",
                    "MappedRepresentation",
                    [model.createIfcMappedItem(symbol, operator)],
                )
            ],
        )
        types[name] = (device_type, shape)
    return types


def layout_ifc(layout: Layout) -> ifcopenshell.file:
    """The IFC4 model of a completed layout (see the module docstring for its structure)."""
    model = ifcopenshell.api.project.create_file("IFC4")
    header = model.header.file_name
    header.name = f"{layout.building_id[:MAX_LABEL]}.ifc"
    header.time_stamp = TIME_STAMP
    header.author = ("",)
    header.organization = ("",)
    header.originating_system = "ceilgrid"
    header.authorization = ""

    building_id = layout.building_id
    project = _entity(model, "IfcProject", (building_id, "project"), building_id)
    ifcopenshell.api.unit.assign_unit(model, length={"is_metric": True, "raw": "METERS"})
    model3d = ifcopenshell.api.context.add_context(model, context_type="Model")
    body = ifcopenshell.api.context.add_context(
        model,
        context_type="Model",
        context_identifier="Body",
        target_view="MODEL_VIEW",
        parent=model3d,
    )
    site = _entity(model, "IfcSite", (building_id, "site"), "site")
    building = _entity(model, "IfcBuilding", (building_id, "building"), building_id)
    storey = _entity(model, "IfcBuildingStorey", (building_id, "storey"), "ceiling level")
    storey.Elevation = 0.0
    parent = None
    for whole, part in ((project, site), (site, building), (building, storey)):
        model.createIfcRelAggregates(
            _guid(building_id, "aggregates", part.is_a()), None, None, None, whole, [part]
        )
        part.ObjectPlacement = parent = _placement(model, parent, (0.0, 0.0, 0.0))

    spans = np.array([room.width * room.tile_size_m for room in layout.rooms]) + ROOM_GAP_M
    origins = np.cumsum(spans) - spans
    types: dict[float, dict[str, tuple[Any, Any]]] = {}
    for index, (room, origin) in enumerate(zip(layout.rooms, origins.tolist(), strict=True)):
        if room.tile_size_m not in types:
            types[room.tile_size_m] = _device_types(model, body, room.tile_size_m, building_id)
        _add_room(model, layout, index, room, origin, storey, body, types[room.tile_size_m])
    if types:
        model.createIfcRelDeclares(
            _guid(building_id, "declares"),
            None,
            None,
            None,
            project,
            [device_type for group in types.values() for device_type, _ in group.values()],
        )
    return model


def _add_room(
    model: ifcopenshell.file,
    layout: Layout,
    index: int,
    room: Room,
    origin_x: float,
    storey: Any,
    body: Any,
    types: Mapping[str, tuple[Any, Any]],
) -> None:
    """A room's space, its ceiling and its devices, in the storey at ``origin_x``."""
    key = (layout.building_id, index, room.grid_id)
    t = room.tile_size_m
    footprint = _room_footprint(room)
    verdict = layout.compliance(index)

    space = _entity(model, "IfcSpace", (*key, "space"), room.grid_id, "INTERNAL")
    space.LongName = room.room_type
    model.createIfcRelAggregates(_guid(*key, "aggregates"), None, None, None, storey, [space])
    space.ObjectPlacement = _placement(model, storey.ObjectPlacement, (origin_x, 0.0, 0.0))
    if footprint:  # a room of void tiles alone has no body
        space.Representation = model.createIfcProductDefinitionShape(
            None, None, [_boxes(model, body, footprint, 0.0, room.ceiling_height_m)]
        )
    _property_set(
        model,
        space,
        ROOM_PSET,
        {
            "GridId": ("IfcText", room.grid_id),
            "RoomType": ("IfcLabel", room.room_type),
            "TileSize": ("IfcPositiveLengthMeasure", float(t)),
            "TilesAcross": ("IfcInteger", room.width),
            "TilesDown": ("IfcInteger", room.height),
            "CeilingHeight": ("IfcPositiveLengthMeasure", float(room.ceiling_height_m)),
            "Profile": ("IfcLabel", str(verdict["profile"])),
            "Compliant": ("IfcBoolean", bool(verdict["compliant"])),
        },
        key,
    )

    ceiling = _entity(model, "IfcCovering", (*key, "ceiling"), room.grid_id, "CEILING")
    ceiling.ObjectPlacement = _placement(
        model, space.ObjectPlacement, (0.0, 0.0, room.ceiling_height_m)
    )
    if footprint:
        ceiling.Representation = model.createIfcProductDefinitionShape(
            None, None, [_boxes(model, body, footprint, 0.0, CEILING_THICKNESS_M)]
        )
    model.createIfcRelCoversSpaces(_guid(*key, "covers"), None, None, None, space, [ceiling])

    driven_by = drivers(room, count_minima(room, layout.profile(index)))
    chosen = _chosen_models(layout.room_documents[index])
    contained = [ceiling]
    for name in DEVICE_COMPONENTS:
        ifc_class, predefined = DEVICE_CLASSES[name]
        device_type, shape = types[name]
        rule = _device_rule(name, driven_by[name])
        ys, xs = np.nonzero(room.cells == CODE[name])
        centres_x = np.round((xs + 0.5) * t, 9).tolist()
        centres_y = np.round((room.height - ys - 0.5) * t, 9).tolist()
        occurrences = []
        for x, y, cx, cy in zip(xs.tolist(), ys.tolist(), centres_x, centres_y, strict=True):
            cell = (*key, name, x, y)
            device = _entity(model, ifc_class, cell, f"{name} {x},{y}", predefined)
            device.ObjectPlacement = _placement(
                model, space.ObjectPlacement, (cx, cy, room.ceiling_height_m)
            )
            device.Representation = shape
            placed = {
                "Component": ("IfcLabel", name),
                "CellX": ("IfcInteger", x),
                "CellY": ("IfcInteger", y),
                "Rule": ("IfcLabel", rule),
            }
            if chosen[name]:
                placed["PlacedBy"] = ("IfcLabel", chosen[name])
            _property_set(model, device, PLACEMENT_PSET, placed, cell)
            occurrences.append(device)
        if occurrences:
            model.createIfcRelDefinesByType(
                _guid(*key, name, "type"), None, None, None, occurrences, device_type
            )
        contained.extend(occurrences)
    model.createIfcRelContainedInSpatialStructure(
        _guid(*key, "contains"), None, None, None, contained, space
    )


def ifc_bytes(layout: Layout) -> bytes:
    """The IFC-SPF text of :func:`layout_ifc` (the same layout, the same bytes)."""
    return layout_ifc(layout).to_string().encode()


def write_ifc(layout: Layout, path: str | os.PathLike[str]) -> Path:
    write_atomic(path, ifc_bytes(layout))
    return Path(path)
