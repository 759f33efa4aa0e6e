"""Ground truth for chargers with several connectors: on random closed-loop sites where some
chargers are twins or pillars (2-3 connectors, each its own load wired its own way, under the
charger's max_a, some sequential), the TRUE currents of every charger's connectors together
never stay above its max_a (nor any phase or circuit above its limit) for the controller's
reasons, and no measured overload is left standing."""

from __future__ import annotations

import pytest
from hypothesis import given

from truth_strategies import closed_loops, describe, truth_settings

pytestmark = pytest.mark.timeout(900)


def _caps(loop):
    return [c for c in loop.site.circuits if c.id.endswith("(charger max_a)")]


@truth_settings(40)
@given(closed_loops(twins=True, taper=False))
def test_no_second_above_a_chargers_cap_or_a_limit_is_the_controllers(case):
    loop, steps = case
    loop.run(steps)
    report = loop.limit.report()
    assert report.controller_s == 0, (report, loop.limit.blamed_at[:5], describe(loop))


@truth_settings(40)
@given(closed_loops(twins=True))
def test_no_measured_overload_is_left_standing_with_connectors(case):
    loop, steps = case
    loop.run(steps)
    report = loop.limit.report()
    assert report.standing_s == 0, (report, describe(loop))


def test_the_random_sites_do_hold_chargers_with_several_connectors():
    """The properties above are about connectors only if the sites drawn have them."""
    seen = []

    @truth_settings(40)
    @given(closed_loops(twins=True))
    def collect(case):
        seen.append(len(_caps(case[0])))

    collect()
    assert sum(1 for n in seen if n) >= len(seen) // 4, seen
