"""Does the web page hold up the control loop? Control-cycle time with five live pages against none.

    .venv/bin/python benchmarks/bench_web.py [--seconds 45]

The controller, its web page and a simulated site of 10 OCPP charge points (ocpp package
clients, meter polled every 0.25 s) run in this process, as in `evfuse run`; the web page's
history is filled with 6 h of 10 chargers first, so every page load exports the whole ring.
The five "browsers" run in another process, like real ones: each loads the page, its assets,
/api/status and /api/history, listens to /api/events, and reloads everything every 20 s.

Printed (median and p99):
- control cycle: the time one `_cycle` takes (decide, log, send), with 0 and with 5 pages;
- loop lag: how late a 5 ms timer fires, i.e. how long anything else (the web server
  included) holds the event loop that the meter samples wait on;
- the sampler's second (snapshot, history, one encode for all pages) and one export of a
  full 6 h history.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import time
import tomllib

from controller.config import WebConfig, parse_config
from controller.runtime import Controller
from controller.sim.chargepoint import SimOptions
from controller.sim.live_site import LiveSite, SimCharger
from controller.web.history import SIX_HOURS_S
from controller.web.server import WebServer

CLIENTS = 5
CONTROL = """
[control]
ramp_up_delay_s = 2
ramp_up_step_a = 8
ramp_up_interval_s = 1
"""

BROWSERS = r"""
import asyncio, sys
import aiohttp

from percentiles import pct

URL, N = sys.argv[1], int(sys.argv[2])

async def browser(session):
    while True:
        for path in ("", "static/app.js", "static/app.css", "api/session", "api/status", "api/history"):
            async with session.get(URL + path) as r:
                await r.read()
        try:
            async with session.get(URL + "api/events") as r:
                async with asyncio.timeout(20):
                    async for _ in r.content:
                        pass
        except TimeoutError:
            pass

async def main():
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(browser(session) for _ in range(N)))

asyncio.run(main())
"""


def row(what: str, values: list[float], unit: str = "ms", scale: float = 1000) -> str:
    return (f"| {what} | {statistics.median(values) * scale:.2f} {unit} | {pct(values, 0.99) * scale:.2f} {unit} "
            f"| {len(values)} |")


async def measure(controller: Controller, seconds: float) -> tuple[list[float], list[float]]:
    cycles: list[float] = []
    lags: list[float] = []
    original = controller._cycle

    def timed() -> None:
        t = time.perf_counter()
        original()
        cycles.append(time.perf_counter() - t)

    controller._cycle = timed
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)
    finally:
        controller._cycle = original
    return cycles, lags


def fill(web: WebServer, controller: Controller) -> None:
    now = int(web.history.clock())
    chargers = [(spec.id, 16.0, 15.5) for spec in controller.site.chargers]
    for s in range(now - SIX_HOURS_S, now):
        web.history.record(s, [("A", 20.0), ("B", 18.0), ("C", 17.0)], chargers)


async def main(seconds: float) -> None:
    chargers = tuple(SimCharger(f"cp{i:02d}", "ABC", SimOptions(version="1.6", response_delay_s=1.0))
                     for i in range(10))
    site = LiveSite(chargers=chargers)
    controller = web = browsers = None
    try:
        port = await site.start_meter()
        config = parse_config(tomllib.loads(site.config(port, fuse_a=63, extra=CONTROL)), "bench")
        controller = Controller(config)
        await controller.start()
        await site.start_chargers(controller.ocpp_port)
        web = WebServer(lambda: controller, WebConfig("127.0.0.1:0", "bench"), config.ocpp)
        await web.start()
        fill(web, controller)
        await asyncio.sleep(5)  # settle: chargers connected, ramps done
        idle = await measure(controller, seconds)
        browsers = subprocess.Popen([sys.executable, "-c", BROWSERS, web.url, str(CLIENTS)])
        await asyncio.sleep(3)
        pages = len(web.hub.clients)
        busy = await measure(controller, seconds)
        samples = []
        for _ in range(20):
            t = time.perf_counter()
            web.sampler.sample()
            samples.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)
        exports = []
        for _ in range(20):
            t = time.perf_counter()
            size = len(web.history.export())
            exports.append(time.perf_counter() - t)
    finally:
        if browsers is not None:
            browsers.kill()
            browsers.wait()
        if web is not None:
            await web.stop()
        if controller is not None:
            await controller.stop()
        await site.stop()
    print(f"10 charge points, meter every 0.25 s, {seconds:g} s per run; {pages} live pages connected")
    print("| what | median | p99 | n |")
    print("| --- | ---: | ---: | ---: |")
    print(row("control cycle, no page", idle[0]))
    print(row(f"control cycle, {CLIENTS} pages", busy[0]))
    print(row("loop lag, no page", idle[1]))
    print(row(f"loop lag, {CLIENTS} pages", busy[1]))
    print(row("sampler, one second's work", samples))
    print(row(f"export of 6 h x 10 chargers ({size / 1e6:.2f} MB)", exports))
    print(f"history memory, 6 h x 10 chargers: {web.history.nbytes() / 1e6:.2f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0)
    logging.disable(logging.WARNING)  # links coming and going are not the point here
    asyncio.run(main(parser.parse_args().seconds))
