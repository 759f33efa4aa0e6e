"""The yardstick for EV energy: a controller that knows the exact household load and PV at
every step and shares the exact headroom ideally, with no ramp, no response delay, no restart
delay, no dead band and no rounding, every car capped by its own max current and its
remaining need. It keeps the same rules the real one must keep: the site limit
(fuse_a - margin_a) per phase, circuits, max_import_kw, min_a floors (shedding), priorities
and weights, and the modes (solar-only and excess cars only from surplus; solar-priority
always min_a, more from surplus) without their start and stop timers.

It tracks its own copy of every car's need, so its energy is what the same cars, arriving
and leaving at the same times, would get from an ideal controller.
"""

from __future__ import annotations

from controller.core.fill import Constraint, Want, allocate
from controller.core.site import SiteModel
from controller.sim.offline.cars import CAR_MIN_A, CarPlan, car_site_phases

Phases = tuple[float, float, float]


class Oracle:
    def __init__(self, site: SiteModel, plans: list[list[CarPlan]], dt: float):
        self.site = site
        self.dt = dt
        self.plans = [sorted(p, key=lambda c: c.arrive_s) for p in plans]  # per charger index
        self.need_wh = {id(c): c.kwh * 1000.0 for p in plans for c in p}
        self.energy_wh = 0.0
        self._cache_key: tuple | None = None
        self._cache: dict[int, float] = {}

    def step(self, now: float, household: Phases, pv: Phases) -> None:
        """Charge the oracle's cars for the step [now, now + dt)."""
        site, volts = self.site, self.site.voltage_v
        cars: dict[int, tuple[CarPlan, tuple[int, ...]]] = {}
        wants: list[Want] = []
        for spec, plans in zip(site.chargers, self.plans):
            car = next((c for c in plans if c.arrive_s <= now < c.depart_s), None)
            if car is None or spec.mode == "off" or self.need_wh[id(car)] <= 1e-9:
                continue
            phases = car_site_phases(spec, car)
            need_a = self.need_wh[id(car)] * 3600.0 / (volts * len(phases) * self.dt)
            hi = min(spec.max_a, car.max_a, need_a)
            lo = min(max(spec.min_a, CAR_MIN_A), hi)
            cars[spec.index] = (car, phases)
            wants.append(Want(spec.index, lo, hi, spec.weight, spec.priority))
        if not wants:
            return
        key = (household, pv, tuple(wants))
        if key != self._cache_key:
            self._cache_key, self._cache = key, self._share(wants, cars, household, pv)
        for i, amps in self._cache.items():
            car, phases = cars[i]
            wh = amps * volts * len(phases) * self.dt / 3600.0
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
