"""Helpers for ground-truth tests: a site from a few lines of TOML and a closed loop around
it (controller/sim/offline) in which cars respond slowly, draw less than allowed, chargers
report late or not at all and links blip. Assertions look at the TRUE currents."""

from __future__ import annotations

import tomllib

from controller.config import parse_config
from controller.core.site import SiteModel
from controller.sim.offline.cars import CarPlan, Link, Metering, SimCharger
from controller.sim.offline.household import StepHousehold
from controller.sim.offline.loop import ClosedLoop

LIVE = Metering("lines", 0.0)
NOT_MEASURED = Metering("none")


def site_of(text: str) -> SiteModel:
    if "[meter]" not in text:
        text = '[meter]\nhost = "127.0.0.1"\n' + text
    return SiteModel.from_config(parse_config(tomllib.loads(text), "truth.toml"))


def closed_loop(site: SiteModel, household, cars: dict[str, list[CarPlan]],
                metering: dict[str, Metering] | None = None, links: dict[str, Link] | None = None,
                dt: float = 0.25, latency_s: float = 0.0, restarts_s: tuple[float, ...] = (),
                initial_a: dict[str, float] | None = None,
                wiring: dict[str, str] | None = None, clamp_inverted: tuple[int, ...] = ()) -> ClosedLoop:
    """A loop over `site`; household is a StepHousehold or [(from_s, (A, B, C)), ...];
    `wiring` gives a charger's TRUE wiring where it differs from its configured `phases`."""
    if not hasattr(household, "load_at"):
        household = StepHousehold(household)
    metering, links, initial_a = metering or {}, links or {}, initial_a or {}
    chargers = [SimCharger(spec, cars.get(spec.id, []), site.voltage_v,
                           metering.get(spec.id, LIVE),
                           initial_a.get(spec.id, site.fallback_a(spec)),
                           link=links.get(spec.id), fallback_a=site.fallback_a(spec),
                           true_wiring=(wiring or {}).get(spec.id))
                for spec in site.chargers]
    return ClosedLoop(site, household, chargers, dt, latency_s, restarts_s, clamp_inverted=clamp_inverted)


def car(charger: str, arrive_s: float = 0.0, delay_s: float = 1.0, **kw) -> CarPlan:
    kw.setdefault("kwh", 100.0)
    return CarPlan(charger=charger, arrive_s=arrive_s, depart_s=kw.pop("depart_s", 1e9),
                   delay_s=delay_s, **kw)


def trace(loop: ClosedLoop, seconds: float) -> list[dict]:
    """Run `seconds` more and return per step: t, true phase currents, draws, limits, reasons."""
    out: list[dict] = []

    def hook(lp: ClosedLoop, now: float) -> None:
        out.append(dict(t=now, true_a=tuple(lp.true_a),
                        draw={ch.spec.id: ch.draw_a for ch in lp.chargers},
                        limit={c.id: c.limit_a for c in lp.decision.chargers},
                        reason={c.id: c.reason for c in lp.decision.chargers}))

    loop.on_step = hook
    start = getattr(loop, "_k", 0)
    steps = int(round(seconds / loop.dt))
    loop.run(steps, start)
    loop._k = start + steps  # type: ignore[attr-defined]
    loop.on_step = None
    return out
