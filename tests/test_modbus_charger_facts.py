"""Device facts from the profile data, held against the charger emulator over Modbus TCP:
the watchdog a device really has (and the keep-alive derived from it), the range a profile
takes, Wallbe firmware's 0.1 A limit unit on a Phoenix EV-CC, the Bender safe current and
timeout where the firmware has them, and Heidelberg's state 8."""

from __future__ import annotations

import asyncio
import time

import pytest

from controller.chargers.modbus.driver import ModbusCharger, ModbusSettings
from controller.chargers.modbus.profile import load_profile
from controller.config import ChargerConfig, ConfigError, ControlConfig, SerialSettings, parse_config
from controller.model import CarState
from test_modbus_charger_tcp import FALLBACK_A, charger, online, wait_for

SITE = {"site": {"fuse_a": 25}, "meter": {"host": "10.0.0.2"}}


def modbus_config(**charger_keys):
    base = {"id": "cp", "protocol": "modbus", "host": "10.0.0.3"}
    return parse_config({**SITE, "charger": [{**base, **charger_keys}]}, "evfuse.toml")


def problems(**charger_keys) -> list[str]:
    with pytest.raises(ConfigError) as e:
        modbus_config(**charger_keys)
    return e.value.problems


# --------------------------------------------------------------------------- watchdogs


def test_watchdog_the_device_cannot_hold_is_a_config_error_naming_the_range():
    assert problems(profile="heidelberg", watchdog_s=300) == [
        'evfuse.toml: charger[1].watchdog_s = 300: must be 1 to 65.535 s for profile "heidelberg"']
    fixed = problems(profile="alfen", watchdog_s=30)
    assert len(fixed) == 1 and "charger[1].watchdog_s = 30: cannot be set for profile \"alfen\"" in fixed[0]
    assert "set on the charger itself (60 s by default)" in fixed[0]
    assert "has no watchdog" in problems(profile="phoenix", watchdog_s=10)[0]
    assert modbus_config(profile="heidelberg", watchdog_s=60).chargers[0].watchdog_s == 60
    assert modbus_config(profile="alfen").chargers[0].watchdog_s == 15  # the default is not a setting


def test_keepalive_comes_from_the_watchdog_in_force_not_the_configured_one():
    def driver(profile: str, watchdog_s: float) -> ModbusCharger:
        config = ChargerConfig(id="cp", protocol="modbus", profile=profile, watchdog_s=watchdog_s,
                               link=SerialSettings(host="127.0.0.1"))
        return ModbusCharger(config, ModbusSettings(control=ControlConfig()))
    alfen = driver("alfen", 300)  # its validity is set in the charger: 60 s by default
    assert alfen.watchdog_s == 60 and alfen.keepalive_s == 20
    heidelberg = driver("heidelberg", 300)  # beyond what register 257 holds
    assert heidelberg.watchdog_s == pytest.approx(65.535)
    assert heidelberg.keepalive_s == pytest.approx(65.535 / 3)


async def test_alfen_with_a_short_validity_set_on_the_device_never_drops_while_evfuse_runs():
    # watchdog_s = 300 configured, 1.5 s set in the charger: the read-back of the remaining
    # validity tells the real one and the keep-alive follows it.
    async with charger("alfen", validity_s=1.5) as (em, driver):
        driver.config = ChargerConfig(**{**driver.config.__dict__, "watchdog_s": 300.0})
        assert await driver.apply(10)
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            assert not em.tripped(), "the charger fell to its safe current while evfuse was running"
            await asyncio.sleep(0.05)
        assert driver.keepalive_s <= 0.5 + 1e-6


# --------------------------------------------------------------------------- ranges


def test_min_and_max_outside_the_profiles_range_are_config_errors():
    low = problems(profile="heidelberg", min_a=5)
    assert low == ['evfuse.toml: charger[1].min_a = 5: must be at least 6 A: profile "heidelberg" takes '
                   "0 (pause) or 6 to 16 A"]
    high = problems(profile="heidelberg", max_a=32)
    assert high == ['evfuse.toml: charger[1].max_a = 32: must be at most 16 A: profile "heidelberg" takes '
                    "0 (pause) or 6 to 16 A"]
    assert "must be at least 6 A" in problems(profile="bender", min_a=5.5)[0]
    assert modbus_config(profile="heidelberg", min_a=6, max_a=16).chargers[0].max_a == 16


# --------------------------------------------------------------------------- firmware variants


@pytest.mark.parametrize("scale, raw_for_10_5", [(0.1, 105), (1.0, 10)])
async def test_phoenix_limit_unit_is_detected_from_the_read_back(scale, raw_for_10_5):
    async with charger("phoenix", limit_scale=None if scale == 1.0 else scale) as (em, driver):
        assert driver.status().notes["limit_unit"].startswith(f"{scale:g} A")
        assert await driver.apply(10.57)
        assert em.writes_to(528)[-1].values == (raw_for_10_5,)
        assert em.limit_a == pytest.approx(10.5 if scale == 0.1 else 10)
        await asyncio.sleep(0.5)  # read-backs agree: no false "lost its settings"
        assert driver.faults["reset"] == 0 and driver.status().compliant


async def test_bender_with_safe_current_and_timeout_is_programmed_and_kept_alive():
    async with charger("bender") as (em, driver):
        assert em.failsafe_a == FALLBACK_A and em.watchdog_s() == 1.0
        assert driver.status().fallback_protected
        assert driver.status().notes["watchdog"] == "present"
        assert await driver.apply(12)
        await asyncio.sleep(2.0)
        assert not em.tripped()
        em.silent = True  # evfuse gone
        await wait_for(lambda: not online(driver))
        assert driver.reading(time.monotonic()).lease_until is not None
        await wait_for(em.tripped)
        assert em.offered_a() == FALLBACK_A


async def test_bender_without_them_is_reported_unprotected():
    async with charger("bender", without=("failsafe", "watchdog")) as (em, driver):
        status = driver.status()
        assert not status.fallback_protected
        assert status.notes["failsafe"] == "absent on this firmware"
        assert await driver.apply(12) and em.limit_a == 12


def test_heidelberg_state_8_is_an_error_not_charging():
    status = load_profile("heidelberg").status
    assert status.car("8") == CarState.FAULT
    assert status.car("7") == CarState.CHARGING


async def test_status_shows_the_detected_limit_unit():
    from controller.runtime import Controller
    from controller.status import render, snapshot
    from controller.sim.modbus_charger import ChargerEmulator

    em = ChargerEmulator("phoenix", limit_scale=0.1)
    port = await em.start_tcp()
    cfg = parse_config({"site": {"fuse_a": 25}, "meter": {"host": "127.0.0.1", "port": 9},
                        "ocpp": {"listen": "127.0.0.1:0"},
                        "charger": [{"id": "wallbe", "protocol": "modbus", "profile": "phoenix",
                                     "host": "127.0.0.1", "port": port, "unit_id": em.unit_id}]})
    controller = Controller(cfg)
    try:
        await controller.start()
        await wait_for(lambda: "limit_unit" in controller.drivers[0].status().notes, timeout=20)
        snap = snapshot(controller)
        assert snap["chargers"][0]["device"]["limit_unit"].startswith("0.1 A")
        assert "limit unit: 0.1 A" in render(snap)
        assert snap["meter"]["mode_fault"] is None and "METER SETTING" not in render(snap)
        snap["meter"]["mode_fault"] = 'application mode is A: set application "H"'
        assert 'METER SETTING: application mode is A: set application "H"' in render(snap)
    finally:
        await controller.stop()
        await em.stop()
