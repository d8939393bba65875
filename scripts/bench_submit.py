"""Benchmark: `ceilgrid submit --wait` of a 5-room building on a warm dagster dev.

    python scripts/bench_submit.py                 # starts Postgres + dagster dev in a temp dir
    python scripts/bench_submit.py --url http://127.0.0.1:3000   # an already running server
    python scripts/bench_submit.py --batch         # the sensor path (submit --batch --wait)

One warm-up submission (not counted), then ``--runs`` timed ones, each a new
building partition: time from the first GraphQL call to the layout bytes in
hand (the file is written on the server before the run succeeds). By default
the building gets a run of its own, as ``ceilgrid submit --wait`` does. Target:
median <= 5 s over 10 runs (the speed issue's figure).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ceilgrid_assets.cli.submit import launch_run, submit, wait_for_layout  # noqa: E402
from ceilgrid_assets.core.engine.io import content_hash  # noqa: E402
from ceilgrid_assets.dev.postgres import free_port, start_postgres  # noqa: E402
from ceilgrid_assets.dev.server import (  # noqa: E402
    instance_env,
    prepare_dagster_home,
    start_dagster_dev,
    stop,
    wait_for_webserver,
)

TARGET_S = 5.0


def phases(dagster_home: Path, building_id: str, submitted: float, seen: float) -> str:
    """Where one submission's seconds went, from the instance's run record and events.

    submitted -> the run created (the inbox sensor's tick stages the building and
    requests a run), -> started (queue, the run worker's process start and code
    load), -> layout materialized (validation and layout), -> seen by the client
    (its polling); the run ends after the report.
    """
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("completed_layout"), asset_partitions=[building_id]
            ),
            limit=1,
        ).records[0]
        run = instance.get_run_record_by_id(record.run_id)
        stats = instance.get_run_stats(record.run_id)
    created, started = run.create_timestamp.timestamp(), stats.start_time or 0.0
    laid_out = record.timestamp
    ended = (
        "the run still writing its report"
        if stats.end_time is None
        else f"run ended {stats.end_time - laid_out:+.1f} s after the layout"
    )
    return (
        f"run created +{created - submitted:.1f} s, started +{started - created:.1f} s, "
        f"layout +{laid_out - started:.1f} s, seen +{seen - laid_out:.1f} s ({ended})"
    )


def local_stack(stack: ExitStack) -> tuple[str, Path]:
    home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ceilgrid-bench-")))
    home.chmod(0o755)
    server = start_postgres(home / "postgres", durable=False)
    stack.callback(server.stop)
    dagster_home = home / "dagster_home"
    prepare_dagster_home(ROOT, dagster_home)
    port = free_port()
    env = instance_env(server, home, dagster_home)
    os.environ.update(env)  # so that this process can read the instance for the phases
    process = start_dagster_dev(ROOT, env, port, home / "dagster-dev.log")
    stack.callback(stop, process)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    wait_for_webserver(url, process)
    print(f"dagster dev ready in {time.monotonic() - started:.1f} s at {url}", flush=True)
    return url, dagster_home


def one(url: str, document: dict, building_id: str, own_run: bool) -> tuple[float, float, float]:
    """Seconds from submission to layout in hand, and both moments (epoch seconds)."""
    document = {**document, "building_id": building_id}
    started, submitted = time.monotonic(), time.time()
    text = json.dumps(document)
    if own_run:
        launch_run(url, text, building_id)
    else:
        submit(url, text, building_id)
    layout = json.loads(
        wait_for_layout(
            url, building_id, content_hash(text.encode()), since=0, timeout_s=600, poll_s=0.25
        )
    )
    seconds = time.monotonic() - started
    rooms = layout["rooms"]
    if not all(room["compliance"]["compliant"] for room in rooms) or len(rooms) != 5:
        raise SystemExit(f"{building_id}: unexpected layout ({len(rooms)} rooms)")
    return seconds, submitted, time.time()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="use this running webserver instead of starting one")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--building", type=Path, default=ROOT / "scripts" / "bench-5-rooms.json")
    parser.add_argument(
        "--batch",
        action="store_true",
        help="submit as `ceilgrid submit --batch --wait` does: join the inbox sensor's next batch",
    )
    args = parser.parse_args()
    document = json.loads(args.building.read_bytes())
    with ExitStack() as stack:
        url, dagster_home = (args.url, None) if args.url else local_stack(stack)
        stamp = time.strftime("%H%M%S")
        warm, _, _ = one(url, document, f"bench-{stamp}-warmup", not args.batch)
        print(f"warm-up: {warm:.2f} s", flush=True)
        times = []
        for index in range(args.runs):
            building_id = f"bench-{stamp}-{index}"
            seconds, submitted, seen = one(url, document, building_id, not args.batch)
            times.append(seconds)
            where = (
                ""
                if dagster_home is None
                else "; " + phases(dagster_home, building_id, submitted, seen)
            )
            print(f"run {index + 1}: {seconds:.2f} s{where}", flush=True)
    median = statistics.median(times)
    verdict = "meets" if median <= TARGET_S else "misses"
    print(
        f"median {median:.2f} s over {len(times)} runs (min {min(times):.2f}, "
        f"max {max(times):.2f}); {verdict} the {TARGET_S:.0f} s target"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
