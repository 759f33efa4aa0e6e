"""Helpers for core tests: a site from a few lines of TOML, and a tiny closed loop in which
every car draws exactly its limit, so a decision can be run until it settles."""

from __future__ import annotations

import tomllib

from controller.config import parse_config
from controller.core.decide import decide, initial_state
from controller.core.site import SiteModel
from controller.model import CarState, ChargerReading, MeterSample

FAST_RAMP = """
[control]
ramp_up_delay_s = 0
ramp_up_step_a = 80
ramp_up_interval_s = 0.001
"""


def make_site(text: str, fast_ramp: bool = True) -> SiteModel:
    if fast_ramp and "[control]" not in text:
        text = FAST_RAMP + text
    if "[meter]" not in text:
        text = '[meter]\nhost = "127.0.0.1"\n' + text
    return SiteModel.from_config(parse_config(tomllib.loads(text), "test.toml"))


def charging(n: int) -> list[ChargerReading]:
    return [ChargerReading(car=CarState.CHARGING) for _ in range(n)]


def settle(site: SiteModel, household, readings=None, seconds: float = 60.0, step: float = 1.0,
           state=None, t0: float = 0.0):
    """Run decisions until `seconds` pass; cars draw their limits (not measured by chargers).
    Returns (last decision, time)."""
    readings = readings or charging(len(site.chargers))
    state = state or initial_state(site)
    t = t0
    decision = None
    while t <= t0 + seconds:
        limits = [c.limit_a for c in decision.chargers] if decision else [0.0] * len(site.chargers)
        meter = list(household)
        for spec, limit in zip(site.chargers, limits):
            for p in spec.phase_idx:
                meter[p] += limit
        decision = decide(site, state, MeterSample(t, tuple(meter)), readings, t)
        state = decision.state
        t += step
    return decision, t


def limits(decision) -> dict[str, float]:
    return {c.id: c.limit_a for c in decision.chargers}
