"""Exports and reports re-run the rulebook: a document's own compliance claim is never
taken on trust, and a disagreement is shown as such."""

from __future__ import annotations

import copy
import json

import pytest
from helpers import make_room

from ceilgrid_assets.cli import main
from ceilgrid_assets.core.engine.building import complete_building
from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.engine.io import dump_document, parse_object, room_to_document
from ceilgrid_assets.core.outputs import export, report_html


@pytest.fixture(scope="module")
def completed() -> dict:
    """A real engine output: one compliant office and one room with conflicting input devices."""
    rooms = [
        make_room((10, 8), grid_id="office"),
        make_room(
            (10, 10), grid_id="clash", devices={"smoke_detector": [(2, 2)], "light": [(3, 2)]}
        ),
    ]
    document = {"building_id": "b", "rooms": [room_to_document(room) for room in rooms]}
    result = complete_building(parse_object(document, "b.json"))
    assert result.document["rooms"][0]["compliance"]["compliant"] is True
    return result.document


def stripped(document: dict) -> dict:
    """Every device deleted from the first room, its compliance claim left ``true``."""
    tampered = copy.deepcopy(document)
    room = tampered["rooms"][0]
    for cell in room["cells"]:
        if cell["component"] in DEVICE_COMPONENTS:
            cell["component"] = "empty"
    assert room["compliance"]["compliant"] is True
    return tampered


def test_a_layout_stripped_of_its_devices_is_not_called_compliant(completed):
    layout = export.layout_from_document(stripped(completed))
    verdict = layout.compliance(0)
    assert verdict["compliant"] is False and verdict["claimed"] is True
    assert export.disputed(verdict)
    assert {"smoke.coverage", "light.count", "supply.count"} <= {
        v["rule"] for v in verdict["violations"]
    }
    assert export.verdict_label(verdict) == (
        "not compliant on re-validation (the document claims compliant)"
    )


def test_the_html_report_shows_the_disagreement_not_a_green_badge(completed):
    text = report_html.building_report_html(export.layout_from_document(stripped(completed)))
    section = text[text.index('id="room-office"') :]
    section = section[: section.index("</h2>")]
    assert '<span class="ok">' not in section
    assert "the document claims compliant" in section
    assert "0 compliant</span> on re-validation" in text
    assert "1 disagree with their document" in text


def test_the_dxf_title_shows_the_re_validated_verdict(completed, tmp_path):
    [path, _] = export.write_dxf(export.layout_from_document(stripped(completed)), tmp_path)
    text = path.read_text()
    assert "not compliant on re-validation (the document claims compliant)" in text
    assert " - compliant (" not in text


def test_an_untouched_output_agrees_with_its_claim_and_keeps_causes(completed):
    layout = export.layout_from_document(completed)
    office, clash = layout.compliance(0), layout.compliance(1)
    assert office["compliant"] is True and not export.disputed(office)
    assert export.verdict_label(office) == "compliant"
    assert clash["compliant"] is False and not export.disputed(clash)
    assert [(v["rule"], v.get("cause")) for v in clash["violations"]] == [
        ("smoke.clearance", "input")
    ]
    text = report_html.building_report_html(layout, max_rooms_with_images=0)
    assert '<span class="ok">compliant</span>' in text
    assert "cause: input" in text


def test_a_claimed_placement_breach_is_kept(completed):
    """Placement needs the input, which a layout file lacks: the document's breach stands."""
    tampered = copy.deepcopy(completed)
    compliance = tampered["rooms"][0]["compliance"]
    compliance["compliant"] = False
    compliance["violations"] = [{"rule": "placement", "message": "moved", "cells": [[0, 0]]}]
    verdict = export.layout_from_document(tampered).compliance(0)
    assert verdict["compliant"] is False and not export.disputed(verdict)


def test_a_document_that_undersells_a_compliant_room_is_shown_as_disputed(completed):
    tampered = copy.deepcopy(completed)
    tampered["rooms"][0]["compliance"]["compliant"] = False
    verdict = export.layout_from_document(tampered).compliance(0)
    assert verdict["compliant"] is True and export.disputed(verdict)
    assert "the document claims not compliant" in export.verdict_label(verdict)


def test_ceilgrid_export_writes_a_report_that_re_validates(completed, tmp_path):
    source = tmp_path / "stripped.json"
    source.write_bytes(dump_document(stripped(completed)))
    html = tmp_path / "report.html"
    main(["export", str(source), "--html", str(html)])
    text = html.read_text()
    assert "the document claims compliant" in text
    assert json.loads(source.read_bytes())["rooms"][0]["compliance"]["compliant"] is True
