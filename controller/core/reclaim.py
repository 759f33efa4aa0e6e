"""Current a car does not use is won back by lowering its limit toward what it draws
(DESIGN.md section 1, invariant 1), never by counting it below its limit.

A car held at 16 A that draws 10 A (its own maximum, a battery near full, a car that paused
itself) keeps 16 A of the plan: the meter cannot tell its unused 6 A from household load, so
the plan must count the 16. Lowering its limit to its draw plus a margin frees that current
honestly, as an ordinary cut (break before make holds for it like for any other).

Only a draw that has settled is reclaimed, so a limit never chases a car's own ramp or a
report that lags the car:
- only the load's own measurement counts (a load known only from the meter is never capped
  on a guess), and only reports taken once the car had time to follow our last change;
- two such reports at least response_s apart must agree (within the follow tolerance):
  a car still ramping up by itself, or one report caught between two states, is left alone.
Once in force the cap is kept until a report shows the car drawing up to it (then it is
offered its whole share again at once), or the car leaves; a car that settles lower still
is capped lower in whole amps, so a tapering battery costs one limit change per amp.

A car that takes nothing at all (full, or waiting for its own timer: its charger says it is
plugged in but not charging, and measures less than IDLE_A on every line, settled as above,
in reports from IDLE_WAKE_S after our last change on: a sleeping car may take that long to start)
cannot be capped at anything from min_a up without holding min_a on every phase it may use:
ten full cars in a garage held 60 A of a 100 A building that way. It is set to 0 instead
(cap 0.0: not a pause of a car that wanted current, so no restart delay), and offered its
share again every `idle_reoffer_s`, or at once when its charger says it is charging: a car
that wants current again starts at min_a like any other. idle_reoffer_s = 0 keeps such a
car at min_a.
"""

from __future__ import annotations

import math

from controller.core.draw import FOLLOW_TOLERANCE_A, LoadMemory, measured, renew
from controller.core.site import ChargerSpec, SiteModel
from controller.model import CarState, ChargerReading

RECLAIM_MARGIN_A = 2.0  # what a car drawing less than its limit keeps above its draw
IDLE_A = 1.0  # a car drawing less than this on every line takes nothing ...
IDLE_WAKE_S = 60.0  # ... once it had this long since our last change (a car woken by current starts late)
PLUGGED = (CarState.CHARGING, CarState.CONNECTED)


def reclaim(spec: ChargerSpec, mem: LoadMemory, r: ChargerReading, site: SiteModel,
            now: float) -> tuple[float | None, LoadMemory]:
    """The most to offer the load (None: its max_a), and its memory with what was noted."""
    cap, low = _decide(spec, mem, r, site, now)
    if (cap, low) != (mem.reclaim_a, mem.low):
        mem = renew(mem, reclaim_a=cap, low=low)
    return cap, mem


def idle_left_s(mem: LoadMemory, site: SiteModel, now: float) -> float:
    """For a car set to 0 because it takes nothing: seconds until it is offered current again."""
    return mem.low[1] + site.control.idle_reoffer_s - now


def _decide(spec: ChargerSpec, mem: LoadMemory, r: ChargerReading, site: SiteModel, now: float):
    if spec.kind == "switch" or r.car not in PLUGGED:
        return None, None  # nothing to win back: no car, a fault, or all-or-nothing
    if mem.reclaim_a == 0.0:  # its car took nothing: 0 until it is offered its share again
        if r.car is CarState.CONNECTED and idle_left_s(mem, site, now) > 0:
            return 0.0, mem.low
        return None, None
    if mem.limit_a <= 0:
        return None, None  # nothing to win back: paused or unknown
    m = measured(spec, r, site)
    if m is None:
        return None, None
    at = now if r.draw_at is None else r.draw_at
    held = mem.reclaim_a
    if at < mem.changed_at + site.control.response_s:
        return held, mem.low  # from before the car could follow our last change: tells nothing new
    drawn = max(m[p] for p in spec.phase_idx)
    if drawn >= mem.limit_a - FOLLOW_TOLERANCE_A:
        return None, None  # it draws up to its limit: its whole share again
    low = mem.low
    if low is None or abs(drawn - low[0]) > FOLLOW_TOLERANCE_A:
        return held, (drawn, at)  # a first sighting, or its draw moved: not settled
    if at - low[1] < site.control.response_s:
        return held, low  # the same report again, or too soon to say it settled
    if max(drawn, low[0]) < IDLE_A and r.car is CarState.CONNECTED and site.control.idle_reoffer_s > 0 \
            and at >= mem.changed_at + IDLE_WAKE_S:
        return 0.0, (drawn, now)  # it takes nothing: 0, offered again idle_reoffer_s from now
    cap = max(spec.min_a, float(math.ceil(max(drawn, low[0]) + RECLAIM_MARGIN_A - 1e-9)))
    if cap > mem.limit_a - 1.0 + 1e-9:
        return held, low  # less than an amp to win: not worth a limit change
    return cap if held is None else min(held, cap), low
