"""Simulated chargers with cars: what each charger draws, per site phase, at simulated times.

A charger holds the limit it last received. The car plugged into it follows a new limit
after its response delay (IEC 61851-1 allows up to 5 s), decreases and increases alike, so
during the delay after a decrease it still draws the old, higher limit, and never more than
that. Below 6 A a car cannot charge (the lowest PWM duty cycle IEC 61851-1 defines), so it
pauses. It stops by itself once it has the energy it wanted, and leaves at its departure.

Readings are what the core gets: the car state, and the measured draw either live, every
N seconds (a stale copy in between, like OCPP MeterValues), or not at all.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from controller.core.site import ChargerSpec
from controller.model import PHASE_INDEX, CarState, ChargerReading

CAR_MIN_A = 6.0


@dataclass(frozen=True)
class CarPlan:
    charger: str  # charger id
    arrive_s: float  # seconds since the start of the run
    depart_s: float
    kwh: float  # energy it wants
    phases: int = 3  # 1 or 3: how many of the charger's lines the car uses
    max_a: float = 16.0  # the car's own onboard-charger limit
    delay_s: float = 3.0  # response delay to a new limit


class SimCharger:
    """One charger and the car (if any) plugged into it."""

    def __init__(self, spec: ChargerSpec, plans: list[CarPlan], voltage_v: float,
                 measure_every_s: float | None, initial_limit_a: float):
        self.spec = spec
        self.plans = sorted(plans, key=lambda p: p.arrive_s)
        self.voltage_v = voltage_v
        self.measure_every_s = measure_every_s  # None: not measured; 0: live
        self.limit_a = initial_limit_a  # what the charger offers now
        self.car: CarPlan | None = None
        self.effective_a = 0.0  # the limit the car follows now
        self.pending: deque[tuple[float, float]] = deque()  # (effective at, limit)
        self.need_wh = 0.0
        self.draw_a = 0.0
        self.site_phases: tuple[int, ...] = ()  # phases the plugged car draws on
        self.energy_wh = 0.0
        self.starts = 0
        self.stops = 0
        self.cars_plugged = 0
        self._next_plan = 0
        self._last_measure = -float("inf")
        self._measured: tuple[float, ...] | None = (0.0, 0.0, 0.0) if measure_every_s is not None else None
        self._reading = ChargerReading(car=CarState.NO_CAR, draw_lines_a=self._measured)

    def command(self, limit_a: float, now: float) -> None:
        """A new limit reaches the charger at `now`; the car follows after its delay."""
        self.limit_a = limit_a
        if self.car is not None:
            self.pending.append((now + self.car.delay_s, limit_a))

    def advance(self, now: float, dt: float) -> None:
        """Bring the car to time `now` and fix its draw for the step [now, now + dt)."""
        self._plug(now)
        car = self.car
        if car is None:
            self.draw_a = 0.0
            return
        while self.pending and self.pending[0][0] <= now:
            self.effective_a = self.pending.popleft()[1]
        was = self.draw_a
        draw = min(self.effective_a, car.max_a) if self.effective_a >= CAR_MIN_A else 0.0
        watts_per_a = self.voltage_v * len(self.site_phases)
        if draw > 0 and self.need_wh < draw * watts_per_a * dt / 3600.0:
            draw = self.need_wh * 3600.0 / (watts_per_a * dt)  # the last bit, then it is full
        self.draw_a = draw
        self.need_wh -= draw * watts_per_a * dt / 3600.0
        self.energy_wh += draw * watts_per_a * dt / 3600.0
        if was <= 0 < draw:
            self.starts += 1
        elif draw <= 0 < was and self.need_wh > 1e-9:  # a pause, not a full battery
            self.stops += 1

    def draw_on_site(self, out: list[float]) -> None:
        """Add this charger's draw to per-site-phase sums."""
        for p in self.site_phases:
            out[p] += self.draw_a

    def reading(self, now: float) -> ChargerReading:
        car = self.car
        if car is None:
            state = CarState.NO_CAR
        else:
            state = CarState.CHARGING if self.draw_a > 0 else CarState.CONNECTED
        measured = self._measured
        if self.measure_every_s is not None and now - self._last_measure >= self.measure_every_s:
            self._last_measure = now
            lines = len(self.site_phases)
            measured = tuple(self.draw_a if n < lines else 0.0 for n in range(3))
        if state is not self._reading.car or measured != self._measured:
            self._measured = measured
            self._reading = ChargerReading(car=state, draw_lines_a=measured)
        return self._reading

    def _plug(self, now: float) -> None:
        car = self.car
        if car is not None and now >= car.depart_s:
            self.car, self.effective_a, self.draw_a = None, 0.0, 0.0
            self.pending.clear()
            self.site_phases = ()
        if self.car is None and self._next_plan < len(self.plans):
            plan = self.plans[self._next_plan]
            if now >= plan.arrive_s:
                self._next_plan += 1
                if now < plan.depart_s:
                    self.car = plan
                    self.cars_plugged += 1
                    self.need_wh = plan.kwh * 1000.0
                    # The car sees what the charger offers as it plugs in, after its delay.
                    self.effective_a = 0.0
                    self.pending.append((now + plan.delay_s, self.limit_a))
                    self.site_phases = car_site_phases(self.spec, plan)


def car_site_phases(spec: ChargerSpec, plan: CarPlan) -> tuple[int, ...]:
    """Site phases a car draws on: the charger's first `plan.phases` lines."""
    return tuple(PHASE_INDEX[ph] for ph in spec.wiring[:plan.phases])
