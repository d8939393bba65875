"""``ceilgrid probe``: the uptime check, against the suite's real ``dagster dev``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ceilgrid_assets.cli.probe import PROBE_BUILDING, layout_problems, probe_document
from ceilgrid_assets.dev.postgres import free_port

CEILGRID = Path(sys.executable).with_name("ceilgrid")


def probe(*args: str, timeout_s: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CEILGRID), "probe", *args], capture_output=True, text=True, timeout=timeout_s
    )


@pytest.mark.slow
def test_probe_lays_out_and_validates_through_the_server(dagster_dev):
    first = probe("--url", dagster_dev.url, "--timeout", "300")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.startswith("ok: laid out and validated in ")
    # A second probe must be answered by a new layout, not the first one's (same building id).
    second = probe("--url", dagster_dev.url, "--timeout", "300", "--run")
    assert second.returncode == 0, second.stdout + second.stderr
    layouts = dagster_dev.home / "storage" / "buildings" / PROBE_BUILDING
    assert (layouts / "layout.json").exists()


def test_probe_fails_with_exit_3_when_the_server_is_down():
    result = probe("--url", f"http://127.0.0.1:{free_port()}", "--timeout", "5", timeout_s=120)
    assert result.returncode == 3
    assert result.stdout.startswith("fail: ")


def test_probe_timeout_is_a_server_failure(tmp_path):
    """A webserver that answers but never lays anything out (no Dagster behind it)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Empty(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps(
                {
                    "data": {
                        "assetOrError": {
                            "__typename": "Asset",
                            "assetEventHistory": {"results": []},
                        },
                        "reportRunlessAssetEvents": {
                            "__typename": "ReportRunlessAssetEventsSuccess"
                        },
                    }
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Empty)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = probe(
            "--url", f"http://127.0.0.1:{server.server_port}", "--timeout", "3", timeout_s=120
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not laid out after 3 s" in result.stdout


def test_layout_problems_catch_a_broken_layout(tmp_path):
    """What exit code 1 rests on: a layout with its devices removed, or a room missing."""
    document = probe_document("probe-check")
    source = tmp_path / "in.json"
    source.write_text(json.dumps(document))
    laid_out = tmp_path / "out.json"
    subprocess.run(
        [str(CEILGRID), "layout", str(source), "-o", str(laid_out)], check=True, timeout=300
    )
    text = json.dumps(document)
    assert layout_problems(text, laid_out.read_bytes()) == []
    stripped = json.loads(laid_out.read_bytes())
    for cell in stripped["rooms"][0]["cells"]:
        cell["component"] = "empty"
    assert any("probe-check" in problem for problem in layout_problems(text, json.dumps(stripped)))
    assert layout_problems(text, json.dumps({**stripped, "rooms": []})) != []
