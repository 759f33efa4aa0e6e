"""One control decision (fast path included) for 10, 100 and 1000 chargers.

    .venv/bin/python benchmarks/bench_core.py

Sites are built to make the allocator work: a 3-phase site with a mix of 3-phase and
1-phase chargers on rotated wirings, circuits of 10 chargers, priorities and weights,
measured draws, and every other sample an overload on phase A (the fast path) so
decisions alternate between cutting and holding. One untimed warm-up decision first (the
start-up one). Prints median and p99 in a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tomllib

from controller.config import parse_config
from controller.core.decide import decide, initial_state
from controller.core.site import SiteModel
from controller.model import CarState, ChargerReading, MeterSample

WIRINGS = ["ABC", "BCA", "CAB", "A", "B", "C"]


def build_site(n: int, seed: int = 1) -> SiteModel:
    rnd = random.Random(seed)
    fuse = min(1000, max(25, n * 4))
    lines = ["[site]", f"fuse_a = {fuse}", '[meter]', 'host = "127.0.0.1"']
    for i in range(n):
        lines += ["[[charger]]", f'id = "c{i}"', f'phases = "{rnd.choice(WIRINGS)}"',
                  f"priority = {rnd.randint(1, 3)}", f"weight = {rnd.choice([1, 2])}",
                  f"max_a = {rnd.choice([16, 32])}"]
    for k in range(n // 10):
        members = ", ".join(f'"c{i}"' for i in range(k * 10, k * 10 + 10))
        lines += ["[[circuit]]", f'id = "board{k}"', "fuse_a = 63", f"chargers = [{members}]"]
    return SiteModel.from_config(parse_config(tomllib.loads("\n".join(lines)), f"bench-{n}"))


def run(n: int, decisions: int) -> list[float]:
    site = build_site(n)
    readings = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(10.0,) * len(s.wiring))
                for s in site.chargers]
    state = decide(site, initial_state(site), None, readings, 0.0).state
    # Untimed warm-up: the first decision after start takes every charger out of fallback
    # at once, a one-off (24 ms at 1000 chargers) rather than the steady state measured here.
    household = site.limit_a * 0.3
    load = [household + sum(10.0 for s in site.chargers if p in s.phase_idx) for p in range(3)]
    state = decide(site, state, MeterSample(0.5, tuple(load)), readings, 0.5).state
    gc.collect()
    gc.freeze()  # as Controller.start() does once the service is up
    household = site.limit_a * 0.3
    times = []
    for k in range(decisions):
        t = 1.0 + k * 0.25
        load = [household + sum(10.0 for s in site.chargers if p in s.phase_idx) for p in range(3)]
        if k % 2:
            load[0] += site.limit_a * 0.2  # a step on phase A: the fast path cuts
        sample = MeterSample(t, tuple(load))
        start = time.perf_counter()
        d = decide(site, state, sample, readings, t)
        times.append(time.perf_counter() - start)
        state = d.state
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=400)
    args = parser.parse_args()
    print("| chargers | median ms | p99 ms | target |")
    print("| ---: | ---: | ---: | --- |")
    for n, target in ((10, "< 1 ms"), (100, ""), (1000, "< 20 ms")):
        count = args.decisions if n < 1000 else max(50, args.decisions // 4)
        times = sorted(run(n, count))
        median = statistics.median(times) * 1000
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
        print(f"| {n} | {median:.3f} | {p99:.3f} | {target} |")


if __name__ == "__main__":
    main()
