"""Invariant 1's reclaim: current a car does not use is won back by lowering its limit toward
what it draws, never by counting it below its limit, and a limit never chases a car's own ramp
or a report that lags the car. Closed loop on decide(): the cars' TRUE draws make the meter,
the chargers report those draws every `report_s` (optionally `lag_s` late)."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.causes import Cause
from controller.core.decide import decide, initial_state
from controller.model import CarState, ChargerReading, MeterSample

from core_kit import make_site

TWO = """
[site]
fuse_a = 25
margin_a = 1
[control]
ramp_up_delay_s = 2
ramp_up_step_a = 32
ramp_up_interval_s = 1
response_s = 3
[[charger]]
id = "a"
priority = 1
[[charger]]
id = "b"
priority = 2
"""
HOUSEHOLD_A = 2.0
LIMIT_A = 24.0


@dataclass
class Car:
    wants: object = lambda t: 32.0  # what the car would take at time t, whatever it is offered
    response_s: float = 1.0
    draw: float = 0.0
    limits: list = field(default_factory=list)  # (t, limit) as the charger got them

    def follow(self, t: float) -> None:
        limit = next((lim for at, lim in reversed(self.limits) if at <= t - self.response_s), 0.0)
        self.draw = min(limit, self.wants(t))


class Site:
    def __init__(self, cars, report_s: float = 1.0, lag_s: float = 0.0, text: str = TWO,
                 household_a: float = HOUSEHOLD_A):
        self.site = make_site(text)
        self.household_a = household_a
        self.state = initial_state(self.site)
        self.cars, self.report_s, self.lag_s = cars, report_s, lag_s
        self.history: list[tuple[float, tuple[float, ...]]] = []  # (t, true draws)
        self.reports = [ChargerReading(car=CarState.CHARGING) for _ in cars]
        self.decision = None
        self.worst_over_a = 0.0

    def run(self, until: float, t: float = 0.0, dt: float = 0.5):
        while t <= until:
            for car in self.cars:
                car.follow(t)
            draws = tuple(car.draw for car in self.cars)
            self.history.append((t, draws))
            meter = (self.household_a + sum(draws),) * 3
            self.worst_over_a = max(self.worst_over_a, meter[0] - LIMIT_A)
            if int(t / self.report_s) != int((t - dt) / self.report_s):
                measured_at, then = next(((at, d) for at, d in reversed(self.history) if at <= t - self.lag_s),
                                         self.history[0])
                self.reports = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(d,) * 3, draw_at=measured_at)
                                for d in then]
            self.decision = decide(self.site, self.state, MeterSample(t, meter), self.reports, t)
            self.state = self.decision.state
            for car, c in zip(self.cars, self.decision.chargers):
                if not car.limits or car.limits[-1][1] != c.limit_a:
                    car.limits.append((t, c.limit_a))
            t += dt
        return self.decision

    def limit(self, k: int) -> float:
        return self.decision.chargers[k].limit_a


def test_a_car_that_takes_10_a_gives_the_rest_to_a_lower_priority_car():
    a, b = Car(wants=lambda t: 10.0), Car()
    site = Site([a, b])
    d = site.run(60)
    # Without the reclaim a keeps 22 A it does not use and b gets the 6 A... nothing at all.
    assert site.limit(0) == 12.0 and d.chargers[0].cause is Cause.DRAWS_LESS
    assert d.chargers[0].reason.startswith("its car draws 10.0 A")
    assert site.limit(1) == LIMIT_A - HOUSEHOLD_A - 12.0
    assert site.worst_over_a <= 0.0  # the TRUE phases were never over the limit


def test_a_capped_car_that_wants_more_is_offered_its_share_again():
    a, b = Car(wants=lambda t: 10.0 if t < 60 else 32.0), Car()
    site = Site([a, b])
    site.run(59.5)
    assert site.limit(0) == 12.0
    d = site.run(100, t=60)
    assert d.chargers[0].cause is not Cause.DRAWS_LESS and site.limit(0) == 16.0  # its max_a
    assert site.worst_over_a <= 0.0


def test_a_car_ramping_by_itself_is_never_capped_on_its_way_up():
    # a car that takes 1 A more each 2 s: every report shows it below its limit, never settled
    a = Car(wants=lambda t: min(22.0, t / 2))
    site = Site([a, Car(wants=lambda t: 0.0)])
    causes = set()
    t = 0.0
    while t < 50:
        site.run(t + 0.5, t=t)
        causes.add(site.decision.chargers[0].cause)
        t += 1.0
    assert Cause.DRAWS_LESS not in causes
    assert site.limit(0) >= 15.0  # its max_a, within the dead band


def test_late_reports_never_make_a_limit_swing():
    # reports every 10 s, 4 s late, of a car drawing all it gets: no reclaim, one limit change
    # for the start and one for the raise to its share
    a = Car(response_s=2.0)
    site = Site([a], report_s=10.0, lag_s=4.0)
    site.cars = [a]
    site.site = make_site(TWO.split("[[charger]]")[0] + '[[charger]]\nid = "a"\n')
    site.state = initial_state(site.site)
    site.reports = [ChargerReading(car=CarState.CHARGING)]
    site.run(600)
    assert site.limit(0) == 16.0
    assert len(a.limits) <= 3, a.limits  # 0 -> fallback/min -> 16, never down and up again


def test_a_tapering_battery_costs_about_one_limit_change_per_amp():
    a, b = Car(wants=lambda t: max(6.0, 16.0 - t / 60)), Car()  # 16 -> 6 A over 10 minutes
    site = Site([a, b])
    site.run(700)
    lowered = [lim for (_, lim), (_, prev) in zip(a.limits[1:], a.limits) if lim < prev]
    assert len(lowered) <= 12, a.limits
    assert site.limit(0) <= 6.0 + 3.0  # followed down: its draw + the margin + the settling tolerance
    assert site.limit(1) >= LIMIT_A - HOUSEHOLD_A - site.limit(0) - 0.5  # and b got what it freed
    assert site.worst_over_a <= 0.0
