"""Does MQTT cost the control loop anything? The real Controller on a simulated site (a Modbus
meter server and OCPP charge points with cars, all on loopback in this process) runs for a
while in three setups:

  off          no [mqtt]
  on           an MqttBridge to a real mosquitto on loopback, publishing state and discovery
  broker down  an MqttBridge to a port where no broker listens (reconnecting with backoff)

Printed per setup: the time of one control cycle (Controller._cycle: readings, decision,
commands handed to their tasks, observers), the event loop's lag (a 10 ms sleeper's
oversleep: what the MQTT task's snapshots and publishing take from everything else), the
cycles run, and the state messages published.

    .venv/bin/python benchmarks/bench_mqtt.py [--seconds S] [--chargers N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.config import MqttConfig, load_config  # noqa: E402
from controller.mqtt import MqttBridge  # noqa: E402
from controller.runtime import Controller  # noqa: E402
from controller.sim.live_site import LiveSite, SimCharger  # noqa: E402

from percentiles import median_p99_ms as stats

CONTROL = """
[control]
ramp_up_delay_s = 1
ramp_up_step_a = 4
ramp_up_interval_s = 0.5
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_broker(workdir: Path) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type error\n" + ("user root\n" if os.geteuid() == 0 else ""))
    proc = await asyncio.create_subprocess_exec(shutil.which("mosquitto") or "/usr/sbin/mosquitto",
                                                "-c", str(conf), stderr=asyncio.subprocess.DEVNULL)
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return proc, port
        except OSError:
            await asyncio.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


async def lag_probe(out: list[float]) -> None:
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.01)
        out.append(time.perf_counter() - t - 0.01)


async def run(setup: str, seconds: float, n: int, workdir: Path) -> dict:
    chargers = tuple(SimCharger(f"cp{i}", "ABC"[i % 3], weight=1 + i % 3, max_a=16) for i in range(n))
    site = LiveSite(chargers=chargers, household=lambda t: (4.0 * (int(t) % 4 == 0), 0.0, 2.0))
    broker = None
    controller = bridge = None
    cycles: list[float] = []
    lag: list[float] = []
    try:
        meter_port = await site.start_meter()
        path = workdir / f"{setup.replace(' ', '-')}.toml"
        path.write_text(site.config(meter_port, fuse_a=63, extra=CONTROL))
        controller = Controller(load_config(path))
        await controller.start("127.0.0.1", 0)
        await site.start_chargers(controller.ocpp_port)
        if setup != "off":
            if setup == "on":
                broker, port = await start_broker(workdir)
            else:
                port = free_port()  # nobody listens there
            bridge = MqttBridge(MqttConfig(host="127.0.0.1", port=port), lambda: controller)
            controller.observers.append(bridge.changed)
            await bridge.start()
        await asyncio.sleep(3.0)  # connected, charging
        inner = controller._cycle

        def timed() -> None:
            t = time.perf_counter()
            inner()
            cycles.append(time.perf_counter() - t)

        controller._cycle = timed
        published = bridge.published if bridge else 0
        probe = asyncio.create_task(lag_probe(lag))
        await asyncio.sleep(seconds)
        probe.cancel()
        controller._cycle = inner
        return {"setup": setup, "cycle": stats(cycles), "lag": stats(lag), "cycles": len(cycles),
                "published": (bridge.published - published) if bridge else 0,
                "connected": bridge.connected if bridge else None}
    finally:
        if bridge is not None:
            await bridge.stop()
        if controller is not None:
            await controller.stop()
        await site.stop()
        if broker is not None:
            broker.kill()
            await broker.wait()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--chargers", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["STATE_DIRECTORY"] = tmp  # overrides: never the user's own
        results = [await run(setup, args.seconds, args.chargers, Path(tmp))
                   for setup in ("off", "on", "broker down")]
    print(f"{args.chargers} charge points, {args.seconds:g} s per setup")
    print(f"{'setup':<12} {'cycle median':>13} {'cycle p99':>10} {'loop lag median':>16} {'lag p99':>8} "
          f"{'cycles':>7} {'published':>10}")
    for r in results:
        print(f"{r['setup']:<12} {r['cycle'][0]:>10.3f} ms {r['cycle'][1]:>7.3f} ms {r['lag'][0]:>13.3f} ms "
              f"{r['lag'][1]:>5.2f} ms {r['cycles']:>7} {r['published']:>10}")


if __name__ == "__main__":
    asyncio.run(main())
