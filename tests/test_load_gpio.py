"""The gpio load driver on gpiozero's MockFactory pins: on and off, active-low relay boards,
read back, and off on stop."""

from __future__ import annotations

import asyncio
import time

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from controller.config import LoadConfig
from controller.loads.gpio import GpioSwitch
from controller.model import CarState

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pins():
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = old


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def heat_pump(active_high: bool = True) -> LoadConfig:
    return LoadConfig(id="heatpump", driver="gpio", phases="ABC", power_w=6000, pin=22, active_high=active_high)


@pytest.mark.parametrize("active_high", [True, False])
async def test_a_relay_pin_switches_and_is_off_on_stop(pins, active_high):
    driver = GpioSwitch(heat_pump(active_high), 230.0)
    driver.poll_s = 0.05
    await driver.start()
    pin = pins.pin(22)
    try:
        assert await driver.apply(8.7)
        assert pin.state == (1 if active_high else 0)  # the relay energised
        await until(lambda: driver.reading(time.monotonic()).car is CarState.CHARGING)
        r = driver.reading(time.monotonic())
        assert r.online and r.acked_a == 8.7 and r.lease_until is None and r.power_w is None
        assert await driver.apply(0.0)
        assert pin.state == (0 if active_high else 1)
        assert await driver.apply(8.7)
    finally:
        await driver.close(0.0)
    assert pin.state == (0 if active_high else 1)  # off on stop


async def test_without_gpio_the_load_is_offline_not_a_crash(pins):
    Device.pin_factory = None  # as on a PC without a pin library
    try:
        driver = GpioSwitch(heat_pump(), 230.0)
        driver.poll_s = 0.05
        await driver.start()
        try:
            assert not await driver.apply(8.7)
            await asyncio.sleep(0.3)
            assert not driver.reading(time.monotonic()).online
        finally:
            await driver.close(0.0)
    finally:
        Device.pin_factory = pins


@pytest.mark.parametrize("active_high", [True, False])
async def test_at_a_start_the_pin_is_off_and_the_journal_says_why(pins, caplog, active_high):
    import logging

    with caplog.at_level(logging.INFO, logger="evfuse.loads"):
        driver = GpioSwitch(heat_pump(active_high), 230.0)
        driver.poll_s = 0.05
        await driver.start()
    try:
        assert pins.pin(22).state == (0 if active_high else 1)  # the relay released
        await until(lambda: driver.reading(time.monotonic()).online)
        r = driver.reading(time.monotonic())
        assert r.car is CarState.CONNECTED and r.acked_a == 0.0
        assert any("unknown after a restart: treated as off" in rec.getMessage() and
                   getattr(rec, "LOAD_ID", None) == "heatpump" for rec in caplog.records)
    finally:
        await driver.close(0.0)


async def test_without_gpio_it_is_counted_as_off(pins):
    Device.pin_factory = None
    try:
        driver = GpioSwitch(heat_pump(), 230.0)
        await driver.start()
        try:
            r = driver.reading(time.monotonic())
            assert not r.online and r.lease_until is not None and r.lease_until <= time.monotonic()
        finally:
            await driver.close(0.0)
    finally:
        Device.pin_factory = pins
