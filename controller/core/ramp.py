"""From a load's target to the limit sent: decreases at once, increases gently (DESIGN.md
section 1, invariant 3), and the bookkeeping of what it may still follow after a change."""

from __future__ import annotations

from controller.core.causes import Cause
from controller.core.draw import ATTRIBUTION_SLACK_S, FOLLOW_TOLERANCE_A, UNKNOWN, LoadMemory, high_now, renew
from controller.core.site import ChargerSpec, SiteModel
from controller.model import ZERO

# How long a raise within the dead band must hold before it is sent: long enough that the
# least target over it has seen the household's usual noise, so the raise does not run into
# the next noisy sample and come back as a cut.
BAND_HOLD_S = 30.0


def commanded(mem: LoadMemory, held: float, new: float, now: float, response_s: float) -> LoadMemory:
    """Record a new limit. `held` is what it may hold now (its limit, or after a reconnect the
    most it may hold). After a decrease the old limit stays 'in flight' for response_s: the
    car may still draw it, so the current is not free for others before it follows."""
    if new == mem.limit_a:
        return mem
    # Only a change made once the one before had time to show on the meter can be read from it
    # alone (a late rise from the change before would look like this one's).
    clean = now - mem.changed_at >= response_s + ATTRIBUTION_SLACK_S
    if new >= held:
        # A first raise, from a limit we know it holds, of a load whose draw is not learned and
        # that shows nothing: if the meter shows nothing of it either, its car takes nothing
        # (draw.py). (From UNKNOWN it may hold its own fallback and draw it: no raise at all.)
        unseen = mem.unseen_since
        if unseen is None and not mem.known and mem.limit_a != UNKNOWN and \
                new > mem.limit_a + FOLLOW_TOLERANCE_A and mem.seen == ZERO:
            unseen = now
        return renew(mem, limit_a=new, prev_a=max(held, 0.0), changed_at=now, seen0=mem.seen, clean=clean,
                     own_fallback=True, unseen_since=unseen)
    was_above = max(mem.seen) > new + FOLLOW_TOLERANCE_A
    return renew(mem, limit_a=new, prev_a=max(held, 0.0), changed_at=now, seen0=mem.seen, clean=clean,
                 own_fallback=True, high_a=max(held, high_now(mem, now)), high_until=now + response_s,
                 high_early=was_above)


def step(spec: ChargerSpec, mem: LoadMemory, held: float, target: float, cause: Cause,
         site: SiteModel, now: float) -> tuple[float, LoadMemory, Cause]:
    """Ramp, dead band and pause bookkeeping for one load's target. `held` is what it may hold
    now (for a load whose limit is UNKNOWN after a reconnect or start: its bound), so a car
    that comes back charging carries on where it was instead of restarting from nothing."""
    if target <= 0 and mem.limit_a == 0 and mem.cause is cause and mem.hold_since is None and (
            mem.paused_at is None or cause.stops or cause.waits or cause is Cause.WAIT_FOLLOW):
        return 0.0, mem, cause  # at 0 for the same reason as before: nothing to note (most loads)
    ctl = site.control
    current = held if mem.limit_a == UNKNOWN else mem.limit_a
    if target <= 0:
        if cause.stops:
            paused = now if current > 0 else mem.paused_at
        elif cause.waits or cause is Cause.WAIT_FOLLOW:
            paused = mem.paused_at
        else:  # no car, mode off, fault, user hold: nothing to protect the car from
            paused = None
        hold = mem.hold_since if cause is Cause.RESTART_WAIT else None
        new = _noted(mem, paused_at=paused, hold_since=hold, cause=cause)
        return 0.0, commanded(new, current, 0.0, now, ctl.response_s), cause
    if current < spec.min_a:  # start, restart, or a fallback below min_a: go to min_a first
        start = min(target, spec.min_a)
        why = cause if start == target else Cause.STARTING
        new = _noted(mem, paused_at=None, hold_since=None, cause=why)
        return start, commanded(new, current, start, now, ctl.response_s), why
    # From here on it runs (current >= min_a > 0): an allocator pause is over, so a link blip or
    # a reconnect later is no restart that waits for its delay again.
    if target < current:
        new = _noted(mem, paused_at=None, hold_since=None, cause=cause)
        return target, commanded(new, current, target, now, ctl.response_s), cause
    if target - current < max(ctl.dead_band_a, 1e-9):
        if _follow_shows(mem, ctl, now):
            return _ramp_tail(mem, current, target, cause, ctl, now)
        return _within_dead_band(mem, current, target, cause, ctl, now)
    since = mem.hold_since if mem.hold_since is not None else now
    if now - since < ctl.ramp_up_delay_s:
        why = Cause.RAMP_HOLD
    elif now - mem.changed_at < ctl.ramp_up_interval_s:
        why = Cause.RAMPING
    else:
        new_limit = min(target, current + ctl.ramp_up_step_a)
        why = cause if new_limit == target else Cause.RAMPING
        holding = _noted(mem, paused_at=None, hold_since=since, cause=why)
        return new_limit, commanded(holding, current, new_limit, now, ctl.response_s), why
    return current, commanded(_noted(mem, paused_at=None, hold_since=since, cause=why), current,
                              current, now, ctl.response_s), why


def _follow_shows(mem: LoadMemory, ctl, now: float) -> bool:
    """Its last ramp step is still showing on the meter. A raise that the car follows tells
    what the loads drew (a full follow shows it drew its old limit), so the household estimate
    often falls right after it, by knowledge rather than by a change in the household: the
    room it reveals has held as long as the ramp has. Until the step has had time to show,
    the ramp is not over, and its hold is not started anew."""
    return (mem.hold_since is not None and mem.limit_a > mem.prev_a
            and now - mem.changed_at <= ctl.response_s + ATTRIBUTION_SLACK_S)


def _ramp_tail(mem: LoadMemory, current: float, target: float, cause: Cause, ctl,
               now: float) -> tuple[float, LoadMemory, Cause]:
    """Within the dead band while its last ramp step shows: the ramp keeps its hold, and a
    step of at least the dead band may be followed by one smaller raise (what that step's
    follow revealed), once the ramp interval allows. One only: that raise, smaller than the
    dead band, ends the ramp when it has shown, so household noise cannot chain small raises."""
    if target > current and mem.limit_a - mem.prev_a >= ctl.dead_band_a \
            and now - mem.changed_at >= ctl.ramp_up_interval_s:
        new = _noted(mem, paused_at=None, hold_since=mem.hold_since, cause=cause)
        return target, commanded(new, current, target, now, ctl.response_s), cause
    new = _noted(mem, paused_at=None, hold_since=mem.hold_since, cause=cause)
    return current, commanded(new, current, current, now, ctl.response_s), cause


def _within_dead_band(mem: LoadMemory, current: float, target: float, cause: Cause, ctl,
                      now: float) -> tuple[float, LoadMemory, Cause]:
    """A raise smaller than the dead band is not sent at once: it would chatter with the
    household's noise. One that holds for BAND_HOLD_S (or ramp_up_delay_s if longer) is no
    noise (a household estimate that read high for a moment would otherwise keep a car below
    its share for good): it is sent then, by the least it was over that time, which is what
    the noisiest household of that time left room for."""
    if target <= current:
        band = None
    else:
        since, least = mem.band if mem.band is not None else (now, target)
        band = (since, min(least, target))
        if now - since >= max(ctl.ramp_up_delay_s, BAND_HOLD_S):
            new = _noted(mem, paused_at=None, hold_since=None, cause=cause)
            return band[1], commanded(new, current, band[1], now, ctl.response_s), cause
    new = _noted(mem, paused_at=None, hold_since=None, cause=cause, band=band)
    return current, commanded(new, current, current, now, ctl.response_s), cause


def _noted(mem: LoadMemory, paused_at: float | None, hold_since: float | None, cause: Cause,
           band: tuple[float, float] | None = None) -> LoadMemory:
    """mem with its pause, hold, dead band and cause bookkeeping set: renewed only when one
    differs (a load holding steady costs no copy)."""
    if mem.paused_at == paused_at and mem.hold_since == hold_since and mem.cause is cause and mem.band == band:
        return mem
    return renew(mem, paused_at=paused_at, hold_since=hold_since, cause=cause, band=band)
