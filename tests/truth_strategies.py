"""Hypothesis strategies for ground-truth property tests: random closed-loop sites.

A drawn site has 1-3 phases, a 16-63 A fuse, 1-6 chargers (some under a circuit), and every
behaviour of the simulated site: cars responding in 0.5-4.5 s (plus 0.25 s link latency:
within response_s = 5), drawing less than allowed (own max, taper near full), 1- or 3-phase
cars, full cars, cars waiting for their own charge timer or starting late (asleep) once
offered current (`idle=True`), chargers measuring per line / power only / nothing, reporting
live or every 5-60 s or stopping, link blips shorter than the lease, controller restarts mid-run, and a household
that steps about. Wrong wiring (a rotated installation, a 1-phase charger on another phase)
is available (`wrong_wiring=True`) but not drawn by default: tests/test_core_net.py uses it.

Runs are deterministic (derandomized) and cheap: the default profile runs few examples, a
thorough hunt (EVFUSE_HYPOTHESIS=thorough) many, and shrinks.
"""

from __future__ import annotations

import math
import os

from hypothesis import Phase, settings
from hypothesis import strategies as st

from controller.sim.offline.cars import Link, Metering
from truth_kit import car, closed_loop, site_of

THOROUGH = os.environ.get("EVFUSE_HYPOTHESIS") == "thorough"
DT = 0.5
LATENCY_S = 0.25


def truth_settings(default_examples: int):
    """Few derandomized examples by default (a loaded 2-core CI machine); many, shrunk, when
    thorough. Without shrinking a failure still prints its example, just not the smallest."""
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if THOROUGH else [])
    return settings(max_examples=default_examples * (10 if THOROUGH else 1), deadline=None,
                    derandomize=True, database=None, phases=phases)


@st.composite
def closed_loops(draw, wrong_wiring: bool = False, restarts: bool = True, blips: bool = True,
                 late_reports: bool = True, taper: bool = True, twins: bool = False,
                 phase_switch: bool = False, idle: bool = False):
    """(loop, steps): a ClosedLoop over a random site and how many DT steps to run it.
    twins: some chargers have 2-3 connectors (each a load of its own, wired its own way)
    under the charger's max_a, some of them sequential. phase_switch: some 1-phase cars switch
    to three phases after a while (their own change: the core cannot prevent what it causes).
    idle: some cars wait for their own charge timer (plugged in, taking nothing) or, asleep,
    start 20 s after they are offered current (tests/test_core_truth_idle.py)."""
    n_phases = draw(st.integers(1, 3))
    names = "ABC"[:n_phases]
    fuse = draw(st.integers(16, 63))
    margin = draw(st.sampled_from([0, 1, 2]))
    n = draw(st.integers(1, 6))
    lines = ["[site]", f"phases = {n_phases}", f"fuse_a = {fuse}", f"margin_a = {margin}",
             "[control]",
             f"ramp_up_delay_s = {draw(st.sampled_from([0, 5, 15]))}",
             f"ramp_up_step_a = {draw(st.sampled_from([4, 80]))}",
             f"restart_delay_s = {draw(st.sampled_from([30, 120]))}",
             "response_s = 5",
             f"overload_pause_s = {draw(st.sampled_from([3, 6]))}",
             f"fallback_a = {(fallback := draw(st.sampled_from([6, 6, 10])))}",
             f"idle_reoffer_s = {draw(st.sampled_from([300, 60])) if idle else 300}",
             "[ocpp]", "lease_s = 120"]
    stations = [f"c{i}" for i in range(n)]
    ids = []  # the loads: a charger, or each connector of one
    under: dict[str, int] = {}  # charger -> how many loads it is
    wiring = {}
    for cid in stations:
        width = draw(st.sampled_from([1, n_phases]))
        wiring[cid] = "".join(draw(st.permutations(names))[:width])
        connectors = draw(st.sampled_from([0, 0, 2, 3])) if twins else 0
        cap = draw(st.sampled_from([10, 16, 16, 32]))
        if connectors:
            cap = max(cap, fallback * connectors)  # check-config: the connectors' fallbacks fit it
        lines += ["[[charger]]", f'id = "{cid}"', f'phases = "{wiring[cid]}"', "min_a = 6",
                  f"max_a = {cap}", f"priority = {draw(st.integers(1, 2))}"]
        if connectors and draw(st.booleans()):
            lines.append("sequential = true")
        for k in range(1, connectors + 1):
            load = f"{cid}/{k}"
            width = draw(st.sampled_from([1, n_phases]))
            wiring[load] = "".join(draw(st.permutations(names))[:width])
            lines += ["[[charger.connector]]", f"id = {k}", f'phases = "{wiring[load]}"',
                      f"max_a = {min(cap, draw(st.sampled_from([10, 16, 32])))}",
                      f"priority = {draw(st.integers(1, 2))}"]
            ids.append(load)
        if not connectors:
            ids.append(cid)
        under[cid] = max(1, connectors)
    if n > 1 and draw(st.booleans()):
        members = [c for c in stations if draw(st.booleans())] or stations[:1]
        # check-config refuses a circuit its chargers' fallbacks would overload
        least = max(16, math.ceil(fallback * sum(under[c] for c in members)))
        lines += ["[[circuit]]", 'id = "k0"', f"fuse_a = {draw(st.integers(least, max(least, 40)))}",
                  "chargers = [" + ", ".join(f'"{c}"' for c in members) + "]"]
    site = site_of("\n".join(lines))
    duration = draw(st.sampled_from([240.0, 480.0]))
    cars, metering, links, true_wiring = {}, {}, {}, {}
    for cid in ids:
        if draw(st.integers(0, 5)) == 0:
            continue  # no car here
        arrive = draw(st.sampled_from([-10.0, 0.0, 20.0, 60.0, 150.0]))
        extra = {"switch_s": draw(st.sampled_from([math.inf, 90.0, 200.0]))} if phase_switch else {}
        cars[cid] = [car(cid, arrive, delay_s=draw(st.sampled_from([0.5, 1.0, 2.5, 4.5])),
                         phases=draw(st.sampled_from([1, 3])), **extra,
                         max_a=draw(st.sampled_from([6.0, 10.0, 16.0, 32.0])),
                         kwh=draw(st.sampled_from([0.3, 1.0, 50.0])),
                         taper_kwh=draw(st.sampled_from([0.0, 0.0, 0.5])) if taper else 0.0,
                         **(dict(timer_s=draw(st.sampled_from([-math.inf, -math.inf, 100.0, 250.0])),
                                 wake_s=draw(st.sampled_from([0.0, 0.0, 20.0]))) if idle else {}))]
        every = draw(st.sampled_from([0.0, 5.0, 10.0, 60.0])) if late_reports else 0.0
        stops = math.inf  # 0 below: it never reports
        if late_reports:
            stops = draw(st.sampled_from([math.inf, math.inf, 30.0, 0.0]))
        metering[cid] = Metering(draw(st.sampled_from(["lines", "lines", "power", "none"])), every,
                                 offset_s=draw(st.sampled_from([0.0, 3.0])) if every else 0.0,
                                 stops_s=stops)
        if blips and draw(st.integers(0, 2)) == 0:
            start = draw(st.sampled_from([30.0, 90.0, 200.0]))
            links[cid] = Link(120.0, ((start, start + draw(st.sampled_from([1.0, 5.0, 30.0]))),))
        if wrong_wiring and len(wiring[cid]) > 1 and draw(st.booleans()):
            true_wiring[cid] = wiring[cid][1:] + wiring[cid][0]
        elif wrong_wiring and n_phases > 1 and draw(st.booleans()):  # a 1-phase charger moved
            true_wiring[cid] = draw(st.sampled_from([x for x in names if x != wiring[cid]]))
    household = []
    for t in sorted(draw(st.sets(st.sampled_from([0.0, 40.0, 100.0, 160.0, 220.0, 330.0]), min_size=1))
                    | {0.0}):
        household.append((t, tuple(draw(st.sampled_from([0.0, 2.0, 5.0, 10.0, 0.5 * fuse, fuse - 8.0]))
                                    if p < n_phases else 0.0 for p in range(3))))
    restart_at = tuple(draw(st.sets(st.sampled_from([50.0, 125.0, 260.0]), max_size=2))) if restarts else ()
    loop = closed_loop(site, household, cars, metering=metering, links=links, dt=DT,
                       latency_s=LATENCY_S, restarts_s=restart_at)
    for ch in loop.chargers:
        if ch.spec.id in true_wiring:
            ch.wiring = true_wiring[ch.spec.id]
    return loop, int(duration / DT)


def describe(loop) -> str:
    """What a failing example looked like, for the assertion message."""
    out = [f"site: {loop.site.phases} phases, limit {loop.site.limit_a} A, "
           f"circuits {[(c.id, c.limit_a, c.members) for c in loop.site.circuits]}"]
    for ch in loop.chargers:
        out.append(f"  {ch.spec.id} {ch.spec.wiring} max {ch.spec.max_a} {ch.metering} {ch.link} "
                   f"cars {ch.plans} stops {ch.stops} unexplained {ch.unexplained[:3]}")
    return "\n".join(out)


@st.composite
def closed_loops_with_switches(draw, restarts: bool = True, blips: bool = True, idle_unmeasured: bool = False):
    """(loop, steps) over a random site with 1-3 switchable loads ([[load]]) and 0-2 chargers:
    loads that measure or not, with a lease or without, slow to respond, drawing less than
    their power_w or nothing (a satisfied thermostat), in every mode, with min_on_s /
    min_off_s; a household that steps about, exports included. A thermostat that opens and
    closes by itself behind a load that measures nothing only with idle_unmeasured: its fall
    looks like household to the meter (as a car tapering between two reports does)."""
    from controller.sim.offline.cars import SimCharger
    from controller.sim.offline.household import StepHousehold
    from controller.sim.offline.loop import ClosedLoop
    from controller.sim.offline.switches import SimSwitch, SwitchPlan

    n_phases = draw(st.integers(1, 3))
    names = "ABC"[:n_phases]
    fuse = draw(st.integers(16, 63))
    margin = draw(st.sampled_from([0, 1, 2]))
    limit = fuse - margin
    lines = ["[site]", f"phases = {n_phases}", f"fuse_a = {fuse}", f"margin_a = {margin}",
             "[control]", f"ramp_up_delay_s = {draw(st.sampled_from([0, 5, 15]))}",
             f"restart_delay_s = {draw(st.sampled_from([30, 120]))}", "response_s = 5",
             f"overload_pause_s = {draw(st.sampled_from([3, 6]))}",
             f"solar_start_delay_s = {draw(st.sampled_from([0, 30]))}",
             f"solar_stop_grace_s = {draw(st.sampled_from([0, 60]))}"]
    n_chargers = draw(st.integers(0, 2))
    for i in range(n_chargers):
        wiring = "".join(draw(st.permutations(names))[:draw(st.sampled_from([1, n_phases]))])
        lines += ["[[charger]]", f'id = "c{i}"', f'phases = "{wiring}"', "min_a = 6",
                  f"max_a = {draw(st.sampled_from([10, 16, 32]))}", f"priority = {draw(st.integers(1, 3))}"]
    n_loads = draw(st.integers(1, 3))
    switch_plans = []
    for i in range(n_loads):
        wiring = "".join(draw(st.permutations(names))[:draw(st.sampled_from([1, n_phases]))])
        power = draw(st.sampled_from([500, 1000, 2000, 3000, 6000]))
        if power / (230 * len(wiring)) > limit:
            power = 1000
        leased = draw(st.booleans())
        lines += ["[[load]]", f'id = "s{i}"', f'phases = "{wiring}"', f"power_w = {power}",
                  f"priority = {draw(st.integers(1, 3))}",
                  f'mode = "{draw(st.sampled_from(["standard", "standard", "excess", "solar-only"]))}"',
                  f"min_on_s = {draw(st.sampled_from([0, 30, 120]))}",
                  f"min_off_s = {draw(st.sampled_from([0, 30]))}"]
        lines += ['driver = "shelly"', 'host = "sim"'] if leased else ['driver = "gpio"', f"pin = {5 + i}"]
        measures = draw(st.booleans())
        idle = ()
        if (measures or idle_unmeasured) and draw(st.booleans()):
            start = draw(st.sampled_from([20.0, 80.0, 150.0]))
            idle = ((start, start + draw(st.sampled_from([10.0, 60.0]))),)
        plan = SwitchPlan(draw_w=power * draw(st.sampled_from([1.0, 1.0, 0.9, 0.5])),
                          delay_s=draw(st.sampled_from([0.2, 1.0, 3.0])), measures=measures, idle=idle)
        link = None
        if blips and draw(st.integers(0, 2)) == 0:
            start = draw(st.sampled_from([30.0, 90.0, 200.0]))
            link = Link(60.0, ((start, start + draw(st.sampled_from([1.0, 5.0, 90.0]))),))
        switch_plans.append((plan, link, leased))
    site = site_of("\n".join(lines))
    chargers = []
    for spec in site.chargers[:n_chargers]:
        plans = [car(spec.id, draw(st.sampled_from([-10.0, 0.0, 60.0])),
                     delay_s=draw(st.sampled_from([0.5, 2.5])), phases=draw(st.sampled_from([1, 3])),
                     max_a=draw(st.sampled_from([10.0, 16.0, 32.0])))] if draw(st.booleans()) else []
        chargers.append(SimCharger(spec, plans, site.voltage_v, Metering("lines", 0.0),
                                   site.fallback_a(spec), fallback_a=site.fallback_a(spec)))
    for spec, (plan, link, leased) in zip(site.chargers[n_chargers:], switch_plans):
        chargers.append(SimSwitch(spec, plan, site.voltage_v, link=link, leased=leased))
    household = []
    for t in sorted(draw(st.sets(st.sampled_from([0.0, 40.0, 100.0, 160.0, 220.0]), min_size=1)) | {0.0}):
        household.append((t, tuple(draw(st.sampled_from([-15.0, 0.0, 2.0, 5.0, 0.5 * fuse, fuse - 8.0]))
                                    if p < n_phases else 0.0 for p in range(3))))
    restart_at = tuple(draw(st.sets(st.sampled_from([50.0, 125.0]), max_size=1))) if restarts else ()
    loop = ClosedLoop(site, StepHousehold(household), chargers, DT, LATENCY_S, restart_at)
    return loop, int(draw(st.sampled_from([240.0, 360.0])) / DT)
