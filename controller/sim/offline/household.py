"""Household load per phase from a seeded, appliance-based generator, and optional PV.

The load is a sum of appliance runs, each a list of (start, end, amps) pulses on its phases,
plus a base load per phase that drifts slowly (a mean-reverting random walk, one step a
minute). Everything is turned into one sorted list of (time, phase, delta) events once, so
reading the load while time advances costs next to nothing per step.

Determinism: only random.Random, seeded from the scenario seed, the appliance's position and
the day, so the same seed gives the same load, and a shorter run sees the same beginning as
a longer one. Times are seconds since the start of the run; `start_h` (hour of day at t=0)
places the run in the day so kettles boil in the morning and evening, not at 3 am.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass

from controller.model import PHASE_INDEX, Phases

APPLIANCE_KINDS = ("kettle", "oven", "hob", "heat-pump", "washing-machine")

# Relative chance that a use of an appliance starts in each hour of the day: quiet nights,
# a morning peak and a bigger evening peak.
HOURLY_WEIGHT = (1, 1, 1, 1, 1, 2, 6, 9, 7, 4, 3, 4, 6, 4, 3, 3, 5, 9, 12, 10, 7, 5, 3, 2)


@dataclass(frozen=True)
class Appliance:
    kind: str  # one of APPLIANCE_KINDS
    phases: str  # site phases it draws from ("A"; a heat pump usually "ABC")
    per_day: float = 0.0  # random uses a day, at times drawn from HOURLY_WEIGHT
    at_h: tuple[float, ...] = ()  # fixed uses, hour of day (18.5 = 18:30; 30 = 06:00 next day)
    kw: float = 0.0  # electrical power when on; 0 = drawn from the kind's usual range


@dataclass(frozen=True)
class HouseholdProfile:
    base_a: float = 1.0  # mean base load per phase (fridge, lights, standby)
    drift_a: float = 0.4  # how far the base load wanders from its mean
    appliances: tuple[Appliance, ...] = ()


@dataclass(frozen=True)
class PvProfile:
    kwp: float  # peak AC power
    phases: str = "ABC"
    sunrise_h: float = 6.0
    sunset_h: float = 20.0
    cloudiness: float = 0.3  # 0 clear sky .. 1 heavy, fast-moving clouds


# -------------------------------------------------------------------------- appliance runs
# Each returns pulses (start_s, end_s, kw) relative to the start of the use.

def _kettle(rng: random.Random, kw: float) -> list[tuple[float, float, float]]:
    return [(0.0, rng.uniform(120, 240), kw or rng.uniform(2.0, 3.0))]


def _cycling(rng: random.Random, kw: float, first_s: float, total_s: float,
             on_s: tuple[float, float], off_s: tuple[float, float]) -> list[tuple[float, float, float]]:
    """A thermostat or power regulator: fully on for first_s, then on/off until total_s."""
    pulses = [(0.0, first_s, kw)] if first_s > 0 else []
    t = first_s
    while t < total_s:
        t += rng.uniform(*off_s)
        end = min(total_s, t + rng.uniform(*on_s))
        if end > t:
            pulses.append((t, end, kw))
        t = end
    return pulses


def _oven(rng: random.Random, kw: float) -> list[tuple[float, float, float]]:
    return _cycling(rng, kw or rng.uniform(2.0, 3.5), rng.uniform(600, 900),
                    rng.uniform(1800, 3600), (30, 90), (60, 180))


def _hob(rng: random.Random, kw: float) -> list[tuple[float, float, float]]:
    # Radiant and simmering zones regulate by switching the element in bursts of seconds.
    return _cycling(rng, kw or rng.uniform(1.2, 2.0), rng.uniform(60, 240),
                    rng.uniform(600, 1800), (10, 30), (10, 40))


def _washing_machine(rng: random.Random, kw: float) -> list[tuple[float, float, float]]:
    heat_end = 180 + rng.uniform(600, 1200)
    return [(180.0, heat_end, kw or rng.uniform(1.8, 2.2)), (heat_end, heat_end + 3000, 0.3)]


USE = {"kettle": _kettle, "oven": _oven, "hob": _hob, "washing-machine": _washing_machine}


class Household:
    """Per-phase household load (A, >= 0) and PV current (A, >= 0) at simulated times."""

    def __init__(self, profile: HouseholdProfile, pv: PvProfile | None, seed: int,
                 start_h: float, duration_s: float, phases: int, voltage_v: float):
        self.phases = phases
        self.voltage_v = voltage_v
        self._start_h = start_h
        self._duration = duration_s
        self._seed = seed
        pulses: list[tuple[float, float, str, float]] = []  # start, end, phases, amps per phase
        for n, app in enumerate(profile.appliances):
            pulses += self._appliance_pulses(n, app)
        events: list[tuple[float, int, float]] = []
        for t0, t1, on, amps in pulses:
            for ph in on:
                p = PHASE_INDEX[ph]
                events.append((t0, p, amps))
                events.append((t1, p, -amps))
        events += self._base_events(profile)
        events.sort()
        self._times = [e[0] for e in events]
        self._events = events
        self._next = 0
        self._now = -math.inf
        self._load = [0.0, 0.0, 0.0]
        self._pv = pv
        self._pv_clouds = self._clouds(pv) if pv else []

    # ---------------------------------------------------------------- reading
    def load_at(self, t: float) -> Phases:
        """Household load at t; t must not go backwards (events are swept forwards)."""
        if t < self._now:
            raise ValueError("Household.load_at: time went backwards")
        self._now = t
        end = bisect.bisect_right(self._times, t, lo=self._next)
        if end > self._next:
            load = self._load
            for _, p, delta in self._events[self._next:end]:
                load[p] += delta
            self._next = end
        a, b, c = self._load  # clamp the float residue of adding and removing the same pulse
        return (max(0.0, a), max(0.0, b) if self.phases > 1 else 0.0, max(0.0, c) if self.phases > 2 else 0.0)

    def pv_at(self, t: float) -> Phases:
        """PV current fed in at t, per phase, as a positive number (the meter sees it negative)."""
        pv = self._pv
        if pv is None:
            return (0.0, 0.0, 0.0)
        hour = (self._start_h + t / 3600.0) % 24.0
        if not pv.sunrise_h < hour < pv.sunset_h:
            return (0.0, 0.0, 0.0)
        sun = math.sin(math.pi * (hour - pv.sunrise_h) / (pv.sunset_h - pv.sunrise_h))
        clouds = self._pv_clouds[min(int(t // 60), len(self._pv_clouds) - 1)]
        amps = pv.kwp * 1000.0 * sun * clouds / (self.voltage_v * len(pv.phases))
        out = [0.0, 0.0, 0.0]
        for ph in pv.phases:
            out[PHASE_INDEX[ph]] = amps
        return (out[0], out[1], out[2])

    # ---------------------------------------------------------------- building
    def _rng(self, *parts: object) -> random.Random:
        return random.Random("-".join(str(x) for x in (self._seed, *parts)))

    def _appliance_pulses(self, n: int, app: Appliance) -> list[tuple[float, float, str, float]]:
        per_phase = 1000.0 / (self.voltage_v * len(app.phases))  # kW -> A on each phase
        out = []
        if app.kind == "heat-pump":
            rng = self._rng("appliance", n)
            kw = app.kw or rng.uniform(1.5, 3.0)
            t = rng.uniform(0, 1800)
            while t < self._duration:  # compressor cycles all day
                on = rng.uniform(600, 1800)
                out.append((t, t + on, app.phases, kw * per_phase))
                t += on + rng.uniform(600, 2400)
            return out
        for start in self._use_times(n, app):
            rng = self._rng("use", n, round(start, 3))
            for t0, t1, kw in USE[app.kind](rng, app.kw):
                out.append((start + t0, start + t1, app.phases, kw * per_phase))
        return out

    def _use_times(self, n: int, app: Appliance) -> list[float]:
        """Start times (s since t=0) of every use inside the run, one use at a time."""
        first_day = math.floor(self._start_h / 24)
        last_day = math.floor((self._start_h + self._duration / 3600) / 24)
        hours = [h for h in app.at_h]
        for day in range(first_day, last_day + 1):
            rng = self._rng("day", n, day)
            count = int(app.per_day) + (1 if rng.random() < app.per_day % 1 else 0)
            for _ in range(count):
                hour = rng.choices(range(24), weights=HOURLY_WEIGHT)[0]
                hours.append(day * 24 + hour + rng.random())
        starts = sorted((h - self._start_h) * 3600.0 for h in hours)
        return [s for s in starts if 0 <= s < self._duration]

    def _base_events(self, profile: HouseholdProfile) -> list[tuple[float, int, float]]:
        events = []
        for p in range(self.phases):
            rng = self._rng("base", p)
            level = max(0.0, profile.base_a + rng.gauss(0, profile.drift_a / 2))
            events.append((0.0, p, level))
            for minute in range(1, int(self._duration // 60) + 1):
                nxt = level + 0.1 * (profile.base_a - level) + rng.gauss(0, profile.drift_a / 4)
                nxt = min(max(nxt, 0.2 * profile.base_a), profile.base_a + 2 * profile.drift_a)
                events.append((minute * 60.0, p, nxt - level))
                level = nxt
        return events

    def _clouds(self, pv: PvProfile) -> list[float]:
        """Fraction of clear-sky power reaching the panels, one value a minute."""
        rng = self._rng("clouds")
        out, shade = [], 0.0
        for _ in range(int(self._duration // 60) + 1):
            shade = min(1.0, max(0.0, shade + rng.gauss(0, pv.cloudiness * 0.3) - 0.1 * shade))
            out.append(1.0 - 0.8 * shade)
        return out


class StepHousehold:
    """A household load that steps between fixed levels: [(from_s, (A, B, C)), ...] sorted by
    time, each level holding until the next (tests and benchmarks use it); no PV."""

    def __init__(self, steps: list[tuple[float, Phases]]):
        self._times = [t for t, _ in steps]
        self._levels = [tuple(float(x) for x in level) for _, level in steps]

    def load_at(self, t: float) -> Phases:
        k = bisect.bisect_right(self._times, t) - 1
        return self._levels[k] if k >= 0 else (0.0, 0.0, 0.0)  # type: ignore[return-value]

    def pv_at(self, t: float) -> Phases:
        return (0.0, 0.0, 0.0)

    def __repr__(self) -> str:
        return f"StepHousehold({list(zip(self._times, self._levels))})"
