"""The editor driven in a real headless Chromium (Debian's, through its chromedriver).

A designer's session end to end: open a building, place a smoke detector next
to a light and see the clearance violation appear on that tile, undo it,
complete the rooms and see them turn compliant, reload and find every edit
kept, undo and redo the completion as one step, download the JSON and check it
with ``ceilgrid validate`` run as a process. Room names that are markup stay
text. Screenshots go to test-artifacts/ (docs/img/editor.png is one of them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from editor_helpers import CEILGRID, HOSTILE_ID, editing_building
from helpers import PROJECT_ROOT

from ceilgrid_assets.core.engine.grid import CODE
from ceilgrid_assets.core.engine.io import dump_document, parse_object

CHROMIUM = shutil.which("chromium") and Path("/usr/lib/chromium/chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not (CHROMIUM and CHROMIUM.exists() and CHROMEDRIVER),
        reason="needs Debian's chromium and chromium-driver (scripts/install-system-deps.sh)",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,900",
    ):
        options.add_argument(argument)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def settled(driver) -> bool:
    """The page has loaded and every request it sent has been answered."""
    return driver.execute_script(
        "return document.body.dataset.ready === 'true' && document.body.dataset.pending === '0'"
        " && !document.querySelector('#room-list [data-compliant=pending]')"
    )


def plan_element(driver):
    return driver.find_element("id", "plan")


def click_tile(driver, x: int, y: int) -> None:
    """A real pointer click on the centre of tile (x, y) of the plan."""
    from selenium.webdriver.common.action_chains import ActionChains

    plan = driver.find_element("id", "plan")
    ActionChains(driver).move_to_element_with_offset(
        plan, *tile_offset(driver, x, y)
    ).click().perform()


def violation_rules(driver) -> list[str]:
    return [
        item.get_attribute("data-rule")
        for item in driver.find_elements("css selector", "#violations li")
    ]


def outlined(driver, rule: str) -> list[tuple[int, int]]:
    rects = driver.find_elements("css selector", f'#plan g.violation[data-rule="{rule}"] rect')
    return [(int(r.get_attribute("data-x")), int(r.get_attribute("data-y"))) for r in rects]


def badges(driver) -> list[str]:
    return [
        item.get_attribute("data-compliant")
        for item in driver.find_elements("css selector", "#room-list li")
    ]


def choose(driver, tool: str) -> None:
    driver.find_element("css selector", f'input[name="tool"][value="{tool}"]').click()


def press(driver, button: str) -> None:
    driver.find_element("id", button).click()
    wait_for(lambda: settled(driver), f"the page to settle after {button}")


def test_a_designers_session_from_opening_to_a_validated_download(
    browser, start_editor, building_file, tmp_path
):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    editor = start_editor(building_file)
    browser.get(f"{editor.url}/")
    wait_for(lambda: settled(browser), "the building to load")

    # Names are text: the hostile room id is shown literally and ran nothing.
    names = [e.text for e in browser.find_elements("css selector", "#room-list .name")]
    assert names == ["office-a", HOSTILE_ID]
    assert browser.execute_script("return window.__pwned") is None
    assert badges(browser) == ["false", "false"]
    assert "smoke.clearance" not in violation_rules(browser)
    assert browser.find_elements("css selector", "#plan .scale-bar")
    assert len(browser.find_elements("css selector", '#plan .device[data-component="light"]')) == 1

    # A detector next to the light (0.6 m < 1.0 m): the violation appears on that tile.
    choose(browser, "smoke_detector")
    click_tile(browser, 3, 2)
    wait_for(lambda: settled(browser), "the server's verdict")
    assert "smoke.clearance" in violation_rules(browser)
    assert outlined(browser, "smoke.clearance") == [(3, 2)]
    title = browser.find_element(
        "css selector", '#plan g.violation[data-rule="smoke.clearance"] title'
    ).get_attribute("textContent")
    assert title.startswith("smoke.clearance: ") and "1.00 m" in title
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "editor.png"))

    # Overlays and zoom: the illuminance map comes from the server, zoom resizes the plan.
    browser.find_element("id", "show-illuminance").click()
    wait_for(
        lambda: browser.find_elements("css selector", "#plan image.illuminance"), "the lux map"
    )
    assert "required 500 lx" in browser.find_element("id", "plan-note").text
    browser.find_element("id", "show-coverage").click()
    assert len(browser.find_elements("css selector", "#plan .reach circle")) == 1  # one detector
    browser.save_screenshot(str(ARTIFACTS / "editor-overlays.png"))
    browser.find_element("id", "show-illuminance").click()
    browser.find_element("id", "show-coverage").click()
    width = int(browser.find_element("id", "plan").get_attribute("width"))
    browser.find_element("id", "zoom-in").click()
    zoomed = int(browser.find_element("id", "plan").get_attribute("width"))
    assert abs(zoomed - width * 1.25) <= 1
    for _ in range(4):
        browser.find_element("id", "zoom-in").click()
    before = browser.execute_script("return document.getElementById('plan-box').scrollLeft")
    (
        ActionChains(browser)
        .key_down(Keys.ALT)
        .move_to_element(plan_element(browser))
        .click_and_hold()
        .move_by_offset(-200, 0)
        .release()
        .key_up(Keys.ALT)
        .perform()
    )
    after = browser.execute_script("return document.getElementById('plan-box').scrollLeft")
    assert after - before == pytest.approx(200, abs=2)  # Alt+drag pans, and edits nothing
    assert violation_rules(browser).count("smoke.clearance") == 1
    browser.find_element("id", "zoom-fit").click()

    press(browser, "undo")
    assert "smoke.clearance" not in violation_rules(browser)
    assert outlined(browser, "smoke.clearance") == []
    assert not browser.find_elements(
        "css selector", '#plan .device[data-component="smoke_detector"]'
    )

    # Complete both rooms: the designer's light stays, both turn compliant.
    press(browser, "complete-room")
    wait_for(lambda: badges(browser)[0] == "true", "office-a to turn compliant")
    assert violation_rules(browser) == []
    models = [e.text for e in browser.find_elements("css selector", "#models dt")]
    assert models == ["light", "air supply", "air return", "smoke detector"]
    browser.find_elements("css selector", "#room-list li")[1].click()
    press(browser, "complete-room")
    wait_for(lambda: badges(browser) == ["true", "true"], "both rooms to be compliant")
    browser.save_screenshot(str(ARTIFACTS / "editor-completed.png"))

    # A reload loses nothing: the edits come back from localStorage.
    browser.refresh()
    wait_for(lambda: settled(browser), "the reloaded page")
    assert badges(browser) == ["true", "true"]
    assert "2 edits kept" in browser.find_element("id", "status").text

    # A completion is one step: undo leaves the second room as it was, redo restores it.
    press(browser, "undo")
    assert badges(browser) == ["true", "false"]
    press(browser, "redo")
    assert badges(browser) == ["true", "true"]

    browser.find_element("id", "download").click()
    path = browser.downloads / "floor-1.json"
    wait_for(path.exists, "the download")
    data = wait_for(lambda: path.read_bytes() if path.stat().st_size else b"", "its bytes")
    document = json.loads(data)
    assert data == dump_document(document)
    office = parse_object(document).rooms[0]
    assert office.cells[2, 2] == CODE["light"]  # the designer's light, kept
    assert office.cells[2, 3] != CODE["smoke_detector"]  # the undone detector stayed undone
    checked = subprocess.run(
        [str(CEILGRID), "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("compliant (nfpa72)") == 2

    # The open room's plan as a PNG, named safely after its hostile id.
    browser.find_element("id", "export-png").click()
    pngs = wait_for(lambda: list(browser.downloads.glob("*.png")), "the PNG download")
    assert pngs[0].name.endswith(".png") and "<" not in pngs[0].name
    wait_for(lambda: pngs[0].read_bytes().startswith(b"\x89PNG"), "the PNG's bytes")


def test_painting_unusable_tiles_is_one_step_and_blocks_devices(
    browser, start_editor, building_file
):
    editor = start_editor(building_file)
    browser.get(f"{editor.url}/")
    wait_for(lambda: settled(browser), "the building to load")
    from selenium.webdriver.common.action_chains import ActionChains

    choose(browser, "invalid")
    plan = browser.find_element("id", "plan")
    start = tile_offset(browser, 0, 5)
    end = tile_offset(browser, 3, 5)
    (
        ActionChains(browser)
        .move_to_element_with_offset(plan, *start)
        .click_and_hold()
        .move_to_element_with_offset(plan, *end)
        .release()
        .perform()
    )
    wait_for(lambda: settled(browser), "the verdict")
    assert "1 edits kept" in browser.find_element("id", "status").text
    assert metric(browser, "area") == f"{round((8 * 6 - 2 - 4) * 0.36, 3)} m²"
    choose(browser, "light")
    click_tile(browser, 1, 5)  # unusable: no light goes there
    wait_for(lambda: settled(browser), "the page")
    assert len(browser.find_elements("css selector", '#plan .device[data-component="light"]')) == 1
    press(browser, "undo")
    assert metric(browser, "area") == f"{round((8 * 6 - 2) * 0.36, 3)} m²"


def test_painting_outside_the_room_draws_void_and_blocks_devices(
    browser, start_editor, building_file
):
    editor = start_editor(building_file)
    browser.get(f"{editor.url}/")
    wait_for(lambda: settled(browser), "the building to load")
    from selenium.webdriver.common.action_chains import ActionChains

    choose(browser, "void")
    plan = browser.find_element("id", "plan")
    (
        ActionChains(browser)
        .move_to_element_with_offset(plan, *tile_offset(browser, 0, 5))
        .click_and_hold()
        .move_to_element_with_offset(plan, *tile_offset(browser, 3, 5))
        .release()
        .perform()
    )
    wait_for(lambda: settled(browser), "the verdict")
    assert "1 edits kept" in browser.find_element("id", "status").text
    # four void tiles are no area, and they are drawn apart from unusable ones
    assert metric(browser, "area") == f"{round((8 * 6 - 2 - 4) * 0.36, 3)} m²"
    assert len(browser.find_elements("css selector", "#plan path.void")) == 1
    choose(browser, "light")
    click_tile(browser, 1, 5)  # outside the room: no light goes there
    wait_for(lambda: settled(browser), "the page")
    assert len(browser.find_elements("css selector", '#plan .device[data-component="light"]')) == 1


def metric(driver, name: str) -> str:
    """The value shown beside ``name`` in the metrics list."""
    for term in driver.find_elements("css selector", "#metrics dt"):
        if term.text == name:
            return term.find_element("xpath", "following-sibling::dd[1]").text
    raise AssertionError(f"no metric {name!r}")


def tile_offset(driver, x: int, y: int) -> tuple[int, int]:
    plan = driver.find_element("id", "plan")
    dx, dy = driver.execute_script(
        """
        const [svg, x, y, tile] = arguments;
        const centre = new DOMPoint((x + 0.5) * tile, (y + 0.5) * tile);
        const point = centre.matrixTransform(svg.getScreenCTM());
        const box = svg.getBoundingClientRect();
        return [point.x - (box.left + box.width / 2), point.y - (box.top + box.height / 2)];
        """,
        plan,
        x,
        y,
        0.6,
    )
    return int(dx), int(dy)


def test_moving_a_device_and_ctrl_z(browser, start_editor, building_file):
    editor = start_editor(building_file)
    browser.get(f"{editor.url}/")
    wait_for(lambda: settled(browser), "the building to load")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    choose(browser, "move")
    plan = browser.find_element("id", "plan")
    (
        ActionChains(browser)
        .move_to_element_with_offset(plan, *tile_offset(browser, 2, 2))
        .click_and_hold()
        .move_to_element_with_offset(plan, *tile_offset(browser, 5, 4))
        .release()
        .perform()
    )
    wait_for(lambda: settled(browser), "the verdict")
    light = browser.find_element("css selector", '#plan .device[data-component="light"]')
    assert float(light.get_attribute("x")) == pytest.approx(5 * 0.6 + 0.2 * 0.6)
    assert float(light.get_attribute("y")) == pytest.approx(4 * 0.6 + 0.2 * 0.6)
    assert "1 edits kept" in browser.find_element("id", "status").text

    ActionChains(browser).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    wait_for(lambda: settled(browser), "the undo")
    light = browser.find_element("css selector", '#plan .device[data-component="light"]')
    assert float(light.get_attribute("x")) == pytest.approx(2 * 0.6 + 0.2 * 0.6)
    assert "0 edits kept" in browser.find_element("id", "status").text

    # Complete building: both rooms in one step, taken back by one undo.
    press(browser, "complete-building")
    wait_for(lambda: badges(browser) == ["true", "true"], "both rooms to be compliant")
    assert "1 edits kept" in browser.find_element("id", "status").text
    stages = {
        row.get_attribute("textContent")
        for row in browser.find_elements("css selector", "#candidates tr td:first-child")
    }
    assert stages == {"light", "air supply", "air return", "smoke detector"}
    press(browser, "undo")
    assert badges(browser) == ["false", "false"]
    assert browser.find_element("id", "candidates").get_attribute("hidden") is not None


def test_rejected_rooms_are_listed_with_the_clis_line(browser, start_editor, tmp_path):
    building = editing_building()
    bad = json.loads(json.dumps(building["rooms"][0]))
    bad["grid_id"] = "broken"
    bad["cells"][0]["component"] = "lamp"
    building["rooms"].append(bad)
    path = tmp_path / "with-bad-room.json"
    path.write_bytes(dump_document(building))
    cli = subprocess.run(
        [str(CEILGRID), "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    editor = start_editor(path)
    browser.get(f"{editor.url}/")
    wait_for(lambda: settled(browser), "the building to load")
    shown = [item.text for item in browser.find_elements("css selector", "#rejected li")]
    assert shown == [cli.stderr.strip()]
    assert "room broken (#2): field 'component': cell (0, 0): unknown value 'lamp'" in shown[0]
    assert len(browser.find_elements("css selector", "#room-list li")) == 2
