"""Reaction of the whole controller over loopback, and its cost.

    .venv/bin/python benchmarks/bench_reaction.py [--steps 30]

1. Household step on the meter server -> cut frame received at the charge point, at poll
   0.25 s, split into poll delay (step -> sample decoded by the controller) and controller
   time (sample decoded -> cut frame received by the charge point, which includes the
   loopback hop). The controller runs in this process so the decoded moment is exact; the
   charge points (ocpp package clients) run here too, on the same event loop, which makes
   the controller figures pessimistic.
2. With 50 charge points connected: step -> the last affected charge point received its cut.
3. A real `evfuse run` process with 10 charge points: CPU time per control cycle (its whole
   CPU time, OCPP and Modbus included, divided by its cycles) and resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import statistics
import sys
import tempfile
import time
import tomllib

from controller.config import parse_config
from controller.runtime import Controller
from controller.sim.chargepoint import SimOptions
from controller.sim.live_site import LiveSite, SimCharger

from percentiles import pct

CONTROL = """
[control]
ramp_up_delay_s = 0.3
ramp_up_step_a = 32
ramp_up_interval_s = 0.1
restart_delay_s = 1
response_s = 1
"""


async def reaction(n_chargers: int, steps: int, fuse_a: float, max_a: float = 16.0) -> dict[str, list[float]]:
    chargers = tuple(SimCharger(f"cp{i:02d}", "ABC", SimOptions(version="1.6", car_max_a=max_a), max_a=max_a)
                     for i in range(n_chargers))
    site = LiveSite(chargers=chargers, base_load_a=(1.0, 1.0, 1.0))
    out = {"poll": [], "controller": [], "total": []}
    controller = None
    try:
        port = await site.start_meter()
        config = parse_config(tomllib.loads(site.config(port, fuse_a=fuse_a, extra=CONTROL)), "bench")
        controller = Controller(config)
        decoded: list[float] = []
        original = controller._on_sample

        def on_sample(sample):  # timestamp the first sample that shows the step
            if watching and sample.current_a[0] > threshold and not decoded:
                decoded.append(time.perf_counter())
            original(sample)

        controller.meter.on_sample = on_sample
        watching, threshold = False, 1e9
        await controller.start()
        await site.start_chargers(controller.ocpp_port)
        points = list(site.points.values())
        high = max_a  # every charger at its max before each step (the fuse leaves room)
        for _ in range(steps):
            await wait_for(lambda: all(cp.composite_limit_a() and cp.composite_limit_a() >= high - 0.05
                                       for cp in points) and site.meter_a[0] > n_chargers * (high - 0.1), 30)
            await asyncio.sleep(0.3)  # let the meter settle at the high level
            seen = [len(cp.requests) for cp in points]
            decoded.clear()
            threshold = site.meter_a[0] + fuse_a * 0.3
            watching = True
            step_at = time.perf_counter()
            site.household = lambda t: (fuse_a * 0.5, 0.0, 0.0)
            site._update_meter()
            await wait_for(lambda: all(any(is_cut(r, high) for r in cp.requests[k:])
                                       for cp, k in zip(points, seen)), 10)
            watching = False
            received = max(min(r.frame_at for r in cp.requests[k:] if is_cut(r, high))
                           for cp, k in zip(points, seen))
            out["poll"].append(decoded[0] - step_at)
            out["controller"].append(received - decoded[0])
            out["total"].append(received - step_at)
            site.household = lambda t: (0.0, 0.0, 0.0)
    finally:
        if controller is not None:
            await controller.stop()
        await site.stop()
    return out


def is_cut(request, high: float) -> bool:
    """An accepted amps profile whose first period is below `high` (the dynamic limit cut)."""
    schedule = request.profile["chargingSchedule"]
    schedule = schedule[0] if isinstance(schedule, list) else schedule
    limit = float(schedule["chargingSchedulePeriod"][0]["limit"])
    return request.accepted and schedule.get("chargingRateUnit") == "A" and limit < high - 0.05 \
        and request.profile.get("stackLevel", 0) > 0  # not the base (fallback) profile


async def wait_for(predicate, timeout: float) -> None:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(0.01)


async def service_cost(seconds: float) -> tuple[float, float, int]:
    """CPU ms per cycle and RSS MiB of a real `evfuse run` with 10 charge points."""
    chargers = tuple(SimCharger(f"cp{i}", "ABC", SimOptions(version="1.6")) for i in range(10))
    site = LiveSite(chargers=chargers)
    with tempfile.TemporaryDirectory() as tmp:
        port = await site.start_meter()
        path = os.path.join(tmp, "evfuse.toml")
        with open(path, "w") as f:
            f.write(site.config(port, fuse_a=200))
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "controller", "run", "--config", path,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            ocpp_port = None
            while ocpp_port is None:
                line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
                m = re.search(r"listening on [\d.]+:(\d+)", line)
                ocpp_port = int(m.group(1)) if m else None
            drain = asyncio.create_task(proc.stderr.read())
            await site.start_chargers(ocpp_port)
            await asyncio.sleep(5)  # past start-up and the first ramps
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            rss = rss_mib(proc.pid)
            cycles = (t1 - t0) / 0.25  # one cycle per meter sample at poll 0.25 s
            return (cpu1 - cpu0) / cycles * 1000, rss, 10
        finally:
            proc.terminate()
            await proc.wait()
            drain.cancel()
            await site.stop()


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def row(name: str, values: list[float], target: str = "") -> str:
    ms = [v * 1000 for v in values]
    return f"| {name} | {statistics.median(ms):.1f} | {pct(ms, 0.99):.1f} | {target} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    logging.getLogger().addHandler(logging.NullHandler())  # the in-process controller's log
    one = asyncio.run(reaction(1, args.steps, fuse_a=25))
    # 50 x 8 A plus the step stays under the meter's 1000 A plausibility bound.
    fifty = asyncio.run(reaction(50, max(5, args.steps // 3), fuse_a=500, max_a=8.0))
    cpu_ms, rss, _ = asyncio.run(service_cost(20))
    print(f"| measurement (poll 0.25 s, {args.steps} steps) | median ms | p99 ms | target |")
    print("| --- | ---: | ---: | --- |")
    print(row("step -> sample decoded (poll delay)", one["poll"]))
    print(row("sample decoded -> cut frame at the charge point (controller)", one["controller"], "p99 < 50 ms"))
    print(row("step -> cut frame at the charge point", one["total"], "p99 < 300 ms"))
    print(row("50 charge points: step -> last one received its cut", fifty["total"], "< 1 s"))
    print(row("50 charge points: sample decoded -> last cut received", fifty["controller"]))
    print(f"\n`evfuse run` with 10 charge points: {cpu_ms:.2f} ms CPU per control cycle, {rss:.0f} MiB resident")


if __name__ == "__main__":
    main()
