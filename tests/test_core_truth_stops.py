"""Ground truth, invariant 9: on random closed-loop sites, no car stops unless the allocator
chose it (a decision whose cause is one of `Cause.stops`: shed, overload pause, net,
surplus). Controller restarts, link blips (shorter than the lease) and late or missing
reports never stop a car that charges within its share."""

from __future__ import annotations

import pytest
from hypothesis import given

from truth_strategies import closed_loops, describe, truth_settings

pytestmark = pytest.mark.timeout(900)


@truth_settings(60)
@given(closed_loops())
def test_every_stop_has_an_allocator_cause(case):
    loop, steps = case
    loop.run(steps)
    unexplained = [(ch.spec.id, ch.unexplained[:3]) for ch in loop.chargers if ch.unexplained]
    assert not unexplained, (unexplained, describe(loop))
