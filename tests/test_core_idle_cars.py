"""Ground truth: a plugged-in car that takes nothing (full, or waiting for its own timer) holds
no current from the others (controller/core/reclaim.py). It is set to 0 and offered current
again every idle_reoffer_s; a car that wants current then starts like any other, and a car
that starts late once offered current (asleep) is not taken for one that takes nothing.

Found in `evfuse simulate apartment-garage-20`: ten full cars held min_a (6 A) on every phase
through the night, 60 A of a 100 A building, and the cars still charging got 6 A each."""

from __future__ import annotations

from controller.core.causes import Cause
from controller.core.decide import decide, initial_state
from controller.model import CarState, ChargerReading, MeterSample
from controller.sim.offline.cars import Metering
from truth_kit import car, closed_loop, site_of, trace

FOUR = """
[site]
fuse_a = 40
margin_a = 1
[[charger]]
id = "a"
max_a = 16
[[charger]]
id = "b"
max_a = 16
[[charger]]
id = "c"
max_a = 16
[[charger]]
id = "d"
max_a = 16
"""
HOUSEHOLD = [(0.0, (8.0, 8.0, 8.0))]
LIMIT_A = 39.0


def _garage(text: str = FOUR, every_s: float = 0.0):
    """a, b and c hold full cars, d's car wants all it gets; reports per line, live or every_s."""
    site = site_of(text)
    full = {cid: [car(cid, kwh=0.001)] for cid in "abc"}
    metering = {cid: Metering("lines", every_s) for cid in "abcd"}
    return closed_loop(site, HOUSEHOLD, {**full, "d": [car("d")]}, metering=metering)


def _causes(loop) -> dict[str, Cause]:
    return {c.id: c.cause for c in loop.decision.chargers}


def test_full_cars_hold_no_current_from_a_car_that_charges():
    # Held at min_a each, the three full cars left d 39 - 8 - 18 = 13 A of its 16.
    for every_s in (0.0, 10.0):
        loop = _garage(every_s=every_s)
        steps = trace(loop, 240)
        assert max(max(s["true_a"]) for s in steps) <= LIMIT_A
        assert steps[-1]["limit"]["d"] == 16.0, (every_s, steps[-1]["limit"], steps[-1]["reason"])
        for cid in "abc":
            assert steps[-1]["limit"][cid] == 0.0
            assert _causes(loop)[cid] is Cause.TAKES_NOTHING
            assert "offered current again in" in steps[-1]["reason"][cid]


def test_a_car_that_takes_nothing_is_offered_current_again_now_and_then():
    loop = _garage()
    steps = trace(loop, 1000)
    offers = [s["t"] for prev, s in zip(steps, steps[1:]) if prev["limit"]["a"] == 0 < s["limit"]["a"]]
    assert len(offers) >= 2, offers  # every idle_reoffer_s (300 s), each a short while at min_a
    assert all(b - a >= 300 for a, b in zip(offers, offers[1:])), offers
    assert max(max(s["true_a"]) for s in steps) <= LIMIT_A  # a re-offer fits beside d like any start
    assert steps[-1]["limit"]["d"] >= 16.0 - 6.0  # d gives room to a re-offer, then takes it back


def test_a_car_on_its_own_timer_charges_from_the_next_offer_on():
    site = site_of(FOUR)
    loop = closed_loop(site, HOUSEHOLD, {"a": [car("a", timer_s=500.0)]})
    steps = trace(loop, 1200)
    idle = [s["t"] for s in steps if s["limit"]["a"] == 0 and s["t"] < 500]
    assert idle, "it took nothing for 500 s: it should have been set to 0"
    started = next(s["t"] for s in steps if s["draw"]["a"] > 0 and s["t"] >= 500)
    assert started <= 500 + 300 + 10, started  # the next offer after its timer
    assert loop.chargers[0].stops == 0 and loop.chargers[0].starts == 1
    assert steps[-1]["limit"]["a"] == 16.0


def test_a_car_that_starts_late_once_offered_current_is_not_taken_for_idle():
    # Asleep: offered current, it starts 45 s later. Judged on the first reports after the
    # offer, it would be set to 0 before it woke, every time it was offered current again.
    site = site_of(FOUR)
    loop = closed_loop(site, HOUSEHOLD, {"a": [car("a", wake_s=45.0)]})
    steps = trace(loop, 300)
    assert all(s["reason"]["a"].startswith("its car takes nothing") is False for s in steps)
    assert loop.chargers[0].starts == 1 and loop.chargers[0].stops == 0
    assert steps[-1]["limit"]["a"] == 16.0


def test_idle_reoffer_s_0_keeps_a_car_that_takes_nothing_at_min_a():
    loop = _garage(FOUR.replace("[site]", "[control]\nidle_reoffer_s = 0\n[site]"))
    steps = trace(loop, 240)
    assert all(steps[-1]["limit"][cid] >= 6.0 for cid in "abc"), steps[-1]["limit"]
    assert steps[-1]["limit"]["d"] == 13.0


def test_a_charger_that_says_charging_ends_the_idle_state_at_once():
    site = site_of(FOUR)
    state = initial_state(site)
    nothing = ChargerReading(car=CarState.CONNECTED, draw_lines_a=(0.0, 0.0, 0.0))
    t, limits = 0.0, [0.0] * 4
    while t < 120:
        d = decide(site, state, MeterSample(t, (8.0,) * 3), [nothing] * 4, t)
        state, limits, t = d.state, [c.limit_a for c in d.chargers], t + 1
    assert limits == [0.0] * 4 and {c.cause for c in d.chargers} == {Cause.TAKES_NOTHING}
    wants = ChargerReading(car=CarState.CHARGING, draw_lines_a=(0.0, 0.0, 0.0))
    d = decide(site, state, MeterSample(t, (8.0,) * 3), [wants] + [nothing] * 3, t)
    assert d.chargers[0].limit_a == 6.0 and d.chargers[0].changed
    assert [c.limit_a for c in d.chargers[1:]] == [0.0] * 3


def test_cars_charging_on_their_own_fallback_at_start_are_not_taken_for_idle():
    # Started beside two cars drawing their chargers' own 6 A fallback, on chargers that report
    # nothing: the first limit sent (the blind fallback) is no raise of ours, so the meter showing
    # nothing new of it says nothing. Taken as "takes nothing", their 12 A would have been counted
    # twice (in the household and in the plan) and one car shed at once.
    site = site_of("[site]\nfuse_a = 25\nmargin_a = 1\n"
                   '[[charger]]\nid = "a"\nmax_a = 16\n[[charger]]\nid = "b"\nmax_a = 16\n')
    cars = {cid: [car(cid, arrive_s=-10.0)] for cid in "ab"}
    loop = closed_loop(site, [(0.0, (8.0, 8.0, 8.0))], cars, initial_a={"a": 6.0, "b": 6.0},
                       metering={"a": Metering("none"), "b": Metering("none")})
    loop._blind = True  # as the runtime starts: its first decision has no meter sample yet
    steps = trace(loop, 120)
    assert all(ch.stops == 0 for ch in loop.chargers), [s["reason"] for s in steps[-1:]]
    assert all(s["limit"][cid] >= 6.0 for s in steps for cid in "ab")
