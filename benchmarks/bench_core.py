"""One control decision for 10, 100 and 1000 chargers: normal samples and overloads apart.

    .venv/bin/python benchmarks/bench_core.py [--decisions N] [--repeat K] [--clock cpu]

Sites are built to make the allocator work: a 3-phase site with a mix of 3-phase and
1-phase chargers on rotated wirings, circuits of 10 chargers, priorities and weights. The
loop is closed: every car draws the limit it was given (reported per line, live) and the
meter reads the household plus those draws, so a normal sample is within the limits (the
plan fits, the household moves a little) and the allocator shares, ramps and holds. Every
other sample is also decided as an overload would be, from the same state: a household step
on phase A that takes the site a tenth of its limit over it, which the decision cuts at once
(the fast path); that decision is timed and set aside, the loop goes on with the normal one.
Two untimed warm-up decisions first (start-up: every charger leaves its fallback at once).
Every charger reports on every sample there, the costliest case for the draw model; one more
row at 1000 chargers ("reports every 10 s") has each charger report every 10 s, staggered, its
last report standing in between with its time (draw_at), as the drivers hand them over: what a
site of chargers that report every 10-60 s costs (only the normal samples of that run).
Prints median and p99 of each kind of sample, and of both together, in a markdown table;
with --repeat K, each figure as the lowest and highest of K runs. On a shared machine the
wall clock counts the time other processes hold the cores; --clock cpu times this process's
CPU only.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tomllib

from controller import gc_policy
from controller.config import parse_config
from controller.core.decide import decide, initial_state
from controller.core.site import SiteModel
from controller.model import CarState, ChargerReading, MeterSample
from percentiles import median_p99_ms

WIRINGS = ["ABC", "BCA", "CAB", "A", "B", "C"]


def build_site(n: int, seed: int = 1) -> SiteModel:
    rnd = random.Random(seed)
    fuse = min(1000, max(40, n * 8))  # 10, 100: most cars share; 1000: the fuse sheds most
    lines = ["[site]", f"fuse_a = {fuse}", '[meter]', 'host = "127.0.0.1"']
    for i in range(n):
        lines += ["[[charger]]", f'id = "c{i}"', f'phases = "{rnd.choice(WIRINGS)}"',
                  f"priority = {rnd.randint(1, 3)}", f"weight = {rnd.choice([1, 2])}",
                  f"max_a = {rnd.choice([16, 32])}"]
    for k in range(n // 10):
        members = ", ".join(f'"c{i}"' for i in range(k * 10, k * 10 + 10))
        lines += ["[[circuit]]", f'id = "board{k}"', "fuse_a = 63", f"chargers = [{members}]"]
    return SiteModel.from_config(parse_config(tomllib.loads("\n".join(lines)), f"bench-{n}"))


def _inputs(site: SiteModel, limits: list[float], household: list[float], t: float,
            over: bool, reports: "_Reports | None" = None) -> tuple[MeterSample, list[ChargerReading]]:
    """The closed loop: each car draws its limit on its lines; the meter sums them up. With
    `over`, a household step on phase A takes the site a tenth of its limit over it. With
    `reports`, each charger's reading is its last periodic report."""
    load = list(household)
    readings = []
    for spec, limit in zip(site.chargers, limits):
        for p in spec.line_phase:
            load[p] += limit
        readings.append(ChargerReading(car=CarState.CHARGING, draw_lines_a=(limit,) * len(spec.wiring)))
    if over:
        load[0] = site.limit_a * 1.1
    if reports is not None:
        readings = reports.at(t, readings)
    return MeterSample(t, tuple(load)), readings


class _Reports:
    """Each charger reports every `every` s, staggered: in between, its last report stands
    (the same reading, with the time it was taken)."""

    def __init__(self, n: int, every: float):
        self.every = every
        self.due = [every * i / n for i in range(n)]
        self.last: list[ChargerReading | None] = [None] * n

    def at(self, t: float, live: list[ChargerReading]) -> list[ChargerReading]:
        for i, r in enumerate(live):
            if self.last[i] is None or t >= self.due[i]:
                self.last[i] = ChargerReading(car=r.car, draw_lines_a=r.draw_lines_a, draw_at=t)
                while self.due[i] <= t:
                    self.due[i] += self.every
        return list(self.last)


def run(n: int, decisions: int, clock=time.perf_counter,
        report_every: float = 0.0) -> tuple[list[float], list[float], int]:
    """Decision times of normal samples, and of overload samples: from the same state every
    other step, the decision an overload would get (timed, then set aside: decide() is a pure
    function, the loop goes on with the normal sample). And how many normal samples the
    household's noise took over a limit (by a fraction of an amp, on a site planned full)."""
    site = build_site(n)
    rnd = random.Random(n)
    reports = _Reports(n, report_every) if report_every > 0 else None
    household = [site.limit_a * 0.3] * 3
    limits = [10.0] * len(site.chargers)
    sample, readings = _inputs(site, limits, household, 0.0, False, reports)
    # Untimed warm-up: the first decisions after start take every charger out of fallback at
    # once, a one-off rather than the steady state measured here.
    state = decide(site, initial_state(site), None, readings, 0.0).state
    d = decide(site, state, sample, readings, 0.5)
    state, limits = d.state, [c.limit_a for c in d.chargers]
    saved = gc.get_threshold()
    gc_policy.settle()  # as Controller.start() does once the service is up
    normal, overload, crossed = [], [], 0
    for k in range(decisions):
        t = 1.0 + k * 0.25
        household = [max(0.0, h + rnd.gauss(0.0, 0.2)) for h in household]  # household noise
        if k % 2:
            sample, readings = _inputs(site, limits, household, t, True, reports)
            start = clock()
            d = decide(site, state, sample, readings, t)
            overload.append(clock() - start)
            assert d.overloads, "an overload sample must be over a limit"
        sample, readings = _inputs(site, limits, household, t, False, reports)
        start = clock()
        d = decide(site, state, sample, readings, t)
        normal.append(clock() - start)
        if d.overloads:
            crossed += 1
        state, limits = d.state, [c.limit_a for c in d.chargers]
    gc.unfreeze()
    gc.set_threshold(*saved)
    return normal, overload, crossed


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if len(values) == 1 else f"{lo:.2f}-{hi:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (shows the spread)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    notes: list[str] = []
    print("| chargers | samples | median ms | p99 ms | target |")
    print("| ---: | --- | ---: | ---: | --- |")
    for n, target in ((10, "< 1 ms"), (100, ""), (1000, "p99 < 20 ms")):
        count = args.decisions if n < 1000 else max(100, args.decisions // 2)  # 1000: 200 + 100 timed
        figures: dict[str, list[tuple[float, float]]] = {"normal": [], "overload": [], "both": []}
        crossed_in: list[int] = []
        for _ in range(args.repeat):
            normal, overload, crossed = run(n, count, time.perf_counter if args.clock == "wall" else time.process_time)
            crossed_in.append(crossed)
            for kind, times in (("normal", normal), ("overload", overload), ("both", normal + overload)):
                figures[kind].append(median_p99_ms(times))
        for kind, runs in figures.items():
            print(f"| {n} | {kind} | {_span([m for m, _ in runs])} | {_span([p for _, p in runs])} | "
                  f"{target if kind == 'both' else ''} |")
        notes.append(f"{n} chargers: {max(crossed_in)} of {count}")
        if n == 1000:
            runs = [median_p99_ms(run(n, count, time.perf_counter if args.clock == "wall" else time.process_time,
                                      report_every=10.0)[0]) for _ in range(args.repeat)]
            print(f"| {n} | normal, reports every 10 s | {_span([m for m, _ in runs])} | "
                  f"{_span([p for _, p in runs])} | |")
    print("\nnormal samples the household's noise took slightly over a limit (cut as any overload): "
          + "; ".join(notes))


if __name__ == "__main__":
    main()
