"""Shared pieces for the meter tests: real servers and readers that are always torn down."""

from __future__ import annotations

import asyncio
import contextlib
import time

from controller.config import MeterConfig, SerialSettings
from controller.meter.reader import MeterReader
from controller.sim.meter_server import MeterServer
from controller.sim.pty_link import PtyLink

VALUES = dict(current_a=(10.0, -5.0, 1.5), voltage_v=(230.0, 231.0, 232.0), power_w=(2300.0, -1155.0, 348.0))


def tcp_config(port: int, profile: str = "sdm630", **kw) -> MeterConfig:
    kw.setdefault("timeout_s", 0.3)
    return MeterConfig(profile=profile, link=SerialSettings(host="127.0.0.1", port=port), **kw)


def rtu_config(device: str, profile: str = "sdm630", **kw) -> MeterConfig:
    kw.setdefault("timeout_s", 0.3)
    return MeterConfig(profile=profile, link=SerialSettings(transport="rtu", device=device, parity="N"), **kw)


@contextlib.asynccontextmanager
async def tcp_meter(profile: str = "sdm630", **server_kw):
    server = MeterServer(profile, **server_kw)
    server.set_all(VALUES["current_a"], VALUES["voltage_v"], VALUES["power_w"])
    port = await server.start_tcp()
    try:
        yield server, port
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def rtu_meter(profile: str = "sdm630", **server_kw):
    link = await PtyLink().start()
    server = MeterServer(profile, **server_kw)
    server.set_all(VALUES["current_a"], VALUES["voltage_v"], VALUES["power_w"])
    try:
        await server.start_serial(link.server_path)
        yield server, link
    finally:
        await server.stop()
        await link.stop()


@contextlib.asynccontextmanager
async def running(reader: MeterReader):
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


async def wait_for(predicate, timeout: float = 10.0, step: float = 0.02) -> None:
    """Wait until predicate() is true; generous deadline (shared slow machine)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)
