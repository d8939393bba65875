"""Telemetry overhead on the layout benchmark: tracing and metrics on versus off.

Lays out the same mixed rooms (as ``scripts/bench_layout.py``) with telemetry
off, then with spans going to a batch processor over an in-memory exporter and
metrics to an in-memory reader, alternating the two modes over several rounds
so that machine noise hits both alike. Prints the median time per mode and the
overhead in percent (target: at most 5 %).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_layout import office  # noqa: E402

from ceilgrid_assets.core.engine.pipeline import EngineConfig, complete_room  # noqa: E402
from ceilgrid_assets.observability import telemetry  # noqa: E402


def lay_out(rooms: list, config: EngineConfig) -> float:
    started = time.perf_counter()
    for room in rooms:
        complete_room(room, config)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rooms", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rooms = [
        office(int(rng.integers(4, 21)), int(rng.integers(4, 21)), i) for i in range(args.rooms)
    ]
    config = EngineConfig()
    telemetry.disable()
    lay_out(rooms[:10], config)  # warm imports and caches
    off, on, spans = [], [], 0
    for _ in range(args.rounds):
        telemetry.disable()
        off.append(lay_out(rooms, config))
        exporter = InMemorySpanExporter()
        telemetry.configure({}, span_exporters=[exporter], metric_readers=[InMemoryMetricReader()])
        with telemetry.materialization("bench", run_id="bench"):
            on.append(lay_out(rooms, config))
        telemetry.get().flush()
        spans = len(exporter.get_finished_spans())
        telemetry.disable()
    base, traced = statistics.median(off), statistics.median(on)
    overhead = (traced - base) / base * 100
    print(f"{len(rooms)} rooms x {args.rounds} rounds, {spans} spans per round")
    print(f"telemetry off: {base * 1000 / len(rooms):.2f} ms/room (median {base:.3f} s)")
    print(f"telemetry on:  {traced * 1000 / len(rooms):.2f} ms/room (median {traced:.3f} s)")
    print(f"overhead: {overhead:+.1f} % (target <= 5 %)")


if __name__ == "__main__":
    main()
