"""Charging modes with and without export. The meter is household + PV (negative) + the car,
which draws exactly its limit and measures it."""

import pytest

from controller.core.decide import decide, initial_state
from controller.model import CarState, ChargerReading, MeterSample

from core_kit import make_site

SITE = """
[site]
fuse_a = 25
margin_a = 1
voltage_v = 230
[control]
ramp_up_delay_s = 0
ramp_up_step_a = 80
ramp_up_interval_s = 0.001
solar_start_delay_s = 60
solar_stop_grace_s = 300
excess_threshold_w = 500
[[charger]]
id = "car"
mode = "{mode}"
"""


class SolarLoop:
    def __init__(self, mode):
        self.site = make_site(SITE.format(mode=mode), fast_ramp=False)
        self.state = decide(self.site, initial_state(self.site), None, [ChargerReading()], 0).state
        self.limit = self.state.loads[0].limit_a

    def run(self, net_household_a, t0, t1, step=1.0):
        """Household minus PV per phase (negative = exporting before the car) from t0 to t1."""
        t = t0
        while t <= t1:
            reading = ChargerReading(car=CarState.CHARGING, draw_lines_a=(self.limit,) * 3)
            meter = (net_household_a + self.limit,) * 3
            d = decide(self.site, self.state, MeterSample(t, meter), [reading], t)
            self.state, self.limit = d.state, d.chargers[0].limit_a
            self.reason = d.chargers[0].reason
            t += step
        return self.limit


def test_standard_takes_what_the_fuse_allows_whatever_the_sun():
    loop = SolarLoop("standard")
    assert loop.run(2.0, 1, 30) == 16.0
    assert loop.run(-10.0, 31, 60) == 16.0


def test_solar_priority_gets_min_from_grid_and_more_from_surplus():
    loop = SolarLoop("solar-priority")
    assert loop.run(2.0, 1, 30) == 6.0
    assert loop.reason == "solar-priority: min_a from the grid"
    # 10 A export per phase before the car = 6.9 kW: 10 A, capped by max_a? no: 10 A.
    assert loop.run(-10.0, 31, 60) == 10.0
    assert loop.reason == "solar surplus 6.9 kW"


def test_solar_only_waits_for_surplus_to_hold_then_holds_min_through_a_dip():
    loop = SolarLoop("solar-only")
    # 4 A x 3 phases = 2.8 kW: not enough for 6 A on three phases (4.1 kW). The start-up
    # fallback current stops at the first sample (and that stop starts the restart delay).
    assert loop.run(-4.0, 1, 30) == 0.0
    assert loop.reason == "waiting for solar surplus"
    # 8 A export = 5.5 kW from t=31: enough, but only once held 60 s ...
    assert loop.run(-8.0, 31, 90) == 0.0
    assert loop.reason.startswith("surplus 5.5 kW: start in")
    # ... and the restart delay (120 s from t=1) ran out too.
    assert loop.run(-8.0, 91, 120) == 0.0
    assert loop.reason.startswith("restart delay")
    assert loop.run(-8.0, 121, 121) == 6.0
    assert loop.run(-8.0, 122, 140) == 8.0
    # A cloud: the site imports 2 A per phase besides the car. Hold min_a for the grace time.
    assert loop.run(2.0, 141, 440) == 6.0
    assert loop.reason.startswith("surplus low: holding min_a")
    assert loop.run(2.0, 441, 441) == 0.0
    assert loop.reason == "surplus gone: paused"
    assert loop.run(2.0, 442, 442) == 0.0
    assert loop.reason == "waiting for solar surplus"


def test_solar_only_restart_respects_restart_delay():
    loop = SolarLoop("solar-only")
    loop.run(-8.0, 1, 140)
    loop.run(2.0, 141, 445)
    assert loop.limit == 0.0
    paused_at = 441  # grace of 300 s from 141 ran out
    assert loop.run(-8.0, 442, paused_at + 119) == 0.0
    assert loop.reason.startswith("restart delay")
    assert loop.run(-8.0, paused_at + 120, paused_at + 120) == 6.0


def test_excess_uses_only_surplus_above_the_threshold():
    loop = SolarLoop("excess")
    assert loop.run(-8.0, 1, 119) == 0.0  # start delay, and the restart delay after fallback
    loop.run(-8.0, 120, 140)
    # 8 A x 3 x 230 V = 5520 W - 500 W threshold = 5020 W -> 7.27 A per phase
    assert loop.limit == pytest.approx(7.2)
    # Surplus 4.5 kW is under 6 A x 3 x 230 V + 500 W: hold min_a for the grace time.
    assert loop.run(-6.5, 141, 150) == 6.0


def test_off_never_charges():
    loop = SolarLoop("off")
    assert loop.run(-20.0, 1, 100) == 0.0
    assert loop.reason == "mode off"
