"""What a charger holds by itself once evfuse is gone is exactly what the core assumes it
holds (DESIGN section 1, invariant 5): 0 for mode "off", else control.fallback_a capped at
the charger's max_a. Checked on the wire: the base profile real OCPP charge points receive,
and the failsafe current a Modbus charger emulator is programmed with.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from controller.chargers.modbus.driver import ModbusCharger, ModbusSettings
from controller.chargers.ocpp.profiles import BASE_PROFILE_ID, DYNAMIC_PROFILE_ID
from controller.config import (ChargerConfig, Config, ControlConfig, MeterConfig, OcppConfig, SerialSettings,
                               SiteConfig, charger_fallback_a)
from controller.core.site import SiteModel
from controller.sim.modbus_charger import ChargerEmulator
from test_modbus_charger_tcp import wait_for
from test_ocpp_central import accepted, charge_point, limit_of, online, site

FALLBACK_A = 10.0
CONTROL = ControlConfig(fallback_a=FALLBACK_A)
CASES = [  # (charger settings, what it must hold by itself)
    (dict(mode="off"), 0.0),
    (dict(max_a=8.0), 8.0),  # max_a below control.fallback_a: capped
    (dict(max_a=16.0), FALLBACK_A),
]


@pytest.mark.parametrize("settings, held", CASES)
def test_one_function_says_it_and_the_core_agrees(settings, held):
    charger = ChargerConfig(id="cp", **settings)
    assert charger_fallback_a(charger, CONTROL) == held
    cfg = Config(site=SiteConfig(), meter=MeterConfig(), control=CONTROL, ocpp=OcppConfig(), chargers=(charger,))
    model = SiteModel.from_config(cfg)
    assert model.fallback_a(model.chargers[0]) == held


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("settings, held", CASES)
async def test_ocpp_base_profile_is_the_chargers_own_fallback(version, settings, held):
    cfg = Config(site=SiteConfig(voltage_v=230.0), meter=MeterConfig(), control=CONTROL,
                 ocpp=OcppConfig(listen="127.0.0.1:0", lease_s=30, meter_interval_s=1),
                 chargers=(ChargerConfig(id="cp1", **settings),))
    async with site(cfg) as (central, url), charge_point(url, version=version) as sim:
        await online(central)
        base = accepted(sim, BASE_PROFILE_ID)
        assert base and limit_of(base[-1]) == held
        # before the first decision the dynamic profile holds the same, not the raw fallback_a
        assert limit_of(accepted(sim, DYNAMIC_PROFILE_ID)[0]) == held
        # and once its lease is over, this is what the charger enforces by itself
        later = sim.composite_limit_a(sim.now().replace(year=sim.now().year + 1))
        assert later == held


@contextlib.asynccontextmanager
async def heidelberg(**settings):
    em = ChargerEmulator("heidelberg", hardware_max_a=16.0)
    port = await em.start_tcp()
    config = ChargerConfig(id="hd", protocol="modbus", profile="heidelberg", watchdog_s=1.0,
                           link=SerialSettings(host="127.0.0.1", port=port, unit_id=em.unit_id), **settings)
    driver = ModbusCharger(config, ModbusSettings(control=CONTROL, timeout_s=0.3), poll_interval_s=0.1)
    try:
        await driver.start()
        await wait_for(lambda: driver.reading(time.monotonic()).online)
        yield em, driver
    finally:
        await driver.close(None)
        await em.stop()


@pytest.mark.parametrize("settings, held", CASES)
async def test_modbus_failsafe_is_the_chargers_own_fallback(settings, held):
    async with heidelberg(**settings) as (em, driver):
        assert em.failsafe_a == held
        assert em.limit_a == held  # the limit before the first decision, too
        assert await driver.apply(12)
        em.silent = True  # evfuse gone: the watchdog trips and the charger offers its failsafe
        await wait_for(lambda: em.tripped())
        assert em.offered_a() == held
