"""A large building through the platform's serving assets against ``ceilgrid layout``.

Issue 15 asks that a 1,000-room building through the platform take at most 1.3x
the command line's time. This script lays out the benchmark's 1,000 distinct
small offices (``scripts/bench_layout.py``) both ways, in turn, and prints the
medians and their ratio:

- the platform: ``submitted_building`` and ``completed_layout`` materialized in
  this process (the document in the run config, as a submission with a run of its
  own sends it), with the layout's two asset checks, on an ephemeral instance and
  a temporary ``CEILGRID_HOME``; and the same without the checks, whose results
  come after the layout is stored and readable;
- the command line: ``ceilgrid layout`` of the same file, a process of its own.

Both use every core. A run launched by the daemon adds its start (about 1-2 s
with the local forking launcher, the same for any building):
``scripts/bench_submit.py`` measures that path end to end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_layout import CEILGRID, small_offices, write_building  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ceilgrid-bench-platform-"))
    os.environ["CEILGRID_HOME"] = str(home)  # before the definitions read it

    import dagster as dg

    from ceilgrid_assets.contract import BUILDINGS
    from ceilgrid_assets.definitions import defs
    from ceilgrid_assets.defs.resources import build_resources
    from ceilgrid_assets.defs.serving import checks

    path = write_building(home / "offices.json", small_offices(args.rooms), "offices")
    document = path.read_text()
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(BUILDINGS, ["offices"])

    def platform(with_checks: bool) -> float:
        # A run process starts with no validation in memory; this one must too.
        checks.forget_validations()
        started = time.perf_counter()
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks] if with_checks else list(defs.assets),
            selection=["submitted_building", "completed_layout"],
            partition_key="offices",
            instance=instance,
            resources=build_resources(),
            run_config={"ops": {"submitted_building": {"config": {"document": document}}}},
        )
        if not result.success:
            raise SystemExit("the serving run failed")
        return time.perf_counter() - started

    def command_line() -> float:
        started = time.perf_counter()
        subprocess.run(
            [CEILGRID, "layout", str(path), "-o", str(home / "cli.json"), "--no-models"],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started

    platform(True)  # warm the file cache and the imports of this process
    times: dict[str, list[float]] = {"checks": [], "layout": [], "cli": []}
    for _ in range(args.repeats):
        times["checks"].append(platform(True))
        times["layout"].append(platform(False))
        times["cli"].append(command_line())
    cli = statistics.median(times["cli"])
    print(f"{args.rooms}-room building, {os.cpu_count()} cores, medians of {args.repeats}:")
    print(f"  ceilgrid layout, end to end: {cli:.2f} s")
    for name, label in (("layout", "without"), ("checks", "with")):
        took = statistics.median(times[name])
        print(
            f"  platform, submitted_building + completed_layout {label} its checks: "
            f"{took:.2f} s = {took / cli:.2f}x the command line (target 1.3x)"
        )


if __name__ == "__main__":
    main()
