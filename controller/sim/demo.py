"""`evfuse demo`: the whole controller against a simulated site on loopback.

Four OCPP charge points (1.6 in amps, 1.6 in watts on one phase, 2.0.1 at priority 2, and a
1.6 twin with a car on each of its two connectors, the second wired "BCA", under its own
20 A), and a 2 kW boiler on a simulated Shelly (phase A, priority 3: the first to go when the
room is short, all or nothing), behind a 40 A fuse; every 100 s the household script switches a kettle and an
oven on phase A (an overload the controller must cut) and then the meter goes silent for 8 s
(every charger must fall back). A live view shows load against the fuse, each charger's
limit, draw and reason, and the latest decisions. The web page is served on 127.0.0.1
(port 8080, or a free one when that is taken; --web-port picks another, 0 = any free one),
with the password "demo" for its controls.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
import tomllib

from controller.config import parse_config
from controller.runtime import Controller
from controller.sim.live_site import LiveSite
from controller.sim.shelly import SimShelly

CYCLE_S = 100.0
OVERLOAD = (25.0, 45.0)  # kettle + oven on phase A, seconds into each cycle
DROPOUT = (65.0, 73.0)  # the meter does not answer
OVERLOAD_A = 11.0
DEMO_WEB_PORT = 8080
DEMO_FUSE_A = 40.0

DEMO_CONTROL = """
[control]
ramp_up_delay_s = 8
ramp_up_step_a = 4
ramp_up_interval_s = 3
restart_delay_s = 20
fallback_a = 6
"""

BOILER_W = 2000.0
DEMO_BOILER = """
[[load]]
id = "boiler"
driver = "shelly"
host = "127.0.0.1"
port = {port}
phases = "A"
power_w = {power:g}
priority = 3
min_on_s = 30
min_off_s = 30
lease_s = 30
"""


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the controller against a built-in simulated site")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--log", metavar="FILE", help="write the controller's log here")
    p.add_argument("--web-port", type=int, default=DEMO_WEB_PORT,
                   help=f"web page port on 127.0.0.1 (default {DEMO_WEB_PORT}, or a free one; 0 = any free one)")
    p.add_argument("--web-password", default="demo", help="password for the page's controls (default: demo)")
    p.set_defaults(func=demo_command)


def script(t: float) -> tuple[float, float, float]:
    into = t % CYCLE_S
    return (OVERLOAD_A, 0.0, 0.0) if OVERLOAD[0] <= into < OVERLOAD[1] else (0.0, 0.0, 0.0)


def happening(t: float) -> str:
    into = t % CYCLE_S
    if OVERLOAD[0] <= into < OVERLOAD[1]:
        return f"kettle + oven on phase A (+{OVERLOAD_A:g} A) for {OVERLOAD[1] - into:.0f} s more"
    if DROPOUT[0] <= into < DROPOUT[1]:
        return f"meter silent (cable pulled) for {DROPOUT[1] - into:.0f} s more"
    nxt = min(((s - into) % CYCLE_S, what) for s, what in
              ((OVERLOAD[0], "kettle + oven"), (DROPOUT[0], "meter dropout")))
    return f"quiet; next: {nxt[1]} in {nxt[0]:.0f} s"


def demo_command(args) -> int:
    root = logging.getLogger()
    root.handlers[:] = [logging.FileHandler(args.log)] if args.log else [logging.NullHandler()]
    root.setLevel(logging.INFO)
    return asyncio.run(run_demo(args.duration, sys.stdout, args.web_port, args.web_password))


async def start_web(controller: Controller, port: int, password: str):
    """The web page on loopback: the port asked for, or any free one when it is taken."""
    from controller.config import WebConfig
    from controller.web.server import WebServer

    web = WebServer(lambda: controller, WebConfig(listen=f"127.0.0.1:{port}", password=password),
                    controller.config.ocpp)
    try:
        await web.start()
    except OSError:
        await web.start(port=0)
    return web


async def run_demo(duration: float | None, out, web_port: int = 0, web_password: str = "demo") -> int:
    site = LiveSite(household=script)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    controller = web = None
    boiler = SimShelly(power_w=BOILER_W)
    try:
        shelly_port = await boiler.start()
        site.extra_loads.append(lambda: (boiler.draw_a(), 0.0, 0.0))
        meter_port = await site.start_meter()
        extra = DEMO_CONTROL + DEMO_BOILER.format(port=shelly_port, power=BOILER_W)
        config = parse_config(tomllib.loads(site.config(meter_port, fuse_a=DEMO_FUSE_A, extra=extra)), "demo")
        controller = Controller(config)
        await controller.start()
        await site.start_chargers(controller.ocpp_port)
        web = await start_web(controller, web_port, web_password)
        address = f"web page: {web.url}  (password for the controls: {web_password})"
        out.write(address + "\n")
        tty = out.isatty()
        started = time.monotonic()
        while not stop.is_set():
            t = site.elapsed()
            into = t % CYCLE_S
            site.meter.silent = DROPOUT[0] <= into < DROPOUT[1]
            frame = render(controller, site, t) + "\n" + address
            out.write("\x1b[H\x1b[2J" + frame if tty else frame + "\n")
            out.flush()
            if duration is not None and time.monotonic() - started >= duration:
                break
            try:
                await asyncio.wait_for(stop.wait(), 0.5 if tty else 5.0)
            except asyncio.TimeoutError:
                pass
    finally:
        if web is not None:
            await web.stop()
        if controller is not None:
            await controller.stop()
        await site.stop()
        await boiler.stop()
    out.write("demo stopped as `systemctl stop evfuse` stops: each charger keeps its limit for a short "
              "lease and then falls back by itself; the boiler, if on, stays on for a short lease of its own\n")
    return 0


def render(controller: Controller, site: LiveSite, t: float, width: int = 80) -> str:
    """The live view, at most `width` columns."""
    cfg = controller.config
    d = controller.decision
    age = controller.meter.age()
    meter = "no sample yet" if age is None else ("LOST" if d and d.fallback else "ok") + f" ({age:.1f} s old)"
    lines = [f"evfuse demo  t={t:5.0f} s   meter {meter}"[:width],
             f"household: {happening(t)}"[:width], "",
             f"phase  load A / fuse {cfg.site.fuse_a:g} A (limit {cfg.site.limit_a:g} A)"]
    bar = 40
    for p, name in enumerate("ABC"):
        load = site.meter_a[p]
        filled = min(bar, round(load / cfg.site.fuse_a * bar))
        mark = round(cfg.site.limit_a / cfg.site.fuse_a * bar)
        cells = ["#" if i < filled else "." for i in range(bar)]
        cells[min(mark, bar - 1)] = "|"
        over = "  OVER" if load > cfg.site.limit_a else ""
        lines.append(f"  {name}   {load:5.1f}  {''.join(cells)}{over}")
    lines += ["", f"{'charger':<9}{'link':<11}{'limit':>6}{'draw':>6}  reason"]
    for driver, reading, spec in zip(controller.drivers, controller.readings, controller.site.chargers):
        st = driver.status()
        link = st.protocol if st.connected else "offline"
        unit = st.notes.get("unit")
        link += "/W" if unit == "W" else ""
        limit = d.chargers[spec.index].limit_a if d else 0.0
        reason = d.chargers[spec.index].reason if d else ""
        draw = max(reading.draw_lines_a or (0.0,))
        if spec.kind == "switch":  # all or nothing: on or off, never a part
            lines.append(f"{spec.id:<9}{link:<11}{'on' if limit > 0 else 'off':>6}{draw:6.1f}  {reason}"[:width])
            continue
        lines.append(f"{spec.id:<9}{link:<11}{limit:6.1f}{draw:6.1f}  {reason}"[:width])
    lines += ["", "recent decisions:"]
    for event in list(controller.events)[-8:]:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.t))
        lines.append(f"  {stamp} {event.text}"[:width])
    lines.append("Ctrl-C stops the demo")
    return "\n".join(lines)
