"""The per-load draw model: for every load, on every site phase, the most it may draw (what
the plan counts it at) and the least it draws now (what the household estimate subtracts).

DESIGN.md section 1, invariant 1. For a load on phase p:
- `hi[p]`, its bound: the highest of the limit commanded, the limit it acknowledged, a
  higher limit it may still follow (for response_s after a decrease, unless it was seen to
  follow) and its fresh measurement (a car above its limit keeps drawing). A link that is
  down holds its acknowledged limit until its lease ends, then its own fallback.
- `lo[p]`, what it certainly draws (`seen`): its last report taken after the car had time to
  follow our last change, or one taken while it followed a raise (it can only have risen
  since); one taken while it followed a cut (maybe read late) only lowers it. Between reports the
  meter tells: a rise on p while loads there follow a raise goes to them, but only the part no
  other follower could have made (a floor must never exceed the truth: what it overstates is
  household hidden from the plan); a fall while loads there follow a cut is shared out to them
  (down to their new limit). Every other change is household. A load that does not measure
  starts at 0 and learns only from the meter. With an overload measured, what the meter
  credited a load since our last change to it is doubted (a household step in those seconds
  looks the same), and a report from before our last change never holds its bound up.
Household = meter - sum(lo), so it is never underestimated by what a car does not use, and the
plan (household + sum(hi)) is an upper bound of what the site can draw.
"""

from __future__ import annotations

import math
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
    floor: Phases = ZERO  # the part of `seen` that is certain (reports and sure meter credit):
    # `seen` may also hold what a full follow of a raise implies it drew before (its old limit)
    resume: Any = None  # controller/core/resume.py's Resume while resumed after a restart
    reclaim_a: float | None = None  # the cap in force on a car drawing less (core/reclaim.py);
    # 0.0: its car takes nothing, and `low` is (its draw, when it was set to 0)
    low: tuple[float, float] | None = None  # (draw, time) of the report that saw it below its limit
    band: tuple[float, float] | None = None  # (since, least target) of a raise within the dead band
    back_a: float | None = None  # at its last reconnect within its lease: the limit it acknowledged
    unseen_since: float | None = None  # not known, nothing seen: our first raise of it since went out then


class Draw(NamedTuple):
    """One load's draw for one decision (a NamedTuple: a thousand are built per decision)."""

    lo: Phases  # certainly draws now
    hi: Phases  # may draw now (the bound the plan counts)
    bound_a: float  # the bound per phase it draws on (hi without measurement above it)
    known: bool  # lo is learned; False: nothing says what it draws (lo may be far below)
    lo_keep: Phases  # lo, or for a load whose draw is not learned its bound: the optimistic view
    lo_doubt: Phases  # lo without what the meter credited it since our last raise (no report yet)
    fixed: Cause | None  # LINK_DOWN / NON_COMPLIANT: takes no orders, its hi is fixed load


_FIELD_AT = {name: k for k, name in enumerate(LoadMemory._fields)}
_new_tuple = tuple.__new__


def renew(mem: LoadMemory, **changes) -> LoadMemory:
    """mem._replace(**changes), about twice as fast: the core renews a thousand memories per
    decision."""
    values = list(mem)
    for name, value in changes.items():
        values[_FIELD_AT[name]] = value
    return _new_tuple(LoadMemory, values)


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


_SEEN, _KNOWN, _REPORT_AT, _FLOOR = (_FIELD_AT[f] for f in ("seen", "known", "report_at", "floor"))


def _learned(mem: LoadMemory, seen: Phases, report_at: float, known: bool, floor: Phases) -> LoadMemory:
    """renew(mem, seen=..., report_at=..., known=..., floor=...) for the loop that runs per load."""
    values = list(mem)
    values[_SEEN] = seen
    values[_KNOWN] = known
    values[_REPORT_AT] = report_at
    values[_FLOOR] = floor
    return _new_tuple(LoadMemory, values)


def draws(site: SiteModel, memories: list[LoadMemory], readings: list[ChargerReading],
          meter: Phases, meter_prev: Phases | None, now: float) -> list[Draw]:
    """Every load's draw for this decision; updates `memories[i].seen`, report_at and the
    early end of a cut window in place. Written out per phase: it runs for every load on
    every sample."""
    resp = site.control.response_s
    window = resp + ATTRIBUTION_SLACK_S
    volts = site.voltage_v
    explained = [0.0, 0.0, 0.0]  # what fresh reports changed per phase (the meter's change less it)
    shared = [0.0, 0.0, 0.0]  # of that, rises of loads that were counted low beside others (_take_back)
    parts: list[tuple[float, Cause | None, Phases | None]] = []
    reported: set[int] = set()  # loads whose report this decision says what they draw
    link_down, non_compliant = Cause.LINK_DOWN, Cause.NON_COMPLIANT
    for spec, r, mem, own in zip(site.chargers, readings, memories, site.fallbacks):
        online = r.online
        m = measured(spec, r, site)
        lease = r.lease_until
        if not online and lease is not None and now >= lease:
            m = None  # a report from before the link died says nothing of its own fallback
        seen = old = mem.seen
        floor = old_floor = mem.floor
        report_at = old_report_at = mem.report_at
        known = mem.known
        limit, changed_at = mem.limit_a, mem.changed_at
        at = now if r.draw_at is None else r.draw_at
        # A report from before our last change says what it drew then, not what it may draw now:
        # it never holds the bound up (a report that does not come expires, invariant 3).
        stale = m is None or at < changed_at
        if m is None:
            if r.car is _NO_CAR or r.car is _FAULT:
                seen = floor = ZERO
        elif at > report_at:
            if at >= changed_at + resp or at >= now:
                seen = floor = m  # live, or taken once the car had time to follow: what it draws
            elif at >= changed_at and known and limit < mem.prev_a:
                # While it followed a cut, and maybe read late: it may have fallen further
                # since, and the meter may already have shown it. What it showed is no floor.
                seen = (min(seen[0], m[0]), min(seen[1], m[1]), min(seen[2], m[2]))
                floor = (min(floor[0], m[0]), min(floor[1], m[1]), min(floor[2], m[2]))
            elif at >= changed_at:
                seen = floor = m  # after a raise it can only have risen since (or nothing known)
            elif limit > mem.prev_a:
                # Taken before our raise: it cannot show the rise the meter already credited.
                seen = (max(seen[0], m[0]), max(seen[1], m[1]), max(seen[2], m[2]))
                floor = (max(floor[0], m[0]), max(floor[1], m[1]), max(floor[2], m[2]))
            # Taken before our cut: the cut is in flight; it counts at what we knew until it
            # follows (break before make keeps its old limit reserved meanwhile).
            report_at, known = at, True
            reported.add(spec.index)
        if stale and limit == 0 and now >= changed_at + resp:
            seen, floor, known = ZERO, ZERO, True  # told 0 long enough: it draws nothing
        elif stale and not known and mem.unseen_since is not None and now >= mem.unseen_since + window \
                and seen == ZERO:
            # Raised, and the meter showed nothing of it: a car that drew anything would have
            # followed, so it takes nothing (full, or waiting for its own timer) and will start
            # by itself, within what the plan counts it at. Counted as drawing nothing, not as
            # drawing all it may (the optimistic view of a load whose draw is not learned,
            # which would let others keep its allowance). A car that drew but could not rise
            # is counted low: that only overstates the household.
            known = True
        if m is None and r.power_w is not None and volts > 0 and online:
            seen = _within_power(spec, seen, max(0.0, r.power_w) / volts)
        # Its bound, the most it may be allowed now per phase: the highest of its limit, the
        # limit it acknowledged and a higher one it may still follow. A link that is down holds
        # that until its lease ends, then its own fallback (`own`); and why it takes no orders.
        acked = r.acked_a
        held = max(limit, acked if acked is not None else 0.0, mem.high_a if now < mem.high_until else 0.0)
        if not online:
            fixed = link_down
            if lease is not None and now < lease:
                bound = max(held, 0.0)
            else:
                bound = own if lease is not None else max(held, own)
        else:
            if limit == UNKNOWN and mem.own_fallback:  # started, or back after its lease ended
                held = max(held, own)
            bound = max(held, 0.0)
            fixed = None if r.compliant else non_compliant
        if not online and report_at == old_report_at:
            # Still drawing what it drew, at most what it holds. (A new report says it; an old
            # one is already in `seen`, with whatever the meter showed since.)
            seen = (min(seen[0], bound), min(seen[1], bound), min(seen[2], bound))
        if floor is not seen and (floor[0] > seen[0] or floor[1] > seen[1] or floor[2] > seen[2]):
            floor = (min(floor[0], seen[0]), min(floor[1], seen[1]), min(floor[2], seen[2]))
        if report_at != old_report_at or seen != old or known != mem.known or floor != old_floor:
            memories[spec.index] = _learned(mem, seen, report_at, known, floor)
            # A first report reveals what the meter already had: no change to explain. (Most
            # reports say what the last one did: nothing to add.)
            if mem.known and seen != old:
                explained[0] += seen[0] - old[0]
                explained[1] += seen[1] - old[1]
                explained[2] += seen[2] - old[2]
                if old is not old_floor:
                    # Counted low while it held a share of a rise beside others (its count above its
                    # certain floor): what it really rose by was credited to them.
                    for p in (0, 1, 2):
                        if seen[p] > old[p] and old[p] > old_floor[p]:
                            shared[p] += seen[p] - old[p]
        if mem.unseen_since is not None and (known or seen != ZERO):  # something of it showed
            memories[spec.index] = renew(memories[spec.index], unseen_since=None)
        parts.append((bound, fixed, None if stale else m))
    _attribute(site, memories, explained, shared, reported, meter, meter_prev, now)
    result = []
    for spec, on, mem, (bound, fixed, m) in zip(site.chargers, site.phase_on, memories, parts):
        # Conditional expressions rather than min()/max(): this loop runs per load per sample.
        hi0 = bound if on[0] else 0.0
        hi1 = bound if on[1] else 0.0
        hi2 = bound if on[2] else 0.0
        if m is not None:
            m0, m1, m2 = m
            hi0 = m0 if m0 > hi0 else hi0
            hi1 = m1 if m1 > hi1 else hi1
            hi2 = m2 if m2 > hi2 else hi2
        s0, s1, s2 = seen = mem.seen
        lo = (s0 if s0 < hi0 else hi0, s1 if s1 < hi1 else hi1, s2 if s2 < hi2 else hi2)
        hi = (hi0, hi1, hi2)
        # Any evidence of its draw (a report, or the meter following our change) is a lower
        # bound the plan uses; a load with none at all (started or reconnected mid-charge,
        # never measured) is 'not known': nothing is taken from it on a guess (decide.py).
        known = mem.known or s0 > 0 or s1 > 0 or s2 > 0
        # While a change of ours is in flight, what the meter rose by was credited to this load
        # (a raise, or the late rise of a raise just before a cut); a household step at that
        # moment would be credited too. With an overload measured, that credit is doubted: the
        # cut is sized as if the change had not shown yet.
        # What it is credited beyond its certain floor (a full follow's inference) is doubted too.
        z = mem.floor
        doubt = (min(lo[0], z[0]), min(lo[1], z[1]), min(lo[2], z[2])) if z != seen else lo
        if now <= mem.changed_at + window and mem.report_at < mem.changed_at:
            z = mem.seen0
            doubt = (min(doubt[0], z[0]), min(doubt[1], z[1]), min(doubt[2], z[2]))
        result.append(_new_tuple(Draw, (lo, hi, bound, known, lo if known else hi, doubt, fixed)))
        if mem.high_early and now < mem.high_until and _fell(spec, mem):
            memories[spec.index] = renew(mem, high_until=now, high_early=False)
    return result


_NO_CAR, _FAULT = CarState.NO_CAR, CarState.FAULT


def _fell(spec: ChargerSpec, mem: LoadMemory) -> bool:
    """The meter (through `seen`) shows it came down to its new limit after a cut."""
    return max(mem.seen[p] for p in spec.phase_idx) <= max(mem.limit_a, 0.0) + FOLLOW_TOLERANCE_A


def _attribute(site: SiteModel, memories: list[LoadMemory], explained: list[float], shared: list[float],
               reported: set[int], meter: Phases, meter_prev: Phases | None, now: float) -> None:
    """Give the meter's change since the last sample, less what fresh reports explain, to
    the loads following a change of ours on that phase; the rest is household."""
    if meter_prev is None:
        return
    window = site.control.response_s + ATTRIBUTION_SLACK_S
    # Only a load that changed within the window can be following a change of ours.
    recent = [spec for spec, mem in zip(site.chargers, memories)
              if now <= mem.changed_at + window and not mem.offline and spec.index not in reported]
    for p in site.phase_range:
        change = meter[p] - meter_prev[p] - explained[p]
        if change < -1e-6 and shared[p] > 0:
            change += _take_back(site, memories, reported, p, min(-change, shared[p]))
        if abs(change) < 1e-6 or not recent and change > 0:
            continue
        followers = []
        for spec in recent:
            if p not in spec.phase_idx:
                continue
            mem = memories[spec.index]
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
        # Only a fall the meter really shows: a report correcting a load's floor upwards with the
        # meter flat is the household estimate growing honest, not somebody else falling.
        fell = min(-change, meter_prev[p] - meter[p]) - total
        if fell > 1e-6:
            _self_fall(site, memories, p, fell, reported, {i for i, _ in followers})
        if total <= 0:
            continue
        share = min(1.0, abs(change) / total)
        together = change > 0 and len(followers) > 1 and _all_followed(memories, p, followers, share)
        for i, room in followers:
            mem = memories[i]
            s = list(mem.seen)
            # What the others following with it could not have made: the part that is surely its.
            sure = min(room, max(0.0, abs(change) - (total - room)))
            limit = max(mem.limit_a, 0.0)
            f = list(mem.floor)
            if change > 0:
                # A rise several followers could have made is shared out in proportion to what
                # each may still rise, but only the part surely its enters its certain floor: an
                # overload cut doubts the rest (crediting a car with current it does not draw
                # hides that much household from the plan).
                s[p] += room * share
                f[p] += sure
                # Alone, all it was credited is its rise; beside others, only the part surely its
                # (its floor): a car that did not follow would otherwise be 'seen' to follow a
                # small raise by the others' rise, and the household they hide is planned as room.
                rise = (s[p] if len(followers) == 1 else f[p]) - mem.seen0[p]
                if mem.clean and rise >= limit - mem.prev_a - FOLLOW_TOLERANCE_A and rise > FOLLOW_TOLERANCE_A:
                    # It rose by (nearly) the whole raise, so our old limit held it: it drew that
                    # limit and now draws it plus the rise (a load that starts mid-way is learned
                    # here). That is an inference, not a measurement (a car just starting drew
                    # nothing before): it stays out of `floor`, so an overload cut doubts it. A
                    # raise within the tolerance proves nothing: the rise must show.
                    s[p] = max(s[p], min(limit, mem.prev_a + rise))
                    memories[i] = renew(mem, seen=(s[0], s[1], s[2]), floor=(f[0], f[1], f[2]), known=True)
                    continue
            else:
                # A fall is shared out (a floor set too low only overstates the household), but a
                # share that is not surely its is no sign it followed: its cut window runs in full.
                s[p] -= room * share
                f[p] = min(f[p], s[p])
                if mem.high_early and sure < room * share - 1e-9:
                    mem = renew(mem, high_early=False)
            memories[i] = renew(mem, seen=(s[0], s[1], s[2]), floor=(f[0], f[1], f[2]))
        if together:  # (every follower was raised: _all_followed says so)
            for i, _ in followers:
                mem = memories[i]
                if mem.seen[p] < mem.limit_a:
                    s = list(mem.seen)
                    s[p] = mem.limit_a
                    memories[i] = renew(mem, seen=(s[0], s[1], s[2]), known=True)


def _take_back(site: SiteModel, memories: list[LoadMemory], reported: set[int], p: int, amps: float) -> float:
    """A fresh report says a load that held a share of a rise beside others draws more than it
    was counted at, and the meter did not rise: what it rose by was credited to the others.
    Take it back from what they are credited beyond their certain floor, in proportion: a floor
    left too high hides household, one set too low only overstates it. (A load that was not
    sharing, e.g. one that rose by itself and left the rise to the household, takes nothing
    back: its report just makes the household estimate honest.) Returns the amps taken back."""
    credit = []
    for spec in site.chargers:
        mem = memories[spec.index]
        if p in spec.phase_idx and spec.index not in reported and not mem.offline and mem.seen[p] > mem.floor[p]:
            credit.append((spec.index, mem.seen[p] - mem.floor[p]))
    total = sum(c for _, c in credit)
    if total <= 0:
        return 0.0
    share = min(1.0, amps / total)
    for i, c in credit:
        mem = memories[i]
        s = list(mem.seen)
        s[p] -= c * share
        memories[i] = renew(mem, seen=(s[0], s[1], s[2]))
    return total * share


def _all_followed(memories: list[LoadMemory], p: int, followers: list[tuple[int, float]],
                  share: float) -> bool:
    """Several loads raised together share every rise in proportion, so none of them alone
    may show its whole raise, and a household estimate left high (a fall shared out to them
    earlier) stays high until their next reports. When what the meter has risen by since
    their raises (with this sample's rise) is the sum of their raises, each followed its
    whole raise: each drew its old limit before and draws its new one now. The same inference
    as for one load, so it stays out of `floor` and an overload cut doubts it. Counted before
    any of them is inferred alone this sample (an inference is not a rise the meter showed);
    one inferred in an earlier sample is at its limit and no longer follows."""
    rise = raises = 0.0
    least = math.inf
    for i, room in followers:
        mem = memories[i]
        if not mem.clean or mem.limit_a <= mem.prev_a:
            return False
        rise += mem.seen[p] + room * share - mem.seen0[p]
        raises += mem.limit_a - mem.prev_a
        least = min(least, mem.limit_a - mem.prev_a)
    # Only raises beyond the follow tolerance (as for one load: within it a partial follow, a
    # car stopping short at its own maximum, looks like a whole one), and what is missing must
    # be less than half the smallest raise: one that did not follow must not hide in the sum.
    return least > FOLLOW_TOLERANCE_A and raises - rise < min(FOLLOW_TOLERANCE_A, least / 2)


def _self_fall(site: SiteModel, memories: list[LoadMemory], p: int, amps: float, reported: set[int],
               followers: set[int]) -> None:
    """A fall on phase p no change of ours explains: a car tapering or stopping by itself looks
    the same as a household load switching off. Loads that may have fallen (drawing there, no
    fresh report) are lowered, in proportion to what they draw: a floor set too low only
    overstates the household, a floor left too high would hide the household's next rise."""
    candidates = [spec.index for spec in site.chargers
                  if p in spec.phase_idx and spec.index not in reported and spec.index not in followers
                  and not memories[spec.index].offline and memories[spec.index].seen[p] > 0]
    drawn = sum(memories[i].seen[p] for i in candidates)
    if drawn <= 0:
        return
    share = min(1.0, amps / drawn)
    for i in candidates:
        mem = memories[i]
        s, f = list(mem.seen), list(mem.floor)
        s[p] -= s[p] * share
        f[p] = min(f[p], s[p])
        # Not a sign that it followed a cut of ours: its cut window (if any) runs in full.
        memories[i] = renew(mem, seen=(s[0], s[1], s[2]), floor=(f[0], f[1], f[2]), high_early=False)
