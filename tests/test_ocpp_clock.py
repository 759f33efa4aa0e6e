"""The lease on the charger's own clock, against real ocpp-package charge points: one odd
timestamp (an hour ahead) must not stretch the validity the charger is sent, while a clock
that really is an hour off is followed."""

from __future__ import annotations

import asyncio

import pytest

from controller.chargers.ocpp.clock import MAX_STEP_S, parse_time
from controller.chargers.ocpp.profiles import DYNAMIC_PROFILE_ID
from test_ocpp_central import LEASE_S, VERSIONS, accepted, charge_point, make_config, online, site

SLACK_S = 2 * MAX_STEP_S + 2  # two bounded steps, whole-second timestamps, transit


def lease_on_its_clock(sim) -> float:
    """Seconds from the charger's clock at receipt to the end of the last dynamic profile."""
    request = [r for r in sim.requests if r.accepted and r.profile.get("chargingProfileId",
                                                                       r.profile.get("id")) == DYNAMIC_PROFILE_ID][-1]
    received = next(p for p in sim.held if p.profile is request.profile).received_at
    return (parse_time(request.profile["validTo"]) - received).total_seconds()


@pytest.mark.parametrize("version", VERSIONS)
async def test_one_timestamp_an_hour_ahead_does_not_stretch_the_lease(version):
    async with site(make_config(lease_s=LEASE_S)) as (central, url), charge_point(url, version=version) as sim:
        driver = await online(central)
        for _ in range(4):  # a few honest timestamps first
            await sim._cp.status_again()
        sim.options.clock_offset_s = 3600.0  # one StatusNotification an hour ahead ...
        await sim._cp.status_again()
        sim.options.clock_offset_s = 0.0  # ... then its clock is right again
        assert await asyncio.wait_for(driver.apply(9), 10)
        assert lease_on_its_clock(sim) <= LEASE_S + SLACK_S
        assert sim.composite_limit_a() == 9.0


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_clock_that_really_is_an_hour_behind_gets_a_lease_of_lease_s(version):
    async with site(make_config(lease_s=LEASE_S)) as (central, url), \
            charge_point(url, version=version, clock_offset_s=-3600.0) as sim:
        driver = await online(central)
        for _ in range(3):
            await sim._cp.status_again()
        assert await asyncio.wait_for(driver.apply(9), 10)
        assert LEASE_S - SLACK_S <= lease_on_its_clock(sim) <= LEASE_S + SLACK_S
        assert sim.composite_limit_a() == 9.0
