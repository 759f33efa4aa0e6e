"""Safety invariants of DESIGN.md section 1 over random sites, wirings, circuits, modes, link
states and loads (hypothesis). Each run is a sequence of decisions with the time moving on,
the household jumping about and chargers coming and going.

What the test recomputes on its own, from the rules (not from the core's internals):
EV draw is each charger's measurement — except a report from before the car could follow our
last raise, taken while it used all of its old limit: that car counts at its new limit; a
charger with its link down counts at the limit it holds until its lease ends, then at
fallback; a non-compliant charger counts at its draw. Household = meter - EV draw, not below 0.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from controller.config import ConfigError, parse_config
from controller.core.causes import Cause
from controller.core.decide import _seconds, decide, initial_state
from controller.core.site import SiteModel
from controller.model import CarState, ChargerReading, MeterSample, lines_to_site

# 300 random sequences per property take ~20 s here; a loaded shared machine can take 6x that.
pytestmark = pytest.mark.timeout(900)

EPS = 1e-6
MODES = ["standard", "standard", "standard", "solar-priority", "solar-only", "excess", "off"]
CARS = [CarState.CHARGING, CarState.CHARGING, CarState.CONNECTED, CarState.UNKNOWN,
        CarState.NO_CAR, CarState.FAULT]


@st.composite
def sites(draw):
    phases = draw(st.integers(1, 3))
    names = "ABC"[:phases]
    n = draw(st.integers(1, 7))
    lines = ["[site]", f"phases = {phases}", f"fuse_a = {draw(st.integers(10, 80))}",
             f"margin_a = {draw(st.sampled_from([0, 0.5, 1, 2]))}",
             f"max_import_kw = {draw(st.sampled_from([0, 0, 4, 11, 30]))}",
             '[meter]', 'host = "127.0.0.1"', 'stale_after_s = 3',
             "[control]",
             f"ramp_up_delay_s = {draw(st.sampled_from([0, 2, 15]))}",
             f"ramp_up_step_a = {draw(st.sampled_from([1, 4, 80]))}",
             f"restart_delay_s = {draw(st.sampled_from([5, 30, 120]))}",
             "restart_hysteresis_a = 0",
             f"response_s = {draw(st.sampled_from([1, 5]))}",
             f"overload_pause_s = {draw(st.sampled_from([2, 6]))}",
             f"fallback_a = {draw(st.sampled_from([0, 6, 10]))}",
             f"solar_start_delay_s = {draw(st.sampled_from([0, 10]))}",
             f"solar_stop_grace_s = {draw(st.sampled_from([0, 10]))}"]
    ids = [f"c{i}" for i in range(n)]
    for cid in ids:
        width = draw(st.integers(1, phases))
        wiring = "".join(draw(st.permutations(names))[:width])
        lo = draw(st.sampled_from([1, 5, 6, 6, 8]))
        hi = draw(st.integers(lo, 32))
        lines += ["[[charger]]", f'id = "{cid}"', f'phases = "{wiring}"', f"min_a = {lo}",
                  f"max_a = {hi}", f"priority = {draw(st.integers(1, 3))}",
                  f"weight = {draw(st.sampled_from([0.5, 1, 2, 3]))}",
                  f'mode = "{draw(st.sampled_from(MODES))}"']
    pool = list(ids)
    parent = ""
    for k in range(draw(st.integers(0, 2))):
        members = [c for c in pool if draw(st.booleans())]
        pool = [c for c in pool if c not in members]
        lines += ["[[circuit]]", f'id = "k{k}"', f"fuse_a = {draw(st.integers(8, 40))}",
                  "chargers = [" + ", ".join(f'"{c}"' for c in members) + "]"]
        if parent:
            lines.append(f'parent = "{parent}"')
        parent = f"k{k}"  # a later circuit nests inside the one before (or not)
        if draw(st.booleans()):
            parent = ""
    try:
        cfg = parse_config(tomllib.loads("\n".join(lines)), "prop.toml")
    except ConfigError as e:  # fallbacks that would overload a circuit: check-config refuses it
        assert all("at their fallback" in p for p in e.problems), e.problems
        assume(False)
    return SiteModel.from_config(cfg)


@st.composite
def steps(draw, n_chargers):
    out = []
    for _ in range(draw(st.integers(3, 30))):
        chargers = []
        for _ in range(n_chargers):
            chargers.append(dict(
                online=draw(st.sampled_from([True] * 8 + [False])),
                compliant=draw(st.sampled_from([True] * 8 + [False])),
                car=draw(st.sampled_from(CARS)),
                follow=draw(st.sampled_from([1.0, 1.0, 0.5, 0.0, 1.3])),  # draw vs. limit
                lease=draw(st.sampled_from([None, -5.0, 30.0])),
                report_age=draw(st.sampled_from([None, 0.0, 1.0, 3.0, 8.0])),
            ))
        out.append(dict(
            dt=draw(st.sampled_from([0.25, 0.25, 1.0, 5.0, 20.0])),
            household=[draw(st.floats(-20, 60, allow_nan=False)) for _ in range(3)],
            stale=draw(st.sampled_from([False] * 12 + [True])),
            chargers=chargers,
        ))
    return out


def _on(spec, amps):
    out = [0.0, 0.0, 0.0]
    for p in spec.phase_idx:
        out[p] = amps
    return out


class Checker:
    """Runs the sequence and checks every decision."""

    def __init__(self, site: SiteModel, twin: SiteModel | None = None):
        self.site = site
        self.twin = twin  # same site without a slow path: its decreases must match ours
        self.state = initial_state(site)
        self.limits = [0.0] * len(site.chargers)
        self.paused_at: list[float | None] = [None] * len(site.chargers)
        self.raised: list[tuple[float, float]] = [(-1e9, 0.0)] * len(site.chargers)  # (at, from)
        self.online = [True] * len(site.chargers)
        self.report_at = [-1e9] * len(site.chargers)
        self.true_lines: list = [None] * len(site.chargers)
        self.true_since = [-1e9] * len(site.chargers)
        self.t = 0.0
        d = decide(site, self.state, None, [ChargerReading()] * len(site.chargers), 0.0)
        self.apply(d)

    def apply(self, d):
        self.state = d.state
        self.limits = [c.limit_a for c in d.chargers]

    def step(self, s):
        site = self.site
        self.t += s["dt"]
        readings, est, fixed, following = [], [], [], set()
        for spec, c, limit in zip(site.chargers, s["chargers"], self.limits):
            draw_a = limit * c["follow"] if c["car"] in (CarState.CHARGING, CarState.UNKNOWN) else 0.0
            lines = (draw_a,) * len(spec.wiring)
            lease = None if c["lease"] is None else self.t + c["lease"]
            age = c["report_age"]
            # The values here are the draw now: a report carrying them is never older than the
            # moment the draw took that value, nor than one the core already has.
            if lines != self.true_lines[spec.index]:
                self.true_lines[spec.index], self.true_since[spec.index] = lines, self.t
            at = self.t if age is None else min(self.t, max(self.t - age, self.true_since[spec.index],
                                                           self.report_at[spec.index] + 1e-3))
            self.report_at[spec.index] = at
            r = ChargerReading(online=c["online"], car=c["car"], draw_lines_a=lines,
                               draw_at=None if age is None else at,
                               lease_until=lease, compliant=c["compliant"])
            readings.append(r)
            measured = list(lines_to_site(spec.wiring, lines))
            if not r.online:
                fb = site.fallback_a(spec)
                if lease is not None and self.t < lease:
                    e = [max(a, b) for a, b in zip(_on(spec, limit), measured)]
                else:
                    e = _on(spec, max(limit, fb) if lease is None else fb)
                est.append(e)
                fixed.append(True)
            else:
                held = limit if self.online[spec.index] else 0.0  # back online: limit unknown
                at, before = self.raised[spec.index]
                if (r.compliant and r.draw_at is not None and r.draw_at < at + site.control.response_s
                        and held > 0 and max(measured) >= before - 1.0):
                    measured = [max(m, held) if p in spec.phase_idx else m for p, m in enumerate(measured)]
                    following.add(spec.index)
                est.append(measured)
                fixed.append(not r.compliant)
        meter = tuple(s["household"][p] + sum(e[p] for e in est) if p < site.phases else 0.0
                      for p in range(3))
        sample_t = self.t - 10.0 if s["stale"] else self.t
        prev = list(self.limits)
        sample = MeterSample(sample_t, meter)
        if self.twin is not None:
            fast = decide(self.twin, self.state, sample, readings, self.t)
        d = decide(site, self.state, sample, readings, self.t)
        self.apply(d)
        was_online = self.online
        self.online = [c["online"] for c in s["chargers"]]
        # Without a slow path the twin also restarts paused chargers at once (no waiting for
        # the room to hold) and lowers others to make room: compare only when both start the
        # same chargers. Safety does not rest on this: invariant 1 is checked on every step.
        # Stopped loads must also be in the same place (waiting for room, for a cut to follow,
        # shed): a load the twin restarts at once takes room the slow core still keeps for others.
        if self.twin is not None and all((t.limit_a > 0) == (m.limit_a > 0) and t.cause is m.cause
                                         for t, m, b in zip(fast.chargers, d.chargers, prev) if b <= 0):
            for mine, theirs, before in zip(d.chargers, fast.chargers, prev):
                if theirs.limit_a < before:
                    assert mine.limit_a == theirs.limit_a and mine.changed, (mine, theirs, before)
        if s["stale"]:
            assert d.fallback
            for spec, c, before in zip(site.chargers, d.chargers, prev):
                # Blind never raises: at most its fallback, and never above its limit before
                # (a load whose limit is unknown after a reconnect gets its fallback).
                assert c.limit_a <= site.fallback_a(spec) + EPS, c
                assert c.limit_a <= max(before, 0.0) + EPS or c.limit_a == site.fallback_a(spec), (c, before)
            self.paused_at = [None] * len(site.chargers)
            self.raised = [(-1e9, 0.0)] * len(site.chargers)
            return
        assert d.fallback is None
        household = [max(0.0, meter[p] - sum(e[p] for e in est)) for p in range(3)]
        self.check_limits_and_bounds(d, est, fixed, household)
        # Shedding is judged on the draw the core assumed: it may count a compliant car below
        # its report (never above what it is allowed), which only makes the core stricter
        # than the check of invariant 1 above.
        assumed = [list(e) for e in d.draw_a]
        assumed_household = list(d.household_a)  # the core's own upper bound of the household
        self.check_shedding(d, assumed, fixed, assumed_household)
        self.check_restart_delay(d, prev)
        for i, c in enumerate(d.chargers):
            back = not was_online[i]  # back online, its limit was unknown: any start is a raise from 0
            if c.changed and not fixed[i] and self.online[i] and c.limit_a > 0 and \
                    (back or c.limit_a > max(prev[i], 0.0)):
                self.raised[i] = (self.t, 0.0 if back else max(prev[i], 0.0))

    def constraints(self, est, fixed, household):
        """(members as {index: coefficient}, capacity) for every limit of the site."""
        site = self.site
        out = []
        for p in site.phase_range:
            fx = sum(est[s.index][p] for s in site.chargers if fixed[s.index])
            members = {s.index: 1.0 for s in site.chargers if p in s.phase_idx and not fixed[s.index]}
            out.append((members, site.limit_a - household[p] - fx))
        for circuit in site.circuits:
            for p in site.phase_range:
                inside = [site.chargers[i] for i in circuit.members if p in site.chargers[i].phase_idx]
                fx = sum(est[s.index][p] for s in inside if fixed[s.index])
                out.append(({s.index: 1.0 for s in inside if not fixed[s.index]}, circuit.limit_a - fx))
        if site.max_import_w:
            v = site.voltage_v
            fx = sum(sum(est[s.index]) for s in site.chargers if fixed[s.index]) * v
            members = {s.index: v * s.n_phases for s in site.chargers if not fixed[s.index]}
            out.append((members, site.max_import_w - sum(household) * v - fx))
        return out

    def check_limits_and_bounds(self, d, est, fixed, household):
        # Invariant 1: never plan an overload, at the site, every circuit and the import cap.
        for members, capacity in self.constraints(est, fixed, household):
            planned = sum(coef * d.chargers[i].limit_a for i, coef in members.items())
            if planned > 0:
                assert planned <= capacity + EPS, (members, capacity, est, d.draw_a, d.chargers, d.household_a)
        # No charger above max_a, nor running below min_a.
        # (A load held where it was while a cut elsewhere takes effect may sit below min_a for
        # that moment, e.g. at a fallback below min_a: holding is no raise and no stop.)
        for spec, c, f in zip(self.site.chargers, d.chargers, fixed):
            if not f and c.cause is not Cause.WAIT_FOLLOW:
                assert c.limit_a == 0 or spec.min_a - EPS <= c.limit_a <= spec.max_a + EPS, c

    def check_shedding(self, d, est, fixed, household):
        # Invariant 4: a shed charger could not have run at min_a beside the running ones
        # (within a micro-amp: a floor that misses by 1e-7 A does not fit either).
        if any(c.cause in (Cause.OVERLOAD_PAUSE, Cause.NET) for c in d.chargers):
            return  # a persistence pause (or the net's cut) comes after sharing; shedding is judged without it
        cons = self.constraints(est, fixed, household)
        # A start held back until a cut load follows (break before make), or until its turn to
        # start alone (core/turns.py), holds its room.
        running = {i for i, c in enumerate(d.chargers)
                   if (c.limit_a > 0 or c.cause in (Cause.WAIT_FOLLOW, Cause.WAIT_TURN)) and not fixed[i]}
        for i, c in enumerate(d.chargers):
            if c.cause is not Cause.SHED:
                continue
            spec = self.site.chargers[i]
            blocked = any(
                i in members and sum(coef * self.site.chargers[j].min_a for j, coef in members.items()
                                     if j in running) + members[i] * spec.min_a > capacity - EPS
                for members, capacity in cons)
            assert blocked, (c, d)

    def check_restart_delay(self, d, prev):
        # Invariant 3: a charger the controller paused stays paused for restart_delay_s.
        delay = self.site.control.restart_delay_s
        for i, c in enumerate(d.chargers):
            if c.reason in ("no car", "mode off", "charger reports a fault"):
                self.paused_at[i] = None
            elif prev[i] > 0 and c.limit_a == 0:
                self.paused_at[i] = self.t
            elif prev[i] == 0 and c.limit_a > 0 and self.paused_at[i] is not None:
                assert self.t - self.paused_at[i] >= delay - EPS, (c, self.t, self.paused_at[i])


@given(data=st.data())
def test_invariants_hold_over_random_sequences(data):
    site = data.draw(sites())
    checker = Checker(site)
    for s in data.draw(steps(len(site.chargers))):
        checker.step(s)


@given(data=st.data())
def test_decreases_are_never_delayed(data):
    """Ramp delay, ramp steps and the dead band hold increases only: whenever a controller
    without any of them would lower a charger, ours lowers it to the same value at once."""
    site = data.draw(sites())
    control = replace(site.control, ramp_up_delay_s=0.0, ramp_up_step_a=1000.0,
                      ramp_up_interval_s=1e-9, dead_band_a=0.0)
    checker = Checker(site, twin=replace(site, control=control))
    for s in data.draw(steps(len(site.chargers))):
        checker.step(s)


@given(left=st.floats(min_value=0.0, max_value=1e7, allow_nan=False))
def test_restart_delay_words_round_as_the_format_does(left):
    assert _seconds(left) == f"{left:.0f} s"
