"""The seeded household generator: deterministic, and physically plausible."""

import pytest

from controller.sim.offline.household import Appliance, Household, HouseholdProfile, PvProfile

BUSY = HouseholdProfile(base_a=1.2, drift_a=0.5, appliances=(
    Appliance("kettle", "A", per_day=6),
    Appliance("oven", "B", per_day=1, at_h=(18.0,)),
    Appliance("hob", "A", per_day=2),
    Appliance("hob", "C", at_h=(18.2,)),
    Appliance("washing-machine", "C", per_day=1),
    Appliance("heat-pump", "ABC", kw=2.4),
))


def day(seed, profile=BUSY, step=5.0, duration=86400.0, pv=None):
    h = Household(profile, pv, seed, 0.0, duration, 3, 230.0)
    return [(h.load_at(k * step), h.pv_at(k * step)) for k in range(int(duration / step))]


def test_same_seed_same_load_and_other_seed_other_load():
    assert day(5) == day(5)
    assert day(5) != day(6)


def test_a_shorter_run_sees_the_same_beginning():
    assert day(5, duration=7200.0) == day(5)[:1440]


def test_load_is_non_negative_bounded_and_has_peaks():
    samples = day(5)
    # Every appliance at once plus the base load's ceiling: the most this house can draw.
    ceiling = (3.0 + 3.5 + 2.0 + 2.0 + 2.2) * 1000 / 230 + 2.4 * 1000 / 690 + 1.2 + 2 * 0.5
    for load, _ in samples:
        assert all(0.0 <= x <= ceiling for x in load)
    a = [load[0] for load, _ in samples]
    assert min(a) < 3.0  # quiet times exist
    assert max(a) > 8.0  # a kettle on A shows up (2 kW = 8.7 A)
    mean_kw = sum(sum(load) for load, _ in samples) / len(samples) * 230 / 1000
    assert 0.5 < mean_kw < 3.0  # a house uses some 12 to 70 kWh a day with a heat pump


def test_fixed_use_happens_at_its_hour():
    profile = HouseholdProfile(base_a=0.0, drift_a=0.0, appliances=(Appliance("kettle", "B", at_h=(7.5,)),))
    h = Household(profile, None, 1, 7.0, 3600.0, 3, 230.0)
    assert h.load_at(1799.0)[1] == 0.0
    assert 2.0 * 1000 / 230 <= h.load_at(1801.0)[1] <= 3.0 * 1000 / 230
    assert h.load_at(3599.0)[1] == 0.0  # boiled within minutes


def test_pv_only_between_sunrise_and_sunset_and_below_peak():
    pv = PvProfile(kwp=9.0, phases="ABC", sunrise_h=6.0, sunset_h=20.0, cloudiness=0.5)
    samples = day(2, pv=pv, step=60.0)
    for k, (_, sun) in enumerate(samples):
        hour = k / 60
        assert all(0.0 <= x <= 9000 / 690 + 1e-9 for x in sun)
        if hour < 6 or hour > 20:
            assert sun == (0.0, 0.0, 0.0)
    assert max(s[0] for _, s in samples) > 5.0


def test_time_must_not_go_backwards():
    h = Household(BUSY, None, 1, 0.0, 600.0, 3, 230.0)
    h.load_at(10.0)
    with pytest.raises(ValueError):
        h.load_at(5.0)


def test_single_phase_site_has_load_on_a_only():
    profile = HouseholdProfile(appliances=(Appliance("kettle", "A", at_h=(0.1,)),))
    h = Household(profile, None, 1, 0.0, 3600.0, 1, 230.0)
    assert all(h.load_at(t)[1:] == (0.0, 0.0) for t in range(0, 3600, 60))
