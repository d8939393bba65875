"""``ceilgrid layout`` and ``validate`` import only what they use (start-up time).

The time itself is a benchmark figure (``scripts/bench_layout.py``); this test
holds the cause: which heavy packages a command loads, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PROJECT_ROOT, room_document, to_json

HEAVY = (
    "scipy.optimize",
    "sklearn",
    "matplotlib",
    "dagster",
    "opentelemetry.sdk",
    "opentelemetry.trace",
    "requests",
    "ifcopenshell",
    "multiprocessing",  # only when a building is large enough for worker processes
    # numpy's developer tools, which scipy's array-API layer imports: deferred
    # (core/engine/startup.py), so their code never runs.
    "numpy.f2py.crackfortran",
    "numpy.testing._private.utils",
)
PROBE = """
import json, sys
from ceilgrid_assets.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:  # --help and argument errors
    code = stop.code
heavy = json.loads({heavy!r})
print(json.dumps([name for name in heavy if name in sys.modules]), code)
"""


def fresh_python(code: str, *args: str, env_extra: dict[str, str] | None = None) -> str:
    """What ``code`` prints in a fresh interpreter with a minimal environment."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(PROJECT_ROOT), **(env_extra or {})}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout


def loaded_after(
    *args: str, env_extra: dict[str, str] | None = None, heavy: tuple[str, ...] = HEAVY
) -> tuple[list[str], int]:
    """The ``heavy`` packages in ``sys.modules`` after ``ceilgrid ARGS`` ran in a fresh process."""
    printed = fresh_python(PROBE.format(heavy=json.dumps(heavy)), *args, env_extra=env_extra)
    loaded, code = printed.strip().splitlines()[-1].rsplit(" ", 1)
    return json.loads(loaded), int(code)


@pytest.fixture
def room_file(tmp_path: Path) -> Path:
    path = tmp_path / "room.json"
    path.write_text(to_json(room_document((30, 30), grid_id="hall", room_type="lobby")))
    return path


@pytest.mark.parametrize(
    "args",
    [("--help",), ("layout", "--help"), ("validate", "--help"), ("submit", "--help"), ("nope",)],
)
def test_help_and_argument_errors_load_no_numpy_or_scipy(args):
    loaded, code = loaded_after(*args, heavy=("numpy", "scipy", *HEAVY))
    assert code == (2 if args == ("nope",) else 0)
    assert loaded == []


def test_validate_loads_no_optimiser_learning_plotting_platform_or_telemetry(room_file):
    loaded, code = loaded_after("validate", str(room_file))
    assert code == 1  # an empty room is not compliant: the rules did run
    assert loaded == []


def test_layout_loads_no_learning_plotting_platform_or_telemetry(room_file, tmp_path):
    # 900 usable cells: over the optimiser's size limit, so nothing needs it.
    out = tmp_path / "out.json"
    loaded, code = loaded_after("layout", str(room_file), "-o", str(out), "--jobs", "1")
    assert code == 0 and json.loads(out.read_text())["compliance"]["compliant"]
    assert [name for name in loaded if name != "scipy.optimize"] == []


def test_a_room_the_exhaustive_search_settles_never_loads_scipy_optimize(tmp_path):
    # A 10x10 office: the exhaustive search proves every stage optimal and the
    # certificate's cheap bounds meet the counts placed, so HiGHS never runs.
    room = tmp_path / "small.json"
    room.write_text(to_json(room_document((10, 10), grid_id="small")))
    out = tmp_path / "out.json"
    loaded, code = loaded_after("layout", str(room), "-o", str(out), "--jobs", "1")
    assert code == 0 and json.loads(out.read_text())["compliance"]["compliant"]
    assert loaded == []


def test_export_loads_ifcopenshell_only_for_the_ifc(room_file, tmp_path):
    home = {"HOME": str(tmp_path)}  # ezdxf and matplotlib write caches under HOME
    loaded, code = loaded_after(
        "export", str(room_file), "--dxf", str(tmp_path / "d"), env_extra=home
    )
    assert code == 0 and "ifcopenshell" not in loaded
    loaded, code = loaded_after(
        "export", str(room_file), "--ifc", str(tmp_path / "m.ifc"), env_extra=home
    )
    assert code == 0 and "ifcopenshell" in loaded and (tmp_path / "m.ifc").exists()


def test_telemetry_loads_the_sdk_when_the_environment_asks(room_file, tmp_path):
    out = tmp_path / "out.json"
    loaded, code = loaded_after(
        "layout",
        str(room_file),
        "-o",
        str(out),
        "--jobs",
        "1",
        env_extra={"CEILGRID_PROMETHEUS_PORT": "0"},  # metrics served on a free port
    )
    assert code == 0
    assert "opentelemetry.sdk" in loaded


DEFERRED_TOOLS = """
import json, sys
import ceilgrid_assets.core.engine.rules
import numpy
before = "numpy.testing._private.utils" in sys.modules
numpy.testing.assert_array_equal(numpy.arange(3), [0, 1, 2])
from numpy.f2py import crackfortran
print(json.dumps([before, "numpy.testing._private.utils" in sys.modules, crackfortran.__name__]))
"""


def test_deferred_numpy_tools_load_in_full_when_something_uses_them():
    # The engine (and scipy with it) loaded, numpy.testing not run; then used: the real module.
    before, after, name = json.loads(fresh_python(DEFERRED_TOOLS))
    assert (before, after, name) == (False, True, "numpy.f2py.crackfortran")


BLAS_THREADS = """
import json
import ceilgrid_assets.core.engine.pipeline
from threadpoolctl import threadpool_info
print(json.dumps(sorted({pool["num_threads"] for pool in threadpool_info()
                         if pool["user_api"] == "blas"})))
"""


@pytest.mark.parametrize(("chosen", "expected"), [(None, [1]), ("2", [2])])
def test_the_engine_runs_one_blas_thread_unless_the_caller_chose(chosen, expected):
    env = {} if chosen is None else {"OPENBLAS_NUM_THREADS": chosen}
    assert json.loads(fresh_python(BLAS_THREADS, env_extra=env)) == expected


def test_the_installed_engine_dependencies_come_with_their_bytecode():
    """``make install`` compiles bytecode as it installs, so a start where Python may
    not write it (PYTHONDONTWRITEBYTECODE, a read-only install) does not compile
    numpy and scipy afresh: 0.65 s instead of 0.25 s for ``ceilgrid validate``."""
    import importlib.util

    import numpy
    import scipy.ndimage
    import scipy.sparse

    for module in (numpy, scipy.ndimage, scipy.sparse):
        assert Path(importlib.util.cache_from_source(module.__file__)).exists(), module.__name__
