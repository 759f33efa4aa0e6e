"""One control decision per meter sample: the whole safety and sharing policy, as a pure
function of the site, the previous state, the sample, the loads' readings and the time.

    decision = decide(site, state, sample, readings, now)

It runs as named passes (DESIGN.md section 1), each readable on its own:
 1. links      a load whose link came back may hold anything: its next limit always goes out.
 2. blind      no valid sample (start, meter stale): min(limit now, fallback), never a raise.
 3. draw       per load, the most it may draw and the least it draws (controller/core/draw.py);
               household = meter - least, so the plan counts every load at its bound.
 4. room       capacity of every constraint (site phase, circuit phase, import cap) left for the
               loads that take orders; measured overloads by name.
 5. targets    who wants current up to how much (modes, restart delays), shared by allocate().
 6. steps      decreases at once, increases gently (controller/core/ramp.py).
 7. break before make: an increase fits beside every cut load counted at what it may still
               draw; increases that do not wait until the cut loads follow.
 8. persistent overloads outliving overload_pause_s pause loads on them, one pause counting
               for every constraint it relieves.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import NamedTuple

from controller.core import resume
from controller.core import switch
from controller.core.turns import in_turn
from controller.core.ask import to_ask
from controller.core.causes import Cause, words
from controller.core.draw import UNKNOWN, Draw, LoadMemory, draws, high_now
from controller.core.fill import Constraint, Want, allocate, floor_room
from controller.core.net import NO_NET, NetFault, NetState
from controller.core.net import apply as net_apply
from controller.core.phases import ActiveSets, active_phases, effective, untested
from controller.core.wiring import Evidence, EvidenceState, InversionConclusion, Links, corrected, inversions, observe
from controller.core.ramp import commanded, step
from controller.core.reclaim import idle_left_s, reclaim
from controller.core.sequential import one_at_a_time
from controller.core.site import SOLAR_MODES, ChargerSpec, ConstraintSlot, SiteModel, phase_name
from controller.core.solar import SolarInput, solar_caps, surplus_w
from controller.model import ZERO, CarState, ChargerReading, MeterSample, Phases

EPS = 1e-6


@dataclass(frozen=True)
class CoreState:
    loads: tuple[LoadMemory, ...]
    over_since: dict[str, float] = field(default_factory=dict)  # constraint -> overload start
    meter_prev: Phases | None = None  # the last valid sample's currents
    net: NetState = NO_NET  # overloads the model cannot explain (controller/core/net.py)
    active: ActiveSets = ()  # per load: the site phases its car uses (controller/core/phases.py)
    wiring: EvidenceState = ()  # the meter's response to each load's changes (controller/core/wiring.py)
    flips: tuple[InversionConclusion, ...] = ()  # clamps the evidence shows backwards


def initial_state(site: SiteModel, saved: dict[str, resume.Saved] | None = None, now: float = 0.0) -> CoreState:
    """The first state; with `saved`, loads resume what the last process left them holding."""
    return CoreState(loads=resume.memories(site, saved or {}, now))


def remap_state(old: SiteModel, new: SiteModel, state: CoreState) -> CoreState:
    """The state for a reloaded or re-wired site: every load kept by id keeps its memory (its
    limit, timers, what it may still draw), so a reload disturbs nothing it does not concern;
    an added load starts as unknown (its first decision sends a limit). What the meter taught
    about a load (the phases its car uses, the evidence on its wiring) stays while its wiring
    stays: a load wired anew (the config's phases, or the wiring detector's remap) learns again.
    The net's overloads and the clamps found backwards are the site's and stay."""
    was = {spec.id: spec for spec in old.chargers}
    at = {spec.id: k for k, spec in enumerate(old.chargers)}
    by_id = {spec.id: mem for spec, mem in zip(old.chargers, state.loads)}
    same = [spec.id in was and was[spec.id].line_phase == spec.line_phase for spec in new.chargers]

    def kept(per_load: tuple, empty):
        if not per_load:
            return per_load
        return tuple(per_load[at[spec.id]] if keep else empty for spec, keep in zip(new.chargers, same))

    return CoreState(loads=tuple(by_id.get(spec.id, LoadMemory()) for spec in new.chargers),
                     over_since=dict(state.over_since), meter_prev=state.meter_prev, net=state.net,
                     active=kept(state.active, None), wiring=kept(state.wiring, Evidence()),
                     flips=state.flips)


_new_tuple = tuple.__new__
_KNOWN, _LO, _HI = attrgetter("known"), attrgetter("lo"), attrgetter("hi")  # of a Draw, in C
_AT = (itemgetter(0), itemgetter(1), itemgetter(2))  # one phase of a Phases, in C


class ChargerDecision(NamedTuple):
    id: str
    limit_a: float
    cause: Cause
    changed: bool  # a command must be sent
    detail: str = ""  # what the cause refers to ("phase A", "circuit x phase B over by 2.0 A")

    @property
    def reason(self) -> str:
        return words(self.cause, self.detail)


@dataclass(frozen=True)
class Decision:
    state: CoreState
    chargers: tuple[ChargerDecision, ...]
    fallback: Cause | None = None  # NO_SAMPLE / METER_LOST when every load is at fallback
    household_a: Phases = ZERO
    headroom_a: Phases = ZERO  # per phase left at the site after this plan
    overloads: dict[str, float] = field(default_factory=dict)  # constraint -> measured excess A
    draw_a: tuple[Phases, ...] = ()  # per load: the most it may draw, as the plan counted it
    net: tuple[NetFault, ...] = ()  # overloads the model cannot explain, and what the net cut
    ask_reports: tuple[int, ...] = ()  # loads to ask for a fresh report (core/ask.py)


def decide(site: SiteModel, state: CoreState, sample: MeterSample | None,
           readings: list[ChargerReading], now: float, hold: str | None = None) -> Decision:
    """One decision. `hold` (e.g. "paused by button") stops every load, whatever else."""
    loads, readings = resume.relink(site, state.loads, state.meter_prev is not None, readings, now)
    state = state if loads is state.loads else replace(state, loads=loads)
    active = active_phases(site, readings, state.active, state.wiring)
    site = effective(site, active)  # each load counted on the phases its car uses
    memories = _track_links(site, state, readings, now)
    if hold:
        return _hold(site, memories, state, now, hold)
    if sample is None:
        return _blind(site, memories, state, now, Cause.NO_SAMPLE, "")
    age = now - sample.t
    if age > site.stale_after_s:
        return _blind(site, memories, state, now, Cause.METER_LOST, f"{age:.0f} s")

    meter = corrected(sample, state.flips).current_a  # a clamp the meter shows backwards is not believed
    unmeasured = list(memories)
    draw = draws(site, memories, readings, meter, state.meter_prev, now)
    ask_reports = to_ask(site, unmeasured, memories)
    household = _household(site, meter, list(map(_LO, draw)))
    constraints, overloads = _constraints(site, draw, household, meter)
    doubted = None
    if overloads and any(d.lo_doubt != d.lo for d in draw):
        # What the meter credited to loads following a change of ours may have been a household
        # step in the same seconds: the cut is sized as if it were (loads it keeps running stay
        # at min_a or more: a doubt never stops a car; a real excess that stays is paused later).
        doubted = _with_household(site, constraints, draw, _household(site, meter, _doubted(site, draw, meter)))
    # The same room if every load whose draw is not learned drew all it may: the most a running
    # load may keep while no overload is measured (holding is no raise; nothing is stopped on a guess).
    keep = constraints
    if not all(map(_KNOWN, draw)):
        keep = _with_household(site, constraints, draw, _household(site, meter, [d.lo_keep for d in draw]))
    over_since = {k: state.over_since.get(k, now) for k in overloads}
    unknown = untested(site, active, state.wiring)
    targets = _targets(site, memories, readings, draw, constraints, overloads, meter, now, doubted, unknown)
    _keep_running(site, memories, draw, targets, constraints, keep, overloads)

    before = list(memories)
    decisions: list[ChargerDecision] = []
    for spec, r, d in zip(site.chargers, readings, draw):
        decisions.append(_decide_one(spec, r, d, memories, targets, site, now))
    _break_before_make(site, constraints, draw, meter, before, decisions, memories, now)
    in_turn(site, state.wiring, unknown, readings, draw, before, decisions, memories, now, state.meter_prev is None)
    _pause_persistent(site, constraints, over_since, overloads, draw, decisions, memories, now)
    net_state, net_faults = net_apply(site, state.net, meter, draw, decisions, memories, now, Links(state.wiring),
                                      lambda s, a, c, why: ChargerDecision(s.id, a, c, a != before[s.index].limit_a, why))
    evidence = observe(site, state.wiring, sample.current_a, memories, readings, now)

    p0 = p1 = p2 = 0.0  # planned per phase: each load at max(its limit, hi), a fixed one at hi
    for on, d, dec in zip(site.phase_on, draw, decisions):
        h0, h1, h2 = d.hi
        if not d.fixed:
            limit = dec.limit_a
            h0, h1, h2 = (h0 if h0 > limit else limit), (h1 if h1 > limit else limit), (h2 if h2 > limit else limit)
        if on[0]:
            p0 += h0
        if on[1]:
            p1 += h1
        if on[2]:
            p2 += h2
    planned = (p0, p1, p2)
    headroom = tuple(site.limit_a - household[p] - planned[p] if p < site.phases else 0.0
                     for p in range(3))
    return Decision(
        state=CoreState(loads=tuple(memories), over_since=over_since, meter_prev=meter, net=net_state,
                        active=active, wiring=evidence,
                        flips=state.flips if evidence is state.wiring else inversions(site, evidence)),
        chargers=tuple(decisions), household_a=household, headroom_a=headroom,
        overloads=overloads, draw_a=tuple(map(_HI, draw)), net=net_faults, ask_reports=ask_reports,
    )


# ---------------------------------------------------------------------- pass 1: links

def _track_links(site: SiteModel, state: CoreState, readings: list[ChargerReading],
                 now: float) -> list[LoadMemory]:
    """A load whose link came back may hold anything: its limit becomes UNKNOWN (so the next
    limit goes out) and until then it counts at the most it may hold."""
    memories = list(state.loads)
    for spec, r, m in zip(site.chargers, readings, state.loads):
        if r.online and m.offline:
            # Back within its lease it still holds the limit it acknowledged; after it (or not
            # knowing) it may hold its own fallback.
            within = m.lease_until is not None and now < m.lease_until
            acked = r.acked_a if r.acked_a is not None else 0.0
            held = max(m.limit_a, acked, high_now(m, now), 0.0 if within else site.fallback_a(spec))
            memories[spec.index] = m._replace(offline=False, limit_a=UNKNOWN, high_a=held,
                                              high_until=now + site.control.response_s,
                                              own_fallback=not within, lease_until=None,
                                              back_a=r.acked_a if within else None)
        elif not r.online:
            if not m.offline or m.lease_until != r.lease_until:
                memories[spec.index] = m._replace(offline=True, lease_until=r.lease_until)
    return memories


# ---------------------------------------------------------------------- pass 2: hold and blind

def _hold(site: SiteModel, memories: list[LoadMemory], state: CoreState, now: float,
          why: str) -> Decision:
    """The user stopped all charging: 0 everywhere; resuming later is no restart (no delay)."""
    out, mems = [], []
    for spec, m in zip(site.chargers, memories):
        held = max(m.limit_a, 0.0)
        new = commanded(m._replace(paused_at=None, hold_since=None, cause=Cause.USER_HOLD),
                        held, 0.0, now, site.control.response_s)
        mems.append(new)
        out.append(ChargerDecision(spec.id, 0.0, Cause.USER_HOLD, m.limit_a != 0, why))
    return Decision(state=CoreState(loads=tuple(mems), meter_prev=state.meter_prev, **_learned(state)), chargers=tuple(out))


def _learned(state: CoreState) -> dict:
    """What the meter taught about phases and wiring: kept while blind or held."""
    return dict(active=state.active, wiring=state.wiring, flips=state.flips)


def _blind(site: SiteModel, memories: list[LoadMemory], state: CoreState, now: float,
           cause: Cause, detail: str) -> Decision:
    """No valid sample: every load to min(its limit now, its fallback) — blind, the controller
    never raises (invariants 5 and 7). A load whose limit is unknown gets its fallback, or if
    it came back within its lease, the least of that and the limit it acknowledged then (high_a
    is no help here: it bounds what it may still draw, not what it holds)."""
    out, mems = [], []
    for spec, m in zip(site.chargers, memories):
        if cause is Cause.NO_SAMPLE and switch.untouched(spec, m, now):  # left as found (core/switch.py)
            mems.append(m)
            out.append(ChargerDecision(spec.id, 0.0, Cause.RESUMED, False, "left as its device is"))
            continue
        fallback = site.fallback_a(spec)
        if m.limit_a != UNKNOWN:
            limit = min(m.limit_a, fallback)
        else:
            limit = fallback if m.back_a is None else min(m.back_a, fallback)
        why = Cause.MODE_OFF if spec.mode == "off" else cause
        held = max(m.limit_a, 0.0)
        if cause is Cause.NO_SAMPLE and (kept := resume.kept(m, now)) is not None:
            # what it holds since the last process: no raise, and not a raise in flight either
            limit, why, held = kept, Cause.RESUMED, m.resume.held_a
        new = commanded(m._replace(hold_since=None, cause=why), held, limit, now, site.control.response_s)
        mems.append(new)
        out.append(ChargerDecision(spec.id, limit, why, limit != m.limit_a, detail))
    return Decision(state=CoreState(loads=tuple(mems), over_since={}, meter_prev=None, **_learned(state)),
                    chargers=tuple(out), fallback=cause)


# ---------------------------------------------------------------------- pass 4: room

def _doubted(site: SiteModel, draw: list[Draw], meter: Phases) -> list[Phases]:
    """Each load's least draw with the meter's credit for a raise in flight taken back on every
    phase that is over its limit. The meter cannot tell a car following our raise from a
    household step in the same seconds; with an overload measured, the cut is sized as if the
    step were household (a car that did follow is restored by the normal ramp)."""
    over = [p < site.phases and meter[p] > site.limit_a for p in range(3)]
    return [tuple(d.lo_doubt[p] if over[p] else d.lo[p] for p in range(3)) for d in draw]


def _household(site: SiteModel, meter: Phases, least: list[Phases]) -> Phases:
    """Meter minus what the loads certainly draw: never below what the household really is."""
    return tuple(max(0.0, meter[p] - sum(map(_AT[p], least))) if p < site.phases else 0.0
                 for p in range(3))


def _constraints(site: SiteModel, draw: list[Draw], household: Phases,
                 meter: Phases) -> tuple[list[Constraint], dict[str, float]]:
    """Capacity left for the loads that take orders, and measured overloads by name."""
    constraints: list[Constraint] = []
    overloads: dict[str, float] = {}
    fixed = [i for i, d in enumerate(draw) if d.fixed]
    lo = list(map(_LO, draw)) if site.circuits else None
    for slot in site.constraint_slots:
        name, p, inside = slot.name, slot.phase, slot.indices
        if slot.circuit >= 0:
            circuit_a = site.circuits[slot.circuit].limit_a
            limit = circuit_a - sum(draw[i].hi[p] for i in inside if draw[i].fixed) if fixed else circuit_a
            drawn = sum(map(_AT[p], map(lo.__getitem__, inside)))  # lo[i][p] over `inside`, in C
            if drawn > circuit_a:
                overloads[name] = drawn - circuit_a
        else:
            limit = _household_room(site, slot, household, draw, fixed)
            if p >= 0 and meter[p] > site.limit_a:
                overloads[name] = meter[p] - site.limit_a
            elif p < 0 and (import_w := sum(meter[q] for q in site.phase_range) * site.phase_volts) > site.max_import_w:
                overloads[name] = (import_w - site.max_import_w) / site.phase_volts
        if fixed:  # a load that takes no orders is counted in the capacity, not a member
            members = tuple(m for m in slot.coefs if not draw[m[0]].fixed)
            inside = None if inside is None else tuple(i for i in inside if not draw[i].fixed)
        else:
            members = slot.coefs
        constraints.append(_new_tuple(Constraint, (name, limit, members, slot.phases, inside)))
    return constraints, overloads


def _with_household(site: SiteModel, constraints: list[Constraint], draw: list[Draw],
                    household: Phases) -> list[Constraint]:
    """`constraints` for another household estimate: only the site's phases and the import cap
    hold the household, so the circuits' constraints are kept as they are."""
    fixed = [i for i, d in enumerate(draw) if d.fixed]
    out = list(constraints)
    for k, slot in enumerate(site.constraint_slots):
        if slot.circuit < 0:
            out[k] = constraints[k]._replace(capacity=_household_room(site, slot, household, draw, fixed))
    return out


def _household_room(site: SiteModel, slot: ConstraintSlot, household: Phases, draw: list[Draw], fixed: list[int]) -> float:
    """The capacity of a site phase (amps) or the import cap (watts) beside the household and
    the loads that take no orders."""
    if slot.phase >= 0:
        p, on = slot.phase, site.phase_on
        return site.limit_a - household[p] - sum(draw[i].hi[p] for i in fixed if on[i][p])
    volts = site.phase_volts
    return site.max_import_w - sum(household) * volts - sum(sum(draw[i].hi) for i in fixed) * volts


# ---------------------------------------------------------------------- pass 5: targets

Target = tuple[float, Cause, str]


def _targets(site: SiteModel, memories: list[LoadMemory], readings: list[ChargerReading],
             draw: list[Draw], constraints: list[Constraint], overloads: dict[str, float],
             meter: Phases, now: float, doubted: list[Constraint] | None = None,
             untested: Container[int] = ()) -> dict[int, Target]:
    """Per load that takes orders: the current it should have and why. A load in `untested`
    (its car's phases not known yet) restarts without the hysteresis (core/phases.py)."""
    ctl = site.control
    targets: dict[int, Target] = {}
    wants: list[Want] = []
    mode_detail: dict[int, str] = {}
    solar_in: list[SolarInput] = []
    delays: dict[int, float] = {}
    reclaimed: dict[int, float] = {}  # load -> the cap its own draw put on it (core/reclaim.py)
    restart_delay_s = ctl.restart_delay_s
    for spec, r, mem, d in zip(site.chargers, readings, memories, draw):
        if d.fixed:
            continue
        i = spec.index
        car = r.car
        if car is _NO_CAR or car is _FAULT or spec.mode == "off":  # (the test _idle makes, inline)
            targets[i] = (0.0, _idle(spec, r), "")
            if mem.reclaim_a is not None or mem.low is not None:
                memories[i] = mem._replace(reclaim_a=None, low=None)
            continue
        if spec.kind == "switch":  # min_off_s instead of restart_delay_s (core/switch.py)
            delays.update(switch.delays(spec, mem, r, now))
        elif mem.limit_a <= 0 and mem.paused_at is not None:  # 0, or unknown after a reconnect
            left = restart_delay_s - (now - mem.paused_at)
            if left > 0:
                delays[i] = left
        if spec.mode in SOLAR_MODES:  # its surplus timers run even during a restart delay
            running = mem.limit_a > 0 and not (mem.cause is not None and mem.cause.fallback)
            solar_in.append(SolarInput(spec, running, sum(d.lo) * site.phase_volts,
                                       mem.surplus_since, mem.short_since))
        elif i in delays:
            targets[i] = (0.0, Cause.RESTART_DELAY, _seconds(delays[i]))
        else:
            cap, memories[i] = reclaim(spec, mem, r, site, now)
            if cap == 0.0:  # its car takes nothing: 0 until it is offered current again
                targets[i] = (0.0, Cause.TAKES_NOTHING, _seconds(idle_left_s(memories[i], site, now)))
                continue
            if cap is not None and cap < spec.max_a:
                reclaimed[i] = cap
            wants.append(_want(spec, mem, min(spec.max_a, cap or spec.max_a),
                               0.0 if mem.paused_at is not None and i in untested
                               else ctl.restart_hysteresis_a))
    if solar_in:
        caps = solar_caps(site, surplus_w(site, meter, solar_in), solar_in, now)
        for s in solar_in:
            i, cap = s.spec.index, caps[s.spec.index]
            if (memories[i].surplus_since, memories[i].short_since) != (cap.surplus_since, cap.short_since):
                memories[i] = memories[i]._replace(surplus_since=cap.surplus_since,
                                                   short_since=cap.short_since)
            if cap.cap <= 0:
                targets[i] = (0.0, Cause.SURPLUS, cap.reason)
            elif i in delays:
                targets[i] = (0.0, Cause.RESTART_DELAY, _seconds(delays[i]))
            else:
                mode_detail[i] = cap.reason
                wants.append(_want(s.spec, memories[i], min(cap.cap, s.spec.max_a), ctl.restart_hysteresis_a))

    wants = one_at_a_time(site, memories, wants, targets)  # sequential chargers: one connector charges
    # A load the allocator paused restarts only once room for its floor has held for
    # ramp_up_delay_s; until then it stays out of the sharing, so it cannot push a running
    # load out for a start that may never come.
    wants = switch.hold_on(site, wants, targets, memories, readings, constraints, overloads, now)
    ready = [_restart_ready(memories[w.index], now, ctl.ramp_up_delay_s) for w in wants]
    waiting = [w for w, ok in zip(wants, ready) if not ok]
    wants = [w for w, ok in zip(wants, ready) if ok]
    # (Loads that take no orders are in no want, so the site's own touch table holds.)
    touch = site.constraint_touch
    plan = allocate(wants, constraints, touch)
    fits = floor_room([w for w in wants if w.index not in plan.shed], constraints, touch) if waiting else None
    for w in waiting:
        mem = memories[w.index]
        if fits(w):
            since = mem.hold_since if mem.hold_since is not None else now
            memories[w.index] = mem._replace(hold_since=since)
            left = ctl.ramp_up_delay_s - (now - since)
            targets[w.index] = (0.0, Cause.RESTART_WAIT, f"restart when the room holds {left:.0f} s")
        else:
            memories[w.index] = mem._replace(hold_since=None)
            targets[w.index] = (0.0, Cause.RESTART_WAIT,
                                f"restart delay over, no room for min_a (priority {w.priority})")
    deeper = allocate(wants, doubted, touch) if doubted is not None else None
    for w in wants:
        i = w.index
        if i in plan.shed:
            targets[i] = (0.0, Cause.SHED, f"priority {w.priority}")
            continue
        amps = max(w.lo, math.floor(plan.current[i] * 10 + 1e-6) / 10)
        by = plan.limited_by.get(i, "cap")
        if deeper is not None:
            doubt_a = max(w.lo, math.floor(deeper.current.get(i, 0.0) * 10 + 1e-6) / 10)
            if doubt_a < amps:
                amps, by = doubt_a, deeper.limited_by.get(i, by)
        if by == "cap" and i in reclaimed:
            targets[i] = (amps, Cause.DRAWS_LESS, f"{memories[i].low[0]:.1f} A")
        elif by == "cap":
            targets[i] = (amps, Cause.MODE_CAP, mode_detail[i]) if i in mode_detail else (amps, Cause.MAX, "")
        elif by in overloads:
            targets[i] = (amps, Cause.OVERLOAD_CUT, f"{by} over by {overloads[by]:.1f} A")
        else:
            targets[i] = (amps, Cause.SHARE, by)
    return targets


_NO_CAR, _FAULT = CarState.NO_CAR, CarState.FAULT


@lru_cache(maxsize=4096)
def _whole_seconds(n: int) -> str:
    return f"{n} s"


def _seconds(left: float) -> str:
    """f"{left:.0f} s" (round() rounds as the format does, half to even): a thousand loads in
    their restart delay each say it on every sample, and a few hundred strings say it all."""
    return _whole_seconds(round(left))


def _idle(spec: ChargerSpec, r: ChargerReading) -> Cause | None:
    """Why a load that takes orders gets nothing whatever the headroom, or None."""
    if spec.mode == "off":
        return Cause.MODE_OFF
    if r.car is CarState.FAULT:
        return Cause.CAR_FAULT
    if r.car is CarState.NO_CAR:
        return Cause.NO_CAR
    return None


def _restart_ready(mem: LoadMemory, now: float, hold_s: float) -> bool:
    """False for a load the allocator paused whose room has not held hold_s yet."""
    if mem.limit_a > 0 or mem.paused_at is None or hold_s <= 0:
        return True
    return mem.hold_since is not None and now - mem.hold_since >= hold_s


def _want(spec: ChargerSpec, mem: LoadMemory, cap: float, hysteresis: float) -> Want:
    lo = spec.min_a
    if mem.limit_a <= 0 and mem.paused_at is not None:  # restart after an allocator stop
        lo = min(spec.min_a + hysteresis, cap)
    return Want(spec.index, lo, max(lo, cap), spec.weight, spec.priority, running=mem.limit_a != 0)


def _keep_running(site: SiteModel, memories: list[LoadMemory], draw: list[Draw],
                  targets: dict[int, Target], constraints: list[Constraint], keep: list[Constraint],
                  overloads: dict[str, float]) -> None:
    """The plan counts a load whose draw is not learned as drawing nothing it is not seen to
    draw (household may be that high). That is right for what may be given, not for what must
    be taken: while no overload is measured on its constraints, a running load keeps up to its
    share of the optimistic room, and a load whose draw is not learned may be offered it (the
    measured-headroom rule of break before make bounds every raise beside it)."""
    if all(map(_KNOWN, draw)):
        return  # both views are the same
    over = {i for c in constraints if c.name in overloads for i, _ in c.members}
    # Only a limit it holds can be kept: the one we sent, or after a start or a reconnect past
    # its lease the fallback it holds by itself (back within its lease, its bound is only an
    # upper bound of what it holds: keeping that could be a raise).
    running = [i for i, (_, cause, _) in targets.items()
               if i not in over and cause in _SHARING and
               (memories[i].limit_a > 0 or memories[i].limit_a == UNKNOWN and memories[i].own_fallback)]
    candidates = [i for i in running
                  if targets[i][0] < _held(memories[i], draw[i]) or _may_offer(site, memories, draw, i)]
    if not candidates:
        return
    wants = []
    for i in running:
        spec, held = site.chargers[i], _held(memories[i], draw[i])
        cap = spec.max_a if _may_offer(site, memories, draw, i) else max(held, targets[i][0])
        wants.append(Want(i, spec.min_a, max(spec.min_a, cap), spec.weight, spec.priority))
    touch = site.constraint_touch  # (only loads that take orders are in `running`)
    plan = allocate(wants, keep, touch)
    # Take the optimistic shares one load at a time, best priority first, and only as far as
    # the optimistic room still has space beside every other target: two plans never add up.
    targets_now = {i: t[0] for i, t in targets.items()}
    slack = [c.capacity - sum(coef * max(targets_now.get(i, 0.0), draw[i].bound_a) for i, coef in c.members)
             for c in keep]
    # Keeping a load at what it may draw is no raise, but the limits themselves must still fit
    # the optimistic room: where loads being cut fill it with their bounds, a load kept at its
    # own bound beside the other targets could plan past a constraint (an import cap, say).
    free = [c.capacity - sum(coef * targets_now.get(i, 0.0) for i, coef in c.members) for c in keep]
    for i in sorted(candidates, key=lambda i: (site.chargers[i].priority, -site.chargers[i].weight, i)):
        if i in plan.shed:
            continue
        amps = math.floor(plan.current[i] * 10 + 1e-6) / 10
        base = max(targets[i][0], draw[i].bound_a)
        room = min((slack[k] / coef for k, coef in touch[i]), default=0.0)
        fits = min((free[k] / coef for k, coef in touch[i]), default=0.0)
        amps = math.floor(min(amps, base + max(0.0, room), targets[i][0] + fits) * 10 + 1e-6) / 10
        if amps <= targets[i][0] or amps < site.chargers[i].min_a:
            continue
        for k, coef in touch[i]:
            slack[k] -= coef * max(0.0, amps - base)
            free[k] -= coef * (amps - targets[i][0])
        targets[i] = (amps, Cause.SHARE, plan.limited_by.get(i, "phase"))


_SHARING = (Cause.SHARE, Cause.SHED, Cause.MAX, Cause.OVERLOAD_CUT)


def _may_offer(site: SiteModel, memories: list[LoadMemory], draw: list[Draw], i: int) -> bool:
    """A standard-mode load with no evidence of its draw may be offered its optimistic share
    once: the raise shows on the meter if its car follows, and then its draw is known. One
    that was raised and still shows nothing is not following: it is offered nothing more."""
    mem = memories[i]
    return not draw[i].known and site.chargers[i].mode == "standard" and not mem.limit_a > mem.prev_a


def _held(mem: LoadMemory, d: Draw) -> float:
    return d.bound_a if mem.limit_a == UNKNOWN else max(mem.limit_a, 0.0)


# ---------------------------------------------------------------------- pass 6: steps

def _decide_one(spec: ChargerSpec, r: ChargerReading, d: Draw, memories: list[LoadMemory],
                targets: dict[int, Target], site: SiteModel, now: float) -> ChargerDecision:
    i, mem = spec.index, memories[spec.index]
    if d.fixed is not None:  # (few loads: one test for the rest)
        if d.fixed is Cause.NON_COMPLIANT:  # it takes no orders: tell it 0, count its draw as fixed
            paused = now if mem.limit_a != 0 else mem.paused_at  # a car it stops waits restart_delay_s
            new = commanded(mem._replace(hold_since=None, paused_at=paused, cause=d.fixed), d.bound_a, 0.0,
                            now, site.control.response_s)
            memories[i] = new
            return ChargerDecision(spec.id, 0.0, d.fixed, mem.limit_a != 0)
        if d.fixed is Cause.LINK_DOWN:  # nothing can be sent
            memories[i] = mem._replace(cause=d.fixed)
            return ChargerDecision(spec.id, max(mem.limit_a, 0.0), d.fixed, False,
                                   _link_detail(r, d, now))
    target, asked, detail = targets[i]
    limit, memories[i], cause = step(spec, mem, d.bound_a, target, asked, site, now)
    # (tuple.__new__: a thousand per decision; the fields in ChargerDecision's order)
    return _new_tuple(ChargerDecision, (spec.id, limit, cause, limit != mem.limit_a,
                                        detail if cause is asked else ""))


def _link_detail(r: ChargerReading, d: Draw, now: float) -> str:
    if r.lease_until is not None and now < r.lease_until:
        return f"counted at {d.bound_a:g} A for {r.lease_until - now:.0f} s more, then its fallback"
    return f"counted at {d.bound_a:g} A (its own fallback)"


# ---------------------------------------------------------------------- pass 7: break before make

def _break_before_make(site: SiteModel, constraints: list[Constraint], draw: list[Draw],
                       meter: Phases, before: list[LoadMemory], decisions: list[ChargerDecision],
                       memories: list[LoadMemory], now: float) -> None:
    """Every load counts at the most of its new limit and what it may still draw; where that
    exceeds a constraint, the increases on it (lowest priority first) wait: current a cut frees
    goes to others only once the cut load followed or its response time has passed. On a site
    phase with a load whose draw is not learned yet, increases also fit the measured headroom:
    that load's unused allowance looks like household headroom and is not ours to give."""
    # Only a constraint with an increase on it has one to hold back, and this pass only ever
    # lowers increases: the constraints without one at the start are left out (most samples
    # raise nothing at all).
    increased = [i for i, (dec, d) in enumerate(zip(decisions, draw))
                 if dec.limit_a > d.bound_a + EPS or not d.known and dec.limit_a > 0]
    if not increased:
        return
    touch = site.constraint_touch
    use = [d.bound_a if d.bound_a > dec.limit_a else dec.limit_a  # max(limit, bound)
           for dec, d in zip(decisions, draw)]
    all_known = all(map(_KNOWN, draw))
    for k in sorted({k for i in increased for k, _ in touch[i]}):
        con = constraints[k]
        with_household = k < site.phases or (site.max_import_w > 0 and k == len(constraints) - 1)
        if con.indices is not None:  # 1 A per A: coef * use[i] is use[i], to the last bit
            usage = sum(map(use.__getitem__, con.indices))
        else:
            usage = sum([coef * use[i] for i, coef in con.members])
        excess = usage - con.capacity
        measured_excess = 0.0
        if with_household and not all_known and any(not draw[i].known for i, _ in con.members):
            # A load whose draw is not known may rise from what it is seen to draw, not only
            # from its bound (it may hold its fallback and draw nothing yet).
            raised_by = sum(coef * max(0.0, decisions[i].limit_a - (draw[i].bound_a if draw[i].known else
                                                                   max(draw[i].lo[p] for p in con.phases)))
                            for i, coef in con.members)
            if k < site.phases:
                free = site.limit_a - meter[con.phases[0]]
            else:  # the import cap, in watts
                free = site.max_import_w - sum(meter[p] for p in site.phase_range) * site.phase_volts
            measured_excess = raised_by - free
        if max(excess, measured_excess) <= EPS:
            continue
        raised = [i for i, _ in con.members if decisions[i].limit_a > draw[i].bound_a + EPS
                  or not draw[i].known and decisions[i].limit_a > 0]
        raised.sort(key=lambda i: (site.chargers[i].priority, -site.chargers[i].weight,
                                   draw[i].bound_a <= 0, i), reverse=True)
        coef_of = dict(con.members)
        for i in raised:
            if max(excess, measured_excess) <= EPS:
                break
            # A load whose draw is not learned is in the household estimate too: for its own
            # raise that counts it twice, so it may use its own unseen draw (the measured
            # headroom still bounds it); nobody else may.
            own = sum(draw[i].lo_keep[p] - draw[i].lo[p] for p in con.phases) if with_household else 0.0
            own *= coef_of[i] / max(1, site.chargers[i].n_phases) if k >= site.phases else 1.0
            local = max(excess - own, measured_excess)
            if local <= EPS:
                continue
            spec, dec, bound = site.chargers[i], decisions[i], draw[i].bound_a
            keep = max(bound, dec.limit_a - local / coef_of[i])
            if keep < spec.min_a:  # a start waits; a running load keeps what it has (never a stop)
                keep = bound
            keep = math.floor(keep * 10 + 1e-6) / 10
            given_back = (dec.limit_a - max(keep, bound)) * coef_of[i]
            excess -= given_back
            measured_excess -= given_back
            limit, memories[i], cause = step(spec, before[i], bound, keep, Cause.WAIT_FOLLOW, site, now)
            decisions[i] = ChargerDecision(spec.id, limit, Cause.WAIT_FOLLOW,
                                           limit != before[i].limit_a, con.name)
            use[i] = max(limit, bound)


# ---------------------------------------------------------------------- pass 8: persistent overloads

def _pause_persistent(site: SiteModel, constraints: list[Constraint], over_since: dict[str, float],
                      overloads: dict[str, float], draw: list[Draw], decisions: list[ChargerDecision],
                      memories: list[LoadMemory], now: float) -> None:
    """Pause lowest-priority loads on an overload that outlived overload_pause_s. A pause
    relieves every constraint its load is on: the excess left on each is kept across them,
    so one pause that clears several overloads counts for all (no extra victims)."""
    ctl = site.control
    by_name = {c.name: c for c in constraints}
    due = [n for n, since in over_since.items() if now - since >= ctl.overload_pause_s]
    if not due:
        return
    left = {n: overloads[n] for n in due}
    members_of = {n: {j for j, _ in by_name[n].members} for n in due}
    for name in due:
        con = by_name[name]
        members = {i for i, _ in con.members}
        running = [s for s in site.chargers if s.index in members and decisions[s.index].limit_a > 0]
        running.sort(key=lambda s: (s.priority, -s.weight, s.index), reverse=True)
        for spec in running:
            if left[name] <= EPS:
                break
            i = spec.index
            # What pausing it frees: its measured draw, or its bound when nothing says it draws.
            frees = draw[i].lo if sum(draw[i].lo) > EPS else draw[i].hi
            for other in due:
                if i in members_of[other]:
                    left[other] -= sum(frees[p] for p in by_name[other].phases if p in spec.phase_idx)
            memories[i] = commanded(memories[i]._replace(paused_at=now, hold_since=None,
                                                         cause=Cause.OVERLOAD_PAUSE),
                                    max(memories[i].limit_a, 0.0), 0.0, now, ctl.response_s)
            detail = f"{name} for {now - over_since[name]:.0f} s"
            decisions[i] = ChargerDecision(spec.id, 0.0, Cause.OVERLOAD_PAUSE, True, detail)
        over_since[name] = now
