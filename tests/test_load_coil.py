"""The modbus-coil load driver against a real pymodbus relay board (controller/sim/relay_board.py):
over TCP, and over RTU on a pseudo-terminal pair sharing the wire with the main meter (one bus
client, the meter's reads first, the board taking the meter's serial settings)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from controller.config import LoadConfig, MeterConfig, SerialSettings
from controller.loads.coil import CoilSwitch
from controller.meter.reader import MeterReader, serial_line
from controller.model import CarState
from controller.sim.meter_server import MeterServer
from controller.sim.modbus_charger import SharedBus
from controller.sim.pty_link import PtyLink
from controller.sim.relay_board import RelayBoard

pytestmark = pytest.mark.timeout(60)

BAUD = 19200


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def pump(link: SerialSettings, coil: int = 2) -> LoadConfig:
    return LoadConfig(id="pump", driver="modbus-coil", phases="A", power_w=2000, link=link, coil=coil)


@contextlib.asynccontextmanager
async def driver_on(config: LoadConfig, **kw):
    driver = CoilSwitch(config, 230.0, timeout_s=0.5, **kw)
    driver.poll_s = 0.1
    try:
        await driver.start()
        yield driver
    finally:
        await driver.close(0.0)


async def test_a_relay_over_tcp_switches_reads_back_and_is_off_on_stop():
    board = RelayBoard(unit_id=5, relays=4, loads_w={2: 2000})
    port = await board.start_tcp()
    try:
        config = pump(SerialSettings(transport="tcp", host="127.0.0.1", port=port, unit_id=5))
        async with driver_on(config) as driver:
            await until(lambda: driver.reading(time.monotonic()).online, "online")
            assert driver.reading(time.monotonic()).car is CarState.CONNECTED
            assert await driver.apply(8.7)
            assert board.is_on(2) and not board.is_on(1)
            await until(lambda: driver.reading(time.monotonic()).car is CarState.CHARGING, "read back on")
            r = driver.reading(time.monotonic())
            assert r.acked_a == 8.7 and r.power_w is None and r.draw_lines_a is None  # measures nothing
            assert r.lease_until is None  # and has no lease
            assert not driver.status().fallback_protected
            board.relays[2] = False  # switched off behind our back (a reset, a hand on the board)
            await until(lambda: board.is_on(2), "the wanted state written again")
        assert not board.is_on(2)  # close(0): off on stop
    finally:
        await board.stop()


async def test_a_board_gone_is_offline_and_holds_what_it_held():
    board = RelayBoard(unit_id=1, relays=4)
    port = await board.start_tcp()
    try:
        config = pump(SerialSettings(transport="tcp", host="127.0.0.1", port=port, unit_id=1))
        async with driver_on(config) as driver:
            assert await driver.apply(8.7)
            board.silent = True
            await until(lambda: not driver.reading(time.monotonic()).online, "offline", 15)
            r = driver.reading(time.monotonic())
            assert r.lease_until is None and r.acked_a == 8.7  # no lease: counted on for ever
            board.silent = False
            await until(lambda: driver.reading(time.monotonic()).online, "back", 15)
    finally:
        await board.stop()


async def test_on_the_meters_rtu_bus_behind_the_meter():
    meter_server = MeterServer("sdm630", unit_id=1)
    meter_server.set_all((10.0, 5.0, 1.0))
    board = RelayBoard(unit_id=7, relays=8)
    link = await PtyLink().start()
    bus = SharedBus(meter_server, board)
    meter = None
    try:
        await bus.start_serial(link.server_path, baudrate=BAUD)
        meter_link = SerialSettings(transport="rtu", device=link.client_path, baudrate=BAUD, parity="N", unit_id=1)
        meter = MeterReader(MeterConfig(profile="sdm630", poll_interval_s=0.25, timeout_s=0.5, link=meter_link))
        await meter.start()
        # No serial settings of its own: it takes the meter's (one wire, one setting).
        config = pump(SerialSettings(transport="rtu", device=link.client_path, unit_id=7), coil=0)
        async with driver_on(config, defaults=serial_line(meter.config, meter.profile)) as driver:
            await until(lambda: driver.reading(time.monotonic()).online, "online")
            samples_before, started = meter.samples, time.monotonic()
            switched = 0
            while time.monotonic() - started < 2.0:
                switched += await driver.apply(8.7 if switched % 2 == 0 else 0.0)
                await asyncio.sleep(0.1)
            got = meter.samples - samples_before
            expected = (time.monotonic() - started) / meter.poll_interval_s
            assert got >= 0.6 * expected, (got, expected)  # the relay does not starve the meter
            assert switched >= 8 and board.writes
    finally:
        if meter is not None:
            await meter.stop()
        await bus.stop()
        await link.stop()


async def test_an_open_relay_reads_as_drawing_nothing():
    # It measures nothing, but a relay read back open draws nothing: the core may take that
    # at once (what the meter credited it when it switched on is cleared).
    board = RelayBoard(unit_id=1, relays=4)
    port = await board.start_tcp()
    try:
        config = pump(SerialSettings(transport="tcp", host="127.0.0.1", port=port, unit_id=1))
        async with driver_on(config) as driver:
            assert await driver.apply(8.7)
            assert driver.reading(time.monotonic()).draw_lines_a is None  # on: unknown
            assert await driver.apply(0.0)
            r = driver.reading(time.monotonic())
            assert r.draw_lines_a == (0.0,) and r.draw_at is not None
    finally:
        await board.stop()


async def test_after_a_restart_a_relay_found_on_is_read_back_on_and_left_alone():
    """A crash left relay 2 on (no lease): the new driver reads it back on and writes nothing
    before the core's first decision; a planned stop then switches it off (it has no lease)."""
    board = RelayBoard(unit_id=5, relays=4, loads_w={2: 2000})
    board.relays[2] = True
    port = await board.start_tcp()
    try:
        config = pump(SerialSettings(transport="tcp", host="127.0.0.1", port=port, unit_id=5))
        driver = CoilSwitch(config, 230.0, timeout_s=0.5)
        driver.poll_s = 0.1
        await driver.start()
        try:
            await until(lambda: driver.reading(time.monotonic()).online, "online")
            await asyncio.sleep(0.5)  # five polls
            r = driver.reading(time.monotonic())
            assert r.car is CarState.CHARGING and r.acked_a == 8.7 and board.is_on(2)
            assert board.writes == [] and driver.lease_end() is None
        finally:
            await driver.leave(0.0, 30)
        assert not board.is_on(2) and [w.values for w in board.writes] == [(False,)]
    finally:
        await board.stop()
