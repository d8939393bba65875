"""Complete room with learned models: they compete as in ``ceilgrid layout --models``."""

from __future__ import annotations

import json

import pytest
import requests
from editor_helpers import editing_building

from ceilgrid_assets.core.engine.grid import DEVICE_COMPONENTS
from ceilgrid_assets.core.engine.profile import get_profile
from ceilgrid_assets.core.learning.corpus import CorpusSpec, generate_rooms
from ceilgrid_assets.core.learning.labels import label_rooms
from ceilgrid_assets.core.learning.learned import MODEL_NAME, save_model
from ceilgrid_assets.core.learning.training import fit_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_complete_lets_the_learned_models_compete(start_editor, building_file, tmp_path):
    rooms = [room for room in generate_rooms(CorpusSpec(5, 80)) if room.usable.sum() <= 300][:24]
    labels = label_rooms(rooms, get_profile("nfpa72"), time_limit_s=1.0)
    models_dir = tmp_path / "models"
    for component in DEVICE_COMPONENTS:
        model = fit_model(
            labels,
            component,
            seed=5,
            n_threads=1,
            spacing_factors=(0.8,),
            gain_powers=(0.0, 4.0),
            shortlists=(6.0,),
        )
        save_model(model, models_dir)
    office = editing_building()["rooms"][0]
    body = json.dumps({"room": office}).encode()
    headers = {"content-type": "application/json"}

    for extra, learned in ((("--models", str(models_dir)), True), (("--no-models",), False)):
        editor = start_editor(building_file, *extra)
        room = requests.post(
            f"{editor.url}/api/complete", data=body, headers=headers, timeout=300
        ).json()["room"]
        assert room["compliance"]["compliant"] is True
        for component in DEVICE_COMPONENTS:
            names = {candidate["model"] for candidate in room["models"][component]["candidates"]}
            assert (MODEL_NAME in names) is learned, (component, names)
