"""The OCPP central system against real ocpp-package charge points over websockets on loopback:
boot, transactions, meter values, the installed profiles checked against the OCPP rules,
renewal, limit changes, units, refused profile forms, non-compliance, disconnects, and the
charger falling back by itself when evfuse dies.

The helpers here are shared by the other test_ocpp_* network tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta, timezone

import pytest

from controller.chargers.ocpp import CentralSystem
from controller.chargers.ocpp.clock import parse_time
from controller.chargers.ocpp.profiles import BASE_PROFILE_ID, DYNAMIC_PROFILE_ID
from controller.config import (ChargerConfig, Config, ControlConfig, MeterConfig, OcppConfig, SiteConfig)
from controller.model import CarState
from controller.sim.chargepoint import SimChargePoint, SimOptions

FALLBACK_A = 6.0
LEASE_S = 4.0  # short, so renewals happen within a test; real default is 120 s
VERSIONS = ["1.6", "2.0.1"]


def make_config(*chargers: ChargerConfig, lease_s: float = LEASE_S, **ocpp) -> Config:
    settings = dict(listen="127.0.0.1:0", lease_s=lease_s, meter_interval_s=1,
                    compliance_allowance_s=1.0, compliance_tolerance_a=1.5)
    settings.update(ocpp)
    return Config(site=SiteConfig(voltage_v=230.0), meter=MeterConfig(),
                  control=ControlConfig(fallback_a=FALLBACK_A), ocpp=OcppConfig(**settings),
                  chargers=chargers or (ChargerConfig(id="cp1"),))


async def until(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll a condition; generous timeout because the test machine is slow and shared."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class SteppableClock:
    """The real clocks plus a jump the test controls, to pass allowances without sleeping."""

    def __init__(self):
        self.skipped_s = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.skipped_s

    def wall(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.skipped_s)


@contextlib.asynccontextmanager
async def site(config: Config, clock=None):
    """A running central system; always torn down."""
    central = CentralSystem(config, clock=clock)
    port = await central.start()
    try:
        scheme = "wss" if config.ocpp.tls_cert else "ws"
        yield central, f"{scheme}://127.0.0.1:{port}"
    finally:
        await central.stop()


@contextlib.asynccontextmanager
async def charge_point(url: str, cp_id: str = "cp1", **options):
    sim = SimChargePoint(cp_id, url, SimOptions(**options))
    try:
        await sim.start()
        yield sim
    finally:
        await sim.stop()


async def online(central: CentralSystem, cp_id: str = "cp1"):
    driver = central.drivers[cp_id]
    await until(lambda: driver.reading(0).online, what=f"{cp_id} online")
    return driver


def accepted(sim: SimChargePoint, profile_id: int) -> list[dict]:
    ids = ("chargingProfileId", "id")
    return [r.profile for r in sim.requests if r.accepted and any(r.profile.get(k) == profile_id for k in ids)]


def schedule(profile: dict) -> dict:
    s = profile["chargingSchedule"]
    return s[0] if isinstance(s, list) else s


def limit_of(profile: dict) -> float:
    return float(schedule(profile)["chargingSchedulePeriod"][0]["limit"])


# --------------------------------------------------------------------------- boot and profiles


@pytest.mark.parametrize("version", VERSIONS)
async def test_boot_transaction_meter_values_and_profiles_follow_the_rules(version):
    async with site(make_config()) as (central, url), charge_point(url, version=version) as sim:
        driver = await online(central)
        assert sim.config_changes  # meter value sampling was configured
        interval_key = "MeterValueSampleInterval" if version == "1.6" else "TxUpdatedInterval"
        measurands_key = "MeterValuesSampledData" if version == "1.6" else "TxUpdatedMeasurands"
        assert sim.config_changes[interval_key] == "1"
        assert "Current.Import" in sim.config_changes[measurands_key]
        assert "Current.Offered" in sim.config_changes[measurands_key]

        base, dynamic = accepted(sim, BASE_PROFILE_ID)[-1], accepted(sim, DYNAMIC_PROFILE_ID)[-1]
        for p in (base, dynamic):
            assert p["chargingProfilePurpose"] == "TxDefaultProfile"
            assert schedule(p)["chargingSchedulePeriod"][0]["startPeriod"] == 0
            assert schedule(p)["chargingRateUnit"] == "A"
            assert "transactionId" not in p  # only TxProfile carries one
        assert all(r.target == 0 for r in sim.requests)  # whole charger
        assert base["stackLevel"] < dynamic["stackLevel"]
        assert limit_of(base) == FALLBACK_A and "validTo" not in base and "duration" not in schedule(base)
        valid_from, valid_to = parse_time(dynamic["validFrom"]), parse_time(dynamic["validTo"])
        assert valid_from < sim.now() < valid_to <= sim.now() + timedelta(seconds=LEASE_S + 1)
        assert schedule(dynamic)["startSchedule"] == dynamic["validFrom"]

        await sim.plug_in()
        await until(lambda: driver.reading(0).car == CarState.CHARGING, what="charging")
        assert await asyncio.wait_for(driver.apply(10.37), 10)
        assert limit_of(accepted(sim, DYNAMIC_PROFILE_ID)[-1]) == 10.3  # rounded down
        assert sim.composite_limit_a() == 10.3
        await sim.send_meter_values()
        await until(lambda: driver.reading(0).draw_lines_a == (10.3, 10.3, 10.3), what="meter values")
        status = driver.status()
        assert status.connected and status.limit_a == 10.3 and status.fallback_protected
        assert status.notes["offered_a"] == "10.3"

        await sim.unplug()
        await until(lambda: driver.reading(0).car == CarState.NO_CAR, what="car gone")
        assert driver.reading(0).draw_lines_a == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("version", VERSIONS)
async def test_zero_pauses_and_limits_are_capped_at_max_a(version):
    cfg = make_config(ChargerConfig(id="cp1", max_a=16))
    async with site(cfg) as (central, url), charge_point(url, version=version) as sim:
        driver = await online(central)
        assert await asyncio.wait_for(driver.apply(0), 10)
        assert sim.composite_limit_a() == 0.0
        assert await asyncio.wait_for(driver.apply(40), 10)
        assert sim.composite_limit_a() == 16.0


@pytest.mark.parametrize("version", VERSIONS)
async def test_dynamic_profile_is_renewed_before_it_expires(version):
    async with site(make_config()) as (central, url), charge_point(url, version=version) as sim:
        driver = await online(central)
        assert await asyncio.wait_for(driver.apply(12), 10)
        first = accepted(sim, DYNAMIC_PROFILE_ID)[-1]
        await sim.wait_for_profile(lambda r: r.accepted and r.profile is not first
                                   and r.profile.get("stackLevel") == first["stackLevel"]
                                   and r.profile.get("validTo", "") > first["validTo"], timeout=LEASE_S * 3)
        renewed = accepted(sim, DYNAMIC_PROFILE_ID)[-1]
        assert limit_of(renewed) == 12.0  # unchanged limit, fresh validity
        # renewed at about half the lease: well before the first one ran out
        assert parse_time(renewed["validFrom"]) < parse_time(first["validTo"])


async def test_watts_charger_gets_watts_for_the_phases_in_use():
    cfg = make_config(ChargerConfig(id="cp1", phases="AB"))  # two phases wired
    async with site(cfg) as (central, url), charge_point(url, unit="W", phases=2) as sim:
        driver = await online(central)
        assert await asyncio.wait_for(driver.apply(10.06), 10)
        dynamic = accepted(sim, DYNAMIC_PROFILE_ID)[-1]
        assert schedule(dynamic)["chargingRateUnit"] == "W"
        # Its car's phases not known yet: a W limit assumes the fewest (a 1-phase car takes 10 A),
        # and says nothing of numberPhases (which could switch a 2-phase car to one phase).
        assert limit_of(dynamic) == 10.0 * 230 and "numberPhases" not in schedule(dynamic)["chargingSchedulePeriod"][0]
        # the fallback assumes the fewest phases: whatever car comes next takes at most fallback_a
        assert limit_of(accepted(sim, BASE_PROFILE_ID)[-1]) == FALLBACK_A * 230
        assert sim.composite_limit_a() == pytest.approx(5.0)  # the 2-phase car: half of it per phase
        driver.use_phases(2)  # the core sees it on both (core/phases.py phases_in_use)
        await sim.wait_for_profile(lambda r: r.accepted and limit_of(r.profile) == 10.0 * 230 * 2, timeout=10)
        assert schedule(accepted(sim, DYNAMIC_PROFILE_ID)[-1])["chargingSchedulePeriod"][0]["numberPhases"] == 2
        assert sim.composite_limit_a() == pytest.approx(10.0)
        assert driver.status().notes["unit_allowed"] == "Power"


async def test_watts_on_an_it_grid_are_phase_to_phase():
    """A charger wired "AB" on a 230 V IT grid: one current through both phases, so 10 A is
    2300 W, not 4600 W (which gave the car twice its current)."""
    cfg = make_config(ChargerConfig(id="cp1", phases="AB"))
    cfg = Config(**{**cfg.__dict__, "site": SiteConfig(voltage_v=230.0, grid="IT")})
    async with site(cfg) as (central, url), charge_point(url, unit="W", phases=1) as sim:
        driver = await online(central)
        assert await asyncio.wait_for(driver.apply(10), 10)
        assert limit_of(accepted(sim, DYNAMIC_PROFILE_ID)[-1]) == 10.0 * 230
        assert limit_of(accepted(sim, BASE_PROFILE_ID)[-1]) == FALLBACK_A * 230
        assert sim.composite_limit_a() == pytest.approx(10.0)  # what the car may take


async def test_watts_fallback_of_a_three_phase_charger_holds_a_one_phase_car_to_fallback_a():
    """A 1-phase car on an "ABC" charger that takes only watts: once evfuse is gone (the dynamic
    profile's lease over), the charger's own fallback must not let it take 3 x fallback_a."""
    cfg = make_config(ChargerConfig(id="cp1", phases="ABC"))
    async with site(cfg) as (central, url), charge_point(url, unit="W", phases=1) as sim:
        driver = await online(central)
        await sim.plug_in()
        assert await asyncio.wait_for(driver.apply(16), 10)
        base = accepted(sim, BASE_PROFILE_ID)[-1]
        assert schedule(base)["chargingRateUnit"] == "W" and limit_of(base) == FALLBACK_A * 230
        after_lease = sim.now() + timedelta(seconds=LEASE_S + 60)
        assert sim.composite_limit_a(at=after_lease) == pytest.approx(FALLBACK_A)
        assert sim.draws_a(at=after_lease)[1] == pytest.approx(FALLBACK_A)


@pytest.mark.parametrize("version", VERSIONS)
async def test_relative_profiles_carry_no_wall_clock(version):
    cfg = make_config(ChargerConfig(id="cp1", profile_kind="relative"))
    async with site(cfg) as (central, url), charge_point(url, version=version) as sim:
        await online(central)
        dynamic = accepted(sim, DYNAMIC_PROFILE_ID)[-1]
        assert dynamic["chargingProfileKind"] == "Relative"
        assert "validTo" not in dynamic and "startSchedule" not in schedule(dynamic)
        assert schedule(dynamic)["duration"] == LEASE_S


@pytest.mark.parametrize("version", VERSIONS)
async def test_absolute_profiles_use_the_chargers_own_clock(version):
    async with site(make_config()) as (central, url), \
            charge_point(url, version=version, clock_offset_s=3600) as sim:
        driver = await online(central)
        await sim.plug_in()  # sends timestamps in its (wrong) clock
        assert await asyncio.wait_for(driver.apply(11), 10)
        dynamic = accepted(sim, DYNAMIC_PROFILE_ID)[-1]
        assert parse_time(dynamic["validFrom"]) < sim.now() < parse_time(dynamic["validTo"])
        assert sim.composite_limit_a() == 11.0


# --------------------------------------------------------------------------- refusals, compliance


@pytest.mark.parametrize("version", VERSIONS)
async def test_refused_profile_form_falls_back_to_an_alternative_and_is_remembered(version):
    async with site(make_config()) as (central, url):
        async with charge_point(url, version=version, reject_purposes=frozenset({"TxDefaultProfile"})) as sim:
            driver = await online(central)
            assert any(not r.accepted for r in sim.requests)
            station_max = "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"
            dynamic = accepted(sim, DYNAMIC_PROFILE_ID)[-1]
            assert dynamic["chargingProfilePurpose"] == station_max
            assert dynamic["chargingProfileKind"] == "Absolute"  # never Relative for station max
            assert accepted(sim, BASE_PROFILE_ID)[-1]["chargingProfilePurpose"] == station_max
            assert station_max in driver.status().notes["profile"]
            assert await asyncio.wait_for(driver.apply(9), 10)
            assert sim.composite_limit_a() == 9.0
        await until(lambda: not driver.reading(0).online, what="offline")
        async with charge_point(url, version=version, reject_purposes=frozenset({"TxDefaultProfile"}),
                                boot=False) as again:
            await online(central)
            assert all(r.accepted for r in again.requests)  # went straight to what worked


@pytest.mark.parametrize("version", VERSIONS)
async def test_charger_refusing_connector_0_gets_its_profiles_on_connector_1(version):
    async with site(make_config()) as (central, url), \
            charge_point(url, version=version, reject_targets=frozenset({0})) as sim:
        await online(central)
        assert accepted(sim, DYNAMIC_PROFILE_ID)[-1]["chargingProfilePurpose"] == "TxDefaultProfile"
        assert [r.target for r in sim.requests if r.accepted] == [1, 1]


@pytest.mark.parametrize("version", VERSIONS)
async def test_charger_ignoring_its_limit_is_flagged_non_compliant(version):
    clock = SteppableClock()
    cfg = make_config(compliance_allowance_s=15.0, meter_interval_s=60)  # samples sent by hand
    async with site(cfg, clock) as (central, url), \
            charge_point(url, version=version, ignore_limits=True, car_max_a=16) as sim:
        driver = await online(central)
        await sim.plug_in()
        assert await asyncio.wait_for(driver.apply(8), 10)
        await sim.send_meter_values()
        await until(lambda: driver.reading(0).draw_lines_a == (16.0, 16.0, 16.0), what="meter values")
        assert driver.reading(0).compliant  # the car still has its allowance
        clock.skipped_s += 16  # longer than the allowance, without waiting for it
        await sim.send_meter_values()
        await until(lambda: not driver.reading(0).compliant, what="non-compliance")
        assert driver.status().compliant is False


@pytest.mark.parametrize("version", VERSIONS)
async def test_charger_refusing_a_cut_while_its_car_draws_on_is_flagged_non_compliant(version):
    # It acknowledged 10 A and refuses the 0 A pause: what it acknowledged is not what it must
    # keep to (the core counts it as fixed load then, and the net and the others make room).
    clock = SteppableClock()
    cfg = make_config(compliance_allowance_s=15.0, meter_interval_s=60)  # samples sent by hand
    async with site(cfg, clock) as (central, url), \
            charge_point(url, version=version, refuses_below_a=6.0, car_max_a=16) as sim:
        driver = await charging_at(central, sim, 10)
        assert not await asyncio.wait_for(driver.apply(0), 10)  # refused
        assert driver.acked_a == 10.0
        await sim.send_meter_values()
        await until(lambda: driver.reading(0).draw_lines_a == (10.0, 10.0, 10.0), what="meter values")
        assert driver.reading(0).compliant  # the car still has its allowance
        clock.skipped_s += 16
        await sim.send_meter_values()
        await until(lambda: not driver.reading(0).compliant, what="non-compliance")


async def charging_at(central, sim, amps):
    driver = await online(central)
    await sim.plug_in()
    await until(lambda: driver.reading(0).car == CarState.CHARGING, what="charging")
    assert await asyncio.wait_for(driver.apply(amps), 10)
    return driver


async def test_charger_refusing_every_profile_is_reported_not_online_and_not_protected():
    refuse_all = frozenset({"TxDefaultProfile", "ChargePointMaxProfile"})
    async with site(make_config()) as (central, url), charge_point(url, reject_purposes=refuse_all) as sim:
        driver = central.drivers["cp1"]
        await until(lambda: "profile_error" in driver.status().notes, what="refusal reported")
        status = driver.status()
        assert status.connected and not status.fallback_protected and status.limit_a is None
        assert not driver.reading(0).online
        assert await driver.apply(10) is False
        assert sim.requests and not any(r.accepted for r in sim.requests)


# --------------------------------------------------------------------------- disconnects, fallback


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_second_connection_with_the_same_id_replaces_the_first(version):
    async with site(make_config()) as (central, url), charge_point(url, version=version) as first:
        driver = await online(central)
        async with charge_point(url, version=version) as second:
            await until(lambda: driver.link is not None and driver.link.ready
                        and accepted(second, DYNAMIC_PROFILE_ID), what="second link ready")
            assert await asyncio.wait_for(driver.apply(9), 10)
            assert second.composite_limit_a() == 9.0
            await until(lambda: first._ws.close_code is not None, what="first link closed")


@pytest.mark.parametrize("version", VERSIONS)
async def test_close_leaves_the_charger_at_the_fallback_and_stops_renewing(version):
    async with site(make_config()) as (central, url), charge_point(url, version=version) as sim:
        driver = await online(central)
        assert await asyncio.wait_for(driver.apply(15), 10)
        await driver.close(FALLBACK_A)
        assert sim.composite_limit_a() == FALLBACK_A
        sent = len(sim.requests)
        await asyncio.sleep(LEASE_S / 2 + 0.5)  # a renewal would have come by now
        assert len(sim.requests) == sent and await driver.apply(12) is False


@pytest.mark.parametrize("version", VERSIONS)
async def test_disconnect_keeps_draw_and_lease_then_reconnect_initialises_again(version):
    async with site(make_config()) as (central, url):
        async with charge_point(url, version=version) as sim:
            driver = await online(central)
            await sim.plug_in()
            assert await asyncio.wait_for(driver.apply(10), 10)
            await sim.send_meter_values()
            await until(lambda: driver.reading(0).draw_lines_a == (10.0, 10.0, 10.0), what="draw")
        await until(lambda: not driver.reading(0).online, what="offline")
        reading, dropped_at = driver.reading(0), driver.clock.monotonic()
        assert reading.online is False and reading.draw_lines_a == (10.0, 10.0, 10.0)
        # the profile it holds was sent (or renewed) shortly before, and ends lease_s after that
        assert dropped_at - LEASE_S < reading.lease_until <= dropped_at + LEASE_S
        assert await driver.apply(7) is False  # recorded, but nobody to accept it
        async with charge_point(url, version=version, boot=False) as again:
            await online(central)
            assert limit_of(accepted(again, DYNAMIC_PROFILE_ID)[-1]) == 7.0
            assert accepted(again, BASE_PROFILE_ID)  # initialised again


@pytest.mark.parametrize("kind", ["absolute", "relative"])
@pytest.mark.parametrize("version", VERSIONS)
async def test_charger_falls_back_by_itself_within_the_lease_when_evfuse_dies(version, kind):
    async with charge_point_site_killed(version, kind) as (sim, killed_at):
        # Just before the kill the charger obeyed the dynamic limit...
        assert sim.composite_limit_a(killed_at) == 14.0
        # ...and from lease_s after it, with nobody renewing, only the base profile is left.
        assert sim.composite_limit_a(killed_at + timedelta(seconds=LEASE_S)) == FALLBACK_A
        assert sim.composite_limit_a(killed_at + timedelta(days=30)) == FALLBACK_A


@contextlib.asynccontextmanager
async def charge_point_site_killed(version, kind):
    sim = SimChargePoint("cp1", "ws://unused", SimOptions(version=version))
    async with site(make_config(ChargerConfig(id="cp1", profile_kind=kind))) as (central, url):
        sim.url = f"{url}/cp1"
        await sim.start()
        driver = await online(central)
        await sim.plug_in()
        await until(lambda: driver.tx_id is not None, what="transaction")
        assert await asyncio.wait_for(driver.apply(14), 10)
    # the central system is gone: no close(), no goodbye profile
    killed_at = sim.now()
    try:
        yield sim, killed_at
    finally:
        await sim.stop()
