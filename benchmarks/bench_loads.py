"""Switchable loads: how fast an overload switches a boiler off, and what loads cost decide().

    .venv/bin/python benchmarks/bench_loads.py [--steps 20]

1. Household step on the meter server -> Switch.Set on=false received by the Shelly emulator
   (a real aiohttp server), with the controller in this process (poll 0.25 s): the meter's
   poll delay plus the controller's decision and its HTTP request over loopback.
2. decide() on a site of 40 loads: 40 chargers, against 20 chargers + 20 switchable loads
   (a household that steps so both shed and switch), median and p99 per decision.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import tomllib

from controller.config import parse_config
from controller.core.decide import decide, initial_state
from controller.core.site import SiteModel
from controller.model import CarState, ChargerReading, MeterSample
from controller.runtime import Controller
from controller.sim.live_site import LiveSite
from controller.sim.shelly import SimShelly

from percentiles import pct

CONTROL = """
[control]
ramp_up_delay_s = 0.3
ramp_up_step_a = 32
ramp_up_interval_s = 0.1
restart_delay_s = 1
response_s = 1
"""


async def reaction(steps: int) -> list[float]:
    shelly = SimShelly(power_w=3000)
    calls: list[tuple[float, str, dict]] = []
    real_call = shelly.call

    def timed(method, params):
        calls.append((time.monotonic(), method, dict(params)))
        return real_call(method, params)

    shelly.call = timed
    port = await shelly.start()
    site = LiveSite(chargers=())
    site.extra_loads.append(lambda: (shelly.draw_a(), 0.0, 0.0))
    controller = None
    out = []
    try:
        meter_port = await site.start_meter()
        boiler = f'[[load]]\nid = "boiler"\ndriver = "shelly"\nhost = "127.0.0.1"\nport = {port}\npower_w = 3000\n'
        config = parse_config(tomllib.loads(site.config(meter_port, extra=CONTROL + boiler)), "bench")
        controller = Controller(config)
        await controller.start()
        for _ in range(steps):
            site.household = lambda t: (0.0, 0.0, 0.0)
            while not shelly.is_on():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)
            seen = len(calls)
            step_at = time.monotonic()
            site.household = lambda t: (12.0, 0.0, 0.0)  # 3 + 12 + 13 A on a 24 A limit
            while not any(m == "Switch.Set" and p.get("on") == "false" for _, m, p in calls[seen:]):
                await asyncio.sleep(0.002)
            at = next(t for t, m, p in calls[seen:] if m == "Switch.Set" and p.get("on") == "false")
            out.append(at - step_at)
    finally:
        if controller is not None:
            await controller.stop()
        await site.stop()
        await shelly.stop()
    return out


def core_cost(switches: int, total: int, decisions: int) -> list[float]:
    lines = ["[meter]", 'host = "127.0.0.1"', "[site]", "fuse_a = 400", "[control]", "ramp_up_delay_s = 0",
             "ramp_up_step_a = 80", "ramp_up_interval_s = 0.001"]
    for i in range(total - switches):
        lines += ["[[charger]]", f'id = "c{i}"', f"priority = {1 + i % 3}"]
    for i in range(switches):
        lines += ["[[load]]", f'id = "s{i}"', 'driver = "shelly"', 'host = "x"', f'phases = "{"ABC"[i % 3]}"',
                  f"power_w = {1000 + 500 * (i % 5)}", f"priority = {1 + i % 3}", "min_on_s = 20"]
    site = SiteModel.from_config(parse_config(tomllib.loads("\n".join(lines)), "bench"))
    state = initial_state(site)
    limits = [0.0] * len(site.chargers)
    times = []
    for k in range(decisions):
        t = k * 0.25
        household = 250.0 if (k // 200) % 2 else 100.0
        meter = [household] * 3
        readings = []
        for spec, lim in zip(site.chargers, limits):
            for p in spec.phase_idx:
                meter[p] += lim
            if spec.kind == "switch":
                readings.append(ChargerReading(car=CarState.CHARGING if lim > 0 else CarState.CONNECTED,
                                               acked_a=lim, draw_lines_a=(lim,)))
            else:
                readings.append(ChargerReading(car=CarState.CHARGING, acked_a=lim, draw_lines_a=(lim,) * 3))
        start = time.perf_counter()
        d = decide(site, state, MeterSample(t, tuple(meter)), readings, t)
        times.append(time.perf_counter() - start)
        state = d.state
        limits = [c.limit_a for c in d.chargers]
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--decisions", type=int, default=2000)
    args = ap.parse_args()
    logging.getLogger().addHandler(logging.NullHandler())  # the controller logs every cut
    r = asyncio.run(reaction(args.steps))
    print(f"overload -> Shelly switched off (poll 0.25 s, {len(r)} steps): median {statistics.median(r) * 1000:.0f} ms, "
          f"p99 {pct(r, 0.99) * 1000:.0f} ms, max {max(r) * 1000:.0f} ms")
    for switches in (0, 20):
        t = core_cost(switches, 40, args.decisions)
        print(f"decide() with {40 - switches} chargers + {switches} switchable loads: "
              f"median {statistics.median(t) * 1e3:.2f} ms, p99 {pct(t, 0.99) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
