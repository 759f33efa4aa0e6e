"""A twin charger with two cars beside a single charger, the real controller against a
simulated site on loopback (a Modbus meter server, OCPP twin and single charge points built
with the ocpp package, cars that respond after a second): the fuse is shared by weight and
priority inside the twin's own max_a, the TRUE site currents never stay above the fuse
beyond the cars' response, one connector's unplug never disturbs the other's car, and a
connector wired "BCA" is counted on the phases it really draws from."""

from __future__ import annotations

import pytest

import asyncio
import time

from controller.model import CarState
from controller.status import render, snapshot
from controller.sim.chargepoint import SimOptions
from controller.sim.demo import render as live_view
from controller.sim.live_site import SimCharger, SimConnector
from controller_kit import running, until

# Real processes and charge points on a shared machine: the waits below are generous.
pytestmark = pytest.mark.timeout(300)

RESPONSE_S = 1.0
FUSE_A = 32.0  # margin 1: limit 31 A per phase


class TrueWatch:
    """Samples the site's TRUE phase currents (what the simulated meter shows) in the
    background and keeps the longest stretch above the fuse."""

    def __init__(self, site, fuse_a: float):
        self.site, self.fuse_a = site, fuse_a
        self.longest_over_s = 0.0
        self.peak_a = 0.0
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        over_since = None
        while True:
            now = time.monotonic()
            worst = max(self.site.meter_a)
            self.peak_a = max(self.peak_a, worst)
            if worst > self.fuse_a + 1e-6:
                over_since = now if over_since is None else over_since
                self.longest_over_s = max(self.longest_over_s, now - over_since)
            else:
                over_since = None
            await asyncio.sleep(0.05)

    async def stop(self):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def limit(controller, load_id: str) -> float:
    return next(c.limit_a for c in controller.decision.chargers if c.id == load_id)


def reading(controller, load_id: str):
    return controller.readings[[d.id for d in controller.drivers].index(load_id)]


async def test_two_cars_on_a_twin_and_a_single_charger_share_the_fuse_by_weight_and_priority(tmp_path):
    options = SimOptions(version="1.6", response_delay_s=RESPONSE_S, car_max_a=16)
    chargers = (
        SimCharger("twin", "ABC", options, max_a=20,
                   connectors=(SimConnector(1, "ABC", 16), SimConnector(2, "BCA", 16, weight=2))),
        SimCharger("solo", "ABC", SimOptions(version="2.0.1", response_delay_s=RESPONSE_S), priority=2),
    )
    async with running(tmp_path, chargers, fuse_a=FUSE_A) as (site, controller):
        watch = TrueWatch(site, FUSE_A)
        try:
            # the twin's 20 A by weight 1:2; the single (priority 2) gets what phase A leaves
            def shared():
                if controller.decision is None:
                    return False
                one, two, solo = (limit(controller, i) for i in ("twin/1", "twin/2", "solo"))
                return (one >= 6.0 and abs(two - 2 * one) <= 1.0 and one + two >= 19.0 and solo >= 6.0
                        and "twin (charger max_a)" in next(c.reason for c in controller.decision.chargers
                                                           if c.id == "twin/2"))
            await until(shared, "the shares", 90)
            twin = site.points["twin"]
            await until(lambda: abs(twin.draw_a(1) - limit(controller, "twin/1")) < 0.05
                        and abs(twin.draw_a(2) - limit(controller, "twin/2")) < 0.05, "the twin's cars following")
            assert twin.draw_a(1) + twin.draw_a(2) <= 20.0 + 1e-6  # the twin's own max_a
            assert max(site.meter_a) <= controller.config.site.limit_a + 0.2
            snap = snapshot(controller)
            rows = {c["id"]: c for c in snap["chargers"]}
            assert [(rows[i]["charger"], rows[i]["connector"]) for i in ("twin/1", "twin/2", "solo")] == \
                [("twin", 1), ("twin", 2), ("solo", None)]
            assert rows["twin/2"]["device"]["profile"].endswith("+ station cap")
            assert "TxDefaultProfile@each connector" in rows["twin/1"]["device"]["profile"]
            text = render(snap)
            assert "twin/2" in text and "station cap" in text
            # the demo's live view: a row per connector with its own limit
            rows = [line.split() for line in live_view(controller, site, 0.0).splitlines()]
            assert [r[:3] for r in rows if r and r[0].startswith("twin/")] == \
                [["twin/1", "ocpp1.6", f"{limit(controller, 'twin/1'):.1f}"],
                 ["twin/2", "ocpp1.6", f"{limit(controller, 'twin/2'):.1f}"]]
            # the car on connector 1 leaves: 2's car is not disturbed, then it gets the room
            lowest = [twin.draw_a(2)]
            await twin.unplug(connector=1)
            deadline = time.monotonic() + 60
            while not limit(controller, "twin/2") == 16.0:
                assert time.monotonic() < deadline, "twin/2 never got the room 1 left"
                lowest.append(twin.draw_a(2))
                assert reading(controller, "twin/2").car is CarState.CHARGING
                await asyncio.sleep(0.05)
            assert min(lowest) >= lowest[0] - 0.05  # never cut, never paused
            assert reading(controller, "twin/1").car is CarState.NO_CAR
        finally:
            await watch.stop()
        assert watch.longest_over_s <= RESPONSE_S + 1.0, (watch.longest_over_s, watch.peak_a)


async def test_a_connector_wired_bca_is_counted_where_its_car_draws(tmp_path):
    # one-phase cars: connector 1 (ABC) draws on A, connector 2 (BCA) on B
    options = SimOptions(version="2.0.1", response_delay_s=RESPONSE_S, car_max_a=16, phases=1)
    chargers = (SimCharger("twin", "ABC", options, max_a=32,
                           connectors=(SimConnector(1, "ABC", 16), SimConnector(2, "BCA", 16))),)
    busy_b = lambda t: (0.0, 14.0, 0.0)  # noqa: E731 - a household on phase B only
    async with running(tmp_path, chargers, fuse_a=FUSE_A) as (site, controller):
        site.household = busy_b
        watch = TrueWatch(site, FUSE_A)
        try:
            twin = site.points["twin"]
            await until(lambda: controller.decision is not None and twin.draws_a()[2] > 6.0
                        and controller.decision.household_a[1] > 0, "both cars charging", 90)
            # Connector 2's current is its L1, on site phase B: the household the core derives
            # from the true meter is the real one only if it takes it from B (not from A).
            await until(lambda: all(abs(h - real) < 0.6 for h, real in
                                    zip(controller.decision.household_a, (3.0, 16.0, 2.5))),
                        "the household as it is", 120)
            assert site.meter_a[1] <= controller.config.site.limit_a + 0.2
            # its report is periodic: it shows the car's current on its own line 1 once it comes
            await until(lambda: reading(controller, "twin/2").draw_lines_a[0] == twin.draw_a(2),
                        "connector 2's report of its car", 60)
            assert reading(controller, "twin/2").draw_lines_a[1:] == (0.0, 0.0)
        finally:
            await watch.stop()
        assert watch.longest_over_s <= RESPONSE_S + 1.0, (watch.longest_over_s, watch.peak_a)


async def test_a_reload_that_adds_a_connector_makes_the_twin_anew_and_its_cars_charge_on(tmp_path):
    from controller.config import load_config

    options = SimOptions(version="1.6", response_delay_s=RESPONSE_S, car_max_a=16, connectors=3)
    chargers = (SimCharger("twin", "ABC", options, max_a=32,
                           connectors=(SimConnector(1, "ABC", 10), SimConnector(2, "ABC", 10))),)
    async with running(tmp_path, chargers, fuse_a=63) as (site, controller):
        twin = site.points["twin"]
        await until(lambda: controller.decision is not None and twin.draws_a()[1] == 10.0
                    and twin.draws_a()[2] == 10.0, "both cars at their max_a", 60)
        path = tmp_path / "evfuse.toml"
        text = path.read_text()
        at = text.index("[control]")  # the connector tables end where the [control] table begins
        path.write_text(text[:at] + "  [[charger.connector]]\n  id = 3\n  max_a = 10\n" + text[at:])
        change = await controller.retune(load_config(path))
        assert change.added == ("twin/3",) and set(change.relinked) == {"twin/1", "twin/2"}
        await until(lambda: not twin.connected, "the old link closed", 30)
        await twin.stop()
        twin.options.boot = False
        await twin.start()  # the charger reconnects without a reboot, as a real one does
        await twin.plug_in(connector=3)
        await until(lambda: twin.draws_a() == {1: 10.0, 2: 10.0, 3: 10.0}, "three cars at their max_a", 60)
        assert [d.id for d in controller.drivers] == ["twin/1", "twin/2", "twin/3"]
        assert all(d.reading(0).online for d in controller.drivers)
        assert controller.drivers[0].status().notes["profile"].endswith("+ station cap")
