"""Charging modes that follow solar surplus.

Surplus is what the site exports (signed meter, export negative) plus what the solar-mode
chargers draw themselves: their own draw is surplus they already use. It is shared like
fuse capacity (allocate(), floors at min_a so it starts one car rather than starving two):
solar-priority and solar-only chargers first, then excess chargers get what is left above
control.excess_threshold_w.

  solar-priority  always min_a from the grid, more when the surplus allows
  solar-only      starts once the surplus held min_a for solar_start_delay_s; when it drops,
                  holds min_a for solar_stop_grace_s before pausing
  excess          like solar-only, on the surplus above excess_threshold_w

The result is a cap per charger; the fuse and circuit constraints still apply on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.fill import Constraint, Want, allocate
from controller.core.site import ChargerSpec, SiteModel


@dataclass(frozen=True, slots=True)
class SolarCap:
    cap: float  # 0 = the mode wants it paused
    reason: str
    surplus_since: float | None
    short_since: float | None


@dataclass(frozen=True, slots=True)
class SolarInput:
    spec: ChargerSpec
    running: bool  # currently commanded above 0
    draw_w: float  # its own present draw
    surplus_since: float | None
    short_since: float | None


def surplus_w(site: SiteModel, meter_a: tuple[float, float, float], inputs: list[SolarInput]) -> float:
    export_w = -sum(meter_a[p] for p in site.phase_range) * site.phase_volts
    return max(0.0, export_w + sum(i.draw_w for i in inputs))


def solar_caps(site: SiteModel, pool_w: float, inputs: list[SolarInput], now: float) -> dict[int, SolarCap]:
    """Cap per charger index for chargers in a solar mode."""
    ctl = site.control
    first = [i for i in inputs if i.spec.mode in ("solar-priority", "solar-only")]
    excess = [i for i in inputs if i.spec.mode == "excess"]
    shares, used = _share(site, pool_w, first)
    more, _ = _share(site, pool_w - used - ctl.excess_threshold_w, excess)
    shares.update(more)
    out = {}
    for i in inputs:
        spec, share = i.spec, shares.get(i.spec.index, 0.0)
        kw = f"{share * site.watts_per_amp(spec.n_phases) / 1000:.1f} kW"
        if spec.mode == "solar-priority":
            if share >= spec.min_a:
                out[spec.index] = SolarCap(share, f"solar surplus {kw}", None, None)
            else:
                out[spec.index] = SolarCap(spec.min_a, "solar-priority: min_a from the grid", None, None)
            continue
        enough = share >= spec.min_a
        if i.running:
            if enough:
                out[spec.index] = SolarCap(share, f"solar surplus {kw}", None, None)
                continue
            short = i.short_since if i.short_since is not None else now
            left = ctl.solar_stop_grace_s - (now - short)
            if left > 0:
                out[spec.index] = SolarCap(spec.min_a, f"surplus low: holding min_a {left:.0f} s", None, short)
            else:
                out[spec.index] = SolarCap(0.0, "surplus gone: paused", None, None)
            continue
        if not enough:
            out[spec.index] = SolarCap(0.0, "waiting for solar surplus", None, None)
            continue
        since = i.surplus_since if i.surplus_since is not None else now
        left = ctl.solar_start_delay_s - (now - since)
        if left > 0:
            out[spec.index] = SolarCap(0.0, f"surplus {kw}: start in {left:.0f} s", since, None)
        else:
            out[spec.index] = SolarCap(share, f"solar surplus {kw}", since, None)
    return out


def _share(site: SiteModel, pool_w: float, inputs: list[SolarInput]) -> tuple[dict[int, float], float]:
    if not inputs or pool_w <= 0:
        return {}, 0.0
    wants = [Want(i.spec.index, i.spec.min_a, i.spec.max_a, i.spec.weight, i.spec.priority) for i in inputs]
    pool = Constraint("solar surplus", pool_w,
                      tuple((i.spec.index, site.watts_per_amp(i.spec.n_phases)) for i in inputs))
    result = allocate(wants, [pool])
    used = sum(result.current[i.spec.index] * site.watts_per_amp(i.spec.n_phases) for i in inputs)
    return result.current, used
