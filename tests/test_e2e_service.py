"""End to end: the real `evfuse run` process against a simulated site on loopback — a Modbus
meter server fed by household + cars, and OCPP charge points built with the ocpp package.

The site: 25 A fuse, 1 A margin (limit 24 A), household 3 / 2 / 2.5 A on A / B / C."""

import asyncio
import signal
from datetime import timedelta

import pytest
from websockets.exceptions import InvalidStatus

from controller.sim.chargepoint import SimChargePoint, SimOptions
from controller.sim.live_site import SimCharger

from e2e_kit import Service

pytestmark = pytest.mark.timeout(90)

V16 = SimOptions(version="1.6", response_delay_s=1.0)
V201 = SimOptions(version="2.0.1", response_delay_s=1.0)
TWO_TO_ONE = (SimCharger("big", "ABC", V16, weight=2), SimCharger("small", "ABC", V201, weight=1))


async def test_steady_sharing_by_priority_and_weight(tmp_path):
    # Phase A binds: 24 - 3 = 21 A for two chargers weighted 2:1.
    async with Service(TWO_TO_ONE, tmp_path=tmp_path) as svc:
        await svc.until(lambda: (svc.limit("big"), svc.limit("small")) == (14.0, 7.0), "14 A / 7 A")
        await svc.until(lambda: (svc.draw("big"), svc.draw("small")) == (14.0, 7.0), "cars to follow")
    chargers = (SimCharger("first", "ABC", V16, priority=1), SimCharger("second", "ABC", V201, priority=2))
    async with Service(chargers, tmp_path=tmp_path) as svc:
        await svc.until(lambda: (svc.limit("first"), svc.limit("second")) == (15.0, 6.0), "15 A / 6 A")


async def test_household_step_is_cut_and_the_cars_follow(tmp_path):
    async with Service(TWO_TO_ONE, tmp_path=tmp_path) as svc:
        await svc.steady(lambda: (svc.draw("big"), svc.draw("small")) == (14.0, 7.0), "14 A / 7 A")
        svc.site.household = lambda t: (10.0, 0.0, 0.0)  # 13 A household on A: 11 A left
        await svc.until(lambda: svc.limit("big") <= 11.0 and svc.limit("small") == 0.0,
                        "the cut: one charger shed, the other at most 11 A", 10)
        # Cut by the fast path on the first overloaded sample, not by the persistence pause
        # (how fast is measured by benchmarks/bench_reaction.py, not here).
        assert any("small: " in line and "-> 0.0 A (shed" in line for line in svc.log)
        assert not svc.logged("overload on phase A for")
        await svc.until(lambda: svc.limit("big") == 11.0, "the other settling at 11 A", 15)
        await svc.until(lambda: svc.site.meter_a[0] <= 24.0, "the cars' draw to follow", 10)
        assert svc.logged("overload on phase A")


@pytest.mark.parametrize("fault", ["silent", "nan"])
async def test_meter_lost_means_fallback_then_ramp_back(tmp_path, fault):
    async with Service(TWO_TO_ONE, tmp_path=tmp_path) as svc:
        await svc.until(lambda: svc.limit("big") == 14.0, "steady state")
        setattr(svc.site.meter, fault, True)
        took = await svc.until(lambda: svc.limit("big") == 6.0 and svc.limit("small") == 6.0,
                               "every charger at fallback", 10)
        assert took <= 3.0 + 0.25 + 3.0  # stale_after_s + one poll, and slack for a busy machine
        assert svc.logged("meter lost")
        setattr(svc.site.meter, fault, False)
        # Back at the shares; a household estimate that reads a little high as both cars ramp
        # together may leave one within the dead band (0.5 A) below, for BAND_HOLD_S at most
        # (tests/test_core_dead_band.py), never above.
        await svc.until(lambda: all(0 <= share - svc.limit(c) < 0.5 for c, share in (("big", 14.0), ("small", 7.0))),
                        "ramp back", 30)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_sigkill_chargers_fall_back_within_the_lease(tmp_path, version):
    chargers = (SimCharger("garage", "ABC", SimOptions(version=version)),)
    async with Service(chargers, tmp_path=tmp_path, lease_s=20) as svc:
        await svc.until(lambda: svc.limit("garage") == 16.0, "garage at 16 A")
        cp = svc.site.points["garage"]
        svc.proc.kill()
        await svc.proc.wait()
        killed = cp.now()
        assert cp.composite_limit_a(killed) == 16.0  # the lease still runs ...
        later = cp.composite_limit_a(killed + timedelta(seconds=svc.lease_s + 1))
        assert later == 6.0  # ... and ends by itself at fallback_a, with nobody to renew it


async def test_sigterm_keeps_every_limit_for_the_short_lease_only(tmp_path):
    async with Service(TWO_TO_ONE, tmp_path=tmp_path, ocpp_extra="stop_lease_s = 20") as svc:
        await svc.until(lambda: svc.limit("big") == 14.0 and svc.limit("small") == 7.0, "steady state")
        assert await svc.signal(signal.SIGTERM) == 0
        assert (svc.limit("big"), svc.limit("small")) == (14.0, 7.0)  # a restart throttles no car
        for cp in svc.site.points.values():  # ... and without evfuse back, they fall back by themselves
            assert cp.composite_limit_a(cp.now() + timedelta(seconds=21)) == 6.0


async def test_charger_disconnecting_and_reconnecting(tmp_path):
    async with Service(TWO_TO_ONE, tmp_path=tmp_path) as svc:
        await svc.steady(lambda: (svc.draw("big"), svc.draw("small")) == (14.0, 7.0), "14 A / 7 A")
        await svc.site.points["small"].stop()
        await svc.until(lambda: svc.logged("charger small not connected"), "the disconnect noticed", 10)
        # Its last limit still counts until its lease ends, so the other one stays put.
        await asyncio.sleep(1.0)
        assert svc.limit("big") == 14.0
        await svc.site.start_charger(TWO_TO_ONE[1], svc.ocpp_port)
        await svc.until(lambda: (svc.limit("big"), svc.limit("small")) == (14.0, 7.0), "shared again")
        assert svc.logged("ended: charger small not connected")


async def test_charger_ignoring_its_limit_is_flagged_and_others_absorb_it(tmp_path):
    rogue = SimOptions(version="1.6", ignore_limits=True, car_max_a=24.0)
    chargers = (SimCharger("rogue", "ABC", rogue), SimCharger("good", "ABC", V201))
    async with Service(chargers, tmp_path=tmp_path, fuse_a=35,
                       ocpp_extra="compliance_allowance_s = 2") as svc:
        # Limit 34 A: household 3 + rogue 24 on A leaves 7 A for the good one once the rogue
        # is counted as fixed load.
        await svc.until(lambda: svc.logged("rogue draws above its limit"), "the rogue flagged", 30)
        await svc.until(lambda: svc.limit("good") == 7.0, "the good charger to absorb it", 15)


async def test_unknown_charge_point_and_wrong_password_are_refused(tmp_path):
    chargers = (SimCharger("garage", "ABC", SimOptions(version="1.6", password="s3cret")),
                SimCharger("carport", "B", SimOptions(version="2.0.1", phases=1)))
    async with Service(chargers, tmp_path=tmp_path) as svc:
        # Both draw on phase B: 24 - 2 = 22 A shared.
        await svc.until(lambda: svc.limit("garage") == 11.0 and svc.limit("carport") == 11.0, "both charging")
        url = f"ws://127.0.0.1:{svc.ocpp_port}"
        for cp_id, password, status in (("intruder", "", 404), ("garage", "wrong", 401)):
            cp = SimChargePoint(cp_id, url, SimOptions(version="1.6", password=password))
            with pytest.raises(InvalidStatus) as refused:
                await cp.start()
            assert refused.value.response.status_code == status
        await asyncio.sleep(1.0)
        assert svc.limit("garage") == 11.0 and svc.limit("carport") == 11.0


async def test_sighup_applies_a_valid_config_and_refuses_a_broken_one(tmp_path):
    async with Service(TWO_TO_ONE, tmp_path=tmp_path) as svc:
        await svc.until(lambda: (svc.limit("big"), svc.limit("small")) == (14.0, 7.0), "14 A / 7 A")
        with open(svc.config_path) as f:
            original = f.read()
        with open(svc.config_path, "w") as f:
            f.write(original.replace("fuse_a = 25", "fuse_a = 20"))  # limit 19 A: 16 A on A
        svc.proc.send_signal(signal.SIGHUP)
        # 16 A on phase A, weights 2:1 with the small one at its 6 A floor: 10 A / 6 A.
        await svc.until(lambda: (svc.limit("big"), svc.limit("small")) == (10.0, 6.0), "the smaller fuse applied")
        assert svc.logged("config reloaded: limits and tuning only")
        with open(svc.config_path, "w") as f:
            f.write(original.replace("fuse_a = 25", "fuse_a = 25\nfuse_amps = 30"))
        svc.proc.send_signal(signal.SIGHUP)
        await svc.until(lambda: svc.logged("config reload refused"), "the refusal logged", 10)
        assert any("site.fuse_amps: unknown key" in line for line in svc.log)
        assert svc.proc.returncode is None
        await asyncio.sleep(1.0)
        # Still on the previous config. (The cars were raised just before the first reload cut
        # them: the meter's rise may briefly look like household and cut deeper; it settles.)
        await svc.until(lambda: (svc.limit("big"), svc.limit("small")) == (10.0, 6.0), "the previous config", 15)
        assert sum("config reloaded" in line for line in svc.log) == 1
