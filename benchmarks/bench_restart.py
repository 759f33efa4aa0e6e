"""What a controller restart does to two cars charging at 16 A (issue 10, invariant 9).

    .venv/bin/python benchmarks/bench_restart.py [--seeds 20]          # pure core, simulated time
    .venv/bin/python benchmarks/bench_restart.py --live [--runs 3]     # real `evfuse run` processes

Offline: the built-in scenario restart-two-cars (3 x 40 A, household about 2 A, two 3-phase
cars at 16 A, chargers reporting every 10 and 60 s, cars responding in 0.5-4.5 s per seed,
link latency 0.3 s), with one restart at 19:00 that is either planned (SIGTERM: the new
process resumes from core.json) or a crash (SIGKILL: the new process starts at the fallback).
Over the 5 minutes from the restart, per run: the lowest limit sent to either charger, the
seconds either car drew below 16 A, and the ampere-seconds both cars lost against a run
without restart. Prints median and p99 over the seeds.

Live: the real service on loopback (tests/e2e_kit.py: a pymodbus meter, OCPP 1.6 and 2.0.1
charge points built with the ocpp package), the default [control] ramp (ramp_up_delay_s 15,
4 A every 5 s), both cars at 16 A, then SIGTERM and a new process, or SIGKILL and a new
process; the charge points reconnect as soon as it listens.
Per run: the lowest limit either charge point enforced and the seconds either car drew
below 16 A, sampled every 50 ms, until both are back at 16 A.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.sim.offline.loop import build  # noqa: E402
from controller.sim.offline.scenario import load_scenario  # noqa: E402

from percentiles import p99

WINDOW_S = 300.0
FULL_A = 16.0


def offline_run(kind: str, seed: int) -> tuple[float, float, float]:
    scn = load_scenario("restart-two-cars")
    restart_s = scn.restarts_s[0]
    scn = dataclasses.replace(scn, seed=seed, restarts_s=(restart_s,) if kind == "planned" else (),
                              crashes_s=(restart_s,) if kind == "crash" else (),
                              duration_s=restart_s + WINDOW_S)
    import random
    rng = random.Random(seed)
    scn = dataclasses.replace(scn, cars=tuple(dataclasses.replace(c, delay_s=rng.uniform(0.5, 4.5))
                                              for c in scn.cars))
    loop = build(scn)
    lowest, below, lost = [FULL_A], [0.0], [0.0]

    def hook(lp, now):
        if now < restart_s:
            return
        lowest[0] = min([lowest[0]] + [c.limit_a for c in lp.decision.chargers])
        if any(ch.draw_a < FULL_A - 1e-6 for ch in lp.chargers):
            below[0] += lp.dt
        lost[0] += sum(max(0.0, FULL_A - ch.draw_a) for ch in lp.chargers) * lp.dt

    loop.on_step = hook
    loop.run(int(round(scn.duration_s / scn.step_s)))
    return lowest[0], below[0], lost[0]


def offline(seeds: int) -> None:
    print(f"offline, scenario restart-two-cars, {seeds} seeds, the {WINDOW_S:.0f} s after the restart")
    print(f"{'restart':10}{'lowest limit A':>22}{'s below 16 A':>22}{'A s lost':>22}")
    print(f"{'':10}{'median / worst':>22}{'median / p99':>22}{'median / p99':>22}")
    for kind in ("none", "planned", "crash"):
        runs = [offline_run(kind, seed) for seed in range(seeds)]
        low, below, lost = zip(*runs)
        print(f"{kind:10}{statistics.median(low):>14.1f} / {min(low):<5.1f}"
              f"{statistics.median(below):>14.1f} / {p99(below):<5.1f}"
              f"{statistics.median(lost):>14.0f} / {p99(lost):<5.0f}")


DEFAULT_CONTROL = "[control]\nfallback_a = 6\n"  # the default ramp: 15 s hold, 4 A every 5 s


async def live_run(sig: int, extra: str = "stop_lease_s = 30") -> tuple[float, float, float]:
    sys.path.insert(0, str(ROOT / "tests"))
    from e2e_kit import Service  # the test kit: real process, real peers, all torn down

    from controller.sim.chargepoint import SimOptions
    from controller.sim.live_site import SimCharger

    two = (SimCharger("a", "ABC", SimOptions(version="1.6", response_delay_s=1.0)),
           SimCharger("b", "ABC", SimOptions(version="2.0.1", response_delay_s=1.0)))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["STATE_DIRECTORY"] = tmp
        async with Service(two, control=DEFAULT_CONTROL, tmp_path=tmp, fuse_a=36, ocpp_extra=extra) as svc:
            await svc.steady(lambda: all(svc.limit(c) == FULL_A and svc.draw(c) == FULL_A for c in "ab"),
                             "both at 16 A", 2.0, timeout=90)
            lowest, below = FULL_A, 0.0
            started = time.monotonic()
            if sig == signal.SIGKILL:
                svc.proc.kill()
                await svc.proc.wait()
            else:
                await svc.signal(sig)
            restart = asyncio.ensure_future(svc.start_again())
            back_since = None
            while True:
                for c in "ab":
                    lowest = min(lowest, svc.limit(c) or 0.0)
                if any(svc.draw(c) < FULL_A for c in "ab"):
                    below += 0.05
                    back_since = None
                elif restart.done():
                    back_since = back_since or time.monotonic()
                    if time.monotonic() - back_since >= 5.0:
                        break
                if time.monotonic() - started > 300:
                    raise RuntimeError("both cars not back at 16 A within 300 s")
                await asyncio.sleep(0.05)
            await restart
            return lowest, below, time.monotonic() - started - 5.0


def live(runs: int) -> None:
    print(f"live: real `evfuse run` processes, {runs} run(s) each")
    print(f"{'restart':10}{'lowest limit A':>16}{'s below 16 A':>16}{'s until both at 16 A':>24}")
    for name, sig in (("SIGTERM", signal.SIGTERM), ("SIGKILL", signal.SIGKILL)):
        for _ in range(runs):
            low, below, back = asyncio.run(live_run(sig))
            print(f"{name:10}{low:>16.1f}{below:>16.1f}{back if below else 0.0:>24.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--live", action="store_true")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    if args.live:
        live(args.runs)
    else:
        offline(args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
