"""The blame metrics the simulator reports, on small hand-checked series, and the cars'
physics (response both ways, drawing less than allowed, link blips, late reports)."""

import math
import tomllib

from controller.config import parse_config
from controller.core.causes import Cause
from controller.core.site import SiteModel
from controller.model import CarState
from controller.sim.offline.cars import CarPlan, Link, Metering, SimCharger
from controller.sim.offline.metrics import OverWatch


def feed(watch, phase_a, household=None, ev=None):
    for k, amps in enumerate(phase_a):
        watch.add(k * watch.dt, [amps], None if household is None else [household[k]],
                  None if ev is None else [ev[k]])
    return watch.report()


def test_hand_checked_excursions_without_a_household_rise_are_the_controllers():
    # limit 25 A, samples every 0.5 s, grace 1.0 s; the household stays at 10 A
    r = feed(OverWatch([25.0], 0.5, grace_s=1.0), [20, 26, 27, 20, 30, 30, 30, 30], household=[10] * 8)
    assert r.excursions == 2
    assert r.seconds_above == 3.0  # six samples above
    assert r.amp_seconds == 11.5  # (1 + 2) x 0.5 + 4 x 5 x 0.5
    assert r.longest_s == 2.0  # four samples in a row
    assert r.controller_s == 3.0  # no household rise: every second above is the controller's


def test_a_household_rise_excuses_its_own_amperes_for_the_grace_only():
    # +9 A of household at the 3rd sample pushes 20 -> 29 A; the cars need 1 s to follow.
    series = [20, 20, 29, 29, 29, 29]
    kettle = feed(OverWatch([25.0], 0.5, grace_s=1.0), series, household=[5, 5, 14, 14, 14, 14])
    assert kettle.seconds_above == 2.0
    assert kettle.controller_s == 0.5  # 0, 0.5 and 1.0 s after the rise are excused; 1.5 s is late
    # A controller that was already 2 A over when the kettle came is to blame throughout.
    over = feed(OverWatch([25.0], 0.5, grace_s=10.0), [27, 27, 36, 36], household=[5, 5, 14, 14])
    assert over.controller_s == 2.0
    drift = feed(OverWatch([25.0], 0.5, grace_s=10.0), [25, 25.5, 26], household=[5, 5.5, 5.5])
    assert drift.controller_s == 0.5  # drift excuses its own half ampere, not the next one


def test_nothing_is_blamed_without_cars_drawing_and_at_the_limit():
    assert feed(OverWatch([25.0], 1.0, grace_s=0.0), [30.0, 30.0], household=[30, 30],
                ev=[0.0, 0.0]).controller_s == 0.0  # the household alone: no charger can help
    assert feed(OverWatch([25.0], 1.0, grace_s=0.0), [25.0, 25.0]).seconds_above == 0.0
    assert feed(OverWatch([25.0], 1.0), [30.0, 30.0], household=[5, 5]).controller_s == 0.0


def test_standing_overloads_count_only_while_a_controllable_car_draws():
    w = OverWatch([25.0], 1.0, grace_s=1.0, stand_s=3.0)
    for k in range(8):
        w.add(float(k), [30.0], [20.0], [10.0], [10.0 if k < 6 else 0.0])
    assert w.report().standing_s == 3.0  # samples 3-5: above for more than 3 s with a car to cut


def one_charger(phases="ABC"):
    text = f'[meter]\nhost = "x"\n[site]\nfuse_a = 25\n[[charger]]\nid = "c"\nphases = "{phases}"\n'
    return SiteModel.from_config(parse_config(tomllib.loads(text), "t.toml")).chargers[0]


def test_car_follows_a_decrease_only_after_its_delay_and_never_exceeds_the_old_limit():
    car = CarPlan("c", arrive_s=0, depart_s=100, kwh=50, phases=3, max_a=16, delay_s=3)
    ch = SimCharger(one_charger(), [car], 230.0, 0.0, initial_limit_a=16.0)
    draws = []
    for k in range(40):
        now = k * 0.5
        if now == 10.0:
            ch.command(8.0, now)
        ch.advance(now, 0.5)
        draws.append((now, ch.draw_a))
    assert all(d == 0.0 for t, d in draws if t < 3.0)  # plugs in, follows 16 A after 3 s
    assert all(d == 16.0 for t, d in draws if 3.0 <= t < 13.0)  # the cut lands at 10 + 3 s
    assert all(d == 8.0 for t, d in draws if t >= 13.0)
    assert ch.starts == 1 and ch.stops == 0


def test_car_stops_when_full_and_one_phase_car_uses_the_first_line_only():
    car = CarPlan("c", arrive_s=0, depart_s=10_000, kwh=0.1, phases=1, max_a=16, delay_s=1)
    ch = SimCharger(one_charger("BCA"), [car], 230.0, 10.0, initial_limit_a=16.0)
    for k in range(400):
        ch.advance(k * 1.0, 1.0)
    assert ch.site_phases == (1,)  # line 1 of a BCA charger is site phase B
    assert abs(ch.energy_wh - 100.0) < 1e-6
    assert ch.draw_a == 0.0 and ch.stops == 0  # full is not a pause
    assert ch.reading(400.0).car is CarState.CONNECTED


def test_car_draws_less_than_allowed_and_tapers_near_full():
    car = CarPlan("c", arrive_s=-10, depart_s=1e9, kwh=2.0, phases=1, max_a=10, delay_s=1, taper_kwh=1.0)
    ch = SimCharger(one_charger(), [car], 230.0, 0.0, initial_limit_a=16.0)
    ch.advance(0.0, 1.0)
    assert ch.draw_a == 10.0  # its own max, below the 16 A allowed
    t = 1.0
    while ch.need_wh > 500.0:
        ch.advance(t, 1.0)
        t += 1.0
    assert 6.0 < ch.draw_a < 10.0  # half-way through its taper: about 8 A


def test_link_blip_holds_the_acknowledged_limit_until_the_lease_ends_then_the_fallback():
    car = CarPlan("c", arrive_s=-10, depart_s=1e9, kwh=100, delay_s=2)
    ch = SimCharger(one_charger(), [car], 230.0, Metering("none"), initial_limit_a=6.0,
                    link=Link(lease_s=30.0, blips=((10.0, 60.0),)), fallback_a=6.0)
    ch.advance(0.0, 1.0)
    assert ch.command(16.0, 1.0, Cause.SHARE) and ch.acked_a == 16.0
    draws = {}
    for k in range(2, 80):
        ch.advance(float(k), 1.0)
        draws[k] = ch.draw_a
        if k == 20:
            assert not ch.command(8.0, 20.0, Cause.SHARE)  # lost with the link
            r = ch.reading(20.0)
            assert not r.online and r.acked_a == 16.0 and r.lease_until == 40.0
    assert draws[39] == 16.0 and draws[42] == 6.0  # lease ends at 40 s, the car follows in 2 s
    assert ch.reading(70.0).online and ch.reading(70.0).acked_a is None  # a new link knows nothing
    assert ch.stops == 0


def test_reports_are_stale_between_report_times_and_stop_when_refused():
    car = CarPlan("c", arrive_s=-10, depart_s=1e9, kwh=100, delay_s=1)
    ch = SimCharger(one_charger(), [car], 230.0, Metering("power", 10.0, offset_s=0.0, stops_s=25.0),
                    initial_limit_a=16.0)
    seen = {}
    for k in range(0, 40):
        ch.advance(float(k), 1.0)
        seen[k] = ch.reading(float(k))
    assert seen[5].draw_at == 0.0 and seen[5].draw_lines_a is None
    assert math.isclose(seen[12].power_w, 16.0 * 3 * 230.0) and seen[12].draw_at == 10.0
    assert seen[39].draw_at == 20.0  # no report after 25 s
    assert seen[5].car is CarState.CHARGING


def test_a_stop_without_an_allocator_cause_is_counted_as_unexplained():
    car = CarPlan("c", arrive_s=-10, depart_s=1e9, kwh=100, delay_s=1)
    ch = SimCharger(one_charger(), [car], 230.0, 0.0, initial_limit_a=16.0)
    ch.advance(0.0, 1.0)
    ch.command(0.0, 1.0, Cause.SHED)
    for k in range(1, 5):
        ch.advance(float(k), 1.0)
    ch.command(16.0, 5.0, Cause.SHARE)
    ch.command(0.0, 10.0, Cause.RESTART_WAIT)
    for k in range(5, 15):
        ch.advance(float(k), 1.0)
    assert ch.stops == 2 and [c for _, c in ch.unexplained] == [Cause.RESTART_WAIT]
    assert ch.per_car == [[2, 2, 1]]  # one car: two starts, two stops, one unexplained


def test_a_wrong_wiring_moves_the_true_draw_not_the_report():
    car = CarPlan("c", arrive_s=-10, depart_s=1e9, kwh=100, phases=1, delay_s=1)
    ch = SimCharger(one_charger("ABC"), [car], 230.0, 0.0, initial_limit_a=10.0, true_wiring="CAB")
    ch.advance(0.0, 1.0)
    site = [0.0, 0.0, 0.0]
    ch.draw_on_site(site)
    assert site == [0.0, 0.0, 10.0]  # its L1 really is on C
    assert ch.reading(0.0).draw_lines_a == (10.0, 0.0, 0.0)  # the charger reports L1 as ever
