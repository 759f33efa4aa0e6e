"""Modbus charger driver against emulated chargers over Modbus TCP on loopback.

Short watchdogs (1 s) and fast polls keep this quick; every wait has a generous deadline
because the machine is shared and slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time

import pytest

from controller.chargers.modbus.driver import ModbusCharger, ModbusSettings
from controller.config import ChargerConfig, ControlConfig, SerialSettings
from controller.model import CarState
from controller.sim.modbus_charger import ChargerEmulator

FALLBACK_A = 6.0
WATCHDOG_S = 1.0


@contextlib.asynccontextmanager
async def charger(profile: str, **emulator_kw):
    """An emulator on a free port and a started driver for it; both always torn down."""
    emulator_kw.setdefault("validity_s", 1.5)
    em = ChargerEmulator(profile, **emulator_kw)
    port = await em.start_tcp()
    config = ChargerConfig(id=f"cp-{profile}", protocol="modbus", profile=profile, watchdog_s=WATCHDOG_S,
                           link=SerialSettings(host="127.0.0.1", port=port, unit_id=em.unit_id))
    driver = ModbusCharger(config, ModbusSettings(control=ControlConfig(fallback_a=FALLBACK_A), timeout_s=0.3), poll_interval_s=0.1)
    try:
        await driver.start()
        await wait_for(lambda: online(driver))
        yield em, driver
    finally:
        await driver.close(None)
        await em.stop()


def online(driver: ModbusCharger) -> bool:
    return driver.reading(time.monotonic()).online


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def float_words(value: float) -> tuple[int, int]:
    raw = struct.pack(">f", value)
    return int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")


# Register, function code and words the charger must see for a 10.57 A limit.
LIMIT_WRITES = {
    "heidelberg": (261, 6, (105,)),  # x0.1 A, rounded down, FC6
    "alfen": (1210, 16, float_words(10.5)),  # float32 big-endian, both words in one FC16
    "bender": (1000, 16, (10,)),  # whole A
    "phoenix": (528, 6, (10,)),  # whole A
}


@pytest.mark.parametrize("profile", sorted(LIMIT_WRITES))
async def test_limit_in_the_right_register_unit_type_and_word_order(profile):
    address, function, words = LIMIT_WRITES[profile]
    async with charger(profile) as (em, driver):
        assert await driver.apply(10.57)
        last = em.writes_to(address)[-1]
        assert (last.function, last.values) == (function, words)
        assert em.limit_a == pytest.approx(float(int(10.57 / 0.1) * 0.1) if profile == "heidelberg" else
                                           10.5 if profile == "alfen" else 10.0)
        await wait_for(lambda: driver.reading(time.monotonic()).car == CarState.CHARGING)
        reading = driver.reading(time.monotonic())
        if em.profile.currents:
            await wait_for(lambda: driver.reading(time.monotonic()).draw_lines_a == (em.offered_a(),) * 3)
        else:
            assert reading.draw_lines_a is None  # no meter: the core uses the commanded limit
        assert driver.status().limit_a == em.limit_a


@pytest.mark.parametrize("profile, pause_check", [
    ("heidelberg", lambda em: em.limit_a == 0),
    ("bender", lambda em: em.limit_a == 0),
    ("alfen", lambda em: em.limit_a == 0),
    ("phoenix", lambda em: not em.enabled and em.writes_to(400)[-1].values == (False,)),
])
async def test_zero_pauses(profile, pause_check):
    async with charger(profile) as (em, driver):
        assert await driver.apply(0)
        assert pause_check(em)
        assert em.offered_a() == 0
        assert await driver.apply(3.0)  # below the charger's minimum: a pause, never rounded up
        assert em.offered_a() == 0
        assert await driver.apply(8)
        assert em.offered_a() == 8


async def test_heidelberg_is_programmed_on_connect():
    async with charger("heidelberg") as (em, driver):
        assert em.writes_to(258)[0].values == (4,)  # standby off
        assert em.writes_to(262)[0].values == (60,)  # failsafe = control.fallback_a, x0.1 A
        assert em.writes_to(257)[0].values == (1000,)  # watchdog in ms
        assert em.failsafe_a == FALLBACK_A and em.watchdog_s() == WATCHDOG_S
        assert driver.status().fallback_protected


async def test_keepalives_arrive_well_inside_the_timeout():
    for profile, address in (("heidelberg", 261), ("alfen", 1210)):
        async with charger(profile) as (em, driver):
            assert await driver.apply(10)
            start = time.monotonic()
            await asyncio.sleep(2.5)
            stamps = [start] + [w.t for w in em.writes_to(address) if w.t >= start] + [time.monotonic()]
            gaps = [b - a for a, b in zip(stamps, stamps[1:])]
            assert max(gaps) < WATCHDOG_S, (profile, gaps)
            assert not em.tripped()


@pytest.mark.parametrize("profile", ["heidelberg", "alfen"])
async def test_dead_controller_lets_the_charger_fall_back(profile):
    async with charger(profile) as (em, driver):
        assert await driver.apply(14)
        assert em.offered_a() == 14
        await driver.close(None)  # a dead controller: no goodbye, no fallback write
        await wait_for(lambda: em.tripped(), timeout=10)
        assert em.offered_a() == FALLBACK_A


async def test_close_with_fallback_leaves_the_limit_there():
    async with charger("bender") as (em, driver):
        assert await driver.apply(14)
        await driver.close(FALLBACK_A)
        assert em.limit_a == FALLBACK_A


@pytest.mark.parametrize("profile", ["heidelberg", "alfen", "phoenix"])
async def test_power_cycle_reapplies_the_limit(profile):
    async with charger(profile) as (em, driver):
        assert await driver.apply(10)
        em.power_cycle()
        assert em.limit_a == em.hardware_max_a  # the dangerous moment: back at 16 A
        await wait_for(lambda: em.limit_a == 10 and driver.faults["reset"] >= 1 or
                       (profile == "alfen" and len(em.writes_to(1210)) > 3 and em.limit_a == 10))
        if profile == "heidelberg":
            await wait_for(lambda: em.failsafe_a == FALLBACK_A and em.watchdog_s() == WATCHDOG_S)
        assert online(driver)


async def test_charger_that_stops_answering_goes_offline_with_a_lease_and_recovers():
    async with charger("heidelberg") as (em, driver):
        assert await driver.apply(12)
        em.silent = True
        went_silent = time.monotonic()
        await wait_for(lambda: not online(driver))
        reading = driver.reading(time.monotonic())
        # Its last limit may be held until its watchdog fires: a second or so from the last
        # request that reached it, never before it went silent.
        assert went_silent - 0.5 <= reading.lease_until - WATCHDOG_S <= time.monotonic()
        assert reading.draw_lines_a is not None  # the last draw still counts while the lease runs
        assert not await driver.apply(8)  # refused while offline, without raising
        await wait_for(lambda: em.tripped())
        assert em.offered_a() == FALLBACK_A
        em.silent = False
        await wait_for(lambda: online(driver))
        assert em.limit_a == 8 and not em.tripped()  # the latest wish, re-applied on recovery
        assert driver.reading(time.monotonic()).lease_until is None  # online: no lease to count


async def test_charger_without_watchdog_reports_no_lease_when_offline():
    async with charger("bender", without=("failsafe", "watchdog")) as (em, driver):
        em.silent = True
        await wait_for(lambda: not online(driver))
        assert driver.reading(time.monotonic()).lease_until is None  # it holds its limit for ever
        assert not driver.status().fallback_protected


async def test_exception_replies_are_reported_not_raised():
    async with charger("heidelberg") as (em, driver):
        em.exception_code = 4
        assert not await driver.apply(9)
        assert "exception 4" in driver.status().notes["fault"]
        assert driver.faults["exception"] >= 1
        em.exception_code = None
        assert await driver.apply(9)
        await wait_for(lambda: "fault" not in driver.status().notes)
        assert em.limit_a == 9


async def test_server_gone_means_offline_then_back():
    em = ChargerEmulator("bender")
    port = await em.start_tcp()
    config = ChargerConfig(id="cp", protocol="modbus", profile="bender",
                           link=SerialSettings(host="127.0.0.1", port=port, unit_id=255))
    driver = ModbusCharger(config, ModbusSettings(control=ControlConfig(fallback_a=FALLBACK_A), timeout_s=0.3), poll_interval_s=0.1)
    try:
        await driver.start()
        await wait_for(lambda: online(driver))
        await driver.apply(11)
        await em.stop()
        await wait_for(lambda: not online(driver))
        assert driver.faults["link"] + driver.faults["timeout"] >= 1
        em = ChargerEmulator("bender")
        await em.start_tcp(port=port)
        await wait_for(lambda: online(driver), timeout=20)
        assert em.limit_a == 11
    finally:
        await driver.close(None)
        await em.stop()


async def test_alfen_safe_current_above_fallback_is_flagged():
    async with charger("alfen", device_failsafe_a=10.0) as (em, driver):
        assert not driver.status().fallback_protected
        em.silent = True
        await wait_for(lambda: not online(driver))
        # The charger would fall to 10 A, not control.fallback_a: no lease can be promised.
        assert driver.reading(time.monotonic()).lease_until is None
