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
"""

from __future__ import annotations

import math

from controller.core.draw import FOLLOW_TOLERANCE_A, LoadMemory, measured, renew
from controller.core.site import ChargerSpec, SiteModel
from controller.model import CarState, ChargerReading

RECLAIM_MARGIN_A = 2.0  # what a car drawing less than its limit keeps above its draw
PLUGGED = (CarState.CHARGING, CarState.CONNECTED)


def reclaim(spec: ChargerSpec, mem: LoadMemory, r: ChargerReading, site: SiteModel,
            now: float) -> tuple[float | None, LoadMemory]:
    """The most to offer the load (None: its max_a), and its memory with what was noted."""
    cap, low = _decide(spec, mem, r, site, now)
    if (cap, low) != (mem.reclaim_a, mem.low):
        mem = renew(mem, reclaim_a=cap, low=low)
    return cap, mem


def _decide(spec: ChargerSpec, mem: LoadMemory, r: ChargerReading, site: SiteModel, now: float):
    if spec.kind == "switch" or r.car not in PLUGGED or mem.limit_a <= 0:
        return None, None  # nothing to win back: off, paused, unknown, or all-or-nothing
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
    cap = max(spec.min_a, float(math.ceil(max(drawn, low[0]) + RECLAIM_MARGIN_A - 1e-9)))
    if cap > mem.limit_a - 1.0 + 1e-9:
        return held, low  # less than an amp to win: not worth a limit change
    return cap if held is None else min(held, cap), low
