"""The layout pipeline on realistic awkward rooms, honest failure, selection, determinism."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest
from helpers import (
    PROJECT_ROOT,
    SAMPLE_PATH,
    building_document,
    make_room,
    positions,
    rect,
    reference_rule_ids,
    room_document,
    rule_ids,
    to_json,
)

from ceilgrid_assets.core.engine import optimiser, pipeline
from ceilgrid_assets.core.engine.building import complete_building
from ceilgrid_assets.core.engine.grid import CODE, INVALID
from ceilgrid_assets.core.engine.heuristics import array_shape
from ceilgrid_assets.core.engine.io import dump_document, parse_document, read_document
from ceilgrid_assets.core.engine.models import ArrayModel
from ceilgrid_assets.core.engine.pipeline import (
    RESCUE_MODEL,
    CandidateOutcome,
    EngineConfig,
    complete_room,
    run_stage,
    select,
)
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.engine.rules import check_layout
from ceilgrid_assets.core.engine.stages import build_context

NFPA = get_profile("nfpa72")


def assert_compliant(result, profile=NFPA):
    """Compliant by the engine's report, by a fresh validation and by the reference checker."""
    assert result.compliance["compliant"] is True, result.compliance["violations"]
    assert result.compliance["violations"] == []
    assert check_layout(result.room, profile, result.original) == []
    assert reference_rule_ids(result.room, profile, result.original) == set()


def assert_inputs_kept(result):
    before, after = result.original.cells, result.room.cells
    changed = before != after
    assert not (changed & (before != CODE["empty"])).any(), "an input cell was changed"
    assert not (after[changed] == INVALID).any()


def min_distance(a: set, b: set, tile: float) -> float:
    return min(math.dist(p, q) for p in a for q in b) * tile


# ------------------------------------------------------------------ awkward rooms


def test_closet_3x3_tiles():
    result = complete_room(make_room((3, 3), grid_id="closet"))
    assert_compliant(result)
    assert_inputs_kept(result)
    # 3.24 m2: 1 light by the lumen method (500 * 3.24 / 1728 = 0.94), 1 supply, no
    # return (< 9 m2), 1 detector. The rescue's one light sits in a corner, 1.2 m from
    # the detector in the opposite one: over all 9 points (band 0.15 x 1.8 = 0.27 m <
    # 0.3 m) sum cos^4 = 1 + 2(0.8269) + 0.6951 + 2(0.5110) + 2(0.4453) + 0.3094 =
    # 5.571, U0 = 0.3094 / 0.619 = 0.50 < 0.60, so the uniformity repair adds a light.
    counts = result.metrics
    assert (
        counts["lights"],
        counts["air_supply"],
        counts["air_return"],
        counts["smoke_detector"],
    ) == (2, 1, 0, 1)
    assert counts["uniformity_u0"] >= 0.6


@pytest.mark.parametrize(
    ("shape", "room_type"),
    [((40, 1), "corridor"), ((40, 1), "office"), ((25, 2), "corridor"), ((1, 30), "corridor")],
)
def test_corridors_one_or_two_tiles_wide(shape, room_type):
    result = complete_room(make_room(shape, grid_id="corridor", room_type=room_type))
    assert_compliant(result)
    assert_inputs_kept(result)


def test_pre_existing_detector_keeps_lights_and_diffusers_away():
    room = make_room((6, 6), devices={"smoke_detector": [(2, 2)]}, grid_id="detector")
    result = complete_room(room)
    assert_compliant(result)
    assert (2, 2) in positions(result.room, "smoke_detector")
    detector = {(2, 2)}
    assert min_distance(detector, positions(result.room, "light"), 0.6) >= 1.0 - 1e-9
    air = positions(result.room, "air_supply") | positions(result.room, "air_return")
    assert min_distance(detector, air, 0.6) >= 1.5 - 1e-9


def test_pre_existing_detector_in_a_small_room():
    # 4x4 with the detector at (1, 1): no light on its 8 neighbours (<= 0.85 m), no
    # diffuser closer than 1.5 m, yet a compliant layout exists
    result = complete_room(make_room((4, 4), devices={"smoke_detector": [(1, 1)]}))
    assert_compliant(result)


def test_pre_existing_detector_in_a_corridor():
    result = complete_room(make_room((12, 1), devices={"smoke_detector": [(6, 0)]}))
    assert_compliant(result)
    assert positions(result.room, "smoke_detector") == {(6, 0)}  # one already covers 7.2 m


@pytest.mark.parametrize("shape", [(4, 11), (11, 4)])
def test_a_narrow_room_drops_the_detector_reservation_instead_of_needing_the_rescue(shape):
    """Four tiles wide, the return (1.80 m from the supply, 1.50 m from a detector)
    finds no cell clear of the reserved detector; the series frees the reservation
    and places detectors last, so the room is completed without the joint rescue."""
    result = complete_room(make_room(shape))
    assert_compliant(result)
    assert "rescue" not in result.compliance
    assert all(record["chosen"] != RESCUE_MODEL for record in result.models.values())


def test_a_hall_too_large_for_the_rescue_is_laid_out_again_with_the_lights_last():
    """32 x 32 tiles of 1.2 m under a 6 m ceiling: the lumen method asks for about 400
    lights, which the default order placed in the corners too, leaving a corner no
    supply could reach (supply.coverage). Over 900 cells no joint rescue runs; the
    series is run again with the lights last and the room is compliant."""
    invalid = [(x, y) for x in range(4, 32, 8) for y in range(3, 32, 8)]
    room = make_room((32, 32), invalid=invalid, tile_size_m=1.2, ceiling_height_m=6.0)
    assert int(room.usable.sum()) > EngineConfig().rescue_max_cells
    result = complete_room(room)
    assert_compliant(result)
    assert_inputs_kept(result)
    assert result.compliance["series"].startswith("lights placed last")
    assert "rescue" not in result.compliance
    # reported in the usual order, one view per stage, the last the layout itself
    assert list(result.models) == ["light", "air_supply", "air_return", "smoke_detector"]
    assert len(result.stages) == 5 and np.array_equal(result.stages[-1].cells, result.room.cells)
    assert int((result.stages[1].cells == CODE["light"]).sum()) == result.metrics["lights"]


def test_a_room_the_rescue_leaves_not_compliant_is_laid_out_again_with_the_lights_last(
    monkeypatch,
):
    """The same hall with the rescue allowed at its size, its programme over the
    nonzero limit: the rescue does not run, and the retry with the lights last still
    comes after it."""
    invalid = [(x, y) for x in range(4, 32, 8) for y in range(3, 32, 8)]
    room = make_room((32, 32), invalid=invalid, tile_size_m=1.2, ceiling_height_m=6.0)
    monkeypatch.setattr(optimiser, "JOINT_MAX_NONZEROS", 1)
    monkeypatch.setattr(pipeline, "JOINT_MAX_NONZEROS", 1)
    config = EngineConfig(rescue_max_cells=2_000)
    assert pipeline._rescue(room, config.profile, config)[1].startswith("not run: the joint")
    result = complete_room(room, config)
    assert_compliant(result)
    assert result.compliance["series"].startswith("lights placed last")
    assert "rescue" not in result.compliance


def test_l_shaped_room_with_a_column_grid():
    columns = [(x, y) for x in range(3, 20, 5) for y in range(3, 16, 5)]
    invalid = rect(10, 8, 20, 16) + columns
    room = make_room((20, 16), invalid=invalid, grid_id="L")
    result = complete_room(room)
    assert_compliant(result)
    assert_inputs_kept(result)
    assert set(invalid) <= positions(result.room, "invalid")


def test_pre_existing_components_are_kept():
    devices = {"light": [(0, 0), (9, 9)], "air_supply": [(5, 5)], "air_return": [(0, 9)]}
    result = complete_room(make_room((10, 10), devices=devices))
    assert_compliant(result)
    for name, cells in devices.items():
        assert set(cells) <= positions(result.room, name)


def test_room_without_usable_cells_is_trivially_compliant():
    room = make_room((3, 3), invalid=rect(0, 0, 3, 3))
    result = complete_room(room)
    assert result.compliant and np.array_equal(result.room.cells, room.cells)


def test_bs5839_needs_fewer_detectors_in_a_long_corridor():
    # 19 tiles of 0.8 m: from the centre cell the ends are 9 * 0.8 = 7.2 m away, within
    # 7.5 m (bs5839) but not 6.4 m (nfpa72, which covers at most 2 * 8 + 1 = 17 cells)
    room = make_room((19, 1), tile_size_m=0.8, room_type="corridor")
    nfpa = complete_room(room)
    bs = complete_room(room, EngineConfig.create("bs5839"))
    assert_compliant(nfpa)
    assert_compliant(bs, get_profile("bs5839"))
    assert nfpa.metrics["smoke_detector"] >= 2
    assert bs.metrics["smoke_detector"] == 1
    assert positions(bs.room, "smoke_detector") == {(9, 0)}
    assert bs.compliance["profile"] == "bs5839"


# ------------------------------------------------------------------ honestly flagged


def test_room_full_of_lights_is_flagged_not_faked():
    room = make_room((4, 4), devices={"light": rect(0, 0, 4, 4)})
    result = complete_room(room)
    assert result.compliance["compliant"] is False
    assert np.array_equal(result.room.cells, room.cells)
    assert rule_ids(result.compliance["violations"]) == {
        "supply.count",
        "supply.coverage",
        "smoke.coverage",
    }


def test_supply_next_to_detector_is_flagged():
    room = make_room((6, 6), devices={"smoke_detector": [(2, 2)], "air_supply": [(3, 2)]})
    result = complete_room(room)
    assert result.compliance["compliant"] is False
    [clearance] = [v for v in result.compliance["violations"] if v["rule"] == "smoke.clearance"]
    assert clearance["cells"] == [[2, 2]]
    assert_inputs_kept(result)
    assert "placement" not in rule_ids(result.compliance["violations"])


def test_detector_in_the_middle_of_a_closet_forbids_every_light():
    # every other cell of a 3x3 room is at most 0.6 * sqrt(2) = 0.85 m < 1.0 m from (1, 1)
    result = complete_room(make_room((3, 3), devices={"smoke_detector": [(1, 1)]}))
    assert result.compliance["compliant"] is False
    assert {"light.count", "light.spacing"} <= rule_ids(result.compliance["violations"])
    assert result.metrics["lights"] == 0


@pytest.mark.parametrize("length", [1, 2, 3])
def test_too_short_a_strip_cannot_hold_the_devices(length):
    # a light, a supply and a detector are all required; in 1-3 cells of 0.6 m the
    # detector cannot be 1.5 m from the supply (max 1.2 m) and 1.0 m from the light
    result = complete_room(make_room((length, 1)))
    assert result.compliance["compliant"] is False
    assert result.compliance["violations"]
    assert_inputs_kept(result)


# ------------------------------------------------------------------ selection


def outcome(model, compliant=True, devices=3, score=0.5, violations=0, added=True):
    mask = np.zeros((2, 2), dtype=bool) if added else None
    return CandidateOutcome(
        model,
        mask,
        compliant=compliant,
        devices=devices,
        score=score,
        violations=violations if not compliant else 0,
    )


def test_select_prefers_fewest_devices_among_compliant():
    chosen = select(
        [
            outcome("many", devices=5, score=0.99),
            outcome("few", devices=3, score=0.1),
            outcome("broken", compliant=False, devices=1, violations=1),
        ]
    )
    assert chosen.model == "few"


def test_select_breaks_device_ties_by_score():
    chosen = select([outcome("a", devices=3, score=0.4), outcome("b", devices=3, score=0.7)])
    assert chosen.model == "b"


def test_select_breaks_full_ties_by_listing_order():
    assert select([outcome("first"), outcome("second")]).model == "first"


def test_select_without_compliant_candidates_takes_fewest_violations():
    chosen = select(
        [
            outcome("two", compliant=False, devices=1, violations=2),
            outcome("one", compliant=False, devices=9, violations=1),
        ]
    )
    assert chosen.model == "one" and not chosen.compliant


def test_select_ignores_skipped_candidates():
    assert select([outcome("skipped", devices=0, added=False), outcome("ok")]).model == "ok"
    assert select([outcome("skipped", added=False)]) is None
    assert select([]) is None


def test_every_stage_records_its_candidates_and_picks_the_fewest():
    config = EngineConfig()
    model_names = [model.name for model in config.models]
    result = complete_room(make_room((12, 9), invalid=rect(0, 0, 3, 3)), config)
    assert_compliant(result)
    assert set(result.models) == {"light", "air_supply", "air_return", "smoke_detector"}
    for component, record in result.models.items():
        recorded = [candidate["model"] for candidate in record["candidates"]]
        assert recorded, component
        assert set(recorded) <= set(model_names)
        assert recorded == [o.model for o in result.candidates[component]]
        ran = [o for o in result.candidates[component] if o.added is not None]
        compliant = [o for o in ran if o.compliant]
        if record["chosen"] in recorded:  # not replaced by the joint rescue
            chosen = ran[[o.model for o in ran].index(record["chosen"])]
            assert chosen.compliant == bool(compliant)
            if compliant:
                fewest = min(o.devices for o in compliant)
                assert chosen.devices == fewest
                assert chosen.score >= max(o.score for o in compliant if o.devices == fewest) - 1e-4
        for candidate in record["candidates"]:
            assert set(candidate) >= {"model", "compliant", "devices", "score"}


@dataclass
class RecordingModel:
    """Proposes nothing; remembers which stages asked it."""

    name: str = "recording"
    components: tuple[str, ...] = ("light", "air_supply", "air_return", "smoke_detector")
    asked: list[str] = field(default_factory=list)

    def place(self, context):
        self.asked.append(context.component)
        return None


@pytest.mark.parametrize("component", ["light", "smoke_detector"])
def test_a_stage_proved_optimal_asks_no_further_model_unless_its_ties_are_compared(component):
    recording = RecordingModel()
    config = EngineConfig()
    context = build_context(component, make_room((10, 8)), config.profile)
    chosen, outcomes = run_stage(context, [ArrayModel(), recording])
    # The array reaches the bound in this plain room: the count rule for lights,
    # disk packing for detectors.
    assert chosen.model == "array" and chosen.compliant
    assert context.is_optimal(chosen.devices)
    if component in config.profile.compare_at_bound:  # the lights' uniformity is compared
        assert recording.asked == [component]
    else:
        assert recording.asked == []
        assert outcomes[1].added is None
        assert outcomes[1].skip_reason == (
            f"array already reached the lower bound of {context.lower_bound} devices"
        )


@dataclass(frozen=True)
class EverywhereModel:
    """Proposes a device on every cell, including forbidden and invalid ones."""

    name: str = "everywhere"
    components: tuple[str, ...] = ("light", "air_supply", "air_return", "smoke_detector")

    def place(self, context):
        return np.ones(context.room.cells.shape, dtype=bool)


@dataclass(frozen=True)
class AbstainingModel:
    name: str = "abstains"
    components: tuple[str, ...] = ("light",)

    def place(self, context):
        return None


@pytest.mark.parametrize("profile", ["nfpa72", "bs5839", "nfpa72-spacing"])
def test_compliant_before_repair_is_the_proposal_s_own_validation(profile):
    """The flag is derived from the repair (it adds devices only where the proposal
    broke a rule of its stage); a validation of each proposal as it came must agree."""
    config = EngineConfig.create(profile)
    rng = np.random.default_rng(7)
    checked = repaired = 0
    for seed in range(12):
        width, height = int(rng.integers(3, 16)), int(rng.integers(2, 12))
        invalid = [(int(rng.integers(width)), int(rng.integers(height))) for _ in range(3)]
        room = make_room(
            (width, height), invalid, room_type=str(rng.choice(["office", "corridor"]))
        )
        for component in ("light", "air_supply", "smoke_detector"):
            context = build_context(component, room, config.profile)
            for model in config.models:
                if component not in model.components or model.exact:
                    continue
                proposal = model.place(context)
                if proposal is None:
                    continue
                outcome = pipeline.evaluate(context, model.name, proposal, 0.0)
                as_it_came = context.violations(proposal & context.allowed)
                assert outcome.compliant_before_repair == (not as_it_came), (seed, component)
                checked += 1
                repaired += outcome.repaired > 0
    assert checked > 50 and repaired > 5  # both kinds of proposal were seen


def test_a_new_model_plugs_in_and_is_judged_on_equal_terms():
    config = EngineConfig.create(extra_models=[EverywhereModel(), AbstainingModel()])
    room = make_room((8, 8), invalid=[(4, 4)])
    result = complete_room(room, config)
    assert_compliant(result)
    assert_inputs_kept(result)  # the engine masks proposals on invalid cells
    light = result.models["light"]
    names = [c["model"] for c in light["candidates"]]
    assert "everywhere" in names and "abstains" in names
    abstained = light["candidates"][names.index("abstains")]
    assert abstained["compliant"] is False and abstained.get("skipped") is True
    # covering every allowed cell is never the fewest-device choice
    assert light["chosen"] != "everywhere"


def test_models_with_only_a_skipping_candidate_still_produce_an_honest_room():
    config = EngineConfig(models=[AbstainingModel()])
    result = complete_room(make_room((5, 5)), config)
    assert result.compliant == (check_layout(result.room, NFPA, result.original) == [])
    assert_inputs_kept(result)


# ------------------------------------------------------------------ documents


def test_editor_sample_lays_out_unchanged_and_compliant():
    parsed = read_document(SAMPLE_PATH)
    building = complete_building(parsed)
    assert building.exit_code == 0
    document = building.document
    raw = json.loads(SAMPLE_PATH.read_text())
    assert document["grid_id"] == raw["grid_id"]
    assert (document["width"], document["height"]) == (raw["width"], raw["height"])
    assert {"compliance", "models", "metrics"} <= set(document)
    assert document["compliance"]["compliant"] is True
    out = {(c["x"], c["y"]): c["component"] for c in document["cells"]}
    for cell in raw["cells"]:
        if cell["component"] != "empty":
            assert out[(cell["x"], cell["y"])] == cell["component"]
    [result] = building.rooms
    assert_compliant(result)
    for key, name in (
        ("lights", "light"),
        ("air_supply", "air_supply"),
        ("air_return", "air_return"),
        ("smoke_detector", "smoke_detector"),
    ):
        assert document["metrics"][key] == sum(c["component"] == name for c in document["cells"])


def test_building_with_a_bad_room_lays_out_the_good_ones():
    bad = room_document((3, 3), grid_id="broken", room_type="sauna")
    rooms = [room_document((5, 4), grid_id="a"), bad, room_document((3, 3), grid_id="c")]
    parsed = parse_document(to_json(building_document(rooms, "hq")), "hq.json")
    building = complete_building(parsed)
    assert building.exit_code == 2
    document = building.document
    assert [room["grid_id"] for room in document["rooms"]] == ["a", "c"]
    assert all(room["compliance"]["compliant"] for room in document["rooms"])
    [rejected] = document["rejected_rooms"]
    assert rejected["room"] == "broken (#1)" and rejected["field"] == "room_type"
    assert "\n" not in rejected["message"]


def test_exit_code_is_1_for_an_honestly_failed_room():
    rooms = [room_document((5, 4), grid_id="fine"), room_document((2, 1), grid_id="strip")]
    building = complete_building(parse_document(to_json(building_document(rooms))))
    assert [r.compliant for r in building.rooms] == [True, False]
    assert building.exit_code == 1


def test_unknown_keys_survive_the_round_trip():
    document = room_document((4, 4), grid_id="keep", designer="Ada", floor=3)
    output = complete_building(parse_document(to_json(document))).document
    assert output["designer"] == "Ada" and output["floor"] == 3


# ------------------------------------------------------------------ determinism

DETERMINISM_BUILDING = building_document(
    [
        room_document((12, 9), invalid=rect(0, 0, 3, 3) + [(8, 5)], grid_id="office"),
        room_document((30, 1), grid_id="corridor", room_type="corridor"),
        room_document((6, 6), devices={"smoke_detector": [(2, 2)]}, grid_id="with-detector"),
        room_document((3, 3), grid_id="closet"),
        room_document((2, 1), grid_id="impossible"),
    ],
    "determinism",
)


def test_same_input_gives_byte_identical_output():
    text = to_json(DETERMINISM_BUILDING)
    first = dump_document(complete_building(parse_document(text, "d.json")).document)
    second = dump_document(complete_building(parse_document(text, "d.json")).document)
    assert first == second


def test_same_input_gives_byte_identical_output_across_processes(tmp_path):
    source = tmp_path / "in.json"
    source.write_text(to_json(DETERMINISM_BUILDING))
    script = (
        "import sys\n"
        "from ceilgrid_assets.core.engine.io import read_document, dump_document\n"
        "from ceilgrid_assets.core.engine.building import complete_building\n"
        "sys.stdout.buffer.write(dump_document(complete_building("
        "read_document(sys.argv[1])).document))\n"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(source)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()
        outputs.append(out)
    assert outputs[0] == outputs[1]
    in_process = dump_document(complete_building(read_document(source)).document)
    assert outputs[0] == in_process
    assert json.loads(outputs[0])["rooms"][0]["grid_id"] == "office"


@pytest.mark.parametrize(
    ("width_m", "height_m", "radius_m", "count", "expected"),
    [
        # Coverage only: two 6 x 3 m cells cover a 6 m square (half-diagonal 3.35 <= 3.46 m).
        (6.0, 6.0, 3.46, 0, 2),
        # Two supplies cover a 6 x 3 m strip (cell half-diagonal 2.12 m).
        (6.0, 3.0, 3.46, 2, 2),
        # The count can drive: 11 lights need at least 11 positions.
        (6.0, 6.0, 2.02, 11, 12),
        (6.0, 6.0, None, 3, 3),
    ],
)
def test_array_shape_is_the_smallest_covering_array(width_m, height_m, radius_m, count, expected):
    nx, ny = array_shape(width_m, height_m, radius_m, count, max_columns=10)
    assert nx * ny == expected
    if radius_m is not None:
        assert (width_m / (2 * nx)) ** 2 + (height_m / (2 * ny)) ** 2 <= radius_m**2
    assert nx * ny >= count
