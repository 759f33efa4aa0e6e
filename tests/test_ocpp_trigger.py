"""Asking a charger for a fresh report (core/ask.py): TriggerMessage MeterValues to real
ocpp-package charge points on loopback, 1.6 and 2.0.1. The report comes at once instead of at
the next sample interval, a second ask within ASK_EVERY_S sends nothing, and a charger that
does not implement it is asked once per session and says so in its notes."""

from __future__ import annotations

import asyncio

import pytest

from controller.chargers.ocpp.caps import CALL_TIMEOUT_S
from controller.chargers.ocpp.link import ASK_ANSWER_S
from controller.core.ask import ASK_EVERY_S
from controller.model import CarState

from test_ocpp_central import VERSIONS, charge_point, make_config, online, site, until

pytestmark = pytest.mark.timeout(120)


async def charging(central, sim):
    driver = await online(central)
    await sim.plug_in()
    await until(lambda: driver.reading(0).car == CarState.CHARGING, what="charging")
    assert await asyncio.wait_for(driver.apply(10.0), 10)
    return driver


@pytest.mark.parametrize("version", VERSIONS)
async def test_an_asked_report_comes_at_once_and_asks_are_rate_limited(version):
    # sample interval 3600 s: any report within the test is one that was asked for
    async with site(make_config(meter_interval_s=3600)) as (central, url), \
            charge_point(url, version=version) as sim:
        driver = await charging(central, sim)
        assert driver.reading(0).draw_lines_a is None  # nothing reported yet
        driver.ask_report()
        await until(lambda: driver.reading(0).draw_lines_a == (10.0, 10.0, 10.0), what="the asked report")
        assert sim.triggers == 1
        driver.ask_report()  # within ASK_EVERY_S: not sent
        await asyncio.sleep(0.5)
        assert sim.triggers == 1
        assert "trigger" not in driver.status().notes


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_charger_without_trigger_is_asked_once_and_says_so(version):
    async with site(make_config(meter_interval_s=3600)) as (central, url), \
            charge_point(url, version=version, answers_trigger=False) as sim:
        driver = await charging(central, sim)
        driver.ask_report()
        await until(lambda: "trigger" in driver.status().notes, what="the refusal noted")
        assert "NotImplemented" in driver.status().notes["trigger"]
        driver._asked_at -= ASK_EVERY_S  # as if the rate limit had passed: still not asked again
        driver.ask_report()
        await asyncio.sleep(0.5)
        assert sim.triggers == 1 and driver.reading(0).draw_lines_a is None


async def test_a_charger_that_never_answers_costs_a_cut_at_most_the_answer_time_once():
    async with site(make_config(meter_interval_s=3600)) as (central, url), \
            charge_point(url, version="1.6", ignores_trigger=True) as sim:
        driver = await charging(central, sim)
        driver.ask_report()
        await until(lambda: sim.triggers == 1, what="the trigger sent")
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(driver.apply(6.0), 30)  # the cut still goes out
        waited = asyncio.get_running_loop().time() - started
        # bounded by the answer time given to a trigger, not by the call timeout a request gets
        assert waited < CALL_TIMEOUT_S, (waited, ASK_ANSWER_S)
        await until(lambda: "no answer" in driver.status().notes.get("trigger", ""), what="the silence noted")
        driver._asked_at -= ASK_EVERY_S
        driver.ask_report()
        await asyncio.sleep(0.5)
        assert sim.triggers == 1  # not asked again this session
