"""The yardstick for EV energy: a controller no real one can beat. It knows the exact household
load and PV at every step and shares the exact headroom ideally (no ramp steps, no dead band,
no restart delay, no rounding), every car capped by its own max current (with its taper near
full) and its remaining need. It keeps the rules the real one must keep: the site limit
(fuse_a - margin_a) per phase, circuits, max_import_kw, min_a floors (shedding), priorities
and weights, and the modes (solar-only and excess cars only from surplus; solar-priority
always min_a, more from surplus) without their start and stop timers.

What physics and invariant 3 impose on any controller, it keeps too: a car follows a change
only after its response delay, and an increase needs the room to have held for
ramp_up_delay_s first. So a car draws at t at most its ideal share now, and at most the
lowest share it had over [t - delay - ramp_up_delay_s, t - delay] (a start at min_a needs no
hold, like the core's). Decreases are exact and instant: the oracle never draws on an
overload.

It tracks its own copy of every car's need, so its energy is what the same cars, arriving
and leaving at the same times, would get from an ideal controller.
"""

from __future__ import annotations

import math
from collections import deque

from controller.core.fill import Constraint, Want, allocate
from controller.core.site import SiteModel
from controller.sim.offline.cars import CAR_MIN_A, CarPlan, car_site_phases

Phases = tuple[float, float, float]


class _Lagged:
    """min of a car's share over [t - delay - hold, t - delay], in O(1) per step."""

    def __init__(self, delay: float, hold: float):
        self.delay, self.hold = delay, hold
        self.recent: deque[tuple[float, float]] = deque()  # not yet `delay` old
        self.mins: deque[tuple[float, float]] = deque()  # monotonic: increasing shares

    def push(self, t: float, share: float) -> float | None:
        """Record the share at t; the lagged minimum (None: nothing `delay` old yet)."""
        self.recent.append((t, share))
        while self.recent and self.recent[0][0] <= t - self.delay + 1e-9:
            item = self.recent.popleft()
            while self.mins and self.mins[-1][1] >= item[1]:
                self.mins.pop()
            self.mins.append(item)
        while self.mins and self.mins[0][0] < t - self.delay - self.hold - 1e-9:
            if len(self.mins) == 1:
                break  # the latest lagged share stands until a newer one arrives
            self.mins.popleft()
        return self.mins[0][1] if self.mins else None


class Oracle:
    def __init__(self, site: SiteModel, plans: list[list[CarPlan]], dt: float,
                 wiring: dict[str, str] | None = None):
        self.site = site
        self.dt = dt
        self.plans = [sorted(p, key=lambda c: c.arrive_s) for p in plans]  # per charger index
        self.need_wh = {id(c): c.kwh * 1000.0 for p in plans for c in p}
        self.energy_wh = 0.0
        self._cache_key: tuple | None = None
        self._cache: dict[int, float] = {}
        self.wiring = wiring or {}
        self._car: dict[int, CarPlan] = {}  # charger index -> the car its lag belongs to
        self._lag: dict[int, _Lagged] = {}

    def step(self, now: float, household: Phases, pv: Phases) -> None:
        """Charge the oracle's cars for the step [now, now + dt)."""
        site, volts = self.site, self.site.voltage_v
        cars: dict[int, tuple[CarPlan, tuple[int, ...]]] = {}
        wants: list[Want] = []
        for spec, plans in zip(site.chargers, self.plans):
            car = next((c for c in plans if c.arrive_s <= now < c.depart_s), None)
            if car is None or spec.mode == "off" or self.need_wh[id(car)] <= 1e-9:
                continue
            if now < car.timer_s + car.wake_s:  # its own timer, then awake: it takes current once
                continue
            phases = car_site_phases(spec, car, self.wiring.get(spec.id))
            own = math.ceil(car.own_max_a(self.need_wh[id(car)]) * 10 - 1e-9) / 10  # fewer cache misses
            hi = min(spec.max_a, own)
            lo = min(max(spec.min_a, CAR_MIN_A), hi)
            cars[spec.index] = (car, phases)
            wants.append(Want(spec.index, lo, hi, spec.weight, spec.priority))
            if self._car.get(spec.index) is not car:
                self._car[spec.index] = car
                self._lag[spec.index] = _Lagged(car.delay_s, site.control.ramp_up_delay_s)
        if not wants:
            return
        key = (household, pv, tuple(wants))
        if key != self._cache_key:
            self._cache_key, self._cache = key, self._share(wants, cars, household, pv)
        for i, (car, phases) in cars.items():
            share = self._cache.get(i, 0.0)
            lagged = self._lag[i].push(now, share)
            if lagged is None:  # the car has not had its response time since it plugged in
                continue
            lo = min(max(site.chargers[i].min_a, CAR_MIN_A), share)
            amps = min(share, max(lo, lagged))
            wh = min(amps * volts * len(phases) * self.dt / 3600.0, self.need_wh[id(car)])
            self.need_wh[id(car)] -= wh
            self.energy_wh += wh

    def _share(self, wants: list[Want], cars: dict, household: Phases, pv: Phases) -> dict[int, float]:
        site, volts = self.site, self.site.voltage_v
        coef = {i: volts * len(phases) for i, (_, phases) in cars.items()}
        surplus_w = max(0.0, sum(pv[p] - household[p] for p in site.phase_range) * volts)
        by_mode = {m: [w for w in wants if site.chargers[w.index].mode == m]
                   for m in ("solar-priority", "solar-only", "excess")}
        first = by_mode["solar-priority"] + by_mode["solar-only"]
        shares, used = _pool(first, surplus_w, coef)
        more, _ = _pool(by_mode["excess"], surplus_w - used - site.control.excess_threshold_w, coef)
        shares.update(more)
        capped = []
        for w in wants:
            mode = site.chargers[w.index].mode
            if mode == "solar-priority":
                capped.append(Want(w.index, w.lo, max(w.lo, min(w.hi, shares.get(w.index, 0.0))),
                                   w.weight, w.priority))
            elif mode in ("solar-only", "excess"):
                share = shares.get(w.index, 0.0)
                if share >= w.lo > 0:
                    capped.append(Want(w.index, w.lo, min(w.hi, share), w.weight, w.priority))
            else:
                capped.append(w)
        constraints = []
        for p in site.phase_range:
            members = tuple((i, 1.0) for i, (_, ph) in cars.items() if p in ph)
            constraints.append(Constraint(f"phase {p}", site.limit_a - household[p] + pv[p], members))
        for circuit in site.circuits:
            for p in site.phase_range:
                members = tuple((i, 1.0) for i, (_, ph) in cars.items()
                                if i in circuit.members and p in ph)
                if members:
                    constraints.append(Constraint(f"{circuit.id} {p}", circuit.limit_a, members))
        if site.max_import_w > 0:
            net_w = sum(household[p] - pv[p] for p in site.phase_range) * volts
            constraints.append(Constraint("max import", site.max_import_w - net_w,
                                          tuple(coef.items())))
        return dict(allocate(capped, constraints).current)


def _pool(wants: list[Want], pool_w: float, coef: dict[int, float]) -> tuple[dict[int, float], float]:
    """Share a solar surplus (W) between chargers, floors at min_a like the real modes."""
    if not wants or pool_w <= 0:
        return {}, 0.0
    result = allocate(wants, [Constraint("surplus", pool_w, tuple((w.index, coef[w.index]) for w in wants))])
    used = sum(a * coef[i] for i, a in result.current.items())
    return dict(result.current), used
