"""Wiring auto-detect and CT inversion (controller/core/wiring.py) in closed loops whose TRUE
wiring or clamp differs from the config: the detector reaches the right answer from the
meter's response to each load's own changes, a correct config is never 'corrected', several
loads changing together and a noisy household do not fool it, and a backwards clamp is
reported with its fix and not believed meanwhile."""

from __future__ import annotations

import random

import pytest
from hypothesis import given

from controller.core.wiring import conclude, corrected, inversions, remapped
from controller.model import MeterSample
from controller.sim.offline.cars import Metering
from truth_kit import NOT_MEASURED, car, closed_loop, site_of
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


class NoisyHousehold:
    """Steps plus up to +-noise_a of jitter per phase and sample (deterministic)."""

    def __init__(self, steps, noise_a: float, seed: int = 7):
        self.steps, self.noise, self.seed = steps, noise_a, seed

    def load_at(self, t: float):
        base = [x for s, x in self.steps if s <= t][-1]
        rnd = random.Random(f"{self.seed}-{t:.2f}")
        return tuple(max(0.0, b + rnd.uniform(-self.noise, self.noise)) for b in base)

    def pv_at(self, t: float):
        return (0.0, 0.0, 0.0)


def _run(site, household, cars, seconds, **kw):
    loop = closed_loop(site, household, cars, latency_s=0.25, **kw)
    first: dict = {}

    def hook(lp, now):
        for c in conclude(site, lp.state.wiring):
            first.setdefault((c.id, c.strength, c.detected), now)
        for c in lp.state.flips:
            first.setdefault(("clamp", c.phase, c.strength), now)

    loop.on_step = hook
    loop.run(int(seconds / loop.dt))
    return loop, first


@pytest.mark.parametrize("metering", [Metering("lines", 0.0), NOT_MEASURED, Metering("lines", 10.0)],
                         ids=["per-line live", "not measured", "per-line every 10 s"])
def test_a_one_phase_charger_on_another_phase_is_detected(metering):
    site = site_of(SITE + '[[charger]]\nid = "garage"\nphases = "A"\nmax_a = 16\n')
    loop, first = _run(site, [(0.0, (2.0, 15.0, 3.0))], {"garage": [car("garage", 0.0, delay_s=2.0, phases=1)]},
                       1200.0, metering={"garage": metering}, wiring={"garage": "B"})
    assert ("garage", "strong", "B") in first, first
    assert not any(k[2] != "B" for k in first if k[0] == "garage")  # never leaned elsewhere
    (c,) = conclude(site, loop.state.wiring)
    assert c.contradicts and c.detected == "B" and c.samples >= 3
    assert 'phases = "A"' in c.text() and "L1 on B" in c.text()
    assert loop.fuse.report().standing_s == 0  # the net kept it safe meanwhile
    fixed = remapped(site, {"garage": c.detected})
    assert fixed.chargers[0].phase_idx == (1,) and fixed.phase_members[1] == (0,)


def test_a_rotated_installation_is_detected_from_a_one_phase_car_with_several_loads_and_noise():
    """Configured ABC, wired CAB (L1 on C), a 1-phase car on it; a correctly wired 3-phase
    neighbour changing at the same times (household steps cut and raise both); the household
    jitters by +-0.8 A per sample."""
    site = site_of(SITE + '[[charger]]\nid = "bay"\nphases = "ABC"\nmax_a = 16\n'
                   '[[charger]]\nid = "next"\nphases = "ABC"\nmax_a = 16\n')
    steps = [(float(t), (3.0, 4.0, 3.0 if (t // 90) % 2 == 0 else 14.0)) for t in range(0, 2400, 90)]
    loop, first = _run(site, NoisyHousehold(steps, 0.8),
                       {"bay": [car("bay", 0.0, delay_s=1.5, phases=1)], "next": [car("next", 0.0, delay_s=3.0)]},
                       2400.0, metering={"bay": NOT_MEASURED, "next": NOT_MEASURED}, wiring={"bay": "CAB"})
    got = {c.id: c for c in conclude(site, loop.state.wiring)}
    assert "next" not in got or not got["next"].contradicts  # the correct one is never corrected
    assert got["bay"].detected == "CAB" and got["bay"].strength == "strong", (got, first)
    assert loop.limit.report().standing_s == 0


@pytest.mark.parametrize("metering", [Metering("lines", 0.0), NOT_MEASURED], ids=["per-line live", "not measured"])
def test_a_rotated_three_phase_charger_gets_its_full_mapping_once_a_one_phase_car_shows_it(metering):
    """Configured ABC, wired CAB. A 3-phase car draws the same on every line: the meter cannot
    tell its lines apart, and nothing hangs on it (it is counted on all three), so nothing is
    concluded from it. The 1-phase car that comes next shows L1 on C: the whole wiring, CAB
    (a rotation, the usual installation error), not only L1."""
    site = site_of(SITE + '[[charger]]\nid = "bay"\nphases = "ABC"\nmax_a = 16\n')
    steps = [(float(t), (3.0, 4.0, 3.0 if (t // 90) % 2 == 0 else 14.0)) for t in range(0, 3600, 90)]
    seen: list = []
    loop = closed_loop(site, NoisyHousehold(steps, 0.5), {"bay": [car("bay", 0.0, delay_s=2.0, depart_s=1200.0),
                                                          car("bay", 1300.0, delay_s=2.0, phases=1)]},
                       metering={"bay": metering}, latency_s=0.25, wiring={"bay": "CAB"})
    loop.on_step = lambda lp, now: seen.append((now, conclude(site, lp.state.wiring)))
    loop.run(int(3600 / loop.dt))
    assert not [c for t, cs in seen if t < 1300 for c in cs if c.contradicts]  # the 3-phase car: nothing
    got = conclude(site, loop.state.wiring)
    assert [(c.detected, c.strength) for c in got] == [("CAB", "strong")], got
    fixed = remapped(site, {c.id: c.detected for c in got}).chargers[0]
    assert fixed.line_phase == (2, 0, 1) and fixed.phase_idx == (0, 1, 2)
    assert loop.limit.report().standing_s == 0


def test_a_backwards_clamp_is_reported_with_its_fix_and_not_believed():
    site = site_of(SITE + '[[charger]]\nid = "abc"\nphases = "ABC"\nmax_a = 16\n')
    steps = [(float(t), (3.0, 3.0, 5.0 if (t // 60) % 2 == 0 else 17.0)) for t in range(0, 1800, 60)]
    loop, first = _run(site, NoisyHousehold(steps, 0.5), {"abc": [car("abc", 0.0, delay_s=2.0)]}, 1200.0,
                       metering={"abc": NOT_MEASURED}, clamp_inverted=(1,))
    (flip,) = inversions(site, loop.state.wiring)
    assert flip.phase == 1 and flip.strength == "strong", first
    assert 'invert = "B"' in flip.text()
    assert ("clamp", 1, "leaning") in first and first[("clamp", 1, "leaning")] < first[("clamp", 1, "strong")]
    # Not believed: leaning or strong, the larger of both readings (once the clamp is turned
    # round, before the evidence catches up, the true reading still counts in full).
    assert corrected(MeterSample(0.0, (3.0, -20.0, 4.0)), (flip,)).current_a == (3.0, 20.0, 4.0)
    assert corrected(MeterSample(0.0, (3.0, 20.0, 4.0)), (flip,)).current_a == (3.0, 20.0, 4.0)
    lean = flip.__class__(1, "leaning", 7.0, 0.9)
    assert corrected(MeterSample(0.0, (3.0, -20.0, 4.0)), (lean,)).current_a == (3.0, 20.0, 4.0)
    assert corrected(MeterSample(0.0, (3.0, 20.0, 4.0)), (lean,)).current_a == (3.0, 20.0, 4.0)
    assert not conclude(site, loop.state.wiring) or not conclude(site, loop.state.wiring)[0].contradicts


def test_a_backwards_clamp_on_a_loaded_phase_no_longer_hides_an_overload():
    """Household 20 A on B behind a backwards clamp (it reads -20 A or less): once the clamp is
    known to read backwards, the car is held to B's real room."""
    site = site_of(SITE + '[[charger]]\nid = "abc"\nphases = "ABC"\nmax_a = 16\n')
    steps = [(float(t), (3.0, 3.0, 5.0 if (t // 60) % 2 == 0 else 17.0)) for t in range(0, 900, 60)]
    steps.append((900.0, (3.0, 20.0, 3.0)))
    loop, first = _run(site, steps, {"abc": [car("abc", 0.0, delay_s=2.0)]}, 1200.0,
                       metering={"abc": Metering("lines", 0.0)}, clamp_inverted=(1,))
    assert ("clamp", 1, "strong") in first and first[("clamp", 1, "strong")] < 900
    assert loop.decision.chargers[0].limit_a <= 4.0 + 1e-6  # 24 - 20 A on B
    assert max(loop.true_a) <= site.limit_a + 1e-6


@truth_settings(40)
@given(closed_loops())
def test_a_correct_config_is_never_corrected(case):
    loop, steps = case
    loop.run(steps)
    wrong = [c for c in conclude(loop.site, loop.state.wiring) if c.contradicts]
    assert not wrong, (wrong, describe(loop))
    assert not inversions(loop.site, loop.state.wiring), describe(loop)


@truth_settings(40)
@given(closed_loops(wrong_wiring=True))
def test_what_the_detector_concludes_on_a_miswired_site_is_the_truth(case):
    loop, steps = case
    loop.run(steps)
    true = {ch.spec.id: ch.wiring for ch in loop.chargers}
    for c in conclude(loop.site, loop.state.wiring):
        if c.strength == "strong":  # the whole wiring (a rotation), not only L1
            assert c.detected == true[c.id], (c, describe(loop))
    assert not [f for f in inversions(loop.site, loop.state.wiring) if f.strength == "strong"], describe(loop)
