"""Modbus RTU over a pseudo-terminal pair: a Heidelberg charger alone, and sharing one RS485
bus with the main meter (one client, meter first)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from controller.chargers.modbus.driver import ModbusCharger, ModbusSettings
from controller.config import ChargerConfig, ControlConfig, MeterConfig, SerialSettings
from controller.meter.reader import MeterReader
from controller.sim.meter_server import MeterServer
from controller.sim.modbus_charger import ChargerEmulator, SharedBus
from controller.sim.pty_link import PtyLink

BAUD = 19200  # the Heidelberg default; the meter on the same wire must use it too


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def heidelberg_config(device: str, unit_id: int) -> ChargerConfig:
    # Ptys cannot do parity: "N" overrides the profile's 8E1, as an installer may do too.
    return ChargerConfig(id="carport", protocol="modbus", profile="heidelberg", watchdog_s=2.0,
                         link=SerialSettings(transport="rtu", device=device, baudrate=BAUD, parity="N",
                                             unit_id=unit_id))


@contextlib.asynccontextmanager
async def shared_bus(*devices):
    link = await PtyLink().start()
    bus = SharedBus(*devices)
    try:
        await bus.start_serial(link.server_path, baudrate=BAUD)
        yield link
    finally:
        await bus.stop()
        await link.stop()


async def test_heidelberg_over_rtu_is_programmed_and_obeys():
    em = ChargerEmulator("heidelberg", unit_id=3)
    async with shared_bus(em) as link:
        driver = ModbusCharger(heidelberg_config(link.client_path, 3), ModbusSettings(control=ControlConfig(fallback_a=6.0), timeout_s=0.5),
                               poll_interval_s=0.2)
        try:
            await driver.start()
            await wait_for(lambda: driver.reading(time.monotonic()).online)
            assert em.watchdog_s() == 2.0 and em.failsafe_a == 6.0
            assert await driver.apply(13.3)
            assert em.writes_to(261)[-1].values == (133,)
            await wait_for(lambda: driver.reading(time.monotonic()).draw_lines_a == (13.3, 13.3, 13.3))
        finally:
            await driver.close(6.0)
        assert em.limit_a == 6.0


async def test_meter_keeps_its_rate_while_a_charger_shares_the_bus():
    meter_server = MeterServer("sdm630", unit_id=1)
    meter_server.set_all((10.0, 5.0, 1.0))
    em = ChargerEmulator("heidelberg", unit_id=2)
    async with shared_bus(meter_server, em) as link:
        meter = MeterReader(MeterConfig(profile="sdm630", poll_interval_s=0.25, timeout_s=0.5,
                                        link=SerialSettings(transport="rtu", device=link.client_path,
                                                            baudrate=BAUD, parity="N", unit_id=1)))
        driver = ModbusCharger(heidelberg_config(link.client_path, 2), ModbusSettings(control=ControlConfig(fallback_a=6.0), timeout_s=0.5),
                               poll_interval_s=0.2)
        await meter.start()
        try:
            await driver.start()
            await wait_for(lambda: driver.reading(time.monotonic()).online)
            samples_before, started = meter.samples, time.monotonic()
            limits = [8.0, 12.0, 16.0, 10.0]
            applied = 0
            while time.monotonic() - started < 3.0:  # the fast path writing as often as it may
                applied += await driver.apply(limits[applied % len(limits)])
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - started
            got = meter.samples - samples_before
            expected = elapsed / meter.poll_interval_s
            # Generous: a shared slow machine, but the charger must not starve the meter.
            assert got >= 0.6 * expected, (got, expected)
            assert applied >= 10 and driver.faults["timeout"] == 0
            assert em.limit_a == limits[(applied - 1) % len(limits)]
            # The charger was read back too, on the same wire.
            assert driver.reading(time.monotonic()).draw_lines_a is not None
        finally:
            await driver.close(None)
            await meter.stop()
