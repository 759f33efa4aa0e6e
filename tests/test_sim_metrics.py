"""The fuse metrics the simulator reports, on small hand-checked series, and the cars' physics."""

import tomllib

from controller.config import parse_config
from controller.core.site import SiteModel
from controller.model import CarState
from controller.sim.offline.cars import CarPlan, SimCharger
from controller.sim.offline.metrics import FuseWatch


def feed(watch, phase_a, household=None):
    for k, amps in enumerate(phase_a):
        watch.add((amps, 0.0, 0.0), None if household is None else (household[k], 0.0, 0.0))
    return watch.report()


def test_hand_checked_excursions():
    # fuse 25 A, samples every 0.5 s, grace 1.0 s (0.5 s response + one sample)
    r = feed(FuseWatch(25.0, 0.5, grace_s=1.0), [20, 26, 27, 20, 30, 30, 30, 30])
    assert r.excursions == 2
    assert r.seconds_above == 3.0  # six samples above
    assert r.amp_seconds == 11.5  # (1 + 2) x 0.5 + 4 x 5 x 0.5
    assert r.longest_s == 2.0  # four samples in a row
    assert r.late_s == 1.0  # the 3rd and 4th sample of the second excursion


def test_amp_seconds_add_every_phase_over_the_fuse():
    w = FuseWatch(25.0, 0.25)
    w.add((20.0, 26.0, 27.0))
    assert w.report().amp_seconds == (1 + 2) * 0.25
    assert w.report().late_s == 0.0  # no grace given: nothing is late


def test_exactly_at_the_fuse_is_not_above():
    assert feed(FuseWatch(25.0, 1.0, grace_s=0.0), [25.0, 25.0]).seconds_above == 0.0


def test_household_rise_inside_an_excursion_restarts_the_grace():
    series = [30, 30, 30, 30]
    steady = feed(FuseWatch(25.0, 0.5, grace_s=1.0), series, household=[10, 10, 10, 10])
    assert steady.late_s == 1.0
    kettle = feed(FuseWatch(25.0, 0.5, grace_s=1.0), series, household=[10, 10, 19, 19])
    assert kettle.late_s == 0.0
    drift = feed(FuseWatch(25.0, 0.5, grace_s=1.0), series, household=[10, 10, 10.5, 10.5])
    assert drift.late_s == 1.0  # half an ampere of drift is no new cause


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
