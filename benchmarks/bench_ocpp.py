"""How fast a new limit reaches OCPP chargers over loopback.

1. one charger: from `apply(limit)` to its SetChargingProfile frame written to the socket, and
   to that frame being read by the charge point;
2. 50 charge points: from applying a new limit to all of them at once (as the runtime does in
   one control cycle) until the last frame is written, and until the last one has its frame.

The central system runs here; the simulated charge points run in a child process with their
own event loop, as real chargers are separate devices. Both stamp times with
time.perf_counter() (CLOCK_MONOTONIC on Linux, shared by all processes of the machine).

    .venv/bin/python benchmarks/bench_ocpp.py [--rounds N] [--chargers N] [--version 1.6|2.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.chargers.ocpp import CentralSystem  # noqa: E402
from controller.config import ChargerConfig, Config, ControlConfig, MeterConfig, OcppConfig, SiteConfig  # noqa: E402
from controller.sim.chargepoint import SimChargePoint, SimOptions  # noqa: E402

from percentiles import median_p99_ms as stats


def config(n: int) -> Config:
    # a long lease and meter interval: no renewals or meter values in the middle of a round
    return Config(site=SiteConfig(), meter=MeterConfig(), control=ControlConfig(fallback_a=6),
                  ocpp=OcppConfig(listen="127.0.0.1:0", lease_s=600, meter_interval_s=300),
                  chargers=tuple(ChargerConfig(id=f"cp{i}") for i in range(n)))


# --------------------------------------------------------------------------- child: the chargers


def charge_points(url: str, n: int, version: str, pipe) -> None:
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_charge_points(url, n, version, pipe))


async def _charge_points(url: str, n: int, version: str, pipe) -> None:
    """Per round: on "arm" with the charger count, note what each has; report when all of
    them got one more profile, with the latest frame arrival time."""
    loop = asyncio.get_running_loop()
    sims = [SimChargePoint(f"cp{i}", url, SimOptions(version=version)) for i in range(n)]
    try:
        await asyncio.gather(*(s.start() for s in sims))
        pipe.send("started")
        while (count := await loop.run_in_executor(None, pipe.recv)) is not None:
            group = sims[:count]
            seen = [len(s.requests) for s in group]
            pipe.send("armed")
            await asyncio.gather(*(s.wait_for_profile(lambda _, s=s, k=k: len(s.requests) > k, timeout=30)
                                   for s, k in zip(group, seen)))
            pipe.send(max(s.requests[k].frame_at for s, k in zip(group, seen)))
    finally:
        await asyncio.gather(*(s.stop() for s in sims), return_exceptions=True)


# --------------------------------------------------------------------------- parent: evfuse


def watch_profile_writes(wire, written: list[float]) -> None:
    """Note when each SetChargingProfile frame has been handed to the socket."""
    send = wire.send

    async def timed_send(message: str) -> None:
        await send(message)
        if '"SetChargingProfile"' in message:
            written.append(time.perf_counter())

    wire.send = timed_send


async def run(n_chargers: int, rounds: int, version: str) -> list[tuple[str, float, float, int]]:
    loop = asyncio.get_running_loop()
    central = CentralSystem(config(n_chargers))
    port = await central.start()
    pipe, child_pipe = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=charge_points, args=(f"ws://127.0.0.1:{port}", n_chargers, version, child_pipe))
    child.start()
    try:
        assert await loop.run_in_executor(None, pipe.recv) == "started"
        drivers = list(central.drivers.values())
        while not all(d.reading(0).online for d in drivers):
            await asyncio.sleep(0.05)

        written: list[float] = []
        for d in drivers:
            watch_profile_writes(d.link.wire, written)

        async def round_trip(group, limit: float) -> tuple[float, float]:
            """(all frames written by evfuse, all frames received by the chargers), from t0."""
            pipe.send(len(group))
            assert await loop.run_in_executor(None, pipe.recv) == "armed"
            written.clear()
            t0 = time.perf_counter()
            applies = [asyncio.create_task(d.apply(limit)) for d in group]
            last_frame = await loop.run_in_executor(None, pipe.recv)
            await asyncio.gather(*applies)
            return max(written[:len(group)]) - t0, last_frame - t0

        single = [await round_trip(drivers[:1], 8 + i % 8) for i in range(rounds)]
        fleet = [await round_trip(drivers, 8 + i % 8) for i in range(rounds)]
        n = n_chargers
        return [("new limit -> frame written, 1 charger", *stats([w for w, _ in single]), rounds),
                ("new limit -> frame received, 1 charger", *stats([r for _, r in single]), rounds),
                (f"new limit -> frames written to all {n}", *stats([w for w, _ in fleet]), rounds),
                (f"new limit -> all {n} chargers received it", *stats([r for _, r in fleet]), rounds)]
    finally:
        pipe.send(None)
        await loop.run_in_executor(None, child.join, 30)
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
