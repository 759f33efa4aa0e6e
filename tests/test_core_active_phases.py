"""Active phases (controller/core/phases.py): a 1-phase car on a 3-phase charger reserves only
the phase it uses, learned from the charger's per-line report; until then, and for a charger
that does not report per line, every wired phase. Closed loops assert on the TRUE currents
and on EV energy against the oracle (the per-phase ideal controller)."""

from __future__ import annotations

import pytest
from hypothesis import given

from controller.core.phases import active_phases, effective
from controller.model import CarState, ChargerReading
from controller.sim.offline.cars import Metering
from controller.sim.offline.oracle import Oracle
from truth_kit import NOT_MEASURED, car, closed_loop, site_of
from truth_strategies import closed_loops, describe, truth_settings

pytestmark = pytest.mark.timeout(300)

ROTATED = """
[site]
fuse_a = 25
margin_a = 1
[control]
response_s = 5
[[charger]]
id = "abc"
phases = "ABC"
[[charger]]
id = "bca"
phases = "BCA"
[[charger]]
id = "cab"
phases = "CAB"
"""


def _rotated_loop(metering: Metering, seconds: float = 3600.0):
    site = site_of(ROTATED)
    cars = {c: [car(c, 0.0, delay_s=2.0, phases=1)] for c in ("abc", "bca", "cab")}
    loop = closed_loop(site, [(0.0, (12.0, 0.5, 0.5))], cars, metering={c: metering for c in cars},
                       latency_s=0.25)
    loop.oracle = Oracle(site, [cars[s.id] for s in site.chargers], loop.dt)
    loop.run(int(seconds / loop.dt))
    ev = sum(ch.energy_wh for ch in loop.chargers)
    return loop, ev / loop.oracle.energy_wh


def test_three_one_phase_cars_on_rotated_three_phase_chargers_get_the_per_phase_ideal():
    """ABC, BCA, CAB with a 1-phase car each (on A, B, C), household 12 A on A: the site can give
    12 + 16 + 16 A. Counting every car on all three phases gives about a quarter of that."""
    loop, ratio = _rotated_loop(Metering("lines", 0.0))
    assert ratio >= 0.9, ratio
    assert {c.id: c.limit_a for c in loop.decision.chargers} == {"abc": 12.0, "bca": 16.0, "cab": 16.0}
    report = loop.limit.report()
    assert report.seconds_above == 0 and report.standing_s == 0, report


@pytest.mark.parametrize("metering", [Metering("power", 10.0), NOT_MEASURED], ids=["power-only", "not-measured"])
def test_chargers_that_do_not_report_per_line_start_one_at_a_time_and_learn_each_car(metering):
    """The same three cars on chargers that report power only or nothing, plugged in together:
    the core starts them one at a time (core/turns.py), each after the one before had time to
    show on the meter, so each start shows on its car's phase alone; each car is then counted on
    that phase only and the site reaches the per-phase ideal. (They plugged in on their
    chargers' own fallback, so each is paused first and waits restart_delay_s.) Starts are read
    from the TRUE draws."""
    site = site_of(ROTATED)
    window = site.control.response_s + 2.0  # + the attribution slack (core/draw.py)
    cars = {c: [car(c, 0.0, delay_s=2.0, phases=1)] for c in ("abc", "bca", "cab")}
    loop = closed_loop(site, [(0.0, (12.0, 0.5, 0.5))], cars, metering={c: metering for c in cars},
                       latency_s=0.25)
    loop.oracle = Oracle(site, [cars[s.id] for s in site.chargers], loop.dt)
    started: dict[str, float] = {}
    learned: dict[str, float] = {}

    def watch(lp, now):
        for ch, a in zip(lp.chargers, lp.state.active or (None,) * 3):
            if ch.draw_a > 0 and ch.spec.id not in started and now > 3.0:
                started[ch.spec.id] = now  # (the cars see the chargers' own 6 A for 0.25 s as they plug in)
            if a is not None and ch.spec.id not in learned:
                learned[ch.spec.id] = now

    loop.on_step = watch
    loop.run(int(3600 / loop.dt))
    times = sorted(started.values())
    assert len(times) == 3 and all(b - a >= window for a, b in zip(times, times[1:])), started
    assert loop.state.active == ((0,), (1,), (2,))
    assert all(learned[c] < started[c] + 2 * window for c in cars), (started, learned)
    assert {c.id: c.limit_a for c in loop.decision.chargers} == {"abc": 12.0, "bca": 16.0, "cab": 16.0}
    ratio = sum(ch.energy_wh for ch in loop.chargers) / loop.oracle.energy_wh
    assert ratio >= 0.9, ratio
    report = loop.limit.report()
    assert report.controller_s == 0 and report.standing_s == 0, report


def test_the_next_car_may_use_every_phase_again():
    """A 1-phase car leaves, a 3-phase car arrives at the same charger: its reservation goes
    back to every wired phase at once, so the household on B and C is respected."""
    site = site_of(ROTATED.split("[[charger]]")[0] + '[[charger]]\nid = "abc"\nphases = "ABC"\n'
                   '[[charger]]\nid = "b"\nphases = "B"\n')
    cars = {"abc": [car("abc", 0.0, delay_s=2.0, phases=1, depart_s=200.0),
                    car("abc", 230.0, delay_s=2.0, phases=3)],
            "b": [car("b", 0.0, delay_s=1.0, phases=1)]}
    loop = closed_loop(site, [(0.0, (2.0, 6.0, 14.0))], cars, latency_s=0.25)
    seen = []
    loop.on_step = lambda lp, now: seen.append((now, lp.state.active))
    loop.run(int(500 / loop.dt))
    assert any(a and a[0] == (0,) for t, a in seen if t < 200)  # the 1-phase car: on A only
    assert all(not a or a[0] is None for t, a in seen if 200 < t < 232)  # gone: every phase again
    assert loop.limit.report().controller_s == 0, loop.limit.report()
    assert loop.limit.report().standing_s == 0


def test_active_sets_grow_with_what_the_lines_show_and_reset_when_the_car_leaves():
    site = site_of(ROTATED)
    one = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(10.0, 0.2, 0.0))] + \
        [ChargerReading(car=CarState.CHARGING)] * 2
    a = active_phases(site, one, ())
    assert a == ((0,), None, None)  # abc: L1 on A
    two = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(0.0, 9.0, 0.0))] + one[1:]
    assert active_phases(site, two, a)[0] == (0, 1)  # it showed L2 too: both kept
    idle = [ChargerReading(car=CarState.CONNECTED, draw_lines_a=(0.0, 0.0, 0.0))] + one[1:]
    assert active_phases(site, idle, a) is a  # drawing nothing says nothing
    gone = [ChargerReading(car=CarState.NO_CAR)] + one[1:]
    assert active_phases(site, gone, a)[0] is None
    eff = effective(site, a)
    assert eff.chargers[0].phase_idx == (0,) and eff.phase_members[1] == (1, 2)
    assert effective(site, a) is eff and effective(site, (None, None, None)) is site


def test_reports_every_10_s_still_reach_the_per_phase_ideal():
    """The same site with reports every 10 s: the cars all start in the same second, so two of
    them are shed before a report shows their line, and the full phase A would keep them waiting
    for ever (counted on every phase). A car whose phases are not known restarts without the
    hysteresis once its floor fits beside the others' floors: its start shows where it draws."""
    loop, ratio = _rotated_loop(Metering("lines", 10.0))
    assert ratio >= 0.9, ratio
    assert loop.state.active == ((0,), (1,), (2,))
    report = loop.limit.report()
    assert report.controller_s == 0 and report.standing_s == 0, report


TWO_NOT_MEASURED = ROTATED[:ROTATED.index('[[charger]]\nid = "cab"')]  # the first two of them


def test_the_meter_shows_where_a_car_draws_when_the_charger_measures_nothing():
    """Chargers that measure nothing: each raise of abc shows on phase A alone, so its 1-phase
    car is learned on A; bca's car (plugged in later) likewise on B. Counted on every phase, A
    (4 A household + 16 A) would hold bca to 4 A; learned, both get their max."""
    site = site_of(TWO_NOT_MEASURED)
    cars = {"abc": [car("abc", 0.0, delay_s=2.0, phases=1)],
            "bca": [car("bca", 300.0, delay_s=3.0, phases=1)]}
    loop = closed_loop(site, [(0.0, (4.0, 0.5, 0.5))], cars,
                       metering={"abc": NOT_MEASURED, "bca": NOT_MEASURED}, latency_s=0.25)
    seen = []
    loop.on_step = lambda lp, now: seen.append((now, lp.state.active))
    loop.run(int(900 / loop.dt))
    assert any(a and a[0] == (0,) for t, a in seen if t < 300)
    assert loop.state.active == ((0,), (1,))
    assert {c.id: c.limit_a for c in loop.decision.chargers} == {"abc": 16.0, "bca": 16.0}
    report = loop.limit.report()
    assert report.controller_s == 0 and report.standing_s == 0, report


@pytest.mark.parametrize("metering", [Metering("lines", 10.0), NOT_MEASURED], ids=["reports-10s", "not-measured"])
def test_a_one_phase_car_that_switches_to_three_phases_is_counted_on_them(metering):
    """A car that starts on one phase and switches to three after a while (some do): its active
    set grows as soon as a report or the meter shows it, and meanwhile the net keeps the
    overload it causes on B (household 10 A there) within its bound."""
    site = site_of(TWO_NOT_MEASURED.split("[[charger]]")[0] + '[[charger]]\nid = "abc"\nphases = "ABC"\n')
    cars = {"abc": [car("abc", 0.0, delay_s=2.0, phases=1, switch_s=400.0)]}
    loop = closed_loop(site, [(0.0, (4.0, 10.0, 0.5))], cars, metering={"abc": metering}, latency_s=0.25)
    seen = []
    loop.on_step = lambda lp, now: seen.append((now, lp.state.active, tuple(lp.true_a)))
    loop.run(int(700 / loop.dt))
    assert any(a == ((0,),) for t, a, _ in seen if t < 400)  # learned on A alone first
    grown = [t for t, a, _ in seen if t >= 400 and a and a[0] is None]
    assert grown and grown[0] < 400 + 30, grown[:1]  # a report (10 s) or the net's cut shows it
    assert all(a[0] is None for t, a, _ in seen if t >= grown[0])  # and it stays grown
    report = loop.limit.report()
    assert report.standing_s == 0, report
    assert all(max(true) <= site.limit_a + 1e-6 for t, _, true in seen if t > 500)


@truth_settings(40)
@given(closed_loops(phase_switch=True, wrong_wiring=True))
def test_cars_switching_to_three_phases_leave_no_overload_standing(case):
    """Random sites (late, power-only or missing reports, blips, restarts, wrong wiring) where
    some 1-phase cars switch to three phases while charging: whatever the active sets said
    before, no measured overload outlives the net's bound, and a load the meter or a report
    showed on several phases is counted on every wired phase."""
    loop, steps = case
    loop.run(steps)
    for report in (loop.fuse.report(), loop.limit.report()):
        assert report.standing_s == 0, (report, describe(loop))
    active = loop.state.active
    for spec, ev in zip(loop.site.chargers, loop.state.wiring):
        if active and ev.car_many:
            assert active[spec.index] is None, describe(loop)


def test_phases_in_use_for_watt_limits_are_known_only_from_reports_or_the_meter():
    """For a limit in watts (core/phases.py phases_in_use): the active set where narrowed, the
    phases a report shows in use, else None (a W limit then assumes the fewest); a car that
    leaves is forgotten."""
    from controller.core.phases import phases_in_use
    from controller.core.wiring import observe
    from controller.core.draw import LoadMemory
    site = site_of(ROTATED)
    mems = [LoadMemory()] * 3
    three = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(10.0, 10.0, 10.0)),
             ChargerReading(car=CarState.CHARGING, draw_lines_a=(0.0, 9.0, 0.0)),
             ChargerReading(car=CarState.CHARGING)]
    ev = observe(site, (), (10.0, 10.0, 10.0), mems, three, 1.0)
    active = active_phases(site, three, (), ev)
    assert active == (None, (2,), None)  # bca: its L2 is site phase C
    assert phases_in_use(site, active, ev) == (3, 1, None)
    gone = [ChargerReading(car=CarState.NO_CAR)] + three[1:]
    ev = observe(site, ev, (0.0, 10.0, 10.0), mems, gone, 2.0)
    assert phases_in_use(site, active_phases(site, gone, active, ev), ev) == (None, 1, None)
