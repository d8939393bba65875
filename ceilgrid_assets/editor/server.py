"""The editor's HTTP side: the page, and a JSON API that only calls the core.

Every answer comes from the engine, so the page can never disagree with
``ceilgrid layout`` or ``ceilgrid validate``:

- ``GET /api/building`` the building as opened: rooms (cells as one code digit
  per tile), each room's compliance and metrics, the rooms the parser rejected,
  the profile's radii, and the plan colours of :mod:`core.outputs.render`;
- ``POST /api/validate`` ``{"room": <room>}``: ``compliance_report`` and
  ``layout_metrics`` of the room as the designer has it now (with
  ``"illuminance": true``, also the point-by-point illuminance map);
- ``POST /api/complete`` ``{"room": <room>}``: ``complete_room`` with every
  device in the room kept as an existing device;
- ``POST /api/download`` ``{"building": <building>}``: the document with fresh
  verdicts, as the bytes ``dump_document`` writes;
- ``POST /api/export/png`` or ``/api/export/dxf`` ``{"room": <room>}``: the
  room's plan (its violations view while it does not comply) or its DXF
  drawing, from ``core.outputs`` as ``ceilgrid export`` writes them;
- ``POST /api/submit`` ``{"building": <building>}``: the download's bytes sent
  to the platform as ``ceilgrid submit`` sends a file (only when the command
  line opened the building from a platform with ``--url``).

Rooms in requests are in the interchange format and go through the engine's
parser, so bad input gets the same one-line error as the command line (HTTP 400,
``{"error": "..."}``). The server keeps no edit state: the browser holds the
history. It serves loopback by default and refuses other Host names (a web page
elsewhere cannot reach it through DNS rebinding); the page's Content Security
Policy allows only its own scripts, a second guard behind escaping every name.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ceilgrid_assets.contract import MAX_SUBMISSION_BYTES, building_partition_key
from ceilgrid_assets.core.engine.errors import InputError
from ceilgrid_assets.core.engine.grid import COMPONENTS, Room
from ceilgrid_assets.core.engine.io import (
    MAX_FILE_BYTES,
    OUTPUT_KEYS,
    ParsedDocument,
    content_hash,
    dump_document,
    load_json,
    parse_document,
    parse_object,
    parse_room,
    read_limited,
    room_to_document,
    safe_file_stem,
)
from ceilgrid_assets.core.engine.models import PlacementModel
from ceilgrid_assets.core.engine.photometry import illuminance_map
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room
from ceilgrid_assets.core.engine.profile import DEFAULT_PROFILE, Profile, get_profile
from ceilgrid_assets.core.engine.rules import compliance_report, layout_metrics
from ceilgrid_assets.core.outputs.export import dxf_bytes, room_dxf
from ceilgrid_assets.core.outputs.render import (
    COLOURS,
    GRID_COLOUR,
    HATCH_COLOUR,
    MARKERS,
    OTHER_RULE_COLOUR,
    RULE_COLOURS,
    render_room,
)

STATIC_DIR = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Pages may only run the editor's own files; no inline script, no other origin.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


@dataclass
class Workspace:
    """The building the editor opened, and the engine settings every request uses."""

    source: str
    data: bytes
    parsed: ParsedDocument
    profile: Profile
    config: EngineConfig
    #: Completion is CPU-bound; one at a time keeps validation answers quick meanwhile.
    completing: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(
        cls,
        path: str | Path,
        profile: str = DEFAULT_PROFILE,
        extra_models: Sequence[PlacementModel] = (),
    ) -> Workspace:
        """Read and parse ``path``; file-level problems raise the engine's InputError."""
        data = read_limited(path)
        parsed = parse_document(data, str(path))  # errors name the file as the CLI does
        return cls.from_parsed(str(path), data, parsed, profile, extra_models)

    @classmethod
    def from_parsed(
        cls,
        source: str,
        data: bytes,
        parsed: ParsedDocument,
        profile: str = DEFAULT_PROFILE,
        extra_models: Sequence[PlacementModel] = (),
    ) -> Workspace:
        """``extra_models`` (learned ones) compete in completions as in ``ceilgrid layout``."""
        return cls(
            source=source,
            data=data,
            parsed=parsed,
            profile=get_profile(profile),
            config=EngineConfig.create(profile, extra_models=extra_models),
        )


def room_view(room: Room, template: dict[str, Any] | None, verdicts: dict[str, Any]) -> dict:
    """A room for the page: its document without cells, one code digit per tile, verdicts."""
    document = room_to_document(room, template)
    del document["cells"]
    return {
        "document": document,
        "codes": "".join(map(str, room.cells.ravel().tolist())),
        **verdicts,
    }


def verdicts(room: Room, profile: Profile) -> dict[str, Any]:
    """What the validator says about a room as it is (its devices all count as existing)."""
    return {
        "compliance": compliance_report(room, profile),
        "metrics": layout_metrics(room, profile),
    }


def illuminance(room: Room, profile: Profile) -> dict[str, Any]:
    """The point-by-point illuminance map (lx per tile, row order; null on unusable tiles).

    Sent only when the page shows the map: it is one number per tile.
    """
    lux = illuminance_map(room, profile)
    values = np.round(lux).ravel().tolist()
    return {
        "lux": [None if math.isnan(value) else int(value) for value in values],
        "required_lx": profile.illuminance_lx[room.room_type],
    }


def building_view(workspace: Workspace) -> dict[str, Any]:
    parsed, profile = workspace.parsed, workspace.profile
    rooms = []
    for room, template in zip(parsed.rooms, parsed.room_documents, strict=True):
        view = room_view(room, template, verdicts(room, profile))
        models = template.get("models")
        view["models"] = models if isinstance(models, dict) else None
        rooms.append(view)
    return {
        "source": workspace.source,
        "file_name": Path(workspace.source).name,
        "fingerprint": content_hash(workspace.data),
        "building_id": parsed.building_id,
        "single_room": parsed.single_room,
        "download_name": safe_file_stem(parsed.building_id, "building") + ".json",
        "rooms": rooms,
        "rejected": [error.to_dict() for error in parsed.errors],
        "components": list(COMPONENTS),
        "profile": {
            "name": profile.name,
            "smoke_radius_m": profile.smoke_radius_m,
            "supply_radius_m": profile.supply_radius_m,
        },
        "style": {
            "colours": COLOURS,
            "markers": MARKERS,
            "rule_colours": RULE_COLOURS,
            "other_rule_colour": OTHER_RULE_COLOUR,
            "hatch_colour": HATCH_COLOUR,
            "grid_colour": GRID_COLOUR,
        },
    }


def building_document(workspace: Workspace, document: Any) -> dict[str, Any]:
    """The edited building with fresh verdicts, shaped like ``ceilgrid layout`` output.

    Each room gets ``compliance`` and ``metrics`` from the validator; ``models``
    is kept when the page sends it (the room was completed by the engine).
    """
    parsed = parse_object(document, workspace.source)
    if parsed.errors:
        raise parsed.errors[0]
    rooms = []
    for room, template in zip(parsed.rooms, parsed.room_documents, strict=True):
        output = room_to_document(room, template)
        output["compliance"] = compliance_report(room, workspace.profile)
        models = template.get("models")
        if isinstance(models, dict):
            output["models"] = models
        output["metrics"] = layout_metrics(room, workspace.profile)
        rooms.append(output)
    if workspace.parsed.single_room and len(rooms) == 1:
        return rooms[0]
    building: dict[str, Any] = {"building_id": parsed.building_id, "rooms": rooms}
    if workspace.parsed.errors:
        building["rejected_rooms"] = [error.to_dict() for error in workspace.parsed.errors]
    return building


class SubmitError(RuntimeError):
    """The platform refused or could not be reached; ``str`` is one line."""


#: Sends a building document (its bytes, its partition key) to the platform.
Submitter = Callable[[bytes, str], None]


def error_response(error: InputError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=400)


async def read_json(request: Request, source: str) -> Any:
    """The request body as JSON; size, encoding and syntax problems are InputErrors."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        # A form or text/plain POST from another site cannot set this type without CORS.
        raise InputError("request body must be sent as application/json", source=source)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FILE_BYTES:
        raise InputError(f"more than the {MAX_FILE_BYTES} byte limit", source=source)
    return load_json(await request.body(), source)


def request_room(body: Any, source: str) -> tuple[Room, dict[str, Any]]:
    """The ``room`` of a request body, parsed by the engine, and its document."""
    if not isinstance(body, dict) or "room" not in body:
        raise InputError('expected {"room": <room>}', source=source, field_name="room")
    document = body["room"]
    room = parse_room(document, source)
    return room, {key: value for key, value in document.items() if key not in OUTPUT_KEYS}


def create_app(
    workspace: Workspace,
    allowed_hosts: list[str] | None = None,
    submitter: Submitter | None = None,
) -> SecurityHeaders:
    """The editor application for one opened building.

    ``submitter`` (given by the command line when it knows a platform) makes
    "Submit to platform" available; the editor itself knows no platform API.
    """

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def building(request: Request) -> Response:
        return JSONResponse({**building_view(workspace), "can_submit": submitter is not None})

    async def validate(request: Request) -> Response:
        try:
            body = await read_json(request, workspace.source)
            room, template = request_room(body, workspace.source)
        except InputError as error:
            return error_response(error)
        answer = verdicts(room, workspace.profile)
        if body.get("illuminance") is True:
            answer["illuminance"] = illuminance(room, workspace.profile)
        return JSONResponse(answer)

    async def complete(request: Request) -> Response:
        try:
            room, template = request_room(
                await read_json(request, workspace.source), workspace.source
            )
        except InputError as error:
            return error_response(error)

        def run() -> dict[str, Any]:
            with workspace.completing:
                result = complete_room(room, workspace.config)
            return room_view(
                result.room,
                template,
                {
                    "compliance": result.compliance,
                    "metrics": result.metrics,
                    "models": result.models,
                },
            )

        return JSONResponse({"room": await run_in_threadpool(run)})

    async def download(request: Request) -> Response:
        try:
            body = await read_json(request, workspace.source)
            if not isinstance(body, dict) or "building" not in body:
                raise InputError(
                    'expected {"building": <building>}',
                    source=workspace.source,
                    field_name="building",
                )
            data = dump_document(building_document(workspace, body["building"]))
        except InputError as error:
            return error_response(error)
        name = safe_file_stem(workspace.parsed.building_id, "building") + ".json"
        return Response(
            data,
            media_type="application/json",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    async def export(request: Request) -> Response:
        """The room as a PNG plan or a DXF drawing, as ``ceilgrid export`` writes them."""
        kind = request.path_params["kind"]
        if kind not in ("png", "dxf"):
            return JSONResponse({"error": f"no export {kind!r}; png or dxf"}, status_code=404)
        try:
            room, template = request_room(
                await read_json(request, workspace.source), workspace.source
            )
        except InputError as error:
            return error_response(error)

        def run() -> bytes:
            compliance = compliance_report(room, workspace.profile)
            if kind == "png":
                view = "plan" if compliance["compliant"] else "violations"
                return render_room(
                    room, view, profile=workspace.profile, violations=compliance["violations"]
                ).png
            drawing = room_dxf(
                room,
                building_id=workspace.parsed.building_id,
                compliance=compliance,
                profile=workspace.profile,
            )
            return dxf_bytes(drawing)

        data = await run_in_threadpool(run)
        name = f"{safe_file_stem(room.grid_id, 'room')}.{kind}"
        return Response(
            data,
            media_type="image/png" if kind == "png" else "application/dxf",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    async def submit(request: Request) -> Response:
        """The edited building to the platform, the way ``ceilgrid submit`` sends it."""
        if submitter is None:
            return JSONResponse({"error": "no platform: start with --url"}, status_code=404)
        try:
            body = await read_json(request, workspace.source)
            if not isinstance(body, dict) or "building" not in body:
                raise InputError(
                    'expected {"building": <building>}',
                    source=workspace.source,
                    field_name="building",
                )
            document = building_document(workspace, body["building"])
            data = dump_document(document)
            if len(data) > MAX_SUBMISSION_BYTES:
                raise InputError(
                    f"{len(data)} bytes, more than the {MAX_SUBMISSION_BYTES} byte limit "
                    "for API submissions",
                    source=workspace.source,
                )
            building_id = document.get("building_id", document.get("grid_id"))
            key = building_partition_key(building_id, workspace.source)
        except InputError as error:
            return error_response(error)
        try:
            await run_in_threadpool(submitter, data, key)
        except SubmitError as error:
            return JSONResponse({"error": str(error)}, status_code=502)
        return JSONResponse({"submitted": key, "input_sha256": content_hash(data)})

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/building", building),
            Route("/api/validate", validate, methods=["POST"]),
            Route("/api/complete", complete, methods=["POST"]),
            Route("/api/download", download, methods=["POST"]),
            Route("/api/export/{kind:str}", export, methods=["POST"]),
            Route("/api/submit", submit, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or list(LOOPBACK_HOSTS))
        ],
    )
    return SecurityHeaders(app)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class SecurityHeaders:
    """ASGI wrapper adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 takes a free one (its number is in ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(app: Any, sock: socket.socket) -> None:
    """Run the editor on an already bound socket until interrupted."""
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
