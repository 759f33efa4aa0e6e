"""One control decision per meter sample: the whole safety and sharing policy, as a pure
function of the site, the previous state, the sample, the chargers' readings and the time.

    decision = decide(site, state, sample, readings, now)

Order of work (DESIGN.md section 1):
 1. Meter stale or not seen yet -> every charger to control.fallback_a (invariants 5, 7).
 2. Estimate what every charger draws on each site phase: its own measurement where it has
    one, else the highest limit it may still be following (a car has control.response_s to
    obey a decrease, so a cut is not counted as done before then: no double cut). Household
    load = meter - EV draw, never below zero (EV draw above the meter reading is impossible).
 3. Chargers that do not take orders (link down, non-compliant) are fixed load: their draw,
    or the limit they hold until their lease ends, or fallback_a after that.
 4. Capacity of every constraint (site phase, circuit phase, import cap) minus household and
    fixed load; modes set caps; allocate() shares it, shedding below min_a one charger at a
    time (invariants 1, 4). A measured overload shrinks the capacity by exactly the excess,
    so the cut is sized from the measurement.
 5. Decreases go out at once. Increases wait for headroom to hold ramp_up_delay_s, then rise
    by ramp_up_step_a per ramp_up_interval_s; increases under dead_band_a are not sent; a
    charger the controller paused stays paused for restart_delay_s and restarts only with
    room for min_a + restart_hysteresis_a (invariant 3).
 6. An overload still measured overload_pause_s after it began pauses the lowest-priority
    chargers on it until their draw covers the excess (invariant 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from controller.core.fill import Constraint, Want, allocate, floors_fit
from controller.core.site import SOLAR_MODES, ChargerSpec, SiteModel, phase_name
from controller.core.solar import SolarInput, solar_caps, surplus_w
from controller.model import CarState, ChargerReading, MeterSample, Phases

UNKNOWN = -1.0  # limit not known (start, reconnect): the next decision always sends one
FOLLOW_TOLERANCE_A = 1.0  # a car drawing within this of its limit is using all of it


class ChargerMemory(NamedTuple):
    """What the core remembers per charger between decisions (a NamedTuple: cheap to copy,
    which matters with a thousand chargers deciding four times a second)."""

    limit_a: float = UNKNOWN  # last limit commanded
    inflight_a: float = 0.0  # highest limit the car may still follow after a decrease ...
    inflight_until: float = -math.inf  # ... until this time
    paused_at: float | None = None  # the controller paused it here (restart delay runs)
    hold_since: float | None = None  # target above limit since
    last_step_at: float = -math.inf
    surplus_since: float | None = None
    short_since: float | None = None
    offline: bool = False  # link was down at the last decision
    from_fallback: bool = False  # its limit was set by a fallback, not by sharing
    raised_at: float = -math.inf  # last time its limit went up ...
    raised_from: float = 0.0  # ... and from what


@dataclass(frozen=True)
class CoreState:
    chargers: tuple[ChargerMemory, ...]
    over_since: dict[str, float] = field(default_factory=dict)  # constraint -> overload start


def initial_state(site: SiteModel) -> CoreState:
    return CoreState(chargers=tuple(ChargerMemory() for _ in site.chargers))


def remap_state(old: SiteModel, new: SiteModel, state: CoreState) -> CoreState:
    """The state for a reloaded site: every charger kept by id keeps its memory (its limit,
    timers, what it may still draw), so a reload disturbs nothing it does not concern; an
    added charger starts as unknown (its first decision sends a limit)."""
    by_id = {spec.id: mem for spec, mem in zip(old.chargers, state.chargers)}
    return CoreState(chargers=tuple(by_id.get(spec.id, ChargerMemory()) for spec in new.chargers),
                     over_since=dict(state.over_since))


@dataclass(frozen=True, slots=True)
class ChargerDecision:
    id: str
    limit_a: float
    reason: str
    changed: bool  # a command must be sent


@dataclass(frozen=True)
class Decision:
    state: CoreState
    chargers: tuple[ChargerDecision, ...]
    fallback: str | None = None  # why every charger is at fallback_a, else None
    household_a: Phases = (0.0, 0.0, 0.0)
    headroom_a: Phases = (0.0, 0.0, 0.0)  # per phase left at the site after this plan
    overloads: dict[str, float] = field(default_factory=dict)  # constraint -> measured excess A
    draw_a: tuple[Phases, ...] = ()  # per charger: the draw per site phase the plan assumed


def decide(site: SiteModel, state: CoreState, sample: MeterSample | None,
           readings: list[ChargerReading], now: float, hold: str | None = None) -> Decision:
    """One decision. `hold` (e.g. "paused by button") stops every charger, whatever else."""
    state = _track_links(site, state, readings, now)  # every path: notice a reconnect at once
    if hold:
        return _hold(site, state, now, hold)
    if sample is None:
        return _fallback(site, state, now, "no meter sample yet: fallback")
    age = now - sample.t
    if age > site.stale_after_s:
        return _fallback(site, state, now, f"meter lost {age:.0f} s: fallback")

    ctl = site.control
    est, fixed, following = _estimates(site, state, readings, now)
    # Phases where a car has not yet reported following our last raise or cut: raising there
    # would stack a change on an estimate; wait for the report.
    unsettled = {p for i in following for p in site.chargers[i].phase_idx}
    meter = sample.current_a
    household = tuple(
        max(0.0, meter[p] - sum(e[p] for e in est)) if p < site.phases else 0.0 for p in range(3))
    constraints, overloads = _constraints(site, est, fixed, household, meter)
    over_since = {k: state.over_since.get(k, now) for k in overloads}

    # Who wants current, and up to how much.
    targets: dict[int, tuple[float, str]] = {}
    wants: list[Want] = []
    caps_reason: dict[int, str] = {}
    solar_in: list[SolarInput] = []
    memories = list(state.chargers)
    delays: dict[int, float] = {}
    for spec, r, mem in zip(site.chargers, readings, state.chargers):
        i = spec.index
        if fixed[i]:
            continue
        why = _idle_reason(spec, r)
        if why:
            targets[i] = (0.0, why)
            continue
        if mem.limit_a <= 0 and mem.paused_at is not None:
            left = ctl.restart_delay_s - (now - mem.paused_at)
            if left > 0:
                delays[i] = left
        if mem.limit_a <= 0 and unsettled.intersection(spec.phase_idx):
            # It cannot start before the cars there report: do not let it push others out.
            targets[i] = (0.0, "waiting for cars to follow the last raise")
            continue
        if spec.mode in SOLAR_MODES:  # its surplus timers run even during a restart delay
            running = mem.limit_a > 0 and not mem.from_fallback  # fallback is no solar start
            solar_in.append(SolarInput(spec, running, sum(est[i]) * site.voltage_v,
                                       mem.surplus_since, mem.short_since))
        elif i in delays:
            targets[i] = (0.0, f"restart delay {delays[i]:.0f} s")
        else:
            wants.append(_want(spec, mem, spec.max_a, ctl.restart_hysteresis_a))
    if solar_in:
        caps = solar_caps(site, surplus_w(site, meter, solar_in), solar_in, now)
        for s in solar_in:
            i, cap = s.spec.index, caps[s.spec.index]
            if (memories[i].surplus_since, memories[i].short_since) != (cap.surplus_since, cap.short_since):
                memories[i] = memories[i]._replace(surplus_since=cap.surplus_since,
                                                   short_since=cap.short_since)
            if cap.cap <= 0:
                targets[i] = (0.0, cap.reason)
            elif i in delays:
                targets[i] = (0.0, f"restart delay {delays[i]:.0f} s")
            else:
                caps_reason[i] = cap.reason
                wants.append(_want(s.spec, memories[i], min(cap.cap, s.spec.max_a),
                                   ctl.restart_hysteresis_a))

    # A charger the controller paused restarts only once room for its floor has held for
    # ramp_up_delay_s, like any increase; until then it stays out of the sharing, so it
    # cannot push a running charger out for a start that may never come.
    waiting = [w for w in wants if not _restart_ready(memories[w.index], now, ctl.ramp_up_delay_s)]
    wants = [w for w in wants if w not in waiting]
    plan = allocate(wants, constraints)
    holding: dict[int, float | None] = {}
    running = [w for w in wants if w.index not in plan.shed]
    for w in waiting:
        mem = memories[w.index]
        if floors_fit(running, constraints, w):
            holding[w.index] = since = mem.hold_since if mem.hold_since is not None else now
            left = ctl.ramp_up_delay_s - (now - since)
            targets[w.index] = (0.0, f"restart when the room holds {left:.0f} s")
        else:
            holding[w.index] = None
            targets[w.index] = (0.0, f"restart delay over, no room for min_a (priority {w.priority})")
    for w in wants:
        i = w.index
        if i in plan.shed:
            targets[i] = (0.0, f"shed: no room for min_a (priority {w.priority})")
            continue
        amps = max(w.lo, math.floor(plan.current[i] * 10 + 1e-6) / 10)
        by = plan.limited_by.get(i, "cap")
        if by == "cap":
            reason = caps_reason.get(i, "max_a")
        elif by in overloads:
            reason = f"overload cut: {by} over by {overloads[by]:.1f} A"
        else:
            reason = f"{by} headroom"
        targets[i] = (amps, reason)

    decisions: list[ChargerDecision | None] = [None] * len(site.chargers)
    for spec, mem in zip(site.chargers, memories):
        i = spec.index
        if fixed[i] and readings[i].online:  # non-compliant: pause it, its draw is fixed load
            new = mem if mem.limit_a == 0 else _commanded(
                mem._replace(paused_at=now, hold_since=None), mem.limit_a, 0.0, now, site.control.response_s)
            memories[i] = new
            decisions[i] = ChargerDecision(spec.id, 0.0, fixed[i] + "; paused", mem.limit_a != 0)
            continue
        if fixed[i]:  # link down: nothing can be sent
            decisions[i] = ChargerDecision(spec.id, max(mem.limit_a, 0.0), fixed[i], False)
            continue
        target, reason = targets[i]
        settled = not unsettled.intersection(spec.phase_idx)
        limit, memories[i], reason = _step(spec, memories[i], target, reason, site, now, settled)
        if i in holding and memories[i].hold_since != holding[i]:
            memories[i] = memories[i]._replace(hold_since=holding[i])
        decisions[i] = ChargerDecision(spec.id, limit, reason, limit != mem.limit_a)

    _pause_persistent(site, constraints, over_since, overloads, est, decisions, memories, now)
    memories = [m._replace(from_fallback=False) if m.from_fallback else m for m in memories]
    planned = [0.0, 0.0, 0.0]
    for spec, d in zip(site.chargers, decisions):
        for p in spec.phase_idx:
            planned[p] += d.limit_a if not fixed[spec.index] else est[spec.index][p]
    headroom = tuple(site.limit_a - household[p] - planned[p] if p < site.phases else 0.0
                     for p in range(3))
    return Decision(
        state=CoreState(chargers=tuple(memories), over_since=over_since),
        chargers=tuple(decisions), household_a=household, headroom_a=headroom,
        overloads=overloads, draw_a=tuple(est),
    )


def _hold(site: SiteModel, state: CoreState, now: float, why: str) -> Decision:
    """The user stopped all charging: 0 everywhere; resuming later is no restart (no delay)."""
    memories = tuple(_commanded(m._replace(paused_at=None, hold_since=None), m.limit_a, 0.0, now,
                                site.control.response_s) for m in state.chargers)
    decisions = tuple(ChargerDecision(spec.id, 0.0, why, m.limit_a != 0)
                      for spec, m in zip(site.chargers, state.chargers))
    return Decision(state=CoreState(chargers=memories), chargers=decisions)


def _track_links(site: SiteModel, state: CoreState, readings: list[ChargerReading],
                 now: float) -> CoreState:
    """A charger whose link came back may hold anything: make the next limit go out, and until
    it reports, count its car at what it may still draw (its last limit or its own fallback)."""
    if all(r.online != m.offline for r, m in zip(readings, state.chargers)):
        return state
    memories = []
    for spec, r, m in zip(site.chargers, readings, state.chargers):
        if r.online == m.offline and r.online:
            held = max(m.limit_a, site.fallback_a(spec), m.inflight_a if now < m.inflight_until else 0.0)
            m = m._replace(offline=False, limit_a=UNKNOWN, inflight_a=held,
                           inflight_until=now + site.control.response_s)
        elif r.online == m.offline:
            m = m._replace(offline=True)
        memories.append(m)
    return replace(state, chargers=tuple(memories))


def _fallback(site: SiteModel, state: CoreState, now: float, why: str) -> Decision:
    decisions, memories = [], []
    for spec, mem in zip(site.chargers, state.chargers):
        limit = site.fallback_a(spec)
        reason = why if spec.mode != "off" else "mode off"
        fresh = ChargerMemory(inflight_a=mem.inflight_a, inflight_until=mem.inflight_until,
                              offline=mem.offline, from_fallback=True)
        memories.append(_commanded(fresh, mem.limit_a, limit, now, site.control.response_s))
        decisions.append(ChargerDecision(spec.id, limit, reason, limit != mem.limit_a))
    return Decision(state=CoreState(chargers=tuple(memories)), chargers=tuple(decisions), fallback=why)


def _estimates(site: SiteModel, state: CoreState, readings: list[ChargerReading],
               now: float) -> tuple[list[Phases], list[str], set[int]]:
    """Per charger: estimated draw per site phase, why it is fixed load ('' = it is not), and
    the chargers whose report predates the car following our last change (no raises on their
    phases until they report again)."""
    est: list[Phases] = []
    fixed: list[str] = []
    following: set[int] = set()
    for spec, r, mem in zip(site.chargers, readings, state.chargers):
        measured = None
        if r.draw_lines_a is not None:
            m = [0.0, 0.0, 0.0]
            for amps, p in zip(r.draw_lines_a, spec.line_phase):
                if amps > 0:  # a negative line current is a sensor quirk, not negative load
                    m[p] += amps
            measured = (m[0], m[1], m[2])
        limit = max(mem.limit_a, 0.0)
        if not r.online:
            fallback = site.fallback_a(spec)
            if r.lease_until is not None and now < r.lease_until:
                held = _on(spec, limit)
                if measured is not None:  # a car above its limit keeps doing so
                    held = tuple(map(max, held, measured))
                fixed.append(f"link down: counted at its last limit {limit:g} A for "
                             f"{r.lease_until - now:.0f} s more, then fallback")
            else:  # lease ended (or never known): the charger is on its own fallback
                held = _on(spec, max(limit, fallback) if r.lease_until is None else fallback)
                fixed.append(f"link down: counted at {max(held):g} A (its own fallback)")
            est.append(held)
            continue
        if not r.compliant:
            est.append(measured if measured is not None else _on(spec, limit))
            fixed.append("non-compliant: draws above its limit, counted as fixed load")
            continue
        fixed.append("")
        if measured is not None:
            if r.draw_at is not None and now < mem.inflight_until and max(measured) > limit + FOLLOW_TOLERANCE_A:
                following.add(spec.index)  # cut, and its report has not shown it yet: unsettled
            if mem.limit_a >= 0:
                # A compliant car draws at most what it is allowed: its limit, or the old one
                # while it still has time to follow a cut. A report from before a cut would
                # otherwise hide the cut as a household drop, and invite a raise.
                allowed = max(limit, mem.inflight_a) if now < mem.inflight_until else limit
                measured = tuple(min(m, allowed) for m in measured)
            if r.draw_at is not None and r.draw_at < mem.raised_at + site.control.response_s \
                    and limit > 0 and max(measured) >= mem.raised_from - FOLLOW_TOLERANCE_A:
                # Measured before the car could follow our last raise, while it used all it
                # had: it follows the raise (the meter already shows it), so count the new
                # limit until a report from after the car's response time. Counting the stale draw would book the car's rise as household load
                # and cut the charger right back: an endless ramp-and-cut oscillation.
                measured = tuple(max(m, limit) if p in spec.phase_idx else m
                                 for p, m in enumerate(measured))
                following.add(spec.index)
            est.append(measured)
        elif r.car in (CarState.NO_CAR, CarState.FAULT):
            est.append((0.0, 0.0, 0.0))
        else:
            if now < mem.inflight_until:
                limit = max(limit, mem.inflight_a)
            est.append(_on(spec, limit))
    return est, fixed, following


def _on(spec: ChargerSpec, amps: float) -> Phases:
    out = [0.0, 0.0, 0.0]
    for p in spec.phase_idx:
        out[p] = amps
    return (out[0], out[1], out[2])


def _constraints(site: SiteModel, est: list[Phases], fixed: list[str], household: Phases,
                 meter: Phases) -> tuple[list[Constraint], dict[str, float]]:
    """Capacity left for the chargers that take orders, and measured overloads by name."""
    constraints: list[Constraint] = []
    overloads: dict[str, float] = {}
    free = [s for s in site.chargers if not fixed[s.index]]
    for p in site.phase_range:
        name = f"phase {phase_name(p)}"
        inside = site.phase_members[p]
        fixed_a = sum(est[i][p] for i in inside if fixed[i])
        members = tuple((i, 1.0) for i in inside if not fixed[i])
        constraints.append(Constraint(name, site.limit_a - household[p] - fixed_a, members, (p,)))
        if meter[p] > site.limit_a:
            overloads[name] = meter[p] - site.limit_a
    for circuit, by_phase in zip(site.circuits, site.circuit_phase_members):
        for p in site.phase_range:
            inside = by_phase[p]
            if not inside:
                continue
            name = f"circuit {circuit.id} phase {phase_name(p)}"
            fixed_a = sum(est[i][p] for i in inside if fixed[i])
            members = tuple((i, 1.0) for i in inside if not fixed[i])
            constraints.append(Constraint(name, circuit.limit_a - fixed_a, members, (p,)))
            drawn = sum(est[i][p] for i in inside)
            if drawn > circuit.limit_a:
                overloads[name] = drawn - circuit.limit_a
    if site.max_import_w > 0:
        volts = site.voltage_v
        fixed_w = sum(sum(est[s.index]) for s in site.chargers if fixed[s.index]) * volts
        members = tuple((s.index, volts * s.n_phases) for s in free)
        constraints.append(Constraint("max import", site.max_import_w - sum(household) * volts - fixed_w,
                                      members, tuple(site.phase_range)))
        import_w = sum(meter[p] for p in site.phase_range) * volts
        if import_w > site.max_import_w:
            overloads["max import"] = (import_w - site.max_import_w) / volts
    return constraints, overloads


def _idle_reason(spec: ChargerSpec, r: ChargerReading) -> str:
    """Why a charger that takes orders gets nothing whatever the headroom, or ''."""
    if spec.mode == "off":
        return "mode off"
    if r.car is CarState.FAULT:
        return "charger reports a fault"
    if r.car is CarState.NO_CAR:
        return "no car"
    return ""


def _restart_ready(mem: ChargerMemory, now: float, hold_s: float) -> bool:
    """False for a charger the controller paused whose room has not held hold_s yet."""
    if mem.limit_a > 0 or mem.paused_at is None or hold_s <= 0:
        return True
    return mem.hold_since is not None and now - mem.hold_since >= hold_s


def _want(spec: ChargerSpec, mem: ChargerMemory, cap: float, hysteresis: float) -> Want:
    lo = spec.min_a
    if mem.limit_a <= 0 and mem.paused_at is not None:  # restart after a controller pause
        lo = min(spec.min_a + hysteresis, cap)
    return Want(spec.index, lo, max(lo, cap), spec.weight, spec.priority, running=mem.limit_a > 0)


def _step(spec: ChargerSpec, mem: ChargerMemory, target: float, reason: str,
          site: SiteModel, now: float, settled: bool) -> tuple[float, ChargerMemory, str]:
    """Apply ramp, dead band and pause bookkeeping to one charger's target. `settled` is False
    while a car on one of its phases has not reported following a raise: no increase then."""
    ctl = site.control
    current = mem.limit_a
    if target > current >= spec.min_a and not settled:
        return current, mem, "waiting for cars to follow the last raise"
    if target <= 0:
        if not _is_pause(reason):  # no car, mode off, fault: nothing to protect the car from
            paused = None
        else:
            # UNKNOWN (reconnected) may be charging too: stopping it is a pause as well.
            paused = now if current != 0 else mem.paused_at
        if current == 0 and paused == mem.paused_at and mem.hold_since is None:
            return 0.0, mem, reason
        new = _commanded(mem._replace(paused_at=paused, hold_since=None), current, 0.0, now, ctl.response_s)
        return 0.0, new, reason
    if current < spec.min_a:  # start, restart, unknown, or a fallback below min_a: go to min_a
        start = min(target, spec.min_a)
        new = _commanded(mem._replace(paused_at=None, hold_since=None, last_step_at=now,
                                      raised_at=now, raised_from=max(current, 0.0)),
                         current, start, now, ctl.response_s)
        return start, new, reason if start == target else f"starting at min_a, then ramp ({reason})"
    if target < current:
        new = _commanded(mem._replace(hold_since=None), current, target, now, ctl.response_s)
        return target, new, reason
    if target - current < max(ctl.dead_band_a, 1e-9):
        return current, mem if mem.hold_since is None else mem._replace(hold_since=None), reason
    since = mem.hold_since if mem.hold_since is not None else now
    held = now - since
    holding = mem if mem.hold_since == since else mem._replace(hold_since=since)
    if held < ctl.ramp_up_delay_s:
        return current, holding, f"ramp-up hold {ctl.ramp_up_delay_s - held:.0f} s"
    if now - mem.last_step_at < ctl.ramp_up_interval_s:
        return current, holding, "ramping up"
    new_limit = min(target, current + ctl.ramp_up_step_a)
    return new_limit, mem._replace(limit_a=new_limit, hold_since=since, last_step_at=now,
                                   raised_at=now, raised_from=current), \
        reason if new_limit == target else "ramping up"


def _is_pause(reason: str) -> bool:
    """A zero the controller chose (restart delay applies), not one the situation imposes."""
    return reason.startswith(("shed", "surplus", "overload", "waiting for", "restart"))


def _commanded(mem: ChargerMemory, old: float, new: float, now: float, response_s: float) -> ChargerMemory:
    """Record a new commanded limit; a decrease keeps the old one 'in flight' for response_s."""
    if new == old:
        return mem if mem.limit_a == new else mem._replace(limit_a=new)
    if new < old:
        still = mem.inflight_a if now < mem.inflight_until else 0.0
        return mem._replace(limit_a=new, inflight_a=max(old, still), inflight_until=now + response_s)
    return mem._replace(limit_a=new)


def _pause_persistent(site: SiteModel, constraints: list[Constraint], over_since: dict[str, float],
                      overloads: dict[str, float], est: list[Phases], decisions: list, memories: list,
                      now: float) -> None:
    """Pause lowest-priority chargers on an overload that outlived overload_pause_s. The
    constraint's members are the chargers that take orders (fixed load is not in them)."""
    ctl = site.control
    by_name = {c.name: c for c in constraints}
    for name, since in over_since.items():
        if now - since < ctl.overload_pause_s:
            continue
        members = {i for i, _ in by_name[name].members}
        phases = by_name[name].phases
        running = [s for s in site.chargers if s.index in members and decisions[s.index].limit_a > 0]
        running.sort(key=lambda s: (s.priority, -s.weight, s.index), reverse=True)
        excess = overloads[name]
        for spec in running:
            if excess <= 0:
                break
            i = spec.index
            excess -= sum(est[i][p] for p in phases if p in spec.phase_idx)
            reason = f"overload on {name} for {now - since:.0f} s: paused"
            memories[i] = _commanded(memories[i]._replace(paused_at=now, hold_since=None),
                                     memories[i].limit_a, 0.0, now, ctl.response_s)
            decisions[i] = ChargerDecision(spec.id, 0.0, reason, True)
        over_since[name] = now
