"""The closed loop: household, PV and cars make the TRUE phase currents; the meter reads them;
the core decides on every sample; its commands reach the chargers after the link latency (or
are lost while a link is down); the cars follow after their response delay. Time is
simulated (k x step_s), so a day runs in seconds and the same inputs always give the same
result.

Per step of dt, at now = k x dt:
 1. a controller restart due now replaces the core's state by a new process's: a planned
    one (SIGTERM) resumes from what the old one saved (controller/core/resume.py), a crash
    (SIGKILL) starts afresh at fallback and only counts what the chargers still hold; either
    way the runtime forgets what the chargers told it (reports, acknowledgements) and its
    first decision has no meter sample yet;
 2. commands whose link latency has passed reach their chargers;
 3. links go down or come back, leases end, cars plug in or leave, follow limits whose
    response delay has passed, and fix their draw for [now, now + dt);
 4. the meter reads household - PV + the cars' true draw; the watches record it;
 5. decide() runs on that sample and the chargers' readings; changed limits are sent, each
    carrying its cause (so a car's stop can be traced to an allocator decision or not);
 6. the oracle charges its own copy of the cars on the same household and PV.

`ClosedLoop` takes the pieces (tests build random sites with it); `run(scenario)` builds them
from a scenario file for `evfuse simulate`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from controller.core import causes
from controller.core.decide import decide, initial_state, remap_state
from controller.core.draw import high_now
from controller.core.resume import Saved
from controller.core.wiring import conclude, remapped
from controller.core.site import SiteModel
from controller.model import MeterSample, Phases
from controller.sim.offline.cars import SimCharger
from controller.sim.offline.household import Household
from controller.sim.offline.metrics import FuseReport, OverWatch
from controller.sim.offline.oracle import Oracle
from controller.sim.offline.scenario import Scenario


class HouseholdSource(Protocol):
    def load_at(self, t: float) -> Phases: ...
    def pv_at(self, t: float) -> Phases: ...


@dataclass(frozen=True)
class ChargerResult:
    id: str
    energy_kwh: float
    starts: int  # the car began drawing (plug-in start or restart after a pause)
    stops: int  # the car stopped drawing while plugged in and not yet full
    cars: int  # cars that plugged in
    unexplained_stops: int = 0  # stops whose limit came from no allocator cause (Cause.stops)
    per_car: tuple[tuple[int, int, int], ...] = ()  # per car plugged in: starts, stops, unexplained


@dataclass(frozen=True)
class SimResult:
    scenario: str
    seed: int
    duration_s: float
    step_s: float
    steps: int
    commands: int  # limits sent to chargers
    chargers: tuple[ChargerResult, ...]
    fuse: FuseReport  # true currents against fuse_a: household - PV + EV
    limit: FuseReport  # true currents against fuse_a - margin_a and every circuit's limit
    household_fuse: FuseReport  # household - PV alone: what no charger control could prevent
    max_response_s: float  # link latency + the slowest car's response delay
    ev_kwh: float
    oracle_kwh: float
    restarts: int = 0  # planned (SIGTERM, resumed)
    crashes: int = 0  # SIGKILL: a fresh start at fallback
    # Wiring as measured (scenarios with [scenario.wiring]): per charger whose true wiring
    # differs from the config, seconds until the detector's strong conclusion (None: never),
    # and seconds above the fuse (any phase) before the last of them.
    wiring_detected_s: dict[str, float | None] = field(default_factory=dict)
    above_fuse_before_detect_s: float = 0.0

    @property
    def oracle_ratio(self) -> float | None:
        return self.ev_kwh / self.oracle_kwh if self.oracle_kwh > 0 else None


def cause_of(c) -> object:
    """The cause of one charger decision. Until the core gives `cause`, read it from the words
    (only here, in the harness: the core itself must never do that)."""
    cause = getattr(c, "cause", None)
    if cause is not None:
        return cause
    words = c.reason
    if words.startswith("shed"):
        return causes.Cause.SHED
    if words.startswith("overload on"):
        return causes.Cause.OVERLOAD_PAUSE
    if words.startswith(("surplus gone", "waiting for solar")):
        return causes.Cause.SURPLUS
    return None


class ClosedLoop:
    def __init__(self, site: SiteModel, household: HouseholdSource, chargers: list[SimCharger],
                 dt: float, latency_s: float = 0.2, restarts_s: tuple[float, ...] = (),
                 oracle: Oracle | None = None, decide_fn: Callable = decide,
                 crashes_s: tuple[float, ...] = (), stop_lease_s: float = 60.0,
                 clamp_inverted: tuple[int, ...] = ()):
        self.site, self.household, self.chargers = site, household, chargers
        self.dt, self.latency = dt, latency_s
        self.restarts = deque(sorted([(t, True) for t in restarts_s] + [(t, False) for t in crashes_s]))
        self.stop_lease_s = stop_lease_s
        self.oracle = oracle
        self.decide = decide_fn
        self.clamp_inverted = clamp_inverted  # site phases whose meter clamp is mounted backwards
        delays = [p.delay_s for ch in chargers for p in ch.plans]
        self.max_response_s = latency_s + max(delays, default=0.0)
        grace = self.max_response_s + dt
        stand = site.control.overload_pause_s + max(site.control.response_s, self.max_response_s) + 2 * dt
        circuit_limits = [c.limit_a for c in site.circuits for _ in site.phase_range]
        # At the start (and after a crash) the chargers hold their fallbacks (invariant 7)
        # before anything is known of what their cars draw; the core keeps a running charger
        # rather than stop it on a worst-case guess, so an overload the fallbacks cause is the
        # fast path's to remove: the cars' response to the fallback and to that cut is excused.
        # A planned restart resumes the limits that fitted: it gets no excuse.
        self._crash_grace = 2 * grace
        self._grace = grace
        self._up_since: list[float | None] = [None] * len(chargers)  # link up since (None: down)
        self.fuse = OverWatch([site.fuse_a] * site.phases, dt, grace, stand, excuse_until=2 * grace)
        self.limit = OverWatch([site.limit_a] * site.phases + circuit_limits, dt, grace, stand,
                               excuse_until=2 * grace)
        self.alone = OverWatch([site.fuse_a] * site.phases, dt)
        self.in_flight: deque[tuple[float, int, float, object]] = deque()
        self.state = initial_state(site)
        self.commands = 0
        self.restarted = 0
        self.crashed = 0
        self._blind = False  # the next decision is a new process's first: no sample yet
        self.decision = None
        self.true_a: list[float] = [0.0, 0.0, 0.0]  # true site phase currents at the last sample
        self.on_step: Callable[[ClosedLoop, float], None] | None = None
        # As the runtime does (controller/runtime.py): run on a wiring the meter shows strongly.
        self.learn_wiring = False
        self.detected_at: dict[str, float] = {}
        self.above_fuse_s = 0.0
        self._above_before = 0.0
        self._evidence = None

    def run(self, steps: int, start_k: int = 0) -> None:
        for k in range(start_k, start_k + steps):
            self.step(k * self.dt)

    def step(self, now: float) -> None:
        site, dt = self.site, self.dt
        while self.restarts and self.restarts[0][0] <= now:
            self._restart(now, self.restarts.popleft()[1])
        while self.in_flight and self.in_flight[0][0] <= now:
            at, i, limit, origin = self.in_flight.popleft()
            self.chargers[i].command(limit, at, origin)
        ev = [0.0, 0.0, 0.0]
        free = [0.0, 0.0, 0.0]  # draw of cars whose charger takes orders now
        for i, ch in enumerate(self.chargers):
            ch.advance(now, dt)
            ch.draw_on_site(ev)
            up = ch.online(now)
            self._up_since[i] = (self._up_since[i] if self._up_since[i] is not None else now) if up else None
            if self._controllable(i, now):
                ch.draw_on_site(free)
        load = self.household.load_at(now)
        pv = self.household.pv_at(now)
        net = tuple(load[p] - pv[p] for p in range(3))
        meter = tuple(net[p] + ev[p] if p < site.phases else 0.0 for p in range(3))
        self.true_a = list(meter)
        self._watch(now, meter, net, ev, free)
        readings = [ch.reading(now) for ch in self.chargers]
        read = tuple(-meter[p] if p in self.clamp_inverted else meter[p] for p in range(3))
        sample = None if self._blind else MeterSample(now, read)
        self._blind = False
        self.decision = d = self.decide(site, self.state, sample, readings, now)
        self.state = d.state
        for i, c in enumerate(d.chargers):
            if c.changed:
                self.commands += 1
                if self.latency > 0:
                    self.in_flight.append((now + self.latency, i, c.limit_a, cause_of(c)))
                else:
                    self.chargers[i].command(c.limit_a, now, cause_of(c))
        for i in getattr(d, "ask_reports", ()):  # a test's stand-in controller asks nothing
            self.chargers[i].ask(now + self.latency)  # a switch's ask is a no-op, as its driver's
        if self.learn_wiring:
            self._learn(now, meter)
        if self.oracle is not None:
            self.oracle.step(now, load, pv)
        if self.on_step is not None:
            self.on_step(self, now)

    def _restart(self, now: float, planned: bool) -> None:
        """A new process takes over: from what the old one left in the state directory."""
        saved = {}
        loads = getattr(self.state, "loads", ())  # a test's stand-in controller keeps its own state
        for spec, mem, ch in zip(self.site.chargers, loads, self.chargers):
            if mem.limit_a < 0:
                continue
            held = max(mem.limit_a, ch.acked_a or 0.0, high_now(mem, now))
            if not ch.online(now):  # its lease runs from the link's loss and cannot be shortened
                until = ch.lease_until() if ch.acked_a is not None else None
                held = ch.acked_a or 0.0
            else:  # a planned stop shortens the lease; a crash leaves the last renewal's
                until = now + (self.stop_lease_s if planned else ch.link.lease_s)
            if until is not None:
                paused = None if mem.paused_at is None else now - mem.paused_at
                saved[spec.id] = Saved(mem.limit_a, held, until, planned, paused)
        self.state = initial_state(self.site, saved, now)
        self._blind = True
        if planned:
            self.restarted += 1
        else:
            self.crashed += 1
            for watch in (self.fuse, self.limit):
                watch.excuse_until = max(watch.excuse_until, now + self._crash_grace)
        for ch in self.chargers:
            ch.forget()

    def _learn(self, now: float, meter) -> None:
        if any(meter[p] > self.site.fuse_a for p in self.site.phase_range):
            self.above_fuse_s += self.dt
        wrong = [ch.spec.id for ch in self.chargers if ch.wiring != ch.spec.wiring]
        if any(cid not in self.detected_at for cid in wrong):
            self._above_before = self.above_fuse_s
        evidence = self.state.wiring
        if evidence is self._evidence:
            return
        self._evidence = evidence
        found = {c.id: c.detected for c in conclude(self.site, evidence)
                 if c.strength == "strong" and c.contradicts}
        if found:
            old = self.site
            self.site = remapped(old, found)
            self.state = remap_state(old, self.site, self.state)
            for cid in found:
                self.detected_at.setdefault(cid, now)

    def _controllable(self, i: int, now: float) -> bool:
        """Its charger takes orders and has long enough for an order to take effect: a car whose
        link just came back had no order obeyed yet, whatever it drew while the link was down."""
        since = self._up_since[i]
        return since is not None and now - since >= self._grace

    def _watch(self, now, meter, net, ev, free) -> None:
        site = self.site
        n = site.phases
        self.fuse.add(now, list(meter[:n]), list(net[:n]), ev[:n], free[:n])
        self.alone.add(now, list(net[:n]))
        currents, households, evs, frees = list(meter[:n]), list(net[:n]), ev[:n], free[:n]
        if site.circuits:
            for circuit in site.circuits:
                for p in site.phase_range:
                    amps = sum(self.chargers[i].draw_a for i in circuit.members
                               if p in self.chargers[i].site_phases)
                    ours = sum(self.chargers[i].draw_a for i in circuit.members
                               if p in self.chargers[i].site_phases and self._controllable(i, now))
                    currents.append(amps)
                    households.append(None)
                    evs.append(amps)
                    frees.append(ours)
        self.limit.add(now, currents, households, evs, frees)

    def __repr__(self) -> str:
        site = self.site
        out = [f"ClosedLoop({site.phases} phases, limit {site.limit_a:g} A, dt {self.dt:g} s, "
               f"latency {self.latency:g} s, restarts {list(self.restarts)}, {self.household}, circuits "
               f"{[(c.id, c.limit_a, c.members) for c in site.circuits]}, control {site.control}"]
        for ch in self.chargers:
            out.append(f"  {ch.spec.id} {ch.spec.wiring} (true {ch.wiring}) {ch.spec.min_a:g}-"
                       f"{ch.spec.max_a:g} A prio {ch.spec.priority} {ch.metering} {ch.link} {ch.plans}")
        return "\n".join(out) + ")"

    def results(self) -> tuple[ChargerResult, ...]:
        return tuple(ChargerResult(ch.spec.id, ch.energy_wh / 1000.0, ch.starts, ch.stops,
                                   ch.cars_plugged, len(ch.unexplained),
                                   tuple(tuple(c) for c in ch.per_car)) for ch in self.chargers)


def build(scn: Scenario) -> ClosedLoop:
    site, dt = scn.site, scn.step_s
    volts = site.voltage_v
    household = Household(scn.household, scn.pv, scn.seed, scn.start_h, scn.duration_s,
                          site.phases, volts)
    plans = [[c for c in scn.cars if c.charger == spec.id] for spec in site.chargers]
    chargers = [SimCharger(spec, plans[spec.index], volts, scn.metering[spec.id], site.fallback_a(spec),
                           link=scn.links.get(spec.id), true_wiring=scn.wiring.get(spec.id))
                for spec in site.chargers]
    oracle = Oracle(site, plans, dt, scn.wiring)
    loop = ClosedLoop(site, household, chargers, dt, scn.link_latency_s, scn.restarts_s, oracle,
                      crashes_s=scn.crashes_s, stop_lease_s=scn.config.ocpp.stop_lease_s)
    loop.learn_wiring = True
    return loop


def run(scn: Scenario) -> SimResult:
    loop = build(scn)
    steps = int(round(scn.duration_s / scn.step_s))
    loop.run(steps)
    results = loop.results()
    configured = {c.id: c.wiring for c in scn.site.chargers}
    return SimResult(
        scenario=scn.name, seed=scn.seed, duration_s=steps * scn.step_s, step_s=scn.step_s,
        steps=steps, commands=loop.commands, chargers=results, fuse=loop.fuse.report(),
        limit=loop.limit.report(), household_fuse=loop.alone.report(),
        max_response_s=loop.max_response_s, ev_kwh=sum(r.energy_kwh for r in results),
        oracle_kwh=loop.oracle.energy_wh / 1000.0 if loop.oracle else 0.0,
        restarts=loop.restarted, crashes=loop.crashed,
        wiring_detected_s={cid: loop.detected_at.get(cid) for cid, w in scn.wiring.items()
                           if w != configured[cid]},
        above_fuse_before_detect_s=loop._above_before)
