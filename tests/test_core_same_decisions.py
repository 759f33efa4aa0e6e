"""Every decision the same: decide() over long seeded closed-loop runs on a few sites, step by
step against a recorded trace (tests/data/core_decisions.json). A change that is meant to be
only faster must leave every limit, cause, detail, every field of the decision and every bit of
the memory the core carries from one decision to the next exactly as it was; this test fails
at the first step where anything differs.

The plant is written out here (not taken from controller/sim) so that only the core decides
what the trace holds: cars that follow late or not at all, 1-phase cars on 3-phase chargers,
chargers that report per line, power only or nothing, every few seconds, links that drop with
a lease, a non-compliant charger, a miswired charger, a backwards clamp, solar export, switches,
connectors of a sequential charger, a resume after a restart, a lost meter and a user hold.

A deliberate change of behaviour in the core re-records the trace, and says so in its commit:

    .venv/bin/python tests/test_core_same_decisions.py --write

(When a speed-up meets a behaviour change in a merge, record the trace with the behaviour
change's core alone and check the merged core reproduces it.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sys
import tomllib
from pathlib import Path

import pytest

from controller.config import parse_config
from controller.core.decide import decide, initial_state
from controller.core.resume import Saved
from controller.core.site import SiteModel
from controller.model import CarState, ChargerReading, MeterSample

TRACE = Path(__file__).parent / "data" / "core_decisions.json"
STEPS = 500

MIXED = """
[site]
fuse_a = 40
max_import_kw = 24
[meter]
host = "127.0.0.1"
[control]
ramp_up_delay_s = 6
restart_delay_s = 30
solar_start_delay_s = 10
solar_stop_grace_s = 20
[[charger]]
id = "a"
phases = "ABC"
max_a = 32
[[charger]]
id = "b"
phases = "BCA"
priority = 2
weight = 2
[[charger]]
id = "c"
phases = "C"
max_a = 32
[[charger]]
id = "d"
phases = "A"
mode = "solar-priority"
[[charger]]
id = "e"
phases = "CAB"
mode = "solar-only"
[[charger]]
id = "f"
phases = "B"
mode = "excess"
priority = 3
[[charger]]
id = "g"
phases = "ABC"
priority = 2
[[charger]]
id = "twin"
phases = "ABC"
max_a = 20
sequential = true
  [[charger.connector]]
  id = 1
  max_a = 16
  [[charger.connector]]
  id = 2
  phases = "BCA"
  max_a = 16
  priority = 2
[[circuit]]
id = "garage"
fuse_a = 32
chargers = ["a", "b"]
[[circuit]]
id = "carport"
fuse_a = 20
parent = "garage"
chargers = ["twin"]
[[load]]
id = "boiler"
driver = "shelly"
host = "127.0.0.1"
phases = "B"
power_w = 2000
priority = 2
min_on_s = 20
min_off_s = 15
[[load]]
id = "pump"
driver = "shelly"
host = "127.0.0.1"
phases = "ABC"
power_w = 4000
priority = 3
"""

SINGLE = """
[site]
phases = 1
fuse_a = 35
[meter]
host = "127.0.0.1"
[control]
ramp_up_delay_s = 3
ramp_up_interval_s = 2
restart_delay_s = 20
[[charger]]
id = "p"
phases = "A"
[[charger]]
id = "q"
phases = "A"
priority = 2
[[charger]]
id = "r"
phases = "A"
max_a = 32
weight = 2
[[charger]]
id = "s"
phases = "A"
mode = "off"
"""


def _hundred() -> str:
    """Like the benchmark's site: rotated wirings, priorities, weights, circuits of 10."""
    rnd = random.Random(7)
    lines = ["[site]", "fuse_a = 250", "[meter]", 'host = "127.0.0.1"', "[control]", "restart_delay_s = 40"]
    for i in range(100):
        lines += ["[[charger]]", f'id = "c{i}"', f'phases = "{rnd.choice(["ABC", "BCA", "CAB", "A", "B", "C"])}"',
                  f"priority = {rnd.randint(1, 3)}", f"weight = {rnd.choice([1, 2])}",
                  f"max_a = {rnd.choice([16, 32])}"]
    for k in range(10):
        members = ", ".join(f'"c{i}"' for i in range(k * 10, k * 10 + 10))
        lines += ["[[circuit]]", f'id = "board{k}"', "fuse_a = 63", f"chargers = [{members}]"]
    return "\n".join(lines)


# name: (config, seed, miswired load, inverted clamp phase, resumed loads)
SITES = {
    "mixed": (MIXED, 20, "g", 2, {"a": Saved(10.0, 12.0, 20.0, True), "b": Saved(0.0, 0.0, 15.0, True, 5.0)}),
    "mixed-2": (MIXED, 29, "g", 2, {}),
    "single": (SINGLE, 12, None, None, {}),
    "hundred": (_hundred(), 13, "c3", None, {"c0": Saved(16.0, 16.0, 30.0, True)}),
}


def _site(text: str) -> SiteModel:
    return SiteModel.from_config(parse_config(tomllib.loads(text), "same-decisions.toml"))


class _Load:
    """One charger (or switch) with its car, as the plant sees it."""

    def __init__(self, spec, rnd: random.Random, true_wiring: str | None):
        self.spec = spec
        wiring = true_wiring or spec.wiring
        self.lines = [("ABC".index(x)) for x in wiring]  # true site phase of each line
        self.switch = spec.kind == "switch"
        self.measures = "power" if self.switch else rnd.choice(["lines", "lines", "power", "none"])
        self.every = rnd.choice([0.0, 0.0, 5.0, 10.0, 30.0])
        self.delay = rnd.choice([0.0, 1.0, 3.0, 4.5, 8.0])  # 8 s: slower than it may be
        self.held = [(-1e9, 0.0 if self.switch or spec.mode == "off" else min(6.0, spec.max_a))]
        self.acked: float | None = None
        self.online = True
        self.down_until = 0.0
        self.lease_until: float | None = None
        self.car = CarState.CHARGING if self.switch else rnd.choice([CarState.CHARGING, CarState.NO_CAR])
        self.car_lines = 1 if len(self.lines) == 1 or rnd.random() < 0.4 else len(self.lines)
        self.want = rnd.choice([6.0, 10.0, 16.0, 32.0])
        self.rogue_until = -100.0  # draws what it wants, whatever its limit (non-compliant)
        self.report: tuple | None = None
        self.report_at = -1e9

    def holds(self, t: float) -> float:
        if not self.online and self.lease_until is not None and t >= self.lease_until:
            return 0.0 if self.switch or self.spec.mode == "off" else min(6.0, self.spec.max_a)
        for at, value in reversed(self.held):
            if at <= t:
                return value
        return 0.0

    def draw(self, t: float) -> float:
        if self.switch:
            return self.spec.max_a if self.holds(t - self.delay) > 0 else 0.0
        if self.car is not CarState.CHARGING:
            return 0.0
        if t < self.rogue_until:
            return self.want
        allowed = self.holds(t - self.delay)
        return min(self.want, allowed) if allowed >= 6.0 else 0.0

    def per_line(self, t: float) -> tuple[float, ...]:
        a = self.draw(t)
        return tuple(a if k < self.car_lines else 0.0 for k in range(len(self.lines)))

    def reading(self, t: float, volts: float) -> ChargerReading:
        if self.every == 0.0 or t - self.report_at >= self.every:
            self.report, self.report_at = self.per_line(t), t
        lines = power = None
        if self.measures == "lines":
            lines = self.report
        elif self.measures == "power":
            power = sum(self.report) * volts
        at = None if self.every == 0.0 else self.report_at
        if self.measures == "none":
            at = None
        return ChargerReading(online=self.online, car=self.car, draw_lines_a=lines, draw_at=at,
                              lease_until=self.lease_until if not self.online else None,
                              compliant=t >= self.rogue_until + 20.0, power_w=power,
                              acked_a=self.acked)

    def tick(self, rnd: random.Random, t: float) -> None:
        """Random events of the next step: cars come and go, links drop."""
        if self.online and rnd.random() < 0.004:
            self.online, self.down_until = False, t + rnd.choice([3.0, 20.0, 60.0])
            self.lease_until = t + 30.0
        elif not self.online and t >= self.down_until:
            self.online, self.lease_until = True, None
            self.acked = self.holds(t)
        if self.switch:
            return
        r = rnd.random()
        if r < 0.01:
            self.car = rnd.choice([CarState.NO_CAR, CarState.CHARGING, CarState.CHARGING, CarState.CONNECTED,
                                   CarState.UNKNOWN, CarState.NO_CAR, CarState.CHARGING, CarState.FAULT])
            self.want = rnd.choice([6.0, 10.0, 16.0, 32.0])
        elif r < 0.011:
            self.rogue_until = t + 15.0

    def obey(self, limit: float, t: float) -> None:
        if self.online and limit != self.holds(t):
            self.held.append((t, limit))
        if self.online:
            self.acked = limit


def _digest(x) -> str:
    """A value's content, every field (its repr: floats to the last bit), as a short digest."""
    return hashlib.sha256(repr(x).encode()).hexdigest()[:10]


def _sorted(d: dict) -> tuple:
    return tuple(sorted(d.items()))  # the order of a dict is not behaviour


def run(name: str) -> dict:
    """The trace of one site: per step the limits (small sites) and a digest of the whole
    decision (every field) and of the state it leaves; how often each cause was given."""
    text, seed, miswired, inverted, saved = SITES[name]
    site = _site(text)
    rnd = random.Random(seed)
    loads = []
    for spec in site.chargers:
        true = None
        if spec.id == miswired:
            true = spec.wiring[1:] + spec.wiring[:1] if len(spec.wiring) > 1 else "ABC"[("ABC".index(spec.wiring) + 1) % 3]
        loads.append(_Load(spec, rnd, true))
    state = initial_state(site, saved, 0.0)
    household = [rnd.uniform(2, 8) for _ in range(3)]
    t = 0.0
    steps: list[str] = []
    causes: dict[str, int] = {}
    for k in range(STEPS):
        t += rnd.choice([0.25, 0.5, 1.0, 1.0, 2.0])
        for load in loads:
            load.tick(rnd, t)
        for p in range(3):
            household[p] = max(0.0, household[p] + rnd.gauss(0, 0.3))
        if rnd.random() < 0.03:  # a household step, often big enough for an overload
            p = rnd.randrange(site.phases)
            household[p] = max(0.0, household[p] + rnd.choice([-15.0, -8.0, 8.0, 15.0, 25.0]))
        solar = 12.0 if 150 <= k < 300 else 0.0  # export in the middle of the run
        meter = [household[p] - solar if p < site.phases else 0.0 for p in range(3)]
        for load in loads:
            for line, amps in zip(load.lines, load.per_line(t)):
                if line < site.phases:
                    meter[line] += amps
        if inverted is not None:
            meter[inverted] = -meter[inverted]
        readings = [load.reading(t, site.voltage_v) for load in loads]
        r = rnd.random()
        if k < 3 or 60 <= k < 64 or r < 0.02:
            sample = None
        elif r < 0.03:
            sample = MeterSample(t - 10.0, tuple(meter))  # stale: the meter lost
        else:
            sample = MeterSample(t, tuple(meter))
        hold = "paused by button" if 400 <= k < 405 else None
        decision = decide(site, state, sample, readings, t, hold)
        state = decision.state
        for load, dec in zip(loads, decision.chargers):
            load.obey(dec.limit_a, t)
        limits = " ".join(f"{c.limit_a:g}" for c in decision.chargers) if len(site.chargers) <= 20 else "-"
        whole = dataclasses.replace(decision, state=None, overloads=_sorted(decision.overloads))
        memory = dataclasses.replace(state, over_since=_sorted(state.over_since))
        steps.append(f"{limits} | {_digest(whole)} {_digest(memory)}")
        for c in decision.chargers:
            causes[c.cause.value] = causes.get(c.cause.value, 0) + 1
    return {"steps": steps, "causes": dict(sorted(causes.items()))}


def _recorded() -> dict:
    return json.loads(TRACE.read_text())


@pytest.mark.parametrize("name", sorted(SITES))
def test_every_decision_is_the_one_recorded(name):
    recorded = _recorded()[name]["steps"]
    assert len(recorded) == STEPS
    for k, (now, then) in enumerate(zip(run(name)["steps"], recorded)):
        assert now == then, f"{name}: step {k} differs from the recorded trace (first difference)"


def test_the_runs_reach_the_paths_that_matter():
    """The trace is only worth something if the runs go where the core branches: check that
    the recorded runs saw overloads, sheds, cuts, the net, solar, switches and blind steps."""
    seen = set()
    for trace in _recorded().values():
        seen.update(trace["causes"])
    for cause in ("share", "shed", "overload-cut", "wait-follow", "no-sample", "meter-lost", "user-hold",
                  "link-down", "non-compliant", "restart-delay", "ramp-hold", "mode-off", "no-car",
                  "sequential", "surplus", "resumed", "overload-pause", "net", "mode-cap", "max"):
        assert cause in seen, cause


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: tests/test_core_same_decisions.py --write   (re-records the trace)")
    TRACE.parent.mkdir(exist_ok=True)
    TRACE.write_text(json.dumps({name: run(name) for name in sorted(SITES)}, indent=1) + "\n")
    print(f"wrote {TRACE}")
