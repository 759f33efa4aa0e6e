"""The closed loop: household, PV and cars make the meter reading; the core decides on every
sample; its commands reach the chargers after the link latency; the cars follow after their
response delay. Time is simulated (k x step_s), so a day runs in seconds and the same
scenario and seed always give the same result.

Per step of dt, at now = k x dt:
 1. commands whose link latency has passed reach their chargers;
 2. cars plug in or leave, follow limits whose response delay has passed, and fix their
    draw for [now, now + dt);
 3. the meter reads household - PV + chargers' draw; the fuse watch records it;
 4. decide() runs on that sample and the chargers' readings; changed limits are sent;
 5. the oracle charges its own copy of the cars on the same household and PV.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from controller.core.decide import decide, initial_state
from controller.model import MeterSample
from controller.sim.offline.cars import SimCharger
from controller.sim.offline.household import Household
from controller.sim.offline.metrics import FuseReport, FuseWatch
from controller.sim.offline.oracle import Oracle
from controller.sim.offline.scenario import Scenario


@dataclass(frozen=True)
class ChargerResult:
    id: str
    energy_kwh: float
    starts: int  # the car began drawing (plug-in start or restart after a pause)
    stops: int  # the car stopped drawing while plugged in and not yet full
    cars: int  # cars that plugged in


@dataclass(frozen=True)
class SimResult:
    scenario: str
    seed: int
    duration_s: float
    step_s: float
    steps: int
    commands: int  # limits sent to chargers
    chargers: tuple[ChargerResult, ...]
    fuse: FuseReport  # the meter: household - PV + EV
    household_fuse: FuseReport  # household - PV alone: what no charger control could prevent
    max_response_s: float  # link latency + the slowest car's response delay (late_s grace: + step_s)
    ev_kwh: float
    oracle_kwh: float

    @property
    def oracle_ratio(self) -> float | None:
        return self.ev_kwh / self.oracle_kwh if self.oracle_kwh > 0 else None


def run(scn: Scenario) -> SimResult:
    site, dt = scn.site, scn.step_s
    volts = site.voltage_v
    household = Household(scn.household, scn.pv, scn.seed, scn.start_h, scn.duration_s,
                          site.phases, volts)
    plans = [[c for c in scn.cars if c.charger == spec.id] for spec in site.chargers]
    chargers = [SimCharger(spec, plans[spec.index], volts, scn.metering[spec.id], site.fallback_a(spec))
                for spec in site.chargers]
    oracle = Oracle(site, plans, dt)
    latency = scn.link_latency_s
    max_response = latency + max((c.delay_s for c in scn.cars), default=0.0)
    fuse = FuseWatch(site.fuse_a, dt, grace_s=max_response + dt)
    alone = FuseWatch(site.fuse_a, dt)
    in_flight: deque[tuple[float, int, float]] = deque()  # (arrives at, charger index, limit)
    state = initial_state(site)
    steps = int(round(scn.duration_s / dt))
    commands = 0
    for k in range(steps):
        now = k * dt
        while in_flight and in_flight[0][0] <= now:
            at, i, limit = in_flight.popleft()
            chargers[i].command(limit, at)
        meter = [0.0, 0.0, 0.0]
        for ch in chargers:
            ch.advance(now, dt)
            ch.draw_on_site(meter)
        load = household.load_at(now)
        pv = household.pv_at(now)
        net = (load[0] - pv[0], load[1] - pv[1], load[2] - pv[2])
        sample = (net[0] + meter[0], net[1] + meter[1], net[2] + meter[2])
        fuse.add(sample, net)
        alone.add(net)
        decision = decide(site, state, MeterSample(now, sample), [ch.reading(now) for ch in chargers], now)
        state = decision.state
        for i, c in enumerate(decision.chargers):
            if c.changed:
                commands += 1
                if latency > 0:
                    in_flight.append((now + latency, i, c.limit_a))
                else:
                    chargers[i].command(c.limit_a, now)
        oracle.step(now, load, pv)
    results = tuple(ChargerResult(ch.spec.id, ch.energy_wh / 1000.0, ch.starts, ch.stops,
                                  ch.cars_plugged) for ch in chargers)
    return SimResult(
        scenario=scn.name, seed=scn.seed, duration_s=steps * dt, step_s=dt, steps=steps,
        commands=commands, chargers=results, fuse=fuse.report(), household_fuse=alone.report(),
        max_response_s=max_response, ev_kwh=sum(r.energy_kwh for r in results),
        oracle_kwh=oracle.energy_wh / 1000.0)
