"""End to end, invariant 9: a planned restart (SIGTERM, then `evfuse run` again) of the real
service beside two cars charging at 16 A. The peers are real: a pymodbus meter server fed by
household + the cars, and OCPP 1.6 / 2.0.1 charge points built with the ocpp package that
enforce the profiles they hold. What the cars may draw is read from the charge points
themselves, sampled all along, and from the profiles they received.

The site: 36 A fuse, 1 A margin (limit 35 A), household 3 / 2 / 2.5 A: two 3-phase cars at
16 A fit (35 A on phase A)."""

import asyncio
import signal
from datetime import timedelta

import pytest

from controller.chargers.ocpp.profiles import DYNAMIC_PROFILE_ID
from controller.sim.chargepoint import SimOptions
from controller.sim.live_site import SimCharger

from e2e_kit import Service

pytestmark = pytest.mark.timeout(180)

TWO = (SimCharger("a", "ABC", SimOptions(version="1.6", response_delay_s=1.0)),
       SimCharger("b", "ABC", SimOptions(version="2.0.1", response_delay_s=1.0)))
FALLBACK_A = 6.0


class Lowest:
    """The lowest limit each charge point enforced and the lowest draw of its car, sampled
    every 50 ms while it runs."""

    def __init__(self, svc: Service):
        self.svc = svc
        self.limit = {cid: float("inf") for cid in svc.site.points}
        self.draw = dict(self.limit)
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            for cid, cp in self.svc.site.points.items():
                self.limit[cid] = min(self.limit[cid], cp.composite_limit_a() or 0.0)
                self.draw[cid] = min(self.draw[cid], cp.draw_a())
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def dynamic_limits(cp, since: int) -> list[float]:
    """Limits of the dynamic (leased) profiles a charge point accepted after request `since`."""
    out = []
    for r in cp.requests[since:]:
        profile = r.profile
        if r.accepted and profile.get("chargingProfileId", profile.get("id")) == DYNAMIC_PROFILE_ID:
            schedule = profile["chargingSchedule"]
            schedule = schedule[0] if isinstance(schedule, list) else schedule
            out.append(schedule["chargingSchedulePeriod"][0]["limit"])
    return out


def both_at(svc: Service, amps: float) -> bool:
    return all(svc.limit(c) == amps and svc.draw(c) == amps for c in ("a", "b"))


async def test_planned_restart_keeps_both_cars_at_16_a(tmp_path):
    async with Service(TWO, tmp_path=tmp_path, fuse_a=36, ocpp_extra="stop_lease_s = 30") as svc:
        await svc.steady(lambda: both_at(svc, 16.0), "both cars at 16 A", 2.0, timeout=60)
        lowest = Lowest(svc)
        try:
            assert await svc.signal(signal.SIGTERM) == 0
            for cp in svc.site.points.values():  # still 16 A, for the short lease only
                assert cp.composite_limit_a() == 16.0
                assert cp.composite_limit_a(cp.now() + timedelta(seconds=31)) == FALLBACK_A
            since = {cid: len(cp.requests) for cid, cp in svc.site.points.items()}
            await svc.start_again()
            # the new process took them over (a fresh lease at 16 A) and they charge on
            await svc.until(lambda: all(16.0 in dynamic_limits(cp, since[cid])
                                        for cid, cp in svc.site.points.items()),
                            "the new process to renew both cars' 16 A", 60)
            await svc.steady(lambda: both_at(svc, 16.0), "both cars still at 16 A", 3.0, timeout=60)
        finally:
            await lowest.stop()
        assert lowest.limit == {"a": 16.0, "b": 16.0}, "a limit dropped during the restart"
        assert lowest.draw == {"a": 16.0, "b": 16.0}, "a car slowed down during the restart"
        for cid, cp in svc.site.points.items():
            assert min(dynamic_limits(cp, since[cid])) == 16.0  # never a fallback-level profile
            far = cp.composite_limit_a(cp.now() + timedelta(seconds=40))
            assert far == 16.0, "the new process gives its full lease again once the meter shows room"
        assert svc.logged("a: resumed at 16.0 A") and svc.logged("b: resumed at 16.0 A")


async def test_without_evfuse_back_the_short_lease_ends_at_the_fallback(tmp_path):
    one = TWO[:1]
    async with Service(one, tmp_path=tmp_path, fuse_a=36, ocpp_extra="stop_lease_s = 5") as svc:
        await svc.steady(lambda: svc.limit("a") == 16.0 and svc.draw("a") == 16.0, "the car at 16 A", 2.0)
        assert await svc.signal(signal.SIGTERM) == 0
        assert svc.limit("a") == 16.0  # the car charges on for now ...
        # ... and nobody renews it: the charge point falls back by itself, its car follows
        await svc.until(lambda: svc.limit("a") == FALLBACK_A and svc.draw("a") == FALLBACK_A,
                        "the charge point to fall back to 6 A by itself", 30, service_may_exit=True)


async def test_a_lower_max_a_in_the_new_config_is_honoured_at_once(tmp_path):
    async with Service(TWO, tmp_path=tmp_path, fuse_a=36, ocpp_extra="stop_lease_s = 30") as svc:
        await svc.steady(lambda: both_at(svc, 16.0), "both cars at 16 A", 2.0, timeout=60)
        assert await svc.signal(signal.SIGTERM) == 0
        with open(svc.config_path) as f:
            text = f.read()
        first = text.index('id = "a"')
        with open(svc.config_path, "w") as f:  # charger a: max_a 16 -> 10 while evfuse was down
            f.write(text[:first] + text[first:].replace("max_a = 16", "max_a = 10", 1))
        since = len(svc.site.points["a"].requests)
        await svc.start_again()
        await svc.until(lambda: svc.limit("a") == 10.0, "a at its new max_a", 60)
        assert max(dynamic_limits(svc.site.points["a"], since)) == 10.0  # never resumed above it
        await svc.steady(lambda: svc.limit("b") == 16.0, "b still at 16 A", 2.0)


async def test_a_modbus_charger_keeps_its_limit_under_its_own_watchdog(tmp_path):
    """Heidelberg emulator on Modbus TCP beside an idle OCPP charge point: SIGTERM writes nothing
    (its watchdog is the bound), and the new process carries on at the same limit."""
    from controller.sim.modbus_charger import ChargerEmulator

    from e2e_kit import FAST, heidelberg_toml

    heidelberg = ChargerEmulator("heidelberg")
    port = await heidelberg.start_tcp()
    try:
        modbus = heidelberg_toml(heidelberg, port, watchdog_s=60)
        # no car at the OCPP charge point: the Heidelberg's car has its max_a (21 A of room)
        idle = (SimCharger("a", "ABC", SimOptions(version="1.6"), plugged=False),)
        svc = Service(idle, control=FAST + modbus, tmp_path=tmp_path)
        svc.site.extra_loads.append(lambda: (heidelberg.draw_a(),) * 3)
        async with svc:
            await svc.steady(lambda: heidelberg.limit_a == 16.0 and heidelberg.draw_a() == 16.0, "the Heidelberg at 16 A", 2.0)
            lowest = [16.0]

            async def sample():
                while True:
                    lowest[0] = min(lowest[0], heidelberg.offered_a(), heidelberg.draw_a())
                    await asyncio.sleep(0.05)

            watch = asyncio.create_task(sample())
            try:
                assert await svc.signal(signal.SIGTERM) == 0
                assert heidelberg.limit_a == 16.0 and not heidelberg.tripped()
                await svc.start_again()
                await svc.until(lambda: svc.logged("shed: resumed at 16.0 A"), "the Heidelberg resumed", 30)
                await svc.steady(lambda: heidelberg.limit_a == 16.0, "the Heidelberg still at 16 A", 3.0)
            finally:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            assert lowest[0] == 16.0 and not heidelberg.tripped()
    finally:
        await heidelberg.stop()


async def test_after_a_crash_the_cars_restart_from_the_fallback_without_a_stop(tmp_path):
    """SIGKILL shortens no lease: the new process counts what the chargers still hold but
    starts them at the fallback (invariant 7), and ramps them back without stopping them."""
    async with Service(TWO, tmp_path=tmp_path, fuse_a=36) as svc:
        await svc.steady(lambda: both_at(svc, 16.0), "both cars at 16 A", 2.0, timeout=60)
        await asyncio.sleep(2.0)  # core.json follows the last limit change within a second
        lowest = Lowest(svc)
        try:
            svc.proc.kill()
            await svc.proc.wait()
            await svc.start_again()
            await svc.until(lambda: svc.logged("a: counted at 16.0 A"), "the crash's state counted", 30)
            await svc.until(lambda: all(FALLBACK_A in dynamic_limits(cp, 0) for cp in svc.site.points.values()),
                            "both at the fallback first", 60)
            await svc.steady(lambda: both_at(svc, 16.0), "both cars back at 16 A", 2.0, timeout=90)
        finally:
            await lowest.stop()
        assert lowest.limit == {"a": FALLBACK_A, "b": FALLBACK_A}  # the fallback, never a stop
        assert min(lowest.draw.values()) == FALLBACK_A
