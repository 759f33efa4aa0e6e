"""The net in the running controller, against a real Modbus meter server and a real OCPP
charge point (the ocpp package) on loopback: a charger configured on phase A but wired to B,
where the household already draws 15 A, overloads B; the net cuts it, the fault names the
phase and the charger, and it ends once B is back under its limit."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from controller.sim.chargepoint import SimOptions
from controller.sim.live_site import SimCharger
from controller_kit import running, until

pytestmark = pytest.mark.timeout(300)

CONTROL = """
[control]
ramp_up_delay_s = 0.5
ramp_up_step_a = 16
ramp_up_interval_s = 0.2
restart_delay_s = 300
response_s = 2
overload_pause_s = 2
fallback_a = 6
"""


async def test_a_miswired_charger_is_cut_and_the_fault_names_phase_and_charger(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="evfuse.runtime")
    bay = SimCharger("bay", "A", SimOptions(version="1.6", unit="A", phases=1, response_delay_s=0.5),
                     true_wiring="B")
    async with running(tmp_path, [bay], control=CONTROL) as (site, controller):
        site.household = lambda t: (0.0, 13.0, 0.0)  # 2 A base + 13 A on B
        cp = site.points["bay"]
        await until(lambda: cp.draw_a() >= 10, "the car draws (on B, where the config does not put it)")
        await until(lambda: any("cannot explain on phase B" in f for f in controller.faults),
                    "the net's fault on phase B", timeout=60)
        assert any("bay" in f for f in controller.faults if "phase B" in f)
        await until(lambda: cp.draw_a() == 0, "the net's cut followed", timeout=30)
        await until(lambda: site.meter_a[1] <= 24.0, "phase B back under its limit")
        reasons = {c.id: c.reason for c in controller.decision.chargers}
        assert reasons["bay"].startswith("restart delay"), reasons
        await until(lambda: not any("cannot explain" in f for f in controller.faults), "the fault ends")
    net = [r for r in caplog.records if getattr(r, "FAULT", "") == "net:phase B"]
    assert [r.FAULT_STATE for r in net][:1] == ["started"] and net[-1].FAULT_STATE == "ended"
    assert net[0].CUT == "bay" and net[0].CONSTRAINT == "phase B"


def _period(r) -> dict:
    return r.profile.get("csChargingProfiles", r.profile).get("chargingSchedule", {}) \
        .get("chargingSchedulePeriod", [{}])[0]


async def test_a_watt_charger_with_a_one_phase_car_gets_watts_for_one_phase(tmp_path):
    """A 1-phase car on a 3-phase ("ABC") charger that takes W profiles: until its phases are
    known, every W limit (the fallback and the running one alike) assumes one phase, so the car
    never takes more than its limit in amps (before, a raise went out for three phases and the
    car took three times it until the net cut it). Once its MeterValues show current on L1
    only, the limit says so in numberPhases = 1."""
    bay = SimCharger("bay", "ABC", SimOptions(version="1.6", unit="W", phases=1, car_max_a=32.0,
                                              response_delay_s=0.2), max_a=10.0)
    async with running(tmp_path, [bay], control=CONTROL.replace("restart_delay_s = 300", "restart_delay_s = 4")) \
            as (site, controller):
        cp = site.points["bay"]

        def one_phase_watts(r):
            period = _period(r)
            return r.accepted and period.get("numberPhases") == 1 and period.get("limit") == 10.0 * 230

        await cp.wait_for_profile(one_phase_watts, timeout=60)
        await until(lambda: controller.decision.state.active[0] == (0,), "the core counts it on A only")
        await until(lambda: 9.0 <= cp.draw_a() <= 10.0, "the car draws its limit in amps", timeout=30)
        watts = [_period(r).get("limit") for r in cp.requests if r.accepted and "numberPhases" not in _period(r)]
        assert watts and max(watts) <= 10.0 * 230, watts  # not one W limit for three phases
        assert not any("cannot explain" in f for f in controller.faults), controller.faults


async def test_a_watt_charger_with_a_three_phase_car_gets_three_phases_once_they_are_known(tmp_path):
    """The same charger with a 3-phase car: held to a third of its limit per phase while its
    phases are not known (a W limit assumes the fewest), then, once its MeterValues show all
    three lines, the limit goes out for three phases with numberPhases = 3 and the car draws it."""
    bay = SimCharger("bay", "ABC", SimOptions(version="1.6", unit="W", phases=3, car_max_a=32.0,
                                              response_delay_s=0.2), max_a=10.0)
    async with running(tmp_path, [bay], control=CONTROL) as (site, controller):
        cp = site.points["bay"]
        await cp.wait_for_profile(lambda r: r.accepted and _period(r).get("numberPhases") == 3
                                  and _period(r).get("limit") == 10.0 * 230 * 3, timeout=60)
        await until(lambda: 9.0 <= cp.draw_a() <= 10.0, "the car draws its limit on each phase", timeout=30)
        first = [_period(r) for r in cp.requests if r.accepted and _period(r)]
        assert "numberPhases" not in first[0] and first[0]["limit"] <= 10.0 * 230  # before: one phase's worth


LEARN = """
[control]
ramp_up_delay_s = 0.5
ramp_up_step_a = 4
ramp_up_interval_s = 0.5
restart_delay_s = 4
response_s = 2
overload_pause_s = 2
fallback_a = 6
"""


async def test_a_miswired_charger_is_detected_remapped_persisted_and_cleared_by_a_new_phases(
        tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    caplog.set_level(logging.INFO, logger="evfuse.runtime")
    bay = SimCharger("bay", "A", SimOptions(version="1.6", unit="A", phases=1, response_delay_s=0.3),
                     true_wiring="B")
    async with running(tmp_path, [bay], control=LEARN) as (site, controller):
        site.household = lambda t: (0.0, 13.0, 0.0)
        await until(lambda: controller.site.chargers[0].wiring == "B", "the site runs on the detected wiring",
                    timeout=150)
        strong = [r for r in caplog.records if getattr(r, "WIRING_STRENGTH", "") == "strong"]
        assert strong and strong[0].WIRING_DETECTED == "B" and strong[0].WIRING_CONFIGURED == "A"
        assert strong[0].WIRING_SAMPLES >= 3 and strong[0].WIRING_SCORE >= 15
        assert 'phases = "B"' in strong[0].getMessage()
        from controller.status import render, snapshot
        snap = snapshot(controller)
        assert snap["wiring"]["chargers"]["bay"]["detected"] == "B"
        assert '"A" -> "B"' in render(snap)
        # Now the model knows where it draws: no more overloads the model cannot explain.
        await until(lambda: site.meter_a[1] <= 24.0 and controller.decision.chargers[0].limit_a > 0,
                    "charging on B within B's room", timeout=60)
        assert controller.decision.chargers[0].limit_a <= 24.0 - 15.0 + 0.1
        config = controller.config
    saved = json.loads((tmp_path / "state" / "wiring.json").read_text())
    assert saved["chargers"]["bay"]["detected"] == "B"
    from controller.runtime import Controller
    again = Controller(config)  # a restart runs on what was learned at once
    assert again.site.chargers[0].wiring == "B"
    moved = dataclasses.replace(config, chargers=(dataclasses.replace(config.chargers[0], phases="C"),))
    assert Controller(moved).site.chargers[0].wiring == "C"  # a new `phases` clears it
    assert "bay" not in json.loads((tmp_path / "state" / "wiring.json").read_text())["chargers"]
