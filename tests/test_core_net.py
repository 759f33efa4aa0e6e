"""Invariant 2's net (controller/core/net.py) against the TRUE currents of a simulated site
whose wiring differs from its config: an overload the model cannot explain is removed within
overload_pause_s + response_s, the loads cut carry Cause.NET, and the decision names the phase
and what was cut."""

from __future__ import annotations

import pytest

from controller.core.causes import Cause
from controller.core.net import NetFault
from controller.sim.offline.cars import Metering
from hypothesis import given

from truth_kit import NOT_MEASURED, car, closed_loop, site_of, trace
from truth_strategies import closed_loops, describe, truth_settings

pytestmark = pytest.mark.timeout(900)

SITE = """
[site]
fuse_a = 25
margin_a = 1
[control]
response_s = 5
overload_pause_s = 6
restart_delay_s = 120
"""


def _over_runs(rows, phase: int, limit: float) -> list[tuple[float, float]]:
    """(start, length) of every run of samples with the TRUE current on `phase` above `limit`."""
    runs, start, last = [], None, None
    for row in rows:
        over = row["true_a"][phase] > limit + 1e-6
        if over and start is None:
            start = row["t"]
        if not over and start is not None:
            runs.append((start, row["t"] - start))
            start = None
        last = row["t"]
    if start is not None:
        runs.append((start, last - start))
    return runs


def _issue_site(metering):
    site = site_of(SITE + '[[charger]]\nid = "garage"\nphases = "A"\nmax_a = 16\n')
    # Configured on A, really on B, where the household draws 15 A: 15 + 16 = 31 A on a 25 A fuse.
    loop = closed_loop(site, [(0.0, (2.0, 15.0, 3.0))], {"garage": [car("garage", 0.0, delay_s=2.0, phases=1)]},
                       metering={"garage": metering}, latency_s=0.25, wiring={"garage": "B"})
    return site, loop


def _check_issue_case(metering):
    site, loop = _issue_site(metering)
    rows = trace(loop, 400.0)
    bound = site.control.overload_pause_s + site.control.response_s + 2 * loop.dt
    runs = _over_runs(rows, 1, site.limit_a)
    assert runs, "the miswired car never overloaded phase B: the case is not exercised"
    assert all(length <= bound for _, length in runs), (runs, bound)
    cuts = [r for r in rows if r["reason"]["garage"].startswith("overload the model cannot explain on phase B")]
    assert cuts, "the net never cut the charger"
    # It cuts, waits its restart delay, restarts, and is cut again: never left standing.
    assert loop.fuse.report().standing_s == 0
    assert loop.limit.report().standing_s == 0
    return loop


def test_a_charger_wired_to_another_phase_is_cut_by_the_net():
    _check_issue_case(Metering("lines", 0.0))


def test_the_net_cuts_a_miswired_charger_that_does_not_measure():
    _check_issue_case(NOT_MEASURED)


def test_the_decision_names_the_phase_and_what_was_cut():
    site, loop = _issue_site(Metering("lines", 0.0))
    faults: list[NetFault] = []
    causes = set()

    def hook(lp, now):
        faults.extend(lp.decision.net)
        causes.add(lp.decision.chargers[0].cause)

    loop.on_step = hook
    loop.run(int(30 / loop.dt))
    assert Cause.NET in causes
    assert faults and {f.constraint for f in faults} == {"phase B"}
    assert faults[-1].cut == ("garage",)
    assert "phase B" in faults[-1].text() and "garage" in faults[-1].text()
    # The fault ends with the overload.
    assert loop.decision.net == ()


def test_a_rotated_installation_with_one_phase_cars_is_kept_under_the_fuse():
    """Configured ABC, really wired CAB: a 1-phase car draws on C where the model expects A;
    the household loads C heavily."""
    site = site_of(SITE + '[[charger]]\nid = "bay1"\nphases = "ABC"\nmax_a = 16\n'
                   '[[charger]]\nid = "bay2"\nphases = "A"\nmax_a = 16\n')
    loop = closed_loop(site, [(0.0, (4.0, 3.0, 14.0))],
                       {"bay1": [car("bay1", 0.0, delay_s=3.0, phases=1)],
                        "bay2": [car("bay2", 0.0, delay_s=1.0, phases=1)]},
                       latency_s=0.25, wiring={"bay1": "CAB"})
    rows = trace(loop, 400.0)
    bound = site.control.overload_pause_s + site.control.response_s + 2 * loop.dt
    assert all(length <= bound for _, length in _over_runs(rows, 2, site.limit_a))
    assert loop.fuse.report().standing_s == 0


def test_a_correct_config_never_meets_the_net():
    """Correctly wired, household steps that the fast path handles: the net never cuts."""
    site = site_of(SITE + '[[charger]]\nid = "a"\nphases = "A"\nmax_a = 16\n'
                   '[[charger]]\nid = "abc"\nphases = "ABC"\nmax_a = 16\npriority = 2\n')
    loop = closed_loop(site, [(0.0, (3.0, 3.0, 3.0)), (60.0, (12.0, 9.0, 3.0)), (120.0, (20.0, 3.0, 15.0)),
                              (200.0, (2.0, 2.0, 2.0))],
                       {"a": [car("a", 0.0, delay_s=4.5, phases=1)], "abc": [car("abc", 0.0, delay_s=2.0)]},
                       metering={"abc": NOT_MEASURED}, latency_s=0.25)
    rows = trace(loop, 300.0)
    assert not any(r["reason"][k].startswith("overload the model cannot explain") for r in rows for k in r["reason"])


@truth_settings(120)
@given(closed_loops(wrong_wiring=True))
def test_no_overload_is_left_standing_on_a_miswired_site(case):
    """Random sites (slow cars, late or missing reports, blips, restarts) where chargers are
    wired otherwise than configured: no measured overload outlives the bound."""
    loop, steps = case
    loop.run(steps)
    for report in (loop.fuse.report(), loop.limit.report()):
        assert report.standing_s == 0, (report, describe(loop))
