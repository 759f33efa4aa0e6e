"""Simulated chargers with cars: the true draw per site phase, and what the runtime would know.

A charger holds the limit it last received (or, with its link down past its lease, its own
fallback: min(fallback_a, max_a), 0 for mode "off"). The car plugged into it follows a new
limit after its response delay (IEC 61851-1 allows up to 5 s), decreases and increases alike,
so during the delay after a cut it still draws the old, higher limit. Below 6 A a car cannot
charge (the lowest PWM duty cycle IEC 61851-1 defines), so it pauses. It may draw less than
allowed: its onboard charger's own max, and a taper over the last `taper_kwh` of its need
(down to 6 A, like a battery near full). It stops by itself once full and leaves at departure.
It may wait for its own charge timer (plugged in, taking nothing), or, asleep, start a while
after current is offered.

The true wiring (site phase per charger line) may differ from the configured `phases`; the
car draws on the first `plan.phases` lines of it.

Readings are what the core gets: the car state, the link state, the last limit the charger
confirmed, and the draw as the charger reports it (per line, power only, or nothing), live
or every N seconds (a stale copy in between, with draw_at = the report's time), possibly
stopping at some time (a refused sample interval). A controller restart forgets what the
runtime knew (reports, acknowledgements) until the charger speaks again.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from controller.core.ask import ASK_EVERY_S
from controller.core.site import ChargerSpec
from controller.model import PHASE_INDEX, CarState, ChargerReading

CAR_MIN_A = 6.0
MEASURES = ("lines", "power", "none")


@dataclass(frozen=True)
class CarPlan:
    charger: str  # charger id
    arrive_s: float  # seconds since the start of the run
    depart_s: float
    kwh: float  # energy it wants
    phases: int = 3  # 1 or 3: how many of the charger's lines the car uses
    max_a: float = 16.0  # the car's own onboard-charger limit
    delay_s: float = 3.0  # response delay to a new limit, up and down alike
    taper_kwh: float = 0.0  # over the last this much of its need, its own max falls to 6 A
    switch_s: float = math.inf  # from this run time on it draws on `switch_phases` lines
    switch_phases: int = 3  # (some 1-phase-started cars switch to three phases after a while)
    timer_s: float = -math.inf  # before this run time it takes nothing (its own charge timer)
    wake_s: float = 0.0  # offered current after none, it starts this much later than delay_s (asleep)

    def own_max_a(self, need_wh: float) -> float:
        """What the car takes at most with need_wh still to charge (taper near full)."""
        taper_wh = self.taper_kwh * 1000.0
        if taper_wh <= 0 or need_wh >= taper_wh:
            return self.max_a
        return CAR_MIN_A + (self.max_a - CAR_MIN_A) * max(0.0, need_wh) / taper_wh


@dataclass(frozen=True)
class Metering:
    """How a charger reports what it draws."""

    measures: str = "lines"  # "lines" (per line L1..L3) | "power" (power_w only) | "none"
    every_s: float = 0.0  # 0 = live (every sample), else seconds between reports
    offset_s: float = 0.0  # first report at this time (reports are not aligned across chargers)
    stops_s: float = math.inf  # no report from this time on (a refused sample interval)
    answers_s: float | None = None  # asked for a report (TriggerMessage), it comes this much later

    @property
    def reports(self) -> bool:
        return self.measures != "none"


@dataclass(frozen=True)
class Link:
    """The charger's link to the controller: offline intervals and its lease."""

    lease_s: float = 120.0  # it holds its acknowledged limit this long after the link drops
    blips: tuple[tuple[float, float], ...] = ()  # (from, to) seconds: link down


# Where the limit a car follows came from: a command (with its cause, or None when the core
# gave none we could read), the charger's own fallback after its lease, or the start.
FALLBACK = "fallback"
INITIAL = "initial"


class SimCharger:
    """One charger and the car (if any) plugged into it."""

    def __init__(self, spec: ChargerSpec, plans: list[CarPlan], voltage_v: float,
                 metering: Metering | float | None, initial_limit_a: float,
                 link: Link | None = None, fallback_a: float | None = None,
                 true_wiring: str | None = None):
        self.spec = spec
        self.plans = sorted(plans, key=lambda p: p.arrive_s)
        self.voltage_v = voltage_v
        if not isinstance(metering, Metering):  # legacy: None = not measured, 0 = live, N s
            metering = Metering("none") if metering is None else Metering("lines", float(metering))
        self.metering = metering
        self.link = link or Link()
        self.fallback_a = initial_limit_a if fallback_a is None else fallback_a
        self.wiring = true_wiring or spec.wiring
        self.limit_a = initial_limit_a  # what the charger offers now
        self.origin: object = INITIAL  # where limit_a came from
        self.acked_a: float | None = None  # what the runtime knows it confirmed
        self.car: CarPlan | None = None
        self.effective_a = 0.0  # the limit the car follows now
        self.effective_origin: object = INITIAL
        self.pending: deque[tuple[float, float, object]] = deque()  # (effective at, limit, origin)
        self.need_wh = 0.0
        self.draw_a = 0.0
        self.site_phases: tuple[int, ...] = ()  # true site phases the plugged car draws on
        self.energy_wh = 0.0
        self.starts = 0
        self.stops = 0
        self.unexplained: list[tuple[float, object]] = []  # stops without an allocator cause
        self.per_car: list[list[int]] = []  # per plugged car: [starts, stops, unexplained]
        self.cars_plugged = 0
        self._next_plan = 0
        self._offered_since: float | None = None  # the car has been offered 6 A or more since
        self._online = True
        self._down_since: float | None = None
        self._next_report = metering.offset_s if metering.every_s > 0 else 0.0
        self._asked_at = -math.inf
        self._report: tuple[tuple[float, ...], float] | None = None  # (lines, at)
        self._reading: ChargerReading | None = None
        self._reading_key: tuple | None = None

    # ---------------------------------------------------------------- link
    def online(self, now: float) -> bool:
        return not any(a <= now < b for a, b in self.link.blips)

    def lease_until(self) -> float | None:
        return None if self._down_since is None else self._down_since + self.link.lease_s

    def command(self, limit_a: float, now: float, origin: object = None) -> bool:
        """A new limit reaches the charger at `now` (False: the link is down, it is lost)."""
        if not self.online(now):
            return False
        self._hold(limit_a, now, origin)
        self.acked_a = limit_a
        return True

    def forget(self) -> None:
        """A controller restart: the new process knows no report and no acknowledgement yet."""
        self._report = None
        self.acked_a = None

    def _hold(self, limit_a: float, now: float, origin: object) -> None:
        self.limit_a, self.origin = limit_a, origin
        if self.car is not None:
            self.pending.append((now + self.car.delay_s, limit_a, origin))

    # ---------------------------------------------------------------- physics
    def advance(self, now: float, dt: float) -> None:
        """Bring charger and car to time `now` and fix the car's draw for [now, now + dt)."""
        self._track_link(now)
        self._plug(now)
        car = self.car
        if car is None:
            self.draw_a = 0.0
            return
        if now >= car.switch_s and len(self.site_phases) != car.switch_phases:
            self.site_phases = car_site_phases(self.spec, car, self.wiring, car.switch_phases)
        while self.pending and self.pending[0][0] <= now:
            _, self.effective_a, self.effective_origin = self.pending.popleft()
        was = self.draw_a
        allowed = min(self.effective_a, self.spec.max_a)
        if allowed < CAR_MIN_A:
            self._offered_since = None
        elif self._offered_since is None:
            self._offered_since = now
        draw = min(allowed, car.own_max_a(self.need_wh)) if allowed >= CAR_MIN_A else 0.0
        if now < car.timer_s or self._offered_since is not None and now < self._offered_since + car.wake_s:
            draw = 0.0  # waiting for its own timer, or not awake yet
        watts_per_a = self.voltage_v * len(self.site_phases)
        if draw > 0 and self.need_wh < draw * watts_per_a * dt / 3600.0:
            draw = self.need_wh * 3600.0 / (watts_per_a * dt)  # the last bit, then it is full
        self.draw_a = draw
        self.need_wh -= draw * watts_per_a * dt / 3600.0
        self.energy_wh += draw * watts_per_a * dt / 3600.0
        tally = self.per_car[-1]
        if was <= 0 < draw:
            self.starts += 1
            tally[0] += 1
        elif draw <= 0 < was and self.need_wh > 1e-9:  # a pause, not a full battery
            self.stops += 1
            tally[1] += 1
            cause = self.effective_origin
            if not getattr(cause, "stops", False):
                self.unexplained.append((now, cause))
                tally[2] += 1

    def _track_link(self, now: float) -> None:
        online = self.online(now)
        if online != self._online:
            self._online = online
            if online:  # back: the new link knows no acknowledgement yet
                self._down_since = None
                self.acked_a = None
            else:
                self._down_since = now
        lease = self.lease_until()
        if lease is not None and now >= lease and self.origin is not FALLBACK:
            self._hold(self.fallback_a, lease, FALLBACK)

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
                    self.per_car.append([0, 0, 0])
                    self.need_wh = plan.kwh * 1000.0
                    # The car sees what the charger offers as it plugs in, after its delay (a
                    # car plugged in before the run, arrive_s < 0, already follows it).
                    self.effective_a, self.effective_origin = 0.0, INITIAL
                    self._offered_since = None
                    self.pending.append((plan.arrive_s + plan.delay_s, self.limit_a, self.origin))
                    self.site_phases = car_site_phases(self.spec, plan, self.wiring)

    def draw_on_site(self, out: list[float]) -> None:
        """Add this charger's true draw to per-site-phase sums."""
        for p in self.site_phases:
            out[p] += self.draw_a

    def lines_a(self) -> tuple[float, float, float]:
        """True current per charger line L1..L3."""
        n = len(self.site_phases)
        return tuple(self.draw_a if k < n else 0.0 for k in range(3))  # type: ignore[return-value]

    def ask(self, now: float) -> None:
        """The controller asks for a fresh report (OCPP TriggerMessage MeterValues)."""
        m = self.metering
        if m.answers_s is None or m.every_s <= 0 or now - self._asked_at < ASK_EVERY_S:
            return  # like the runtime's drivers: one request per ASK_EVERY_S
        self._asked_at = now
        self._next_report = min(self._next_report, now + m.answers_s)

    # ---------------------------------------------------------------- what the runtime knows
    def reading(self, now: float) -> ChargerReading:
        car = self.car
        if car is None:
            state = CarState.NO_CAR
        else:
            state = CarState.CHARGING if self.draw_a > 0 else CarState.CONNECTED
        m = self.metering
        online = self._online
        if m.reports and online and now < m.stops_s and now >= self._next_report - 1e-9:
            self._report = (self.lines_a(), now)
            if m.every_s > 0:
                self._next_report = now + m.every_s
        lines, at = self._report if self._report is not None else (None, None)
        if m.every_s <= 0 and at == now:
            at = None  # live: "just now"
        power = None
        if m.measures == "power" and lines is not None:
            power, lines = sum(lines) * self.voltage_v, None
        lease = None if online else self.lease_until()
        key = (online, state, lines, at, power, self.acked_a, lease)
        if key != self._reading_key:
            self._reading_key = key
            self._reading = ChargerReading(online=online, car=state, draw_lines_a=lines, draw_at=at,
                                           lease_until=lease, power_w=power, acked_a=self.acked_a)
        return self._reading  # type: ignore[return-value]


def car_site_phases(spec: ChargerSpec, plan: CarPlan, wiring: str | None = None,
                    lines: int | None = None) -> tuple[int, ...]:
    """Site phases a car draws on: the first `plan.phases` (or `lines`) lines of the (true) wiring."""
    return tuple(PHASE_INDEX[ph] for ph in (wiring or spec.wiring)[:lines or plan.phases])
