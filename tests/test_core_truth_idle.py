"""Ground truth with cars that take nothing for a while and then start by themselves: full
cars, cars waiting for their own charge timer, cars asleep that start 20 s after they are
offered current (truth_strategies: `idle=True`), on random closed-loop sites.

What holds, against the TRUE currents:
- no measured overload is left standing, and no car stops without an allocator cause;
- a car that starts by itself starts within the limit it holds. Where a rule of the core is
  optimistic about a load whose draw it has not learned (a running load keeps its share after a
  restart; a household rise in the seconds a raise was in flight is credited to that load),
  such a start can take a phase over its limit: that is cut at once, and lasts no longer than
  the cars' response to the cut (the bound below). A car that was raised and showed nothing of
  it is no longer such a load: it takes nothing (controller/core/draw.py)."""

from __future__ import annotations

import pytest
from hypothesis import given

from truth_strategies import closed_loops, describe, truth_settings

pytestmark = pytest.mark.timeout(900)


def _longest_run_s(times: list[float], dt: float) -> float:
    longest = run = 0
    for prev, t in zip([None] + times, times):
        run = run + 1 if prev is not None and abs(t - prev - dt) < 1e-9 else 1
        longest = max(longest, run)
    return longest * dt


@truth_settings(60)
@given(closed_loops(idle=True))
def test_cars_that_start_by_themselves_leave_no_overload_standing(case):
    loop, steps = case
    loop.run(steps)
    report = loop.limit.report()
    assert report.standing_s == 0, (report, describe(loop))
    unexplained = [(ch.spec.id, ch.unexplained[:3]) for ch in loop.chargers if ch.unexplained]
    assert not unexplained, (unexplained, describe(loop))


@truth_settings(60)
@given(closed_loops(idle=True))
def test_an_excursion_a_car_starting_by_itself_makes_is_cut_within_the_cars_response(case):
    loop, steps = case
    loop.run(steps)
    bound = loop.max_response_s + loop.dt  # the cars' response to the cut, and the sample that sees it
    longest = _longest_run_s(loop.limit.blamed_at, loop.dt)
    assert longest <= bound + 1e-9, (longest, loop.limit.blamed_at[:10], describe(loop))
