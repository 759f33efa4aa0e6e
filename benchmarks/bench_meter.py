"""Meter reader throughput and latency against the simulated meter on this machine.

    .venv/bin/python benchmarks/bench_meter.py [--seconds 3] [--changes 40]

Throughput: the reader polling as fast as it can (poll interval 1 ms), samples per second.
Latency: at the default poll interval 0.25 s, the time from a current change on the server
to the sample carrying it reaching the consumer callback (median and p99). Expect about half
a poll interval plus the round trip. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from controller.config import MeterConfig, SerialSettings
from controller.meter.reader import MeterReader
from controller.sim.meter_server import MeterServer
from controller.sim.pty_link import PtyLink

from percentiles import p99


async def throughput(config: MeterConfig, seconds: float) -> float:
    reader = MeterReader(config, 3)
    await reader.start()
    try:
        await asyncio.sleep(0.5)  # connect and warm up
        n0, t0 = reader.samples, time.monotonic()
        await asyncio.sleep(seconds)
        return (reader.samples - n0) / (time.monotonic() - t0)
    finally:
        await reader.stop()


async def latency(server: MeterServer, config: MeterConfig, changes: int) -> list[float]:
    pending: dict[float, float] = {}  # new current -> when it was set
    found: list[float] = []

    def on_sample(sample) -> None:
        changed_at = pending.pop(sample.current_a[0], None)
        if changed_at is not None:
            found.append(time.monotonic() - changed_at)

    reader = MeterReader(config, 3, on_sample)
    await reader.start()
    try:
        await asyncio.sleep(0.5)
        for i in range(changes):
            await asyncio.sleep(random.uniform(0.3, 0.55))  # land anywhere within a poll period
            value = 10.0 + (i + 1) * 0.25
            pending[value] = time.monotonic()
            server.set_phase("A", current_a=value, power_w=value * 230.0)
        await asyncio.sleep(0.6)
    finally:
        await reader.stop()
    return found


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--changes", type=int, default=40)
    args = ap.parse_args()
    rows = []

    server = MeterServer("sdm630")
    server.set_all((10.0, 10.0, 10.0), (230.0, 230.0, 230.0))
    port = await server.start_tcp()
    try:
        link = SerialSettings(host="127.0.0.1", port=port)
        rate = await throughput(MeterConfig(profile="sdm630", link=link, poll_interval_s=0.001, min_gap_s=0), args.seconds)
        lat = await latency(server, MeterConfig(profile="sdm630", link=link, poll_interval_s=0.25), args.changes)
        rows.append(("TCP loopback", rate, lat))
    finally:
        await server.stop()

    pty = await PtyLink().start()
    server = MeterServer("sdm630")
    server.set_all((10.0, 10.0, 10.0), (230.0, 230.0, 230.0))
    try:
        await server.start_serial(pty.server_path)
        link = SerialSettings(transport="rtu", device=pty.client_path, parity="N")
        rate = await throughput(MeterConfig(profile="sdm630", link=link, poll_interval_s=0.001, min_gap_s=0), args.seconds)
        # min_gap 0: a pty has no Eastron on the other end; the real wire adds its own time.
        lat = await latency(server, MeterConfig(profile="sdm630", link=link, poll_interval_s=0.25, min_gap_s=0),
                            args.changes)
        rows.append(("RTU over pty (no wire delay)", rate, lat))
    finally:
        await server.stop()
        await pty.stop()

    print("| transport | samples/s sustained | latency median (poll 0.25 s) | latency p99 | changes seen |")
    print("|---|---:|---:|---:|---:|")
    for name, rate, lat in rows:
        print(f"| {name} | {rate:.0f} | {statistics.median(lat) * 1000:.0f} ms | {p99(lat) * 1000:.0f} ms "
              f"| {len(lat)}/{args.changes} |")


if __name__ == "__main__":
    asyncio.run(main())
