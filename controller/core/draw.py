"""The per-load draw model: for every load, on every site phase, the most it may draw (what
the plan counts it at) and the least it draws now (what the household estimate subtracts).

DESIGN.md section 1, invariant 1. For a load on phase p:
- `hi[p]`, its bound: the highest of the limit commanded, the limit it acknowledged, a
  higher limit it may still follow (for response_s after a decrease, unless it was seen to
  follow) and its fresh measurement (a car above its limit keeps drawing). A link that is
  down holds its acknowledged limit until its lease ends, then its own fallback.
- `lo[p]`, what it certainly draws (`seen`): its last report taken after the car had time to
  follow our last change; a report from inside that window only raises it. Between reports the
  meter tells: a rise on p while loads there follow a raise goes to them (up to the raise),
  a fall while loads there follow a cut goes to them (down to their new limit); every other
  change is household. A load that does not measure starts at 0 and learns only from the meter.
Household = meter - sum(lo), so it is never underestimated by what a car does not use, and the
plan (household + sum(hi)) is an upper bound of what the site can draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from controller.core.causes import Cause
from controller.core.site import ChargerSpec, SiteModel
from controller.model import ZERO, CarState, ChargerReading, Phases

UNKNOWN = -1.0  # limit not known (start, reconnect): the next decision always sends one
FOLLOW_TOLERANCE_A = 1.0  # a car within this of a limit is at that limit
ATTRIBUTION_SLACK_S = 2.0  # the meter shows a car's change this long after its response time


class LoadMemory(NamedTuple):
    """What the core remembers per load between decisions (a NamedTuple: cheap to copy)."""

    limit_a: float = UNKNOWN  # last limit commanded
    prev_a: float = 0.0  # the limit before the last change ...
    changed_at: float = -math.inf  # ... and when it changed
    high_a: float = 0.0  # highest limit it may still follow after a decrease ...
    high_until: float = -math.inf  # ... until then
    high_early: bool = False  # it drew above the new limit at the cut: seeing it follow ends the window
    seen: Phases = ZERO  # what it certainly draws per site phase
    seen0: Phases = ZERO  # `seen` when the limit last changed
    known: bool = False  # `seen` is learned (a report, a full follow, or 0 A for response_s)
    clean: bool = False  # the last change came after the one before had shown on the meter
    report_at: float = -math.inf  # time of the last report taken into `seen`
    paused_at: float | None = None  # the allocator stopped it here (restart delay runs)
    hold_since: float | None = None  # its target has been above its limit since
    surplus_since: float | None = None
    short_since: float | None = None
    offline: bool = False  # link was down at the last decision
    lease_until: float | None = None  # while offline: when the limit it holds expires (None: unknown)
    own_fallback: bool = True  # after a reconnect it may hold its own fallback (lease over or unknown)
    cause: Cause | None = None  # why it has its limit (last decision)
    resume: Any = None  # controller/core/resume.py's Resume while resumed after a restart


@dataclass(frozen=True, slots=True)
class Draw:
    lo: Phases  # certainly draws now
    hi: Phases  # may draw now (the bound the plan counts)
    bound_a: float  # the bound per phase it draws on (hi without measurement above it)
    known: bool  # lo is learned; False: nothing says what it draws (lo may be far below)
    lo_keep: Phases  # lo, or for a load whose draw is not learned its bound: the optimistic view
    lo_doubt: Phases  # lo without what the meter credited it since our last raise (no report yet)
    fixed: Cause | None  # LINK_DOWN / NON_COMPLIANT: takes no orders, its hi is fixed load


def measured(spec: ChargerSpec, r: ChargerReading, site: SiteModel) -> Phases | None:
    """Its own measurement per site phase, or None. A negative line current is a sensor quirk,
    not negative load. A power-only charger on one phase gives amps = W / V; on several phases
    its split is unknown (a 1-phase car may use any one of them), so it tells nothing per phase."""
    if r.draw_lines_a is not None:
        m = [0.0, 0.0, 0.0]
        for amps, p in zip(r.draw_lines_a, spec.line_phase):
            if amps > 0:
                m[p] += amps
        return (m[0], m[1], m[2])
    if r.power_w is not None and spec.n_phases == 1 and site.voltage_v > 0:
        m = [0.0, 0.0, 0.0]
        m[spec.phase_idx[0]] = max(0.0, r.power_w) / site.voltage_v
        return (m[0], m[1], m[2])
    return None


def _within_power(spec: ChargerSpec, seen: Phases, amps: float) -> Phases:
    """A power-only charger on several phases: its currents add up to W / V, split unknown.
    What the meter credited it cannot add up to more than that."""
    total = sum(seen[p] for p in spec.phase_idx)
    if total <= amps + 1e-9:
        return seen
    scale = amps / total
    return (seen[0] * scale, seen[1] * scale, seen[2] * scale)


def high_now(mem: LoadMemory, now: float) -> float:
    return mem.high_a if now < mem.high_until else 0.0


def bound_of(spec: ChargerSpec, r: ChargerReading, mem: LoadMemory, site: SiteModel,
             now: float) -> tuple[float, Cause | None]:
    """The most it may be allowed now, per phase, and why it takes no orders (or None)."""
    acked = r.acked_a if r.acked_a is not None else 0.0
    held = max(mem.limit_a, acked, high_now(mem, now))
    if not r.online:
        if r.lease_until is not None and now < r.lease_until:
            return max(held, 0.0), Cause.LINK_DOWN
        own = site.fallback_a(spec)
        return (own if r.lease_until is not None else max(held, own)), Cause.LINK_DOWN
    if mem.limit_a == UNKNOWN and mem.own_fallback:  # started, or back after its lease ended
        held = max(held, site.fallback_a(spec))
    return max(held, 0.0), (None if r.compliant else Cause.NON_COMPLIANT)


def draws(site: SiteModel, memories: list[LoadMemory], readings: list[ChargerReading],
          meter: Phases, meter_prev: Phases | None, now: float) -> list[Draw]:
    """Every load's draw for this decision; updates `memories[i].seen`, report_at and the
    early end of a cut window in place."""
    resp = site.control.response_s
    out: list[Draw] = []
    before: list[Phases] = []
    reported: set[int] = set()  # loads whose report this decision says what they draw
    for spec, r, mem in zip(site.chargers, readings, memories):
        i = spec.index
        before.append(mem.seen)
        m = measured(spec, r, site)
        if not r.online and r.lease_until is not None and now >= r.lease_until:
            m = None  # a report from before the link died says nothing of its own fallback
        at = now if r.draw_at is None else r.draw_at
        seen = mem.seen
        if r.car in (CarState.NO_CAR, CarState.FAULT) and m is None:
            seen = ZERO
        if m is not None and at > mem.report_at:
            if at >= mem.changed_at or at >= now:
                # Taken after our last change (or live): what it drew then. After a cut it can
                # only fall further, after a raise only rise: either way no more than it showed.
                seen = m
            elif mem.limit_a > mem.prev_a:
                # Taken before our raise: it cannot show the rise the meter already credited.
                seen = (max(seen[0], m[0]), max(seen[1], m[1]), max(seen[2], m[2]))
            # Taken before our cut: the cut is in flight; it counts at what we knew until it
            # follows (break before make keeps its old limit reserved meanwhile).
            mem = mem._replace(report_at=at, known=True)
            reported.add(i)
        if m is None and mem.limit_a == 0 and now >= mem.changed_at + resp:
            seen, mem = ZERO, mem._replace(known=True)  # told 0 long enough: it draws nothing
        if m is None and r.power_w is not None and site.voltage_v > 0 and r.online:
            seen = _within_power(spec, seen, max(0.0, r.power_w) / site.voltage_v)
        bound, fixed = bound_of(spec, r, mem, site, now)
        if not r.online:  # still drawing what it drew, at most what it holds
            seen = m if m is not None else tuple(min(x, bound) for x in seen)
        memories[i] = mem._replace(seen=seen) if seen != mem.seen else mem
        out.append((bound, fixed, m))
    _attribute(site, memories, before, reported, meter, meter_prev, now)
    result = []
    for spec, mem, (bound, fixed, m) in zip(site.chargers, memories, out):
        hi = [0.0, 0.0, 0.0]
        for p in spec.phase_idx:
            hi[p] = bound
        if m is not None:
            hi = [max(h, x) for h, x in zip(hi, m)]
        hi_t = (hi[0], hi[1], hi[2])
        lo = tuple(min(s, h) for s, h in zip(mem.seen, hi_t))
        # Any evidence of its draw (a report, or the meter following our change) is a lower
        # bound the plan uses; a load with none at all (started or reconnected mid-charge,
        # never measured) is 'not known': nothing is taken from it on a guess (decide.py).
        known = mem.known or max(mem.seen) > 0
        # While a raise of ours is in flight, what the meter rose by was credited to this load;
        # a household step at that moment would be credited too. With an overload measured,
        # that credit is doubted: the cut is sized as if the raise had not shown yet.
        window = site.control.response_s + ATTRIBUTION_SLACK_S
        doubt = lo
        if mem.limit_a > mem.prev_a and now <= mem.changed_at + window and mem.report_at < mem.changed_at:
            doubt = tuple(min(x, y) for x, y in zip(lo, mem.seen0))
        result.append(Draw(lo=lo, hi=hi_t, bound_a=bound, fixed=fixed, known=known,
                           lo_keep=lo if known else hi_t, lo_doubt=doubt))
        if mem.high_early and now < mem.high_until and _fell(spec, mem):
            memories[spec.index] = mem._replace(high_until=now, high_early=False)
    return result


def _fell(spec: ChargerSpec, mem: LoadMemory) -> bool:
    """The meter (through `seen`) shows it came down to its new limit after a cut."""
    return max(mem.seen[p] for p in spec.phase_idx) <= max(mem.limit_a, 0.0) + FOLLOW_TOLERANCE_A


def _attribute(site: SiteModel, memories: list[LoadMemory], before: list[Phases], reported: set[int],
               meter: Phases, meter_prev: Phases | None, now: float) -> None:
    """Give the meter's change since the last sample, less what fresh reports explain, to
    the loads following a change of ours on that phase; the rest is household."""
    if meter_prev is None:
        return
    window = site.control.response_s + ATTRIBUTION_SLACK_S
    for p in site.phase_range:
        explained = sum(m.seen[p] - b[p] for m, b in zip(memories, before))
        change = meter[p] - meter_prev[p] - explained
        if abs(change) < 1e-6:
            continue
        followers = []
        for spec, mem in zip(site.chargers, memories):
            if p not in spec.phase_idx or mem.offline or spec.index in reported \
                    or now > mem.changed_at + window:
                continue
            limit = max(mem.limit_a, 0.0)
            if change > 0 and limit > mem.prev_a:
                room = limit - mem.seen[p]
            elif change > 0 and not mem.clean and mem.changed_at > -math.inf:
                # A cut right after a raise: a late rise from that raise is the car's, up to
                # the raised limit it may still follow (not household).
                room = high_now(mem, now) - mem.seen[p]
            elif change < 0 and limit < mem.prev_a:
                room = mem.seen[p] - limit
            else:
                continue
            if room > 0:
                followers.append((spec.index, room))
        total = sum(room for _, room in followers)
        if total <= 0:
            continue
        share = min(1.0, abs(change) / total)
        for i, room in followers:
            mem = memories[i]
            s = list(mem.seen)
            s[p] += math.copysign(room * share, change)
            limit = max(mem.limit_a, 0.0)
            if change > 0 and mem.clean and s[p] - mem.seen0[p] >= limit - mem.prev_a - FOLLOW_TOLERANCE_A:
                # It rose by the whole raise, so our limit held it: it drew all of its old
                # limit and now draws the new one (a load that starts mid-way is learned here).
                s[p] = max(s[p], limit)
                mem = mem._replace(known=True)
            memories[i] = mem._replace(seen=(s[0], s[1], s[2]))

