"""One control decision when the loads are the connectors of twin chargers: 10, 100 and 1000
connectors (5, 50, 500 twins, each with its own max_a circuit, under circuits of 5 twins),
beside bench_core.py's sites of as many single chargers: what the charger caps cost.

    .venv/bin/python benchmarks/bench_twins.py

Same load as bench_core.py (measured draws, every other sample an overload on phase A,
one untimed warm-up). Prints median and p99 in a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tomllib

import bench_core
from controller import gc_policy
from controller.config import parse_config
from controller.core.decide import decide, initial_state
from controller.core.site import SiteModel
from controller.model import CarState, ChargerReading, MeterSample

WIRINGS = ["ABC", "BCA", "CAB", "A", "B", "C"]


def build_twins(n: int, seed: int = 1) -> SiteModel:
    rnd = random.Random(seed)
    fuse = min(1000, max(25, n * 4))
    lines = ["[site]", f"fuse_a = {fuse}", "[meter]", 'host = "127.0.0.1"']
    for i in range(n // 2):
        lines += ["[[charger]]", f'id = "t{i}"', f"max_a = {rnd.choice([20, 32])}"]
        for k in (1, 2):
            lines += ["[[charger.connector]]", f"id = {k}", f'phases = "{rnd.choice(WIRINGS)}"',
                      f"priority = {rnd.randint(1, 3)}", f"weight = {rnd.choice([1, 2])}", "max_a = 16"]
    for k in range(n // 10):
        members = ", ".join(f'"t{i}"' for i in range(k * 5, k * 5 + 5))
        lines += ["[[circuit]]", f'id = "board{k}"', "fuse_a = 63", f"chargers = [{members}]"]
    return SiteModel.from_config(parse_config(tomllib.loads("\n".join(lines)), f"bench-twins-{n}"))


def run(site: SiteModel, decisions: int) -> list[float]:
    readings = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(10.0,) * len(s.wiring))
                for s in site.chargers]
    state = decide(site, initial_state(site), None, readings, 0.0).state
    household = site.limit_a * 0.3
    load = [household + sum(10.0 for s in site.chargers if p in s.phase_idx) for p in range(3)]
    state = decide(site, state, MeterSample(0.5, tuple(load)), readings, 0.5).state
    saved = gc.get_threshold()
    gc_policy.settle()  # as Controller.start() does once the service is up
    times = []
    for k in range(decisions):
        t = 1.0 + k * 0.25
        load = [household + sum(10.0 for s in site.chargers if p in s.phase_idx) for p in range(3)]
        if k % 2:
            load[0] += site.limit_a * 0.2
        start = time.perf_counter()
        state = decide(site, state, MeterSample(t, tuple(load)), readings, t).state
        times.append(time.perf_counter() - start)
    gc.unfreeze()
    gc.set_threshold(*saved)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=400)
    args = parser.parse_args()
    print("| loads | twins: median ms | p99 ms | single chargers: median ms | p99 ms |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in (10, 100, 1000):
        count = args.decisions if n < 1000 else max(50, args.decisions // 4)
        row = []
        for site in (build_twins(n), bench_core.build_site(n)):
            times = sorted(run(site, count))
            row += [statistics.median(times) * 1000, times[min(len(times) - 1, int(len(times) * 0.99))] * 1000]
        print(f"| {n} | " + " | ".join(f"{x:.3f}" for x in row) + " |")


if __name__ == "__main__":
    main()
