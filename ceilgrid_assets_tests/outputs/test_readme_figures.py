"""The README's figures of the L-shaped office (``scripts/readme_figures.py``).

The script writes the PNGs and prints their captions; these tests run it into a
temporary folder, recompute its numbers with the engine directly, and check
that the README shows every figure and quotes every caption as printed.
"""

from __future__ import annotations

import dataclasses
import io
import re

import numpy as np
import pytest
from helpers import PROJECT_ROOT, load_module
from PIL import Image

from ceilgrid_assets.core.engine.grid import CODE, DEVICE_COMPONENTS, INVALID, VOID
from ceilgrid_assets.core.engine.luminaires import LUMINAIRE_DIR
from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import (
    check_layout,
    compliance_report,
    layout_metrics,
    uncovered_points,
)

figures = load_module("ceilgrid_readme_figures", PROJECT_ROOT / "scripts" / "readme_figures.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Committed images stay small.
MAX_PNG_BYTES = 150_000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("readme-img")
    return out, figures.main(["--out", str(out)])


def counts(room) -> dict[str, int]:
    return {name: int((room.cells == CODE[name]).sum()) for name in DEVICE_COMPONENTS}


def test_every_figure_is_a_small_png(run):
    out, report = run
    assert sorted(path.name for path in out.iterdir()) == sorted(figures.FIGURES)
    for name in figures.FIGURES:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        Image.open(io.BytesIO(data)).verify()
        assert len(data) == report["sizes"][name] < MAX_PNG_BYTES, name


def test_the_room_is_an_l_described_with_void():
    room = figures.l_office()
    # 16 x 23 tiles, the top-right 7 x 7 outside the room.
    assert room.cells.shape == (23, 16)
    assert int((room.cells == VOID).sum()) == 49 and int(room.inside.sum()) == 16 * 23 - 49
    assert (room.cells[:7, 9:] == VOID).all() and not (room.cells[7:, :] == VOID).any()
    assert room.luminaire == "generic-led-panel-600"


def test_blind_zones_before_completion_and_none_after(run):
    _, report = run
    profile = get_profile("nfpa72")
    before = figures.l_office()
    # Before: the validator's own blind zones, with their full point counts.
    zones = {
        v.rule: v.points
        for v in check_layout(before, profile)
        if v.rule in figures.COVERAGE_DEVICES
    }
    assert zones == report["before"]["blind_points"]
    assert zones["smoke.coverage"] > 0 and zones["light.spacing"] == int(before.usable.sum())
    # In a straight line (the void made ordinary ceiling) the detectors miss only the
    # points the script calls far; the ones it says lie across the void are extra.
    why = report["before"]["smoke_blind"]
    straight = before.with_cells(
        np.where(before.cells == VOID, INVALID, before.cells).astype(np.uint8)
    )
    detectors = before.cells == CODE["smoke_detector"]
    assert int(uncovered_points(straight, detectors, profile.smoke_radius_m).sum()) == why["far"]
    assert why["across_void"] > 0
    assert sum(why.values()) == zones["smoke.coverage"]

    # After: the engine's completion, compliant, without blind zones.
    result = complete_room(before, EngineConfig.create(profile))
    compliance = compliance_report(result.room, profile, before)
    assert compliance["compliant"] and "blind_zones" not in compliance
    assert report["completed"]["blind_points"] == {}
    assert report["completed"]["devices"] == counts(result.room)
    assert report["completed"]["total"] == sum(counts(result.room).values())
    # The existing detectors are kept.
    assert (result.room.cells[detectors] == CODE["smoke_detector"]).all()


def test_illuminance_comes_from_the_shipped_luminaire_file(run):
    _, report = run
    profile = get_profile("nfpa72")
    assert (LUMINAIRE_DIR / report["luminaire"]["file"]).is_file()
    assert report["luminaire"]["file"].startswith(report["luminaire"]["name"] + ".")
    result = complete_room(figures.l_office(), EngineConfig.create(profile))
    completed = report["completed"]
    assert completed["illuminance_avg_lx"] == result.metrics["illuminance_avg_lx"]
    assert completed["uniformity_u0"] == result.metrics["uniformity_u0"]
    assert completed["illuminance_avg_lx"] >= profile.illuminance_lx["office"]
    assert completed["uniformity_u0"] >= completed["uniformity_target"] == 0.6
    # The file's photometry, not the built-in Lambertian source, lit the room.
    lambertian = dataclasses.replace(result.room, luminaire=None)
    assert (
        layout_metrics(lambertian, profile)["illuminance_avg_lx"] != completed["illuminance_avg_lx"]
    )


def test_regularity_on_keeps_the_device_count_and_picks_the_most_regular_of_tied_candidates(run):
    _, report = run
    profile = get_profile("nfpa72")
    assert profile.tie_break == ("quality", "regularity")
    empty = figures.l_office({})
    found, results = {}, {}
    for key, tie_break in (("off", ("quality",)), ("on", profile.tie_break)):
        config = EngineConfig.create(dataclasses.replace(profile, tie_break=tie_break))
        result = complete_room(empty, config)
        assert result.compliant
        shown = report["regularity"][key]
        assert shown["tie_break"] == list(tie_break)
        assert shown["devices"] == counts(result.room)
        assert shown["regularity"] == result.metrics["regularity"]
        found[key], results[key] = shown, result
    off, on = found["off"], found["on"]
    assert on["total"] == off["total"]
    assert on["regularity"]["light"] > off["regularity"]["light"]  # the figures differ
    # What the README says regularity does: in every stage, among the compliant
    # candidates tied on devices and quality, the chosen one is the most regular.
    # (Later stages start from different rooms, so per-component figures of the two
    # runs need not order the same way.)
    for component, outcomes in results["on"].candidates.items():
        record = results["on"].models[component]
        chosen = next(o for o in outcomes if o.model == record["chosen"])
        tied = [
            o
            for o in outcomes
            if o.added is not None
            and o.compliant
            and o.devices == chosen.devices
            and round(o.score, 2) == round(chosen.score, 2)
        ]
        assert chosen in tied
        assert all(chosen.regularity >= o.regularity for o in tied), component


def test_the_readme_shows_every_figure_and_quotes_its_caption(run):
    _, report = run
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    flat = re.sub(r"\s+", " ", readme)
    assert "scripts/readme_figures.py" in readme
    assert report["room"] in flat, report["room"]
    for name in figures.FIGURES:
        assert f"(docs/img/{name})" in readme or f'src="docs/img/{name}"' in readme, name
        assert (PROJECT_ROOT / "docs" / "img" / name).is_file(), name
        caption = report["captions"][name]
        assert caption in flat, (
            f"README.md does not quote the caption of {name} as the script prints it "
            f"(run .venv/bin/python scripts/readme_figures.py and update README.md):\n{caption}"
        )
