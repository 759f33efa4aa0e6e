"""How fast a new limit reaches OCPP chargers over loopback.

1. one charger: from `apply(limit)` to the SetChargingProfile frame arriving at the charge point;
2. 50 charge points: from applying a new limit to all of them at once (as the runtime does in
   one control cycle) until the last one has its frame.

The simulated charge points run in the same process (same event loop and cores) as the
central system, so the figures include their work too: a real site is faster than this.

    .venv/bin/python benchmarks/bench_ocpp.py [--rounds N] [--chargers N] [--version 1.6|2.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.chargers.ocpp import CentralSystem  # noqa: E402
from controller.config import ChargerConfig, Config, ControlConfig, MeterConfig, OcppConfig, SiteConfig  # noqa: E402
from controller.sim.chargepoint import SimChargePoint, SimOptions  # noqa: E402


def config(n: int) -> Config:
    return Config(site=SiteConfig(), meter=MeterConfig(), control=ControlConfig(fallback_a=6),
                  ocpp=OcppConfig(listen="127.0.0.1:0", lease_s=600, meter_interval_s=60),
                  chargers=tuple(ChargerConfig(id=f"cp{i}") for i in range(n)))


def stats(samples_s: list[float]) -> tuple[float, float]:
    ms = sorted(x * 1000 for x in samples_s)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return statistics.median(ms), p99


async def received(sim: SimChargePoint, count: int) -> float:
    """Wait until the sim has seen `count` SetChargingProfile requests; frame time of the last."""
    r = await sim.wait_for_profile(lambda _: len(sim.requests) >= count, timeout=30)
    return sim.requests[count - 1].frame_at if r else 0.0


async def run(n_chargers: int, rounds: int, version: str) -> list[tuple[str, float, float, int]]:
    central = CentralSystem(config(n_chargers))
    port = await central.start()
    sims = [SimChargePoint(f"cp{i}", f"ws://127.0.0.1:{port}", SimOptions(version=version))
            for i in range(n_chargers)]
    try:
        await asyncio.gather(*(s.start() for s in sims))
        for cp_id, d in central.drivers.items():
            while not d.reading(0).online:
                await asyncio.sleep(0.05)
        one, one_sim = central.drivers["cp0"], sims[0]
        single = []
        for i in range(rounds):
            seen = len(one_sim.requests)
            t0 = time.perf_counter()
            apply = asyncio.create_task(one.apply(8 + i % 8))
            single.append(await received(one_sim, seen + 1) - t0)
            await apply
        fleet = []
        for i in range(rounds):
            seen = [len(s.requests) for s in sims]
            t0 = time.perf_counter()
            applies = [asyncio.create_task(d.apply(8 + i % 8)) for d in central.drivers.values()]
            arrivals = await asyncio.gather(*(received(s, k + 1) for s, k in zip(sims, seen)))
            fleet.append(max(arrivals) - t0)
            await asyncio.gather(*applies)
        return [("new limit -> frame at 1 charger", *stats(single), rounds),
                (f"new limit -> all {n_chargers} chargers have it", *stats(fleet), rounds)]
    finally:
        await asyncio.gather(*(s.stop() for s in sims), return_exceptions=True)
        await central.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--chargers", type=int, default=50)
    parser.add_argument("--version", choices=["1.6", "2.0.1"], default=None, help="default: both")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print("| OCPP | measurement | median | p99 | rounds |")
    print("|---|---|---|---|---|")
    for version in [args.version] if args.version else ["1.6", "2.0.1"]:
        for name, median, p99, rounds in asyncio.run(run(args.chargers, args.rounds, version)):
            print(f"| {version} | {name} | {median:.1f} ms | {p99:.1f} ms | {rounds} |")


if __name__ == "__main__":
    main()
