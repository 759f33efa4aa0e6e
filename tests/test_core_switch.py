"""Switchable loads in the core (controller/core/switch.py): all or nothing, min_on_s and
min_off_s, the fast path cuts them whatever min_on_s says, and they share by priority with
the chargers. A closed loop: every load draws exactly what it was last told (a switch its
whole current when on), household on phase A as given."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.causes import Cause
from controller.core.decide import decide, initial_state
from controller.model import CarState, ChargerReading, MeterSample

from core_kit import make_site

SITE = """
[site]
phases = 1
fuse_a = 25
margin_a = 1
voltage_v = 230
[control]
ramp_up_delay_s = 0
ramp_up_step_a = 80
ramp_up_interval_s = 0.001
restart_delay_s = 5
solar_start_delay_s = 0
solar_stop_grace_s = 0
excess_threshold_w = 0
"""

BOILER = """
[[load]]
id = "boiler"
driver = "shelly"
host = "127.0.0.1"
phases = "A"
power_w = 3000
priority = {priority}
mode = "{mode}"
min_on_s = {min_on}
min_off_s = {min_off}
"""

CAR = """
[[charger]]
id = "car"
phases = "A"
min_a = 6
max_a = 16
priority = 1
"""

ON_A = 13.1  # 3000 W / 230 V, rounded up to 0.1 A


class Loop:
    def __init__(self, text: str, measured: bool = True, saved=None, t0: float = 0.0):
        self.site = make_site(text, fast_ramp=False)
        self.state = initial_state(self.site, saved, t0)
        self.limits = {s.id: 0.0 for s in self.site.chargers}
        self.measured = measured
        self.cars = {s.id: CarState.CHARGING for s in self.site.chargers}
        self.decision = None

    def reading(self, spec) -> ChargerReading:
        limit = self.limits[spec.id]
        if spec.kind == "switch":
            on = limit > 0
            return ChargerReading(car=CarState.CHARGING if on else CarState.CONNECTED, acked_a=limit,
                                  draw_lines_a=(limit,) if self.measured else None)
        car = self.cars[spec.id]
        draw = limit if car is CarState.CHARGING else 0.0
        return ChargerReading(car=car, acked_a=limit, draw_lines_a=(draw,))

    def step(self, t: float, household: float | None):
        """One decision; household None: no meter sample. A load holds what it was last sent."""
        draw = sum(lim for s, lim in zip(self.site.chargers, self.limits.values())
                   if s.kind == "switch" or self.cars[s.id] is CarState.CHARGING)
        readings = [self.reading(s) for s in self.site.chargers]
        sample = None if household is None else MeterSample(t, (household + draw, 0.0, 0.0))
        d = decide(self.site, self.state, sample, readings, t)
        self.state, self.decision = d.state, d
        self.limits = {c.id: c.limit_a if c.changed else self.limits[c.id] for c in d.chargers}
        return d

    def run(self, t0: float, t1: float, household: float, dt: float = 1.0):
        t = t0
        while t <= t1 + 1e-9:
            self.step(t, household)
            t += dt
        return self.limits

    def cause(self, load_id: str) -> Cause:
        return next(c.cause for c in self.decision.chargers if c.id == load_id)


def boiler(priority=3, mode="standard", min_on=0, min_off=0) -> str:
    return BOILER.format(priority=priority, mode=mode, min_on=min_on, min_off=min_off)


def test_a_boiler_switches_on_whole_with_room():
    loop = Loop(SITE + boiler())
    assert loop.run(0, 5, household=4.0)["boiler"] == ON_A
    assert loop.site.chargers[0].min_a == loop.site.chargers[0].max_a == ON_A


def test_an_overload_cuts_it_in_the_same_decision_whatever_min_on_s_says():
    loop = Loop(SITE + boiler(min_on=600))
    loop.run(0, 5, household=4.0)
    assert loop.limits["boiler"] == ON_A
    d = loop.step(6, household=15.0)  # 15 + 13.1 = 28.1 A on a 24 A limit
    assert d.overloads
    assert loop.limits["boiler"] == 0.0


def test_it_stays_off_for_min_off_s_once_off():
    loop = Loop(SITE + boiler(min_off=120))
    loop.run(0, 119, household=4.0)  # off at the start (the device said so): min_off_s from then
    assert loop.limits["boiler"] == 0.0
    loop.run(120, 130, household=4.0)
    assert loop.limits["boiler"] == ON_A
    loop.step(131, household=15.0)
    assert loop.limits["boiler"] == 0.0
    loop.run(132, 250, household=4.0)  # room again, but min_off_s runs
    assert loop.limits["boiler"] == 0.0
    assert loop.cause("boiler") is Cause.RESTART_DELAY
    loop.run(251, 270, household=4.0)
    assert loop.limits["boiler"] == ON_A


def test_without_room_for_both_the_lower_priority_load_is_off():
    loop = Loop(SITE + CAR + boiler(priority=3))
    loop.run(0, 30, household=6.0)  # 18 A of room: not 6 + 13.1
    assert loop.limits["car"] > 0 and loop.limits["boiler"] == 0.0
    assert loop.cause("boiler") is Cause.SHED


def test_a_boiler_of_higher_priority_goes_before_the_car():
    loop = Loop(SITE + CAR.replace("priority = 1", "priority = 2") + boiler(priority=1))
    loop.run(0, 30, household=6.0)
    assert loop.limits["boiler"] == ON_A and loop.limits["car"] == 0.0


def test_min_on_s_keeps_it_on_against_a_higher_priority_car_until_it_ends():
    loop = Loop(SITE + CAR + boiler(priority=3, min_on=60))
    loop.cars["car"] = CarState.NO_CAR
    loop.run(0, 10, household=6.0)
    assert loop.limits["boiler"] == ON_A
    loop.cars["car"] = CarState.CONNECTED  # a car arrives; no room for both
    loop.run(11, 50, household=6.0)
    assert loop.limits["boiler"] == ON_A and loop.limits["car"] == 0.0
    loop.cars["car"] = CarState.CHARGING
    loop.run(51, 100, household=6.0)  # min_on_s over: the car's priority wins
    assert loop.limits["boiler"] == 0.0 and loop.limits["car"] > 0


def test_excess_mode_follows_the_export():
    loop = Loop(SITE + boiler(mode="excess"))
    loop.run(0, 10, household=3.0)  # importing: no surplus
    assert loop.limits["boiler"] == 0.0
    assert loop.cause("boiler") is Cause.SURPLUS
    loop.run(11, 30, household=-16.0)  # 16 A export: 3.7 kW surplus
    assert loop.limits["boiler"] == ON_A
    loop.run(31, 40, household=-16.0)  # it uses the surplus itself: stays on
    assert loop.limits["boiler"] == ON_A
    loop.run(41, 60, household=3.0)  # the sun is gone
    assert loop.limits["boiler"] == 0.0


def test_excess_mode_waits_for_min_on_s_before_stopping():
    loop = Loop(SITE + boiler(mode="excess", min_on=60))
    loop.run(0, 10, household=-16.0)
    assert loop.limits["boiler"] == ON_A
    loop.run(11, 40, household=3.0)  # 16.1 A import with the boiler: room, no surplus
    assert loop.limits["boiler"] == ON_A
    loop.run(41, 80, household=3.0)
    assert loop.limits["boiler"] == 0.0


def test_after_a_restart_a_device_that_reports_off_waits_min_off_s():
    loop = Loop(SITE + boiler(min_off=100))
    readings = [ChargerReading(car=CarState.CONNECTED, acked_a=0.0, draw_lines_a=(0.0,))]
    d = decide(loop.site, loop.state, MeterSample(0, (4.0, 0, 0)), readings, 0)
    assert d.chargers[0].limit_a == 0.0 and d.chargers[0].cause is Cause.RESTART_DELAY
    loop.state, loop.limits = d.state, {"boiler": 0.0}
    loop.run(1, 90, household=4.0)
    assert loop.limits["boiler"] == 0.0
    loop.run(91, 110, household=4.0)
    assert loop.limits["boiler"] == ON_A


def test_after_a_restart_a_device_that_reports_on_stays_on():
    loop = Loop(SITE + boiler(min_off=100))
    readings = [ChargerReading(car=CarState.CHARGING, acked_a=ON_A, draw_lines_a=(ON_A,))]
    d = decide(loop.site, loop.state, MeterSample(0, (4.0 + ON_A, 0, 0)), readings, 0)
    assert d.chargers[0].limit_a == ON_A


def test_without_a_meter_sample_a_switch_is_off():
    loop = Loop(SITE + boiler())
    loop.run(0, 5, household=4.0)
    d = decide(loop.site, loop.state, None, [loop.reading(loop.site.chargers[0])], 6)
    assert d.chargers[0].limit_a == 0.0
    assert loop.site.fallback_a(loop.site.chargers[0]) == 0.0


@settings(max_examples=60, deadline=None)
@given(households=st.lists(st.floats(-20, 20), min_size=5, max_size=40), measured=st.booleans(),
       min_on=st.sampled_from([0, 5, 30]), mode=st.sampled_from(["standard", "excess", "solar-only"]))
def test_a_switch_is_never_given_part_of_its_current(households, measured, min_on, mode):
    loop = Loop(SITE + CAR + boiler(mode=mode, min_on=min_on, min_off=3), measured=measured)
    for t, h in enumerate(households):
        for dt in range(3):
            loop.step(t * 3 + dt, h)
            assert loop.limits["boiler"] in (0.0, ON_A)


# ---------------------------------------------------------------------- a restart of evfuse

from controller.core.switch import Left  # noqa: E402

T0 = 1000.0


def restarted(text: str, left: Left | None, found_on: bool, **kw) -> Loop:
    """A new process at T0: its device found on or off, `left` what core.json says."""
    loop = Loop(text, saved={} if left is None else {"boiler": left}, t0=T0, **kw)
    loop.limits["boiler"] = ON_A if found_on else 0.0
    return loop


def test_found_on_it_is_left_alone_until_a_sample_then_kept_on_without_an_off():
    loop = restarted(SITE + boiler(min_on=300), Left(True, T0 - 100), found_on=True)
    for t in (T0, T0 + 0.5, T0 + 1):  # no meter sample yet: nothing sent, not even a renewal
        d = loop.step(t, household=None)
        assert not d.chargers[0].changed and d.chargers[0].cause is Cause.RESUMED
    d = loop.step(T0 + 1.5, household=4.0)
    assert d.chargers[0].limit_a == ON_A and d.chargers[0].changed  # on, sent once: its lease renewed
    offs = 0
    for t in range(int(T0) + 2, int(T0) + 60):
        offs += loop.step(t, household=4.0).chargers[0].limit_a == 0
    assert offs == 0 and not loop.decision.chargers[0].changed


def test_found_on_min_on_s_runs_from_the_saved_switch_time():
    # on since T0 - 100 with min_on_s 300: held until T0 + 200 against a car of higher priority
    loop = restarted(SITE + CAR + boiler(priority=3, min_on=300), Left(True, T0 - 100), found_on=True)
    loop.limits["car"] = 0.0
    loop.run(T0, T0 + 190, household=6.0)  # 18 A of room: not the car's 6 A beside 13.1 A
    assert loop.limits["boiler"] == ON_A and loop.limits["car"] == 0.0
    loop.run(T0 + 191, T0 + 220, household=6.0)
    assert loop.limits["boiler"] == 0.0 and loop.limits["car"] > 0


def test_found_on_with_nothing_saved_min_on_s_runs_in_full_from_the_start():
    loop = restarted(SITE + CAR + boiler(priority=3, min_on=300), None, found_on=True)
    loop.limits["car"] = 0.0
    loop.run(T0, T0 + 290, household=6.0)
    assert loop.limits["boiler"] == ON_A  # as if it had just switched on
    loop.run(T0 + 291, T0 + 320, household=6.0)
    assert loop.limits["boiler"] == 0.0


def test_found_on_an_overload_still_cuts_it_at_once():
    loop = restarted(SITE + boiler(min_on=600), Left(True, T0 - 10), found_on=True)
    loop.step(T0, household=None)
    d = loop.step(T0 + 0.5, household=15.0)  # 15 + 13.1 A on a 24 A limit, the first sample
    assert d.overloads and d.chargers[0].limit_a == 0.0


def test_found_off_min_off_s_runs_from_the_saved_switch_time():
    loop = restarted(SITE + boiler(min_off=150), Left(False, T0 - 100), found_on=False)
    loop.run(T0, T0 + 49, household=4.0)
    assert loop.limits["boiler"] == 0.0 and loop.cause("boiler") is Cause.RESTART_DELAY
    loop.run(T0 + 50, T0 + 60, household=4.0)  # 150 s after it really switched off
    assert loop.limits["boiler"] == ON_A


@pytest.mark.parametrize("left", [None, Left(True, T0 - 500)], ids=["nothing saved", "saved on"])
def test_found_off_without_a_matching_saved_state_min_off_s_runs_in_full(left):
    # nothing saved, or saved on (switched off by hand or a lease since): off since now, for all
    # evfuse knows
    loop = restarted(SITE + boiler(min_off=150), left, found_on=False)
    loop.run(T0, T0 + 149, household=4.0)
    assert loop.limits["boiler"] == 0.0
    loop.run(T0 + 150, T0 + 160, household=4.0)
    assert loop.limits["boiler"] == ON_A


def test_left_on_under_a_lease_that_ended_is_off_since_the_lease_ended():
    left = Left(True, T0 - 400, until=T0 - 100)  # its lease ended 100 s before this start
    loop = restarted(SITE + boiler(min_off=150), left, found_on=False)
    loop.run(T0, T0 + 49, household=4.0)
    assert loop.limits["boiler"] == 0.0
    loop.run(T0 + 50, T0 + 60, household=4.0)
    assert loop.limits["boiler"] == ON_A


class Unheard(Loop):
    """Its device does not answer yet (the reading of a driver that has not heard it)."""

    def reading(self, spec):
        if spec.kind == "switch":
            return ChargerReading(online=False, car=CarState.UNKNOWN)
        return super().reading(spec)


@pytest.mark.parametrize("left, counted", [(None, ON_A), (Left(True, T0 - 5), ON_A), (Left(False, T0 - 5), 0.0)],
                         ids=["nothing saved", "left on", "left off"])
def test_until_its_device_is_heard_it_counts_as_on_unless_it_was_left_off(left, counted):
    loop = Unheard(SITE + CAR + boiler(), saved={} if left is None else {"boiler": left}, t0=T0)
    d = loop.run(T0, T0 + 30, household=4.0) and loop.decision
    assert d.draw_a[1][0] == counted  # the plan counts it at that
    assert loop.limits["car"] == min(16.0, 24.0 - 4.0 - counted)
    assert not d.chargers[1].changed  # and nothing is sent to it


def test_without_a_sample_for_stale_after_s_it_gets_the_blind_rule():
    loop = restarted(SITE + boiler(), Left(True, T0 - 10), found_on=True)
    stale = loop.site.stale_after_s
    assert not loop.step(T0 + stale - 0.1, household=None).chargers[0].changed
    d = loop.step(T0 + stale, household=None)
    assert d.chargers[0].limit_a == 0.0 and d.chargers[0].changed and d.chargers[0].cause is Cause.NO_SAMPLE


def test_found_off_for_longer_than_min_off_s_it_switches_on_at_the_first_sample():
    loop = restarted(SITE + boiler(min_off=150), Left(False, T0 - 1000), found_on=False)
    assert loop.step(T0, household=4.0).chargers[0].limit_a == ON_A
