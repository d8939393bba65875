"""Fixtures: a real ``ceilgrid editor`` process per test, and the building it opens.

Every process started is stopped by its own pid at the end of the test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from editor_helpers import Editor, editing_building, start

from ceilgrid_assets.core.engine.io import dump_document


@pytest.fixture
def start_editor() -> Iterator[Callable[..., Editor]]:
    started: list[Editor] = []

    def run(path: Path | None, *extra: str) -> Editor:
        editor = start(path, *extra)
        started.append(editor)
        return editor

    yield run
    for editor in started:
        editor.process.terminate()
        try:
            editor.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            editor.process.kill()
            editor.process.wait()


@pytest.fixture
def building_file(tmp_path: Path) -> Path:
    path = tmp_path / "floor-1.json"
    path.write_bytes(dump_document(editing_building()))
    return path
