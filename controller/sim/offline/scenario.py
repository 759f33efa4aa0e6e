"""Scenario files: a site config (the keys of evfuse.toml) plus a [scenario] section.

The site part goes through controller.config.parse_config, so it is checked exactly like a
real config; the [scenario] part is checked here in the same style. Every problem names the
file and the key path (`scenario.car[2].kwh`) and all of them are raised together as one
ConfigError. The format is described in docs/simulate.md.

Built-in scenarios are the .toml files in controller/sim/scenarios, named by file stem.
"""

from __future__ import annotations

import math
import random
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from controller.config import Config, ConfigError, TableReader, parse_config
from controller.core.site import SiteModel
from controller.sim.offline.cars import MEASURES, CarPlan, Link, Metering
from controller.sim.offline.household import (APPLIANCE_KINDS, Appliance, HouseholdProfile,
                                              PvProfile)
from controller.tomlcheck import MISSING

DEFAULT_SCENARIO = "house-two-cars"
DEFAULT_STEP_S = 0.25  # when [meter] poll_interval_s is not set
MAX_DURATION_S = 7 * 86400.0


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str
    description: str
    config: Config
    site: SiteModel
    start_h: float  # hour of day at t = 0
    duration_s: float
    seed: int
    step_s: float  # meter poll interval: one sample and one decision per step
    link_latency_s: float  # controller -> charger command delay
    household: HouseholdProfile
    pv: PvProfile | None
    cars: tuple[CarPlan, ...]
    metering: dict[str, Metering]  # charger id -> how it reports its draw
    links: dict[str, Link] = field(default_factory=dict)  # charger id -> lease and link blips
    restarts_s: tuple[float, ...] = ()  # controller restarts, seconds since t = 0
    wiring: dict[str, str] = field(default_factory=dict)  # charger id -> true wiring, if not `phases`
    crashes_s: tuple[float, ...] = ()  # controller crashes (SIGKILL, then a fresh start), seconds since t = 0

    def with_overrides(self, duration_s: float | None = None, seed: int | None = None) -> "Scenario":
        out = self
        if duration_s is not None:
            out = replace(out, duration_s=float(duration_s))
        if seed is not None:
            out = replace(out, seed=seed)
        return out


def builtin_names() -> list[str]:
    folder = resources.files("controller.sim.scenarios")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path. Raises ConfigError."""
    if name_or_path in builtin_names():
        file = resources.files("controller.sim.scenarios").joinpath(name_or_path + ".toml")
        return parse_scenario(file.read_text("utf-8"), f"{name_or_path}.toml (built-in)", name_or_path)
    path = Path(name_or_path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        known = ", ".join(builtin_names())
        raise ConfigError([f"{path}: cannot read ({getattr(e, 'strerror', None) or e}); "
                           f"built-in scenarios: {known}"]) from None
    return parse_scenario(text, str(path), path.stem)


def parse_scenario(text: str, source: str, name: str) -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{source}: not valid TOML: {e}"]) from None
    raw = data.pop("scenario", None)
    problems: list[str] = []
    try:
        config = parse_config(data, source)
    except ConfigError as e:
        problems += e.problems
        config = None
    r = TableReader(source, problems)
    if not isinstance(raw, dict):
        r.problem("scenario", MISSING if raw is None else raw,
                  "is required: a [scenario] table (see docs/simulate.md)")
        raise ConfigError(problems)
    scenario = _scenario(r, raw, config, source, name)
    if problems:
        raise ConfigError(problems)
    return scenario


def _scenario(r: TableReader, t: dict, config: Config | None, source: str, name: str) -> Scenario | None:
    r.only(t, "scenario", {"description", "start_h", "duration_s", "seed", "link_latency_s",
                           "household", "appliance", "pv", "car", "metering", "blip", "restart_h",
                           "wiring", "crash_h"})
    start_h = r.number(t, "start_h", "scenario", 0.0, 0, 24 * 7, " h")
    duration = r.number(t, "duration_s", "scenario", 86400.0, 0, MAX_DURATION_S, " s", lo_open=True)
    seed = r.number(t, "seed", "scenario", 1, 0, 2**63, integer=True)
    latency = r.number(t, "link_latency_s", "scenario", 0.2, 0, 30, " s")
    description = r.text(t, "description", "scenario", "")
    phases = config.site.phase_names if config else "ABC"
    household = _household(r, t, phases)
    pv = _pv(r, t, phases)
    known = [c.id for c in config.chargers] if config else []
    cars = _cars(r, t, start_h, known, seed)
    metering = _metering(r, t, known, start_h, seed)
    lease_s = config.ocpp.lease_s if config else 120.0
    links = _blips(r, t, known, start_h, lease_s)
    restarts = tuple((h - start_h) * 3600.0 for h in _hours(r, t, "restart_h", "scenario"))
    crashes = tuple((h - start_h) * 3600.0 for h in _hours(r, t, "crash_h", "scenario"))
    wiring = _wiring(r, t, config)
    if config is None or r.problems:
        return None
    step = config.meter.poll_interval_s or DEFAULT_STEP_S
    return Scenario(name=name, source=source, description=description, config=config,
                    site=SiteModel.from_config(config), start_h=start_h, duration_s=duration,
                    seed=seed, step_s=step, link_latency_s=latency, household=household, pv=pv,
                    cars=cars, metering=metering, links=links, restarts_s=restarts, wiring=wiring,
                    crashes_s=crashes)


def _household(r: TableReader, t: dict, site_phases: str) -> HouseholdProfile:
    h = r.table(t, "household", "scenario.household")
    r.only(h, "scenario.household", {"base_a", "drift_a"})
    raw = t.get("appliance", [])
    if not isinstance(raw, list):
        r.problem("scenario.appliance", raw, "must be an array of tables ([[scenario.appliance]])")
        raw = []
    appliances = []
    for n, a in enumerate(raw, start=1):
        path = f"scenario.appliance[{n}]"
        if not isinstance(a, dict):
            r.problem(path, a, "must be a table ([[scenario.appliance]])")
            continue
        r.only(a, path, {"kind", "phases", "per_day", "at_h", "kw"})
        kind = r.text(a, "kind", path, "", APPLIANCE_KINDS)
        default_phases = site_phases if kind == "heat-pump" else "A"
        wiring = _phases(r, a, path, default_phases, site_phases)
        at_h = a.get("at_h", [])
        if not isinstance(at_h, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                 for x in at_h):
            r.problem(f"{path}.at_h", at_h, "must be a list of hours of the day, e.g. [7.5, 18.25]")
            at_h = []
        appliances.append(Appliance(
            kind=kind, phases=wiring, at_h=tuple(float(x) for x in at_h),
            per_day=r.number(a, "per_day", path, 0.0, 0, 100),
            kw=r.number(a, "kw", path, 0.0, 0, 30, " kW (0 = typical for its kind)")))
    return HouseholdProfile(
        base_a=r.number(h, "base_a", "scenario.household", 1.0, 0, 100, " A"),
        drift_a=r.number(h, "drift_a", "scenario.household", 0.4, 0, 50, " A"),
        appliances=tuple(appliances))


def _pv(r: TableReader, t: dict, site_phases: str) -> PvProfile | None:
    if "pv" not in t:
        return None
    p = r.table(t, "pv", "scenario.pv")
    r.only(p, "scenario.pv", {"kwp", "phases", "sunrise_h", "sunset_h", "cloudiness"})
    pv = PvProfile(
        kwp=r.number(p, "kwp", "scenario.pv", MISSING, 0, 1000, " kW") or 0.0,
        phases=_phases(r, p, "scenario.pv", site_phases, site_phases),
        sunrise_h=r.number(p, "sunrise_h", "scenario.pv", 6.0, 0, 24, " h"),
        sunset_h=r.number(p, "sunset_h", "scenario.pv", 20.0, 0, 24, " h"),
        cloudiness=r.number(p, "cloudiness", "scenario.pv", 0.3, 0, 1))
    if pv.sunset_h <= pv.sunrise_h:
        r.problem("scenario.pv.sunset_h", pv.sunset_h, f"must be after sunrise_h ({pv.sunrise_h:g})")
    return pv


def _phases(r: TableReader, t: dict, path: str, default: str, site_phases: str) -> str:
    value = r.text(t, "phases", path, default)
    if not value or len(set(value)) != len(value) or not set(value) <= set(site_phases):
        r.problem(f"{path}.phases", value, f"must be distinct phases of this site ({site_phases})")
        return default
    return value


def _cars(r: TableReader, t: dict, start_h: float, chargers: list[str], seed: int) -> tuple[CarPlan, ...]:
    raw = t.get("car", [])
    if not isinstance(raw, list):
        r.problem("scenario.car", raw, "must be an array of tables ([[scenario.car]])")
        return ()
    cars = []
    for n, c in enumerate(raw, start=1):
        path = f"scenario.car[{n}]"
        if not isinstance(c, dict):
            r.problem(path, c, "must be a table ([[scenario.car]])")
            continue
        r.only(c, path, {"charger", "arrive_h", "depart_h", "kwh", "phases", "max_a", "delay_s",
                         "taper_kwh", "timer_h", "wake_s"})
        charger = r.text(c, "charger", path, chargers[0] if len(chargers) == 1 else None)
        if charger is None:
            r.problem(f"{path}.charger", None, "is required when the site has several chargers")
        elif chargers and charger not in chargers:
            r.problem(f"{path}.charger", charger, "names no [[charger]] id; known: " + ", ".join(chargers))
        arrive = r.number(c, "arrive_h", path, start_h, 0, 24 * 8, " h (hour of day; 30 = 06:00 next day)")
        depart = r.number(c, "depart_h", path, 24 * 8, 0, 24 * 8, " h (hour of day; 30 = 06:00 next day)")
        if depart <= arrive:
            r.problem(f"{path}.depart_h", depart, f"must be after arrive_h ({arrive:g})")
        phases = r.number(c, "phases", path, 3, 1, 3, integer=True)
        if phases == 2:
            r.problem(f"{path}.phases", phases, "must be 1 or 3")
        timer = r.number(c, "timer_h", path, arrive, 0, 24 * 8, " h (hour of day; 30 = 06:00 next day)")
        # A car's response delay (IEC 61851-1: up to 5 s) drawn from the seed unless given.
        delay_default = round(random.Random(f"{seed}-car-{n}").uniform(0.5, 5.0), 2)
        cars.append(CarPlan(
            charger=charger or "", arrive_s=(arrive - start_h) * 3600.0, depart_s=(depart - start_h) * 3600.0,
            kwh=r.number(c, "kwh", path, 30.0, 0, 500, " kWh", lo_open=True),
            phases=phases, max_a=r.number(c, "max_a", path, 16.0, 1, 80, " A"),
            delay_s=r.number(c, "delay_s", path, delay_default, 0, 30, " s"),
            taper_kwh=r.number(c, "taper_kwh", path, 0.0, 0, 500, " kWh"),
            timer_s=(timer - start_h) * 3600.0, wake_s=r.number(c, "wake_s", path, 0.0, 0, 600, " s")))
    by_charger: dict[str, list[CarPlan]] = {}
    for n, car in enumerate(cars, start=1):
        for other in by_charger.get(car.charger, []):
            if car.arrive_s < other.depart_s and other.arrive_s < car.depart_s:
                r.problem(f"scenario.car[{n}].arrive_h", car.arrive_s / 3600 + start_h,
                          f'overlaps another car at charger "{car.charger}"')
        by_charger.setdefault(car.charger, []).append(car)
    return tuple(cars)


def _metering(r: TableReader, t: dict, chargers: list[str], start_h: float,
              seed: int) -> dict[str, Metering]:
    m = r.table(t, "metering", "scenario.metering")
    r.only(m, "scenario.metering", set(chargers))
    out: dict[str, Metering] = {}
    for cid in chargers:
        path = f"scenario.metering.{cid}"
        value = m.get(cid, "live")
        if value == "live":
            out[cid] = Metering("lines", 0.0)
        elif value == "none":
            out[cid] = Metering("none")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 3600:
            out[cid] = _spread(Metering("lines", float(value)), seed, cid)
        elif isinstance(value, dict):
            r.only(value, path, {"measures", "every_s", "stops_h"})
            every = r.number(value, "every_s", path, 0.0, 0, 3600, " s (0 = live)")
            stops = r.number(value, "stops_h", path, None, 0, 24 * 8, " h (hour of day)")
            out[cid] = _spread(Metering(
                measures=r.text(value, "measures", path, "lines", MEASURES), every_s=every,
                stops_s=(stops - start_h) * 3600.0 if stops is not None else math.inf), seed, cid)
        else:
            r.problem(path, value, 'must be "live", "none", seconds between readings (e.g. 10 like '
                      'OCPP MeterValues) or a table {measures = "lines"|"power"|"none", every_s, stops_h}')
    return out


def _spread(m: Metering, seed: int, cid: str) -> Metering:
    """Chargers do not report in step: each one's first report at its own offset."""
    if m.every_s <= 0:
        return m
    return replace(m, offset_s=round(random.Random(f"{seed}-report-{cid}").uniform(0, m.every_s), 2))


def _blips(r: TableReader, t: dict, chargers: list[str], start_h: float,
           lease_s: float) -> dict[str, Link]:
    raw = t.get("blip", [])
    if not isinstance(raw, list):
        r.problem("scenario.blip", raw, "must be an array of tables ([[scenario.blip]])")
        return {}
    blips: dict[str, list[tuple[float, float]]] = {}
    for n, b in enumerate(raw, start=1):
        path = f"scenario.blip[{n}]"
        if not isinstance(b, dict):
            r.problem(path, b, "must be a table ([[scenario.blip]])")
            continue
        r.only(b, path, {"charger", "at_h", "for_s"})
        cid = r.text(b, "charger", path, MISSING)
        if cid and cid not in chargers:
            r.problem(f"{path}.charger", cid, "names no [[charger]] id; known: " + ", ".join(chargers))
        at = r.number(b, "at_h", path, MISSING, 0, 24 * 8, " h (hour of day)")
        length = r.number(b, "for_s", path, 10.0, 0, 86400, " s", lo_open=True)
        if at is not None:
            start = (at - start_h) * 3600.0
            blips.setdefault(cid, []).append((start, start + length))
    return {cid: Link(lease_s=lease_s, blips=tuple(sorted(v))) for cid, v in blips.items()}


def _hours(r: TableReader, t: dict, key: str, path: str) -> list[float]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                              for x in value):
        r.problem(f"{path}.{key}", value, "must be a list of hours of the day, e.g. [18.5, 21.25]")
        return []
    return [float(x) for x in value]


def _wiring(r: TableReader, t: dict, config: Config | None) -> dict[str, str]:
    """The true wiring per charger where it differs from the configured `phases`."""
    w = r.table(t, "wiring", "scenario.wiring")
    if config is None:
        return {}
    configured = {c.id: c.phases for c in config.chargers}
    r.only(w, "scenario.wiring", set(configured))
    out = {}
    for cid, value in w.items():
        if cid not in configured:
            continue
        site = config.site.phase_names
        if not isinstance(value, str) or len(value) != len(configured[cid]) or \
                len(set(value)) != len(value) or not set(value) <= set(site):
            r.problem(f"scenario.wiring.{cid}", value, f"must be {len(configured[cid])} distinct "
                      f"phases of this site ({site}) as really wired to L1, L2, L3")
            continue
        out[cid] = value
    return out
