"""Load test: an API burst and an inbox flood against dagster-daemon + webserver + Postgres.

Starts a fresh deployment (the harness of the reliability tests), submits
``--graphql`` buildings concurrently through the webserver API exactly as
``ceilgrid submit`` does and drops ``--inbox`` files into the inbox at once,
then waits until every building is laid out. Checks that none is lost or laid
out twice, that every API submission's layout comes back through GraphQL byte
for byte, and that the run queue limits of dagster.yaml hold; reports
throughput (buildings per minute) and peak memory (resident set of every
process of the deployment, summed, sampled each second).

    .venv/bin/python scripts/load_test.py                 # 100 + 500, 10 minute budget
    .venv/bin/python scripts/load_test.py --graphql 10 --inbox 40 --budget 300

Exit status 0 when everything was processed exactly once within the budget.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ceilgrid_assets.cli.submit import ServerError, wait_for_layout
from ceilgrid_assets.core.engine.io import content_hash

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ceilgrid_assets_tests"))

import badfiles  # noqa: E402
from reliability_harness import Platform, instance_of, running_platform  # noqa: E402

MAX_CONCURRENT_RUNS = 4  # dagster.yaml concurrency.runs


def building(building_id: str, rooms: int, size: int) -> bytes:
    return json.dumps(
        badfiles.building(
            building_id,
            [
                badfiles.room(f"{building_id}-r{index}", width=size, height=size - 2)
                for index in range(rooms)
            ],
        )
    ).encode()


class MemorySampler(threading.Thread):
    """Peak summed RSS of the deployment's process groups and of Postgres."""

    def __init__(self, platform: Platform) -> None:
        super().__init__(daemon=True)
        self.platform = platform
        self.peak_total_mb = 0.0
        self.peak_process_mb = 0.0
        self.stopped = threading.Event()

    def groups(self) -> set[int]:
        return {process.pid for process in self.platform.processes.values()} | {
            self.platform.postgres.process.pid
        }

    def run(self) -> None:
        page_kb = os.sysconf("SC_PAGE_SIZE") / 1024
        while not self.stopped.wait(1.0):
            groups, total, largest = self.groups(), 0.0, 0.0
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                    rss_mb = int(stat[21]) * page_kb / 1024
                except (OSError, IndexError, ValueError):
                    continue
                # stat fields after the name: state ppid pgrp ...; Postgres has its own session
                if int(stat[2]) in groups or int(stat[1]) == self.platform.postgres.process.pid:
                    total += rss_mb
                    largest = max(largest, rss_mb)
            self.peak_total_mb = max(self.peak_total_mb, total)
            self.peak_process_mb = max(self.peak_process_mb, largest)


def fetched_through_api(platform: Platform, key: str, data: bytes) -> bool:
    """Whether ``ceilgrid submit --wait`` would get the stored layout's exact bytes."""
    try:
        layout = wait_for_layout(platform.url, key, content_hash(data), since=0, timeout_s=30)
    except ServerError as error:
        print(f"{key}: {error}", flush=True)
        return False
    return layout == platform.layout_path(key).read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--graphql",
        type=int,
        default=100,
        help="buildings submitted through the API, as ceilgrid submit does",
    )
    parser.add_argument("--inbox", type=int, default=500, help="files dropped into the inbox")
    parser.add_argument("--rooms", type=int, default=2, help="rooms per building")
    parser.add_argument("--size", type=int, default=10, help="room width in tiles")
    parser.add_argument("--budget", type=float, default=600, help="seconds allowed")
    parser.add_argument("--keep", action="store_true", help="keep the deployment folder")
    args = parser.parse_args()

    via_graphql = {
        f"gql-{i:04d}": building(f"gql-{i:04d}", args.rooms, args.size) for i in range(args.graphql)
    }
    via_inbox = {
        f"inbox-{i:04d}": building(f"inbox-{i:04d}", args.rooms, args.size)
        for i in range(args.inbox)
    }
    everything = {**via_graphql, **via_inbox}
    print("starting Postgres, webserver and daemon ...", flush=True)
    ready = time.monotonic()
    with running_platform(keep=args.keep) as platform:
        print(f"deployment ready in {time.monotonic() - ready:.0f} s ({platform.root})", flush=True)
        sampler = MemorySampler(platform)
        sampler.start()
        staging = platform.root / "staging"
        staging.mkdir()
        for key, data in via_inbox.items():
            (staging / f"{key}.json").write_bytes(data)
        started = time.monotonic()
        for key in via_inbox:  # the flood: renames, so no file is ever seen half-written
            os.rename(staging / f"{key}.json", platform.inbox / f"{key}.json")
        with ThreadPoolExecutor(max(1, min(100, args.graphql))) as pool:
            list(pool.map(lambda item: platform.submit(*item), via_graphql.items()))
        submitted = time.monotonic() - started
        print(
            f"submitted {len(via_graphql)} via the API and {len(via_inbox)} via the inbox "
            f"in {submitted:.1f} s",
            flush=True,
        )

        from dagster import AssetKey, DagsterRunStatus, RunsFilter

        max_in_progress, done, last_report = 0, 0, 0.0
        with instance_of(platform) as instance:
            while time.monotonic() - started < args.budget:
                in_progress = instance.get_runs_count(
                    RunsFilter(statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])
                )
                unfinished = in_progress + instance.get_runs_count(
                    RunsFilter(statuses=[DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED])
                )
                max_in_progress = max(max_in_progress, in_progress)
                done = sum(platform.layout_path(key).exists() for key in everything)
                if time.monotonic() - last_report > 15:
                    last_report = time.monotonic()
                    print(
                        f"{time.monotonic() - started:5.0f} s: {done}/{len(everything)} laid "
                        f"out, {in_progress} runs in progress, "
                        f"peak memory {sampler.peak_total_mb:.0f} MB",
                        flush=True,
                    )
                # Done when every file is written and the runs that wrote them have
                # recorded their materializations (at the end of each step).
                if done == len(everything) and not unfinished:
                    break
                time.sleep(1)
            elapsed = time.monotonic() - started
            sampler.stopped.set()
            counts: dict[str, int] = {}
            cursor = None
            while True:  # the event log answers at most 10,000 records a call
                page = instance.fetch_materializations(
                    AssetKey("completed_layout"), limit=1000, cursor=cursor
                )
                for record in page.records:
                    counts[record.partition_key] = counts.get(record.partition_key, 0) + 1
                if not page.has_more:
                    break
                cursor = page.cursor
            runs = instance.get_runs()
            failed = [run.run_id for run in runs if run.status == DagsterRunStatus.FAILURE]
        # The ceilgrid submit --wait contract: each API building's layout through GraphQL.
        not_fetched = [
            key for key, data in via_graphql.items() if not fetched_through_api(platform, key, data)
        ]

    missing = sorted(key for key in everything if counts.get(key, 0) == 0)
    twice = sorted(key for key in everything if counts.get(key, 0) > 1)
    print(
        f"\nbuildings: {len(everything)} ({args.graphql} API, {args.inbox} inbox), "
        f"{args.rooms} rooms of {args.size}x{args.size - 2} each"
    )
    print(f"laid out: {done} in {elapsed:.0f} s -> {done / elapsed * 60:.1f} buildings/minute")
    print(
        f"runs: {len(runs)} ({len(failed)} failed), at most {max_in_progress} in progress "
        f"(limit {MAX_CONCURRENT_RUNS})"
    )
    print(
        f"peak memory: {sampler.peak_total_mb:.0f} MB for the whole deployment, "
        f"{sampler.peak_process_mb:.0f} MB for the largest process"
    )
    print(
        f"missing: {len(missing)} {missing[:5]}; laid out twice: {len(twice)} {twice[:5]}; "
        f"API layouts not fetched byte for byte: {len(not_fetched)} {not_fetched[:5]}"
    )
    ok = (
        not missing
        and not twice
        and not not_fetched
        and max_in_progress <= MAX_CONCURRENT_RUNS
        and elapsed <= args.budget
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
