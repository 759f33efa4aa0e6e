"""Current a car does not use is won back by lowering its limit toward what it draws
(DESIGN.md section 1, invariant 1), never by counting it below its limit.

A car held at 16 A that draws 10 A (its own maximum, a battery near full) keeps 16 A of the
plan: the meter cannot tell its unused 6 A from household load, so the plan must count the 16.
Lowering its limit to its draw plus a margin frees that current honestly. As soon as it draws
up to its lowered limit again, the cap is gone and it is offered its whole share: a car that
wants more is never held below its share for longer than one report.
"""

from __future__ import annotations

from controller.core.draw import FOLLOW_TOLERANCE_A, Draw, LoadMemory
from controller.core.site import ChargerSpec

RECLAIM_MARGIN_A = 2.0  # what a car drawing less than its limit keeps above its draw


def reclaim_cap(spec: ChargerSpec, mem: LoadMemory, d: Draw, response_s: float) -> float | None:
    """The most to give a load whose own fresh report shows it drawing less than its limit,
    or None. Only a report taken once the car had time to follow our last change counts (a
    car still ramping up after a raise is not 'drawing less'); a load known only from the meter
    is never capped on a guess."""
    if mem.limit_a <= 0 or mem.report_at < mem.changed_at + response_s:
        return None
    drawn = max(d.lo[p] for p in spec.phase_idx)
    if drawn >= mem.limit_a - FOLLOW_TOLERANCE_A:
        return None  # it draws up to its limit: offered its whole share
    return max(spec.min_a, round(drawn + RECLAIM_MARGIN_A, 1))
