"""The asset graph pages render in headless Chromium and show ceilgrid's assets.

Screenshots are kept as test-artifacts/*.png; the assertions read the rendered
page (its DOM after the JavaScript app ran), so an error page or an empty code
location fails even though it is not blank.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import PROJECT_ROOT
from PIL import Image

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def chromium(url: str, profile: Path, *extra: str) -> str:
    """Run headless Chromium on ``url`` long enough for the UI to render; its stdout."""
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--window-size=1600,1000",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=25000",
            *extra,
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout


def assert_not_blank(path: Path) -> None:
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[:2] == (1000, 1600)
    colours = np.unique(image.reshape(-1, 3)[::7], axis=0)
    background = np.median(image.reshape(-1, 3), axis=0)
    drawn = np.abs(image.astype(int) - background).sum(axis=2) > 60
    assert len(colours) > 50, f"{path.name}: a near-uniform page, the UI did not render"
    assert drawn.mean() > 0.02, f"{path.name}: almost nothing drawn on the page"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
@pytest.mark.parametrize(
    ("name", "page", "must_show"),
    [
        ("asset-graph", "/asset-groups", ["Global asset lineage", "serving", "training"]),
        (
            "asset-graph-serving",
            "/locations/ceilgrid/asset-groups/serving/lineage",
            ["submitted_building", "completed_layout", "building_report"],
        ),
    ],
)
def test_asset_graph_page_shows_the_assets(dagster_dev, tmp_path, name, page, must_show):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.unlink(missing_ok=True)
    url = f"{dagster_dev.url}{page}"
    chromium(url, tmp_path / "screenshot-profile", f"--screenshot={path}")
    assert_not_blank(path)
    dom = chromium(url, tmp_path / "dom-profile", "--dump-dom")
    missing = [text for text in must_show if text not in dom]
    assert not missing, f"{page}: the rendered page does not show {missing}"
