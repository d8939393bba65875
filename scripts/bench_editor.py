"""Editor benchmark: the validate round trip of one edit, through a real ``ceilgrid editor``.

What the page does after each click, timed from the client: encode the room
in the interchange format, POST it to ``/api/validate`` on a running
``ceilgrid editor`` process (127.0.0.1, a free port, HTTP keep-alive), and
decode the compliance report and metrics. The room is a completed office
(a column grid every 6 tiles and a riser, laid out by the engine first, so the
validator and the photometry see a full set of devices); every request moves
one light to a different tile, as a designer would, so no answer is served
from a cache of identical rooms. Target: at most 100 ms for a 60x40 room.
For comparison it also times the validator alone, in this process, on the same
rooms, and one "Complete room" request on the bare room.

With ``--browser`` it also opens each completed room in headless Chromium
(Debian's, through chromedriver) and times, in the page: a full redraw of the
plan, one zoom step, and a click on a tile until the server's verdict is shown
(all to the second animation frame after, so layout and paint are counted).

    .venv/bin/python scripts/bench_editor.py [--repeats 100] [--sizes 60x40,100x80] [--browser]
"""

from __future__ import annotations

import argparse
import json
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from ceilgrid_assets.core.engine.grid import COMPONENTS, EMPTY, INVALID, LIGHT, Room
from ceilgrid_assets.core.engine.io import dump_document, room_to_document
from ceilgrid_assets.core.engine.pipeline import complete_room
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import compliance_report, layout_metrics

CEILGRID = str(Path(sys.executable).with_name("ceilgrid"))
TARGET_MS = 100.0


def office(width: int, height: int, seed: int = 7) -> Room:
    rng = np.random.default_rng(seed)
    cells = np.zeros((height, width), dtype=np.uint8)
    row, column = rng.integers(0, 6, size=2)
    cells[row::6, column::6] = INVALID
    cells[rng.integers(height), rng.integers(width)] = INVALID
    return Room(f"bench-{width}x{height}", cells)


def start_editor(path: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [CEILGRID, "editor", str(path), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = process.stdout.readline()
            if line.startswith("ceilgrid editor: http://"):
                return process, line.split()[2].rstrip("/")
            if not line:
                break
    process.kill()
    raise SystemExit("the editor did not start")


def request_body(room: Room, template: dict) -> bytes:
    """The room as the page sends it: the interchange format, one object per tile."""
    width = room.width
    codes = room.cells.ravel().tolist()
    cells = [
        {"x": i % width, "y": i // width, "component": COMPONENTS[code]}
        for i, code in enumerate(codes)
    ]
    return json.dumps({"room": {**template, "cells": cells}}).encode()


def measure(size: tuple[int, int], repeats: int, folder: Path) -> dict[str, float]:
    width, height = size
    completed = complete_room(office(width, height)).room
    path = folder / f"bench-{width}x{height}.json"
    path.write_bytes(dump_document(room_to_document(completed)))
    template = {k: v for k, v in room_to_document(completed).items() if k != "cells"}
    lights = np.argwhere(completed.cells == LIGHT)
    empties = np.argwhere(completed.cells == EMPTY)
    process, url = start_editor(path)
    session = requests.Session()
    headers = {"content-type": "application/json"}
    times = []
    server_ms = []
    profile = get_profile("nfpa72")
    try:
        for i in range(repeats + 5):
            cells = completed.cells.copy()
            (ly, lx), (ey, ex) = lights[i % len(lights)], empties[(i * 37) % len(empties)]
            cells[ly, lx], cells[ey, ex] = EMPTY, LIGHT  # one light moved
            room = completed.with_cells(cells)
            started = time.perf_counter()
            response = session.post(
                f"{url}/api/validate", data=request_body(room, template), headers=headers
            )
            response.raise_for_status()
            verdict = response.json()
            elapsed = (time.perf_counter() - started) * 1000
            assert verdict["metrics"]["lights"] == completed.count("light")
            if i >= 5:  # the first requests warm up the server's caches and imports
                times.append(elapsed)
                started = time.perf_counter()
                compliance_report(room, profile), layout_metrics(room, profile)
                server_ms.append((time.perf_counter() - started) * 1000)
        # "Complete room" on the bare room (the designer's columns only), once.
        bare = completed.with_cells(np.where(completed.cells == INVALID, INVALID, EMPTY))
        started = time.perf_counter()
        done = session.post(
            f"{url}/api/complete", data=request_body(bare, template), headers=headers
        ).json()["room"]
        complete_ms = (time.perf_counter() - started) * 1000
        assert done["compliance"]["compliant"]
    finally:
        process.terminate()
        process.wait(timeout=10)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p95_ms": times[int(0.95 * (len(times) - 1))],
        "max_ms": times[-1],
        "engine_ms": statistics.median(server_ms),
        "complete_ms": complete_ms,
        "devices": int(np.count_nonzero(completed.cells >= LIGHT)),
    }


REDRAW_JS = """
const done = arguments[arguments.length - 1];
const box = document.getElementById('show-reach');
const t0 = performance.now();
box.click();
requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));
"""
ZOOM_JS = """
const done = arguments[arguments.length - 1];
const t0 = performance.now();
document.getElementById(arguments[0]).click();
requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));
"""
EDIT_JS = """
const [x, y, tile, done] = arguments;
const svg = document.getElementById('plan');
const p = new DOMPoint((x + 0.5) * tile, (y + 0.5) * tile).matrixTransform(svg.getScreenCTM());
const t0 = performance.now();
const init = {clientX: p.x, clientY: p.y, button: 0, bubbles: true, pointerId: 1};
svg.dispatchEvent(new PointerEvent('pointerdown', init));
window.dispatchEvent(new PointerEvent('pointerup', init));
const wait = () => {
  if (document.body.dataset.pending === '0'
      && !document.querySelector('#room-list [data-compliant=pending]')) {
    requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));
  } else {
    setTimeout(wait, 1);
  }
};
wait();
"""


def browser_figures(size: tuple[int, int], folder: Path, repeats: int = 15) -> dict[str, float]:
    """Redraw, zoom and click-to-verdict times in headless Chromium, medians in ms."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    width, height = size
    path = folder / f"bench-{width}x{height}.json"
    process, url = start_editor(path)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/lib/chromium/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={folder / f'profile-{width}x{height}'}",
        "--window-size=1400,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_script_timeout(60)
    try:
        driver.get(f"{url}/")
        deadline = time.monotonic() + 60
        while driver.execute_script("return document.body.dataset.ready") != "true":
            if time.monotonic() > deadline:
                raise SystemExit("the page did not load")
            time.sleep(0.1)
        elements = driver.execute_script("return document.querySelectorAll('#plan *').length")
        redraw = [driver.execute_async_script(REDRAW_JS) for _ in range(repeats)]
        zoom = [
            driver.execute_async_script(ZOOM_JS, "zoom-in" if i % 2 else "zoom-out")
            for i in range(repeats)
        ]
        driver.execute_script("document.querySelector('input[value=light]').click()")
        edit = [driver.execute_async_script(EDIT_JS, 2 + i % 5, 2, 0.6) for i in range(repeats + 1)]
    finally:
        driver.quit()
        process.terminate()
        process.wait(timeout=10)
    return {
        "elements": elements,
        "redraw_ms": statistics.median(redraw),
        "zoom_ms": statistics.median(zoom),
        "edit_ms": statistics.median(edit),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--sizes", default="60x40,100x80")
    parser.add_argument("--browser", action="store_true", help="also time the page in Chromium")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    print(
        "| room (tiles) | devices | validate round trip median | p95 | max "
        "| validator in process | Complete room |"
    )
    print("|---|---|---|---|---|---|---|")
    verdict = 0
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            result = measure(size, args.repeats, Path(folder))
            print(
                f"| {size[0]}x{size[1]} | {result['devices']} | {result['median_ms']:.1f} ms "
                f"| {result['p95_ms']:.1f} ms | {result['max_ms']:.1f} ms "
                f"| {result['engine_ms']:.1f} ms | {result['complete_ms']:.0f} ms |",
                flush=True,
            )
            if size == (60, 40) and result["median_ms"] > TARGET_MS:
                verdict = 1
        if args.browser:
            print()
            print(
                "| room (tiles) | SVG elements | full redraw | zoom step | click to verdict shown |"
            )
            print("|---|---|---|---|---|")
            for size in sizes:
                figures = browser_figures(size, Path(folder))
                print(
                    f"| {size[0]}x{size[1]} | {figures['elements']} "
                    f"| {figures['redraw_ms']:.1f} ms | {figures['zoom_ms']:.1f} ms "
                    f"| {figures['edit_ms']:.1f} ms |",
                    flush=True,
                )
    if (60, 40) in sizes:
        print(f"60x40 target (median <= {TARGET_MS:.0f} ms): {'met' if not verdict else 'MISSED'}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
