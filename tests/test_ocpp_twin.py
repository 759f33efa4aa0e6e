"""Chargers with several connectors over OCPP 1.6J and 2.0.1, against twin charge points built
with the ocpp package whose cars follow the profiles with OCPP's per-connector semantics (a
connector-0 TxDefault applies to EACH connector, the station cap limits their sum): state,
transactions and MeterValues per connector, a profile per connector plus the station cap,
the cap alone for a charger refusing per-connector profiles, what the twin holds by itself
once evfuse is gone, and a connector the config does not have."""

from __future__ import annotations

import asyncio
import logging
import tomllib
from dataclasses import replace
from datetime import timedelta

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from controller.chargers.ocpp.clock import format_time
from controller.chargers.ocpp.profiles import CAP_PROFILE_IDS, EACH, profile_ids
from controller.config import parse_config
from controller.model import CarState
from test_ocpp_central import VERSIONS, charge_point, site, until

TWIN = """
[site]
fuse_a = 40
[meter]
host = "127.0.0.1"
[control]
fallback_a = 6
[ocpp]
listen = "127.0.0.1:0"
meter_interval_s = 1
compliance_allowance_s = 1
[[charger]]
id = "twin"
max_a = 32
  [[charger.connector]]
  id = 1
  max_a = 16
  [[charger.connector]]
  id = 2
  max_a = 16
"""


def twin_config(text: str = TWIN):
    cfg = parse_config(tomllib.loads(text), "twin.toml")
    return replace(cfg, ocpp=replace(cfg.ocpp, lease_s=4.0))  # renewals within a test


def ready(central) -> bool:
    return all(d.reading(0).online for d in central.drivers.values())


def held_on(sim, target: int, purpose: str):
    """The dynamic profile the charger holds on `target` for `purpose`, or None."""
    found = [p for p in sim.held if p.target == target and p.profile["chargingProfilePurpose"] == purpose
             and p.profile["stackLevel"] >= 1]
    return found[-1].profile if found else None


def limit_of(profile) -> float:
    schedule = profile["chargingSchedule"]
    schedule = schedule[0] if isinstance(schedule, list) else schedule
    return float(schedule["chargingSchedulePeriod"][0]["limit"])


@pytest.mark.parametrize("version", VERSIONS)
async def test_each_connector_has_its_own_car_transaction_draw_and_profile(version):
    async with site(twin_config()) as (central, url), \
            charge_point(url, "twin", version=version, connectors=2, car_max_a=16) as sim:
        one, two = central.drivers["twin/1"], central.drivers["twin/2"]
        await until(lambda: ready(central), what="both connectors online")
        await sim.plug_in(connector=1)
        await until(lambda: one.reading(0).car is CarState.CHARGING, what="car on 1")
        assert two.reading(0).car is CarState.NO_CAR  # connector 2's "Available" is its own
        assert await one.apply(10) and await two.apply(6)
        # one profile per connector, never a TxDefault on 0 (OCPP applies that to EACH connector)
        assert limit_of(held_on(sim, 1, "TxDefaultProfile")) == 10.0
        assert limit_of(held_on(sim, 2, "TxDefaultProfile")) == 6.0
        assert held_on(sim, 0, "TxDefaultProfile") is None
        cap = "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"
        assert limit_of(held_on(sim, 0, cap)) == 16.0  # the station cap at their sum
        assert [r.profile.get("chargingProfileId", r.profile.get("id")) for r in sim.requests
                if r.target == 2 and r.accepted][-1] == profile_ids(2)[1]
        assert "TxDefaultProfile@each connector" in one.status().notes["profile"]
        assert "+ station cap" in one.status().notes["profile"]
        await sim.plug_in(connector=2)
        await until(lambda: two.reading(0).car is CarState.CHARGING, what="car on 2")
        await until(lambda: (one.reading(0).draw_lines_a or (0,))[0] == 10.0
                    and (two.reading(0).draw_lines_a or (0,))[0] == 6.0, what="each its own draw")
        assert sim.draws_a() == {1: 10.0, 2: 6.0}
        # one car leaves: the other's car, draw and limit stay as they were
        await sim.unplug(connector=2)
        await until(lambda: two.reading(0).car is CarState.NO_CAR, what="2 unplugged")
        assert one.reading(0).car is CarState.CHARGING and one.tx_id is not None
        assert one.reading(0).draw_lines_a[0] == 10.0 and one.status().limit_a == 10.0
        assert sim.draws_a()[1] == 10.0


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_charger_refusing_per_connector_profiles_gets_the_station_cap_alone(version):
    async with site(twin_config()) as (central, url), \
            charge_point(url, "twin", version=version, connectors=2, car_max_a=16,
                         reject_targets=frozenset({1, 2})) as sim:
        one, two = central.drivers["twin/1"], central.drivers["twin/2"]
        await until(lambda: ready(central), timeout=30, what="online in the fallback form")
        assert one.form.target == 0 and one.form.purpose != "TxDefaultProfile"
        assert "station cap only" in two.status().notes["profile"]
        await sim.plug_in(connector=1)
        await sim.plug_in(connector=2)
        assert await one.apply(10) and await two.apply(4)
        # no TxDefault anywhere: connector 0's would let EACH connector draw it
        assert not any(p.profile["chargingProfilePurpose"] == "TxDefaultProfile" for p in sim.held)
        draws = sim.draws_a()
        assert sum(draws.values()) <= 14.0 + 1e-9  # never above the plan's sum
        # the charger splits the cap its own way (here 7 A each): connector 2's car above its
        # own 4 A obeys the cap, so it is not flagged (and counted as fixed load) for it
        await until(lambda: (two.reading(0).draw_lines_a or (0,))[0] > 4.0 + 2.0, what="2's car above its own limit")
        await asyncio.sleep(2.5)  # past compliance_allowance_s, with more reports
        assert two.reading(0).draw_lines_a[0] > 6.0 and two.reading(0).compliant and one.reading(0).compliant
        assert await one.apply(0)
        assert sum(sim.draws_a().values()) <= 4.0 + 1e-9


def base_on(sim, target: int, purpose: str):
    """The never-expiring base profile the charger holds on `target` for `purpose`, or None."""
    found = [p for p in sim.held if p.target == target and p.profile["chargingProfilePurpose"] == purpose
             and p.profile["stackLevel"] == 0]
    return found[-1].profile if found else None


def cap_purpose(version: str) -> str:
    return "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("refuses", ["nothing", "the cap", "connectors"])
async def test_what_a_twin_holds_once_evfuse_is_gone_is_what_the_core_assumes(version, refuses):
    cfg = twin_config()
    options = {"nothing": {}, "the cap": {"reject_purposes": frozenset({cap_purpose(version)})},
               "connectors": {"reject_targets": frozenset({1, 2})}}[refuses]
    async with site(cfg) as (central, url), \
            charge_point(url, "twin", version=version, connectors=2, car_max_a=16, **options) as sim:
        one, two = central.drivers["twin/1"], central.drivers["twin/2"]
        await until(lambda: ready(central), timeout=30, what="online")
        assert one.form.target == (0 if refuses == "connectors" else EACH)
        if refuses == "the cap":
            assert "no station cap" in one.status().notes["profile"]
        await sim.plug_in(connector=1)
        await sim.plug_in(connector=2)
        assert await one.apply(16) and await two.apply(16)
        assert sum(sim.draws_a().values()) == 32.0
        # evfuse dies: no renewal; past the lease the twin holds its base profiles only
        later = sim.now() + timedelta(seconds=cfg.ocpp.lease_s + 60)
        alone = sim.draws_a(at=later)
        assumed = {1: one.fallback_a, 2: two.fallback_a}  # the core: each connector its fallback
        assert sum(alone.values()) <= sum(assumed.values()) + 1e-9
        if refuses != "connectors":
            assert alone == assumed  # per connector, exactly
            # each connector's own base holds its fallback: whatever the charger makes of the
            # cap (or without one), neither car may take more than the core counts it at
            assert {n: limit_of(base_on(sim, n, "TxDefaultProfile")) for n in (1, 2)} == assumed
        if refuses != "the cap":
            assert limit_of(base_on(sim, 0, cap_purpose(version))) == sum(assumed.values())


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_connector_the_config_does_not_have_is_logged_once_and_counted(version, caplog):
    async with site(twin_config()) as (central, url), \
            charge_point(url, "twin", version=version, connectors=3, car_max_a=16) as sim:
        one = central.drivers["twin/1"]
        await until(lambda: ready(central), what="online")
        caplog.set_level(logging.WARNING, "controller.chargers.ocpp")
        await sim.plug_in(connector=3)
        await sim.send_meter_values(3)
        await sim.send_meter_values(3)
        await until(lambda: one.reading(0).draw_lines_a is not None and one.reading(0).draw_lines_a[0] > 0,
                    what="connector 3's draw counted with twin/1")
        stray = sim.draws_a()[3]
        assert stray > 0 and one.reading(0).draw_lines_a[0] == pytest.approx(stray)
        assert one.reading(0).acked_a == one.status().limit_a  # under the station cap: nothing beyond it
        warnings = [r for r in caplog.records if getattr(r, "FAULT", None) == "unknown-connector"]
        assert len(warnings) == 1 and warnings[0].CONNECTOR == 3
        assert one.status().notes["unknown_connectors"] == "3"
        # the station cap holds connector 3 too: it only ever takes from the plan's sum
        cap = "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"
        assert sum(sim.draws_a().values()) <= limit_of(held_on(sim, 0, cap)) + 1e-9


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_charger_without_connector_tables_is_not_fooled_by_a_second_connector(version):
    cfg = twin_config(TWIN.split("  [[charger.connector]]")[0].replace("max_a = 32", "max_a = 16"))
    async with site(cfg) as (central, url), \
            charge_point(url, "twin", version=version, connectors=2, car_max_a=16) as sim:
        only = central.drivers["twin"]
        await until(lambda: ready(central), what="online")
        await sim.plug_in(connector=1)
        await until(lambda: only.reading(0).car is CarState.CHARGING, what="charging")
        assert await only.apply(10)
        assert only.reading(0).acked_a == 10.0
        # connector 2 reports "Available" at boot and again now: it never overwrites connector 1
        await sim.plug_in(connector=2)
        # ... and its car is counted at the worst: the TxDefault on 0 gives it 10 A as well
        await until(lambda: only.reading(0).acked_a == 20.0, what="connector 2 counted at 10 A")
        await sim.unplug(connector=2)
        await until(lambda: only.reading(0).acked_a == 10.0, what="connector 2 without a car")
        assert only.reading(0).car is CarState.CHARGING


@pytest.mark.parametrize("version", VERSIONS)
async def test_profiles_a_half_refused_form_left_behind_are_cleared(version):
    # the config has a connector 3 the charger refuses profiles on: the per-connector forms fail
    # after connectors 1 and 2 took theirs, and the station cap alone remains
    text = TWIN + "  [[charger.connector]]\n  id = 3\n  max_a = 10\n"
    async with site(twin_config(text)) as (central, url), \
            charge_point(url, "twin", version=version, connectors=2, car_max_a=16) as sim:
        one, two = central.drivers["twin/1"], central.drivers["twin/2"]
        await until(lambda: ready(central), timeout=30, what="online in the fallback form")
        assert "station cap only" in one.status().notes["profile"]
        assert not any(p.target != 0 for p in sim.held)  # nothing left on the connectors
        assert "stale_profiles" not in one.status().notes
        await sim.plug_in(connector=1)
        await sim.plug_in(connector=2)
        three = central.drivers["twin/3"]
        assert await one.apply(12) and await two.apply(4) and await three.apply(0)
        assert sum(sim.draws_a().values()) == 16.0  # the cap at the plan's sum, not a leftover 6 A each


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_transaction_on_no_connector_it_named_is_counted_apart(version, caplog):
    async with site(twin_config()) as (central, url), \
            charge_point(url, "twin", version=version, connectors=2, car_max_a=16) as sim:
        one = central.drivers["twin/1"]
        await until(lambda: ready(central), what="online")
        caplog.set_level(logging.WARNING, "controller.chargers.ocpp")
        if version == "1.6":  # a StartTransaction on connector 0, while connector 1 charges
            await sim.plug_in(connector=1)
            await until(lambda: one.tx_id is not None, what="1's transaction")
            own = one.tx_id
            await sim._cp.call(call16.StartTransaction(connector_id=0, id_tag="X", meter_start=0,
                                                       timestamp=format_time(sim.now())))
            assert one.tx_id == own  # connector 1's transaction is not overwritten
        else:  # a transaction begun before evfuse knew the station: its events name no EVSE
            sim.tx[1], sim.tx_start[1] = "begun-before", sim.now()
            await sim.send_meter_values(1)
            await sim.send_meter_values(1)
            await until(lambda: (one.reading(0).draw_lines_a or (0,))[0] > 0, what="its draw counted with twin/1")
            assert one.tx_id is None and one.reading(0).car is CarState.NO_CAR  # not connector 1's
        await until(lambda: one.status().notes.get("unknown_connectors") == "?", what="noted")
        warnings = [r for r in caplog.records if getattr(r, "FAULT", None) == "unknown-connector"]
        assert len(warnings) == 1 and "never named" in warnings[0].getMessage()


async def test_an_evses_connector_not_in_use_never_overwrites_the_car_on_its_other():
    # 2.0.1: an EVSE may have several connectors (a socket and a tethered cable), reported one
    # by one; the one not in use says "Unavailable" (or "Available") while the car charges
    async with site(twin_config()) as (central, url), \
            charge_point(url, "twin", version="2.0.1", connectors=2, car_max_a=16) as sim:
        one, two = central.drivers["twin/1"], central.drivers["twin/2"]
        await until(lambda: ready(central), what="online")

        async def status(evse: int, connector: int, state: str):
            await sim._cp.call(call201.StatusNotification(timestamp=format_time(sim.now()), connector_status=state,
                                                          evse_id=evse, connector_id=connector))

        await sim.plug_in(connector=1)  # on EVSE 1's connector 1
        await until(lambda: one.reading(0).car is CarState.CHARGING, what="car on EVSE 1")
        await status(1, 2, "Unavailable")
        await status(1, 2, "Available")
        assert one.reading(0).car is CarState.CHARGING
        # a car on EVSE 2's cable (its connector 2), its socket Unavailable meanwhile
        await status(2, 2, "Occupied")
        await status(2, 1, "Unavailable")
        assert two.reading(0).car is CarState.CONNECTED
        await status(2, 2, "Available")
        await status(2, 1, "Available")
        assert two.reading(0).car is CarState.NO_CAR and one.reading(0).car is CarState.CHARGING


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("refuse", [frozenset(), frozenset({1, 2})])
async def test_a_twin_that_takes_watts_only_never_gives_one_phase_cars_more_than_the_plan(version, refuse):
    # phases in use not known yet: watts are converted for one phase, so 1-phase cars take
    # their limits (3-phase ones a third of them), the station cap the connectors' sum
    async with site(twin_config()) as (central, url), \
            charge_point(url, "twin", version=version, connectors=2, car_max_a=16, unit="W", phases=1,
                         reject_targets=refuse) as sim:
        one, two = central.drivers["twin/1"], central.drivers["twin/2"]
        await until(lambda: ready(central), timeout=30, what="online")
        assert one.status().notes["unit"] == "W"
        await sim.plug_in(connector=1)
        await sim.plug_in(connector=2)
        assert await one.apply(10) and await two.apply(4)
        draws = sim.draws_a()
        assert sum(draws.values()) <= 14.0 + 1e-9
        if not refuse:
            assert draws == {1: 10.0, 2: 4.0}
        # the cap follows the decrease of connector 2 (sent after it): 14 A in watts for one phase
        await until(lambda: limit_of(held_on(sim, 0, cap_purpose(version))) == 14 * 230.0, what="the cap in W")
