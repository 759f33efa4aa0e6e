"""Convergence of the pure core in simulated time (not a timed test: no wall clock involved).

    .venv/bin/python benchmarks/bench_convergence.py [--seeds 50]

(a) ramp: one 3-phase charger, its car plugged in drawing the 6 A fallback when evfuse
    starts, plenty of room; ramp_up_step_a 4, ramp_up_interval_s 5, ramp_up_delay_s 15,
    response_s 5; the charger reports per line only every 60 s (first report at a random
    offset). Time until the car draws 16 A. Target: 15 + 3 x 5 + response_s = 35 s.
(b) step down: three chargers share what a 20 A household leaves on a 3 x 40 A site
    (margin 1: 6.3 A each); the household steps down to 3 A. Time until every car draws its
    new share (12 A, within 0.1 A). Chargers report every 10-60 s. Target:
    ramp_up_delay_s + ramp time + response_s, ramp time = ceil(rise / step) x interval.
    Reported within 0.1 A and within the dead band (0.5 A: a raise smaller than that is not
    worth a command, so a limit a little below its share may stay there); and once more with
    chargers that answer an asked report (OCPP TriggerMessage MeterValues) after 1 s.

Per seed the cars' response (0.5-4.5 s) and the report offsets vary; the link latency is
0.2 s; the meter is polled every 0.25 s. Prints median, p99 and the worst case against the
target, and how many runs never got there within the horizon.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.config import parse_config  # noqa: E402
from controller.core.site import SiteModel  # noqa: E402
from controller.sim.offline.cars import CarPlan, Metering, SimCharger  # noqa: E402
from controller.sim.offline.household import StepHousehold  # noqa: E402
from controller.sim.offline.loop import ClosedLoop  # noqa: E402

DT = 0.25
LATENCY_S = 0.2
CONTROL = "[control]\nramp_up_delay_s = 15\nramp_up_step_a = 4\nramp_up_interval_s = 5\nresponse_s = 5\n"


def site(text: str) -> SiteModel:
    return SiteModel.from_config(parse_config(tomllib.loads('[meter]\nhost = "x"\n' + CONTROL + text),
                                              "bench.toml"))


def loop_of(s: SiteModel, household, delays: list[float], metering: list[Metering]) -> ClosedLoop:
    chargers = [SimCharger(spec, [CarPlan(spec.id, -30.0, 1e9, 500.0, delay_s=d)], s.voltage_v, m,
                           s.fallback_a(spec), fallback_a=s.fallback_a(spec))
                for spec, d, m in zip(s.chargers, delays, metering)]
    return ClosedLoop(s, StepHousehold(household), chargers, DT, LATENCY_S)


def time_until(loop: ClosedLoop, done, start_s: float, horizon_s: float) -> float:
    """Seconds from start_s until done(loop) first holds (inf: not within the horizon)."""
    k = 0
    while k * DT <= start_s + horizon_s:
        loop.step(k * DT)
        if k * DT >= start_s and done(loop):
            return k * DT - start_s
        k += 1
    return math.inf


def ramp(seed: int) -> float:
    rnd = random.Random(f"ramp-{seed}")
    s = site('[site]\nfuse_a = 40\n[[charger]]\nid = "a"\n')
    loop = loop_of(s, [(0.0, (2.0, 2.0, 2.0))], [rnd.uniform(0.5, 4.5)],
                   [Metering("lines", 60.0, offset_s=round(rnd.uniform(0, 60), 2))])
    return time_until(loop, lambda lp: lp.chargers[0].draw_a >= 16.0 - 1e-9, 0.0, 600.0)


def step_down(seed: int, within_a: float = 0.1, answers_s: float | None = None) -> float:
    rnd = random.Random(f"step-{seed}")
    s = site('[site]\nfuse_a = 40\nmargin_a = 1\n' +
             "".join(f'[[charger]]\nid = "c{i}"\nmax_a = 16\n' for i in range(3)))
    at = 120.0
    share = (s.limit_a - 3.0) / 3
    metering = []
    for _ in range(3):
        every = rnd.choice([10.0, 30.0, 60.0])
        metering.append(Metering("lines", every, offset_s=round(rnd.uniform(0, every), 2), answers_s=answers_s))
    loop = loop_of(s, [(0.0, (20.0,) * 3), (at, (3.0,) * 3)], [rnd.uniform(0.5, 4.5) for _ in range(3)],
                   metering)
    return time_until(loop, lambda lp: all(abs(ch.draw_a - share) <= within_a + 1e-9 for ch in lp.chargers), at, 600.0)


def summary(name: str, target: float, times: list[float]) -> str:
    got = sorted(t for t in times if math.isfinite(t))
    missed = len(times) - len(got)
    if not got:
        return f"| {name} | {target:.0f} | - | - | - | {missed}/{len(times)} |"
    p99 = got[min(len(got) - 1, math.ceil(0.99 * len(got)) - 1)] if not missed else math.inf
    worst = got[-1] if not missed else math.inf
    fmt = lambda x: "never" if math.isinf(x) else f"{x:.1f}"  # noqa: E731
    return (f"| {name} | {target:.0f} | {statistics.median(times):.1f} | {fmt(p99)} | {fmt(worst)} "
            f"| {missed}/{len(times)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50)
    args = ap.parse_args()
    seeds = range(1, args.seeds + 1)
    ctl = site('[site]\nfuse_a = 40\n[[charger]]\nid = "a"\n').control
    ramp_target = ctl.ramp_up_delay_s + 3 * ctl.ramp_up_interval_s + ctl.response_s
    rise = (39.0 - 3.0) / 3 - (39.0 - 20.0) / 3
    step_target = ctl.ramp_up_delay_s + math.ceil(rise / ctl.ramp_up_step_a) * ctl.ramp_up_interval_s \
        + ctl.response_s
    print(f"convergence in simulated time, {len(seeds)} seeds, meter every {DT} s, "
          f"link latency {LATENCY_S} s")
    print("| case | target s | median s | p99 s | worst s | never reached |")
    print("|---|---:|---:|---:|---:|---:|")
    print(summary("(a) ramp 6 -> 16 A, reports every 60 s", ramp_target, [ramp(s) for s in seeds]))
    print(summary("(b) step down 20 -> 3 A, 3 chargers to 12 A", step_target, [step_down(s) for s in seeds]))
    print(summary(f"(b) the same, within the dead band ({ctl.dead_band_a:g} A)", step_target,
                  [step_down(s, ctl.dead_band_a) for s in seeds]))
    print(summary(f"(b) the same, chargers answer an asked report in 1 s ({ctl.dead_band_a:g} A)", step_target,
                  [step_down(s, ctl.dead_band_a, answers_s=1.0) for s in seeds]))


if __name__ == "__main__":
    main()
