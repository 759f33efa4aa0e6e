"""Issue 10, cases 1-8 of its "Why" list: each reproduced on decide() (or on the closed loop of
controller/sim/offline where the cars' physics is the point), asserting the correct
behaviour in numbers. Each failed on the first-edition core."""

from __future__ import annotations

import pytest

from controller.config import ConfigError
from controller.core.decide import decide, initial_state
from controller.model import CarState, ChargerReading, MeterSample
from controller.sim.offline.cars import Link, Metering
from truth_kit import NOT_MEASURED, car, closed_loop, site_of, trace

FAST_RAMP = "[control]\nramp_up_delay_s = 0\nramp_up_step_a = 80\nramp_up_interval_s = 0.001\n"
EPS = 1e-6


def _run(site, readings_at, meter_at, seconds, step=0.25, state=None, t0=0.0):
    """decide() every `step` s; readings_at(t, limits) and meter_at(t, limits) give the world."""
    state = state or initial_state(site)
    limits = {c.id: 0.0 for c in site.chargers}
    out = []
    t = t0
    while t <= t0 + seconds + EPS:
        d = decide(site, state, MeterSample(t, meter_at(t, limits)), readings_at(t, limits), t)
        state = d.state
        limits = {c.id: c.limit_a for c in d.chargers}
        out.append((t, d))
        t += step
    return out, state


def test_case1_a_non_measuring_charger_frees_no_current_it_does_not_have():
    """Car a: limit 16 A, draws 6 A, its charger reports no currents. Household 10 A, fuse 25,
    margin 1 (limit 24 A), one phase. Car b plugs in. Correct: a's unused 10 A is not free
    (the meter cannot tell it from household): at every decision the limits a + b + the true
    household 10 A stay within 24 A (a + b <= 14 A). The first edition plans a = b = 12 A:
    10 + 6 + 12 = 28 A flows as soon as b follows."""
    site = site_of(FAST_RAMP + '[site]\nphases = 1\nfuse_a = 25\nmargin_a = 1\n'
                   '[[charger]]\nid = "a"\nphases = "A"\n[[charger]]\nid = "b"\nphases = "A"\n')
    b_in = 30.0

    def readings(t, limits):
        return [ChargerReading(car=CarState.CHARGING),
                ChargerReading(car=CarState.CHARGING if t >= b_in else CarState.NO_CAR)]

    def meter(t, limits):  # a draws at most 6 A (its car's own max); b follows at once
        return (10.0 + min(limits["a"], 6.0) + limits["b"], 0.0, 0.0)

    out, _ = _run(site, readings, meter, 90.0)
    assert max(d.chargers[0].limit_a for t, d in out if t < b_in) > 6.0  # a alone charges
    for t, d in out:
        if t >= b_in:
            planned = 10.0 + d.chargers[0].limit_a + d.chargers[1].limit_a
            assert planned <= 24.0 + EPS, (t, [(c.limit_a, c.reason) for c in d.chargers])


def test_case2_freed_current_waits_until_the_cut_load_followed():
    """Break before make. Household 8 A per phase, fuse 25, margin 1 (limit 24 A); car a
    (responds in 4.5 s) charges at 16 A; car b (responds in 1 s) plugs in at 60 s. Correct:
    b's current is granted only once a's cut took effect, so the true current never goes
    above 24 A: 0 s above the limit caused by the controller (no household rise excuses
    anything here). The first edition cuts a and starts b in one decision: 30 A for 3.5 s."""
    site = site_of(FAST_RAMP + '[site]\nfuse_a = 25\nmargin_a = 1\n'
                   '[[charger]]\nid = "a"\n[[charger]]\nid = "b"\n')
    loop = closed_loop(site, [(0.0, (8.0, 8.0, 8.0))],
                       {"a": [car("a", -10.0, delay_s=4.5)], "b": [car("b", 60.0, delay_s=1.0)]})
    steps = trace(loop, 120.0)
    assert max(s["draw"]["a"] for s in steps if s["t"] < 60.0) == 16.0
    assert max(s["draw"]["b"] for s in steps) >= 6.0  # b does start
    assert max(max(s["true_a"]) for s in steps) <= 24.0 + EPS
    assert loop.limit.report().controller_s == 0.0


def test_case3_one_pause_that_clears_every_phase_is_the_only_one():
    """A 3-phase household step of +4 A with two slow 3-phase cars (they respond after 4.5 s,
    overload_pause_s is 3): a (priority 1) and b (priority 2) draw 11 A each on a 3 x 25 A
    site, margin 1, household 2 A -> 6 A. Pausing b (11 A off every phase) clears phases
    A, B and C alike. Correct: a is never paused (its limit never 0), b at most once. The
    first edition pauses b "for phase A" and a "for phase B" in the same decision."""
    site = site_of('[site]\nfuse_a = 25\nmargin_a = 1\n[control]\noverload_pause_s = 3\n'
                   'response_s = 5\nramp_up_delay_s = 0\nramp_up_step_a = 80\n'
                   'ramp_up_interval_s = 0.001\n'
                   '[[charger]]\nid = "a"\nmax_a = 11\npriority = 1\n'
                   '[[charger]]\nid = "b"\nmax_a = 11\npriority = 2\n')
    step_at = 30.0
    sent: list[tuple[float, dict]] = [(-1e9, {"a": 11.0, "b": 11.0})]

    def draws(t):  # the cars follow a limit 4.5 s after it was sent
        now = sent[0][1]
        for at, limits in sent:
            if at + 4.5 <= t:
                now = limits
        return now

    def readings(t, limits):
        if t > 0 and sent[-1][1] != limits:
            sent.append((t - 0.25, dict(limits)))
        d = draws(t)
        return [ChargerReading(car=CarState.CHARGING, draw_lines_a=(d[k],) * 3) for k in ("a", "b")]

    def meter(t, limits):
        h = 6.0 if t >= step_at else 2.0
        d = draws(t)
        return (h + d["a"] + d["b"],) * 3

    out, _ = _run(site, readings, meter, 60.0)
    assert all(d.chargers[0].limit_a >= 10.0 for t, d in out if 5.0 <= t < step_at)
    assert all(d.chargers[0].limit_a > 0 for t, d in out if t >= 5.0), \
        [(t, d.chargers[0].reason) for t, d in out if d.chargers[0].limit_a == 0][:3]
    pauses = [t for (t, d), (_, before) in zip(out[1:], out)
              if d.chargers[1].limit_a == 0 < before.chargers[1].limit_a]
    assert len(pauses) <= 1


@pytest.mark.parametrize("event", ["start", "blip"])
def test_case4_start_up_and_link_blips_stop_no_car(event):
    """One measuring charger (reports every 10 s), household 2 A, fuse 25: plenty of room.
    start: its car draws the 6 A fallback when evfuse starts (the link comes up after 2 s).
    blip: its car charges at 16 A and the link drops for 5 s at 120 s (lease 120 s).
    Correct: the car never stops (0 stops, drawing > 0 A at every step after it first
    drew), and it is back at 16 A within 60 s of the event. The first edition sends 0 A
    "waiting for cars to follow the last raise", then "restart delay": back after ~136 s."""
    site = site_of('[site]\nfuse_a = 25\n[control]\nramp_up_delay_s = 15\n[[charger]]\nid = "a"\n')
    at = 0.0 if event == "start" else 120.0
    blip = (0.0, 2.0) if event == "start" else (120.0, 125.0)
    loop = closed_loop(site, [(0.0, (2.0, 2.0, 2.0))], {"a": [car("a", -10.0, delay_s=2.0)]},
                       metering={"a": Metering("lines", 10.0)}, links={"a": Link(120.0, (blip,))})
    steps = trace(loop, 300.0)
    drawing = [s for s in steps if s["t"] >= 0.25]
    assert all(s["draw"]["a"] > 0 for s in drawing), \
        next((s["t"], s["reason"]) for s in drawing if s["draw"]["a"] == 0)
    assert loop.chargers[0].stops == 0
    assert any(s["draw"]["a"] == 16.0 for s in steps if at < s["t"] <= at + 60.0)


def test_case5_a_charger_that_stops_reporting_blocks_no_start():
    """Charger a reports every 10 s until 27 s (a refused sample interval), so its last
    report predates its last raise (the first raise comes at 15-25 s); charger b's car plugs
    in at 60 s; household 2 A, fuse 32: room for both at 16 A. Correct: a report that never
    comes expires: b draws within 60 s of plugging in (ramp_up_delay_s 15 + response 5 +
    slack). The first edition keeps b at 0 A "waiting for cars to follow the last raise" for
    as long as a is silent (here: the whole 600 s)."""
    site = site_of('[site]\nfuse_a = 32\n[control]\nramp_up_delay_s = 15\n'
                   '[[charger]]\nid = "a"\n[[charger]]\nid = "b"\n')
    loop = closed_loop(site, [(0.0, (2.0, 2.0, 2.0))],
                       {"a": [car("a", 0.0, delay_s=2.0)], "b": [car("b", 60.0, delay_s=2.0)]},
                       metering={"a": Metering("lines", 10.0, stops_s=27.0)})
    steps = trace(loop, 600.0)
    assert any(s["limit"]["a"] > 6.0 for s in steps if s["t"] < 27.0)  # a was raised
    started = [s["t"] for s in steps if s["draw"]["b"] > 0]
    assert started and started[0] <= 120.0, (steps[-1]["reason"])


FOUR_UNDER_16 = """
[site]
fuse_a = 40
[control]
fallback_a = 6
[[charger]]
id = "c1"
[[charger]]
id = "c2"
[[charger]]
id = "c3"
[[charger]]
id = "c4"
[[circuit]]
id = "board"
fuse_a = 16
chargers = ["c1", "c2", "c3", "c4"]
"""


def test_case6_check_config_refuses_fallbacks_that_do_not_fit_their_circuit():
    """Four chargers with fallback_a 6 A under a 16 A circuit would draw 24 A when the
    meter is lost. Correct: the config is refused (ConfigError) with a problem that names the
    circuit and the fallback. The first edition accepts it without a word."""
    with pytest.raises(ConfigError) as err:
        site_of(FOUR_UNDER_16)
    assert any("board" in p and "fallback" in p for p in err.value.problems), err.value.problems


def test_case6_blind_never_raises():
    """Meter lost (stale 10 s): every charger goes to min(its limit now, its fallback).
    Charger a was shed at 0 A (no room beside b), b charges at 10 A; fallback 6 A.
    Correct: a stays at 0 A, b goes to 6 A. The first edition raises a to 6 A."""
    site = site_of(FAST_RAMP + '[site]\nphases = 1\nfuse_a = 19\nmargin_a = 1\n'
                   '[[charger]]\nid = "a"\nphases = "A"\npriority = 2\n'
                   '[[charger]]\nid = "b"\nphases = "A"\npriority = 1\n')
    def readings(t, limits):  # both measure: each car draws its limit
        return [ChargerReading(car=CarState.CHARGING, draw_lines_a=(limits[k],)) for k in ("a", "b")]

    def meter(t, limits):
        return (8.0 + limits["a"] + limits["b"], 0.0, 0.0)

    out, state = _run(site, readings, meter, 10.0)
    before = {c.id: c.limit_a for c in out[-1][1].chargers}
    assert before == {"a": 0.0, "b": 10.0}
    blind = decide(site, state, MeterSample(0.0, (18.0, 0.0, 0.0)), readings(30.0, before), 30.0)
    got = {c.id: c.limit_a for c in blind.chargers}
    assert got == {"a": 0.0, "b": 6.0}, [(c.id, c.limit_a, c.reason) for c in blind.chargers]


def test_case7_an_offline_charger_counts_at_the_limit_it_acknowledged():
    """Circuit 22 A over a and b (neither measures); a charges at 16 A (acknowledged). b's
    car plugs in: the core cuts a 16 -> 11 A, and that command is lost with the link (a goes
    offline still holding 16 A, acked_a = 16, lease 100 s). Correct: while a is offline the
    core counts it at 16 A, so b's limit stays <= 22 - 16 = 6 A. The first edition counts
    the 11 A it sent and gives b 11 A: 27 A on the 22 A circuit."""
    site = site_of(FAST_RAMP + '[site]\nfuse_a = 63\n[[charger]]\nid = "a"\n[[charger]]\nid = "b"\n'
                   '[[circuit]]\nid = "garage"\nfuse_a = 22\nchargers = ["a", "b"]\n')
    held = {"a": 16.0}
    b_in, drop = 20.0, 20.25

    def readings(t, limits):
        if t < drop:
            held["a"] = limits["a"] if t < b_in else held["a"]
            a = ChargerReading(car=CarState.CHARGING, acked_a=held["a"])
        else:
            a = ChargerReading(online=False, car=CarState.CHARGING, acked_a=held["a"],
                               lease_until=drop + 100.0)
        b = ChargerReading(car=CarState.CHARGING if t >= b_in else CarState.NO_CAR,
                           acked_a=limits["b"])
        return [a, b]

    out, _ = _run(site, readings, lambda t, lim: (2.0 + held["a"] + lim["b"],) * 3, 60.0)
    assert held["a"] == 16.0
    for t, d in out:
        if t >= drop:
            assert d.chargers[1].limit_a <= 22.0 - 16.0 + EPS, (t, d.chargers[1])


def test_case8_a_ramp_is_not_gated_by_the_report_interval():
    """One charger reporting per line only every 60 s; ramp_up_delay_s 15, ramp_up_step_a 4,
    ramp_up_interval_s 5, response_s 5; the car (1 s response) plugs in at 0 s drawing the
    6 A fallback; plenty of room. Correct: the car draws 16 A within
    15 + 3 x 5 + 5 = 35 s (+ one 0.25 s sample): the meter confirms each raise. The first
    edition waits for a report from after each raise: the ramp takes minutes."""
    site = site_of('[site]\nfuse_a = 40\n[control]\nramp_up_delay_s = 15\nramp_up_step_a = 4\n'
                   'ramp_up_interval_s = 5\nresponse_s = 5\n[[charger]]\nid = "a"\n')
    loop = closed_loop(site, [(0.0, (2.0, 2.0, 2.0))], {"a": [car("a", 0.0, delay_s=1.0)]},
                       metering={"a": Metering("lines", 60.0)})
    steps = trace(loop, 180.0)
    full = next((s["t"] for s in steps if s["draw"]["a"] >= 16.0), None)
    assert full is not None and full <= 35.25, (full, [(s["t"], s["limit"]["a"]) for s in steps[::20]])


def test_a_non_measuring_charger_is_what_case_1_needs():
    """The harness itself: a charger that measures nothing reports no draw and no power."""
    site = site_of('[site]\nfuse_a = 25\n[[charger]]\nid = "a"\n')
    loop = closed_loop(site, [(0.0, (0.0, 0.0, 0.0))], {"a": [car("a", -10.0)]},
                       metering={"a": NOT_MEASURED})
    trace(loop, 1.0)
    r = loop.chargers[0].reading(1.0)
    assert r.draw_lines_a is None and r.power_w is None and loop.chargers[0].draw_a > 0
