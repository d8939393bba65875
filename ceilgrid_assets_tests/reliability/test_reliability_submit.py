"""``ceilgrid submit`` under bad input and a misbehaving server.

A real HTTP server on 127.0.0.1 records every request and answers as told: bad
files must be rejected locally with their one-line reason before any request;
server-side errors must come back as one line and exit 3, never a traceback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import badfiles
import pytest
from badfiles import BadFile
from test_reliability_input import FILE_DEFECTS, assert_one_line_reason, run_cli

from ceilgrid_assets import cli
from ceilgrid_assets.dev.postgres import free_port


class RecordingServer(ThreadingHTTPServer):
    """Answers every POST with ``status`` and ``body``; keeps the request paths."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []
        self.status = 500
        self.body = b"internal error\n"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RecordingServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.requests.append(self.path)
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    do_POST = do_GET = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    recording = RecordingServer()
    thread = threading.Thread(target=recording.serve_forever, daemon=True)
    thread.start()
    yield recording
    recording.shutdown()
    recording.server_close()


@pytest.mark.parametrize("bad", FILE_DEFECTS, ids=lambda bad: bad.name)
def test_submit_rejects_bad_files_before_any_request(
    bad: BadFile, tmp_path: Path, server: RecordingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bad.write(tmp_path)
    assert cli.main(["submit", str(path), "--url", server.url, "--wait"]) == 2
    captured = capsys.readouterr()
    assert server.requests == []
    assert captured.out == ""
    assert_one_line_reason(captured.err, path, bad.words)


def test_submit_of_a_building_without_any_good_room_makes_no_request(
    tmp_path: Path, server: RecordingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "all-bad.json"
    path.write_text(
        json.dumps(
            badfiles.building("all-bad", [document for _, document, _ in badfiles.room_defects()])
        )
    )
    assert cli.main(["submit", str(path), "--url", server.url]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert server.requests == []
    assert lines[-1] == f"error: {path}: no valid room to lay out"
    assert len(lines) == len(badfiles.room_defects()) + 1
    assert all(line.startswith(f"warning: {path}: room ") for line in lines[:-1])


def test_submit_process_rejects_a_600_mb_file_without_reading_it(
    tmp_path: Path, server: RecordingServer
) -> None:
    [bad] = [bad for bad in FILE_DEFECTS if bad.name == "over-200mb-by-far.json"]
    path = bad.write(tmp_path)
    finished = run_cli("submit", str(path), "--url", server.url)
    assert finished.returncode == 2
    assert_one_line_reason(finished.stderr, path, bad.words)
    assert server.requests == []
    assert finished.max_rss_mb < 400, f"{finished.max_rss_mb:.0f} MB: the file was read"


@pytest.mark.parametrize(
    "status, body, words",
    [
        (500, b"internal error\n", ("500",)),
        (200, b"<html>not json</html>", ("graphql",)),
        (
            200,
            json.dumps({"errors": [{"message": "Query\nfailed\nbadly"}]}).encode(),
            ("Query failed badly",),
        ),
        # What a read-only webserver answers on /report_asset_materialization.
        (
            401,
            json.dumps({"error": "Not authorized to\nreport runless asset events."}).encode(),
            ("401", "Not authorized to report runless asset events"),
        ),
    ],
    ids=["http-500", "not-json", "graphql-error", "unauthorized"],
)
def test_submit_reports_server_errors_on_one_line(
    status: int,
    body: bytes,
    words: tuple[str, ...],
    tmp_path: Path,
    server: RecordingServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.status, server.body = status, body
    path = tmp_path / "good.json"
    path.write_text(json.dumps(badfiles.building("good", [badfiles.room("r1")])))
    assert cli.main(["submit", str(path), "--url", server.url, "--wait"]) == 3
    lines = capsys.readouterr().err.splitlines()
    assert server.requests, "the good file never reached the server"
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in lines[0]
    assert all(word in lines[0] for word in words), lines[0]


def test_submit_to_a_closed_port_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.json"
    path.write_text(json.dumps(badfiles.room("r1")))
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["submit", str(path), "--url", url]) == 3
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and url in lines[0], lines
