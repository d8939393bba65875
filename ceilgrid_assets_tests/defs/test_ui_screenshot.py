"""The asset graph page renders in headless Chromium (kept as test-artifacts/asset-graph.png)."""

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


def screenshot(url: str, path: Path, profile: Path) -> None:
    subprocess.run(
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
            f"--screenshot={path}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )


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
    ("name", "page"),
    [
        ("asset-graph", "/asset-groups"),
        ("asset-graph-serving", "/locations/ceilgrid/asset-groups/serving/lineage"),
    ],
)
def test_asset_graph_page_is_not_blank(dagster_dev, tmp_path, name, page):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.unlink(missing_ok=True)
    screenshot(f"{dagster_dev.url}{page}", path, tmp_path / "chromium-profile")
    assert_not_blank(path)
