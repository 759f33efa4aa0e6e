"""/etc/evfuse/evfuse.toml -> frozen dataclasses.

Every problem is reported with the file, the key path (``charger[2].max_a``), the bad value
and what is allowed; all problems are collected and raised together as ConfigError so an
installer fixes them in one go. Unknown keys are errors: a typo must never silently drop a
limit. Warnings (valid but risky settings) are returned alongside the config.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from controller.chargers.modbus import profile as charger_profiles
# [control] is read straight into the core's own plain type (the core never imports this module).
from controller.core.site import Control as ControlConfig
from controller.meter.profile import load_profile, parse_registers, profile_names
from controller.model import SITE_PHASES
from controller.tomlcheck import MISSING, Checker, Problems, fmt, show

MODES = ("standard", "solar-priority", "solar-only", "excess", "off")
PARITIES = ("N", "E", "O")
EXAMPLE_CONFIG = Path(__file__).with_name("evfuse.example.toml")


class ConfigError(Problems):
    """One or more problems in a config file; str() lists them one per line."""


@dataclass(frozen=True)
class SiteConfig:
    phases: int = 3
    voltage_v: float = 230.0
    fuse_a: float = 25.0
    margin_a: float = 1.0
    max_import_kw: float = 0.0  # 0 = no cap
    grid: str = "TN"  # "TN"/"TT" (phase-to-neutral loads) or "IT" (no neutral: loads between phases)

    @property
    def limit_a(self) -> float:
        return self.fuse_a - self.margin_a

    @property
    def phase_names(self) -> str:
        return "".join(SITE_PHASES[: self.phases])


@dataclass(frozen=True)
class SerialSettings:
    """Where a Modbus device is: a TCP host/port or a serial device (RTU)."""

    transport: str = "tcp"  # "tcp" | "rtu"
    host: str = ""
    port: int = 502
    device: str = ""
    baudrate: int | None = None  # None = the profile's default
    parity: str | None = None
    stopbits: int | None = None
    unit_id: int = 1


@dataclass(frozen=True)
class MeterConfig:
    profile: str = "sdm630"
    link: SerialSettings = field(default_factory=SerialSettings)
    poll_interval_s: float | None = None  # None = transport default (TCP 0.25 s)
    stale_after_s: float = 3.0
    timeout_s: float = 1.0
    min_gap_s: float | None = None  # None = the profile's default gap between requests
    invert: tuple[str, ...] = ()  # site phases whose current clamp is reversed
    registers: tuple[dict[str, Any], ...] = ()  # profile = "custom" only


class _Listens:
    """host and port of a `listen` key ("host:port")."""

    listen: str

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True)
class OcppConfig(_Listens):
    listen: str = "0.0.0.0:9000"
    lease_s: float = 120.0
    meter_interval_s: float = 5.0
    heartbeat_s: int = 300
    compliance_tolerance_a: float = 1.5
    compliance_allowance_s: float = 15.0
    tls_cert: str = ""
    tls_key: str = ""
    id_tags: tuple[str, ...] = ()  # empty = accept every id tag
    stop_lease_s: float = 60.0  # planned stop: every limit stays, valid this long (at most lease_s)


@dataclass(frozen=True)
class ChargerConfig:
    id: str
    protocol: str = "ocpp"
    phases: str = "ABC"  # site phase wired to the charger's L1, L2, L3
    min_a: float = 6.0
    max_a: float = 16.0
    priority: int = 1
    weight: float = 1.0
    mode: str = "standard"
    # OCPP
    password: str = ""
    profile_kind: str = "absolute"  # "absolute" | "relative" dynamic profile validity
    # Modbus
    profile: str = ""
    link: SerialSettings | None = None
    watchdog_s: float = 15.0
    registers: dict[str, Any] = field(default_factory=dict)  # profile = "custom" only
    # A charger with several connectors ([[charger.connector]]) is one entry per connector:
    # id "twin/2", the charger's keys with the connector's own on top (see _connectors).
    charger_id: str = ""  # the [[charger]] id of a connector; "" = a charger without connector tables
    connector: int = 0  # its connector id (OCPP connectorId / evseId, Modbus socket); 0 = none
    charger_max_a: float = 0.0  # connectors: the whole charger's max_a, caps their sum per phase
    sequential: bool = False  # connectors: the charger powers one of them at a time
    siblings: tuple[int, ...] = ()  # connectors: every connector id of its charger, in file order

    @property
    def station(self) -> str:
        """The [[charger]] id: the OCPP identity, the name a circuit lists."""
        return self.charger_id or self.id

    @property
    def connector_id(self) -> int:
        """The protocol's connector (OCPP connectorId / evseId): 1 for a charger without tables."""
        return self.connector or 1


def charger_fallback_a(charger: ChargerConfig, control: ControlConfig) -> float:
    """What a charger holds when evfuse does not know better (start, meter lost) or is gone
    (OCPP base profile, Modbus failsafe): 0 for mode "off", else control.fallback_a capped at
    its max_a. The core assumes exactly this, so every driver programmes this and nothing else."""
    if charger.mode == "off":
        return 0.0
    return min(control.fallback_a, charger.max_a)


@dataclass(frozen=True)
class LoadConfig:
    """A switchable load ([[load]]): on at power_w or off, through a smart plug or relay."""

    id: str
    driver: str  # LOAD_DRIVERS
    phases: str = "A"  # site phases it draws on
    power_w: float = 0.0  # its draw when on
    priority: int = 1
    mode: str = "standard"
    min_on_s: float = 0.0
    min_off_s: float = 0.0
    # shelly
    host: str = ""
    port: int = 80
    switch_id: int = 0
    lease_s: float = 60.0  # toggle_after: the device switches off by itself this long after a renewal
    password: str = ""  # the Shelly's own authentication (user "admin"); "" = it has none
    # modbus-coil
    link: SerialSettings | None = None
    coil: int = 0
    # gpio
    pin: int | None = None
    active_high: bool = True

    @property
    def leased(self) -> bool:
        """It switches off by itself when evfuse is gone (the device enforces a lease)."""
        return self.driver == "shelly"


LOAD_DRIVERS = ("shelly", "modbus-coil", "gpio")


@dataclass(frozen=True)
class CircuitConfig:
    id: str
    fuse_a: float
    margin_a: float = 0.0
    chargers: tuple[str, ...] = ()
    parent: str = ""

    @property
    def limit_a(self) -> float:
        return self.fuse_a - self.margin_a


@dataclass(frozen=True)
class HardwareConfig:
    led_pin: int | None = None
    button_pin: int | None = None


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int = 1883
    username: str = ""
    password: str = ""
    tls: bool = False
    topic: str = "evfuse"  # base topic
    discovery_prefix: str = "homeassistant"  # "" = no Home Assistant discovery


@dataclass(frozen=True)
class WebConfig(_Listens):
    """The web page (controller/web/). With a password it also offers the controls; it speaks
    https with the [ocpp] certificate when one is set."""

    listen: str = "0.0.0.0:8080"
    password: str = ""  # empty = read-only page, no control endpoints at all


@dataclass(frozen=True)
class Config:
    site: SiteConfig
    meter: MeterConfig
    control: ControlConfig
    ocpp: OcppConfig
    chargers: tuple[ChargerConfig, ...]
    circuits: tuple[CircuitConfig, ...] = ()
    hardware: HardwareConfig | None = None
    mqtt: MqttConfig | None = None
    web: WebConfig | None = None
    source: str = "<config>"
    warnings: tuple[str, ...] = ()
    loads: tuple[LoadConfig, ...] = ()  # [[load]], after the chargers in the core's order

    def stations(self) -> dict[str, tuple[ChargerConfig, ...]]:
        """[[charger]] id -> its entries in `chargers` (its connectors, or itself), file order."""
        out: dict[str, list[ChargerConfig]] = {}
        for c in self.chargers:
            out.setdefault(c.station, []).append(c)
        return {k: tuple(v) for k, v in out.items()}

    def charger(self, charger_id: str) -> ChargerConfig:
        for c in self.chargers:
            if c.id == charger_id:
                return c
        raise KeyError(charger_id)

    def circuit_chain(self, charger_id: str) -> tuple[CircuitConfig, ...]:
        """The circuits a charger (or a connector, through its charger) sits under, innermost first."""
        by_id = {c.id: c for c in self.circuits}
        chain: list[CircuitConfig] = []
        station = next((c.station for c in self.chargers if c.id == charger_id), charger_id)
        current = next((c for c in self.circuits if station in c.chargers), None)
        while current is not None and current not in chain:
            chain.append(current)
            current = by_id.get(current.parent)
        return tuple(chain)


# --------------------------------------------------------------------------- reading


class _Reader(Checker):
    """Typed access to the config's tables; problems start with the file name."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source}: ", problems)
        self.source = source

    def table(self, data: dict, key: str, path: str) -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.problem(path, value, "must be a table ([" + path + "])")
            return {}
        return value

    def number(self, table: dict, key: str, path: str, default: Any, lo: float, hi: float,
               unit: str = "", integer: bool = False, lo_open: bool = False) -> Any:
        if key not in table:
            if default is _MISSING:
                self.problem(f"{path}.{key}", _MISSING, "is required")
            return None if default is _MISSING else default
        value = table[key]
        kind = "a whole number" if integer else "a number"
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        ok = ok and not isinstance(value, bool)
        if ok and not integer:
            ok = math.isfinite(value)
        if ok:
            ok = (value > lo if lo_open else value >= lo) and value <= hi
        if not ok:
            low = f"above {fmt(lo)}" if lo_open else f"from {fmt(lo)}"
            self.problem(f"{path}.{key}", value, f"must be {kind} {low} to {fmt(hi)}{unit}")
            return default if default is not _MISSING else None
        return value if integer else float(value)

    def text(self, table: dict, key: str, path: str, default: Any,
             choices: tuple[str, ...] | None = None) -> Any:
        if key not in table:
            if default is _MISSING:
                self.problem(f"{path}.{key}", _MISSING, "is required")
                return ""
            return default
        value = table[key]
        if not isinstance(value, str):
            self.problem(f"{path}.{key}", value, "must be a string in quotes")
            return default if default is not _MISSING else ""
        if choices is not None and value not in choices:
            self.problem(f"{path}.{key}", value, "must be one of " + ", ".join(f'"{c}"' for c in choices))
            return default if default is not _MISSING else ""
        return value

    def strings(self, table: dict, key: str, path: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{path}.{key}", value, 'must be a list of strings, e.g. ["a", "b"]')
            return ()
        return tuple(value)


_MISSING = MISSING

# The reader's public name for other files in the config's format (the simulator's scenario
# files): the same typed access and the same error shape, without reaching into privates.
TableReader = _Reader


SERIAL_KEYS = {"transport", "host", "port", "device", "baudrate", "parity", "stopbits", "unit_id"}


def _serial(r: _Reader, t: dict, path: str, default_transport: str, unit_hi: int = 255) -> SerialSettings:
    transport = r.text(t, "transport", path, default_transport, ("tcp", "rtu"))
    link = SerialSettings(
        transport=transport,
        host=r.text(t, "host", path, ""),
        port=r.number(t, "port", path, 502, 1, 65535, integer=True),
        device=r.text(t, "device", path, ""),
        baudrate=r.number(t, "baudrate", path, None, 1200, 921600, " baud", integer=True),
        parity=r.text(t, "parity", path, None, PARITIES),
        stopbits=r.number(t, "stopbits", path, None, 1, 2, integer=True),
        unit_id=r.number(t, "unit_id", path, 1, 0, unit_hi, integer=True),
    )
    if transport == "tcp" and not link.host:
        r.problem(f"{path}.host", _MISSING, 'is required when transport = "tcp" (IP address or name)')
    if transport == "rtu" and not link.device:
        r.problem(f"{path}.device", _MISSING, 'is required when transport = "rtu" (e.g. "/dev/ttyUSB0")')
    return link


def _site(r: _Reader, data: dict) -> SiteConfig:
    t = r.table(data, "site", "site")
    r.only(t, "site", {"phases", "voltage_v", "fuse_a", "margin_a", "max_import_kw", "grid"})
    site = SiteConfig(
        phases=r.number(t, "phases", "site", 3, 1, 3, integer=True),
        voltage_v=r.number(t, "voltage_v", "site", 230.0, 100, 400, " V"),
        fuse_a=r.number(t, "fuse_a", "site", _MISSING, 1, 1000, " A") or 25.0,
        margin_a=r.number(t, "margin_a", "site", 1.0, 0, 100, " A"),
        max_import_kw=r.number(t, "max_import_kw", "site", 0.0, 0, 10000, " kW (0 = no cap)"),
        grid=r.text(t, "grid", "site", "TN", GRIDS),
    )
    if site.grid == "IT" and site.phases < 2:
        r.problem("site.phases", site.phases, 'must be 2 or 3 on an IT grid (site.grid = "IT": every load '
                  "sits between two phases)")
    if "fuse_a" in t and site.fuse_a <= site.margin_a:
        r.problem("site.margin_a", site.margin_a, f"must be below site.fuse_a ({fmt(site.fuse_a)} A)")
    return site


def _meter(r: _Reader, data: dict) -> MeterConfig:
    t = r.table(data, "meter", "meter")
    r.only(t, "meter", SERIAL_KEYS | {"profile", "poll_interval_s", "stale_after_s", "timeout_s",
                                      "min_gap_s", "invert", "registers"})
    invert_raw = t.get("invert", False)
    if isinstance(invert_raw, bool):
        invert = SITE_PHASES if invert_raw else ()
    elif isinstance(invert_raw, str) and invert_raw and set(invert_raw) <= set(SITE_PHASES):
        invert = tuple(invert_raw)
    else:
        r.problem("meter.invert", invert_raw, 'must be true, false or the phases to invert, e.g. "B"')
        invert = ()
    registers = t.get("registers", [])
    if not isinstance(registers, list) or not all(isinstance(x, dict) for x in registers):
        r.problem("meter.registers", registers, "must be a list of tables ([[meter.registers]])")
        registers = []
    names = profile_names()
    meter = MeterConfig(
        profile=r.text(t, "profile", "meter", "sdm630", tuple(names)),
        link=_serial(r, t, "meter", "tcp", unit_hi=247),
        poll_interval_s=r.number(t, "poll_interval_s", "meter", None, 0, 60, " s", lo_open=True),
        stale_after_s=r.number(t, "stale_after_s", "meter", 3.0, 0, 600, " s", lo_open=True),
        timeout_s=r.number(t, "timeout_s", "meter", 1.0, 0, 30, " s", lo_open=True),
        min_gap_s=r.number(t, "min_gap_s", "meter", None, 0, 10, " s"),
        invert=invert,
        registers=tuple(registers),
    )
    if meter.profile == "custom" and not meter.registers:
        r.problem("meter.registers", _MISSING, 'is required when profile = "custom"')
    if meter.profile != "custom" and meter.registers:
        r.problem("meter.registers", _MISSING, 'is only allowed with profile = "custom"')
    if meter.profile == "custom" and meter.registers:
        _, register_problems = parse_registers(list(meter.registers), "meter.registers")
        r.problems.extend(f"{r.source}: {p}" for p in register_problems)
    _meter_covers_site(r, meter, data)
    poll = meter.poll_interval_s
    if poll is not None and poll >= meter.stale_after_s:
        r.problem("meter.poll_interval_s", poll,
                  f"must be below meter.stale_after_s ({fmt(meter.stale_after_s)} s)")
    return meter


def _meter_covers_site(r: _Reader, meter: MeterConfig, data: dict) -> None:
    """A meter must see every phase of the site, or an overload on an unseen phase goes unnoticed."""
    site = data.get("site", {})
    phases = site.get("phases", 3) if isinstance(site, dict) else 3
    if phases not in (1, 2, 3):
        return  # reported by _site
    if meter.profile == "custom":
        specs, problems = parse_registers(list(meter.registers), "meter.registers")
        have = {s.phase for s in specs if s.quantity == "current"}
        missing = [SITE_PHASES[p] for p in range(phases) if p not in have]
        if not problems and meter.registers and missing:
            r.problem("meter.registers", _MISSING, f"has no current register for site phase "
                      f"{', '.join(missing)}; a {phases}-phase site needs one per phase")
        return
    if meter.profile in ("", "sunspec") or meter.profile not in profile_names():
        return
    measured = load_profile(meter.profile).phases
    if measured < phases:
        r.problem("meter.profile", meter.profile, f"measures {measured} phase(s) but site.phases = {phases}; "
                  "choose a meter that sees every phase")


def _control(r: _Reader, data: dict) -> ControlConfig:
    t = r.table(data, "control", "control")
    d = ControlConfig()
    r.only(t, "control", set(d.__dataclass_fields__))
    hi = {"fallback_a": 80, "ramp_up_step_a": 80, "restart_hysteresis_a": 80, "dead_band_a": 5,
          "excess_threshold_w": 100000}
    values = {}
    for name in d.__dataclass_fields__:
        unit = " W" if name.endswith("_w") else " A" if name.endswith("_a") else " s"
        lo_open = name in ("ramp_up_step_a", "ramp_up_interval_s", "response_s", "overload_pause_s")
        values[name] = r.number(t, name, "control", getattr(d, name), 0, hi.get(name, 3600), unit,
                                lo_open=lo_open)
    return ControlConfig(**values)


def _ocpp(r: _Reader, data: dict) -> OcppConfig:
    t = r.table(data, "ocpp", "ocpp")
    r.only(t, "ocpp", set(OcppConfig.__dataclass_fields__))
    listen = r.text(t, "listen", "ocpp", "0.0.0.0:9000")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        r.problem("ocpp.listen", listen, 'must be "ADDRESS:PORT", e.g. "0.0.0.0:9000"')
        listen = "0.0.0.0:9000"
    cfg = OcppConfig(
        listen=listen,
        lease_s=r.number(t, "lease_s", "ocpp", 120.0, 10, 86400, " s"),
        meter_interval_s=r.number(t, "meter_interval_s", "ocpp", 5.0, 1, 300, " s"),
        heartbeat_s=r.number(t, "heartbeat_s", "ocpp", 300, 10, 86400, " s", integer=True),
        compliance_tolerance_a=r.number(t, "compliance_tolerance_a", "ocpp", 1.5, 0, 32, " A"),
        compliance_allowance_s=r.number(t, "compliance_allowance_s", "ocpp", 15.0, 1, 600, " s"),
        tls_cert=r.text(t, "tls_cert", "ocpp", ""),
        tls_key=r.text(t, "tls_key", "ocpp", ""),
        id_tags=r.strings(t, "id_tags", "ocpp"),
        stop_lease_s=r.number(t, "stop_lease_s", "ocpp", 60.0, 5, 3600, " s"),
    )
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        r.problem("ocpp.tls_key" if cfg.tls_cert else "ocpp.tls_cert", _MISSING,
                  "tls_cert and tls_key go together (both paths, or neither)")
    return cfg


CHARGER_KEYS = {"id", "protocol", "phases", "min_a", "max_a", "priority", "weight", "mode",
                "password", "profile_kind", "profile", "watchdog_s", "registers", "connector", "sequential"}


def _charger(r: _Reader, t: Any, path: str, site: SiteConfig) -> list[ChargerConfig] | None:
    if not isinstance(t, dict):
        r.problem(path, t, "must be a table ([[charger]])")
        return None
    protocol = r.text(t, "protocol", path, "ocpp", ("ocpp", "modbus"))
    allowed = CHARGER_KEYS | (SERIAL_KEYS if protocol == "modbus" else set())
    r.only(t, path, allowed)
    charger_id = r.text(t, "id", path, _MISSING)
    if "id" in t and not charger_id.strip():
        r.problem(f"{path}.id", charger_id, "must not be empty")
    if "/" in charger_id:
        r.problem(f"{path}.id", charger_id, 'must not contain "/": it names connectors ("twin/2")')
    wiring = r.text(t, "phases", path, site.phase_names)
    if "phases" in t and not _wiring_ok(wiring, site):
        r.problem(f"{path}.phases", wiring,
                  f"must be 1 to {site.phases} different phases of this {site.phases}-phase site "
                  f"({', '.join(site.phase_names)}) in the order wired to L1, L2, L3")
        wiring = site.phase_names
    _between_phases(r, path, wiring, site)
    charger = ChargerConfig(
        id=charger_id,
        protocol=protocol,
        phases=wiring,
        min_a=r.number(t, "min_a", path, 6.0, 1, 80, " A"),
        max_a=r.number(t, "max_a", path, 16.0, 1, 80, " A"),
        priority=r.number(t, "priority", path, 1, 1, 100, integer=True),
        weight=r.number(t, "weight", path, 1.0, 0, 100, lo_open=True),
        mode=r.text(t, "mode", path, "standard", MODES),
        password=r.text(t, "password", path, ""),
        profile_kind=r.text(t, "profile_kind", path, "absolute", ("absolute", "relative")),
        profile=r.text(t, "profile", path, _MISSING if protocol == "modbus" else ""),
        link=_serial(r, t, path, "tcp") if protocol == "modbus" else None,
        watchdog_s=r.number(t, "watchdog_s", path, 15.0, 1, 600, " s"),
    )
    if charger.min_a > charger.max_a:
        r.problem(f"{path}.min_a", charger.min_a, f"must not exceed max_a ({fmt(charger.max_a)} A)")
    if protocol == "modbus" and charger.password:
        r.problem(f"{path}.password", _MISSING, 'is only for protocol = "ocpp"')
    if protocol == "modbus":
        charger = _modbus_profile(r, t, path, charger)
    elif "registers" in t:
        r.problem(f"{path}.registers", _MISSING, 'is only for protocol = "modbus" with profile = "custom"')
    return _connectors(r, t, path, site, charger)


CONNECTOR_KEYS = {"id", "phases", "min_a", "max_a", "priority", "weight", "mode"}
MAX_CONNECTOR_ID = 247  # OCPP connectorId / evseId from 1 (0 is the whole charger); Modbus unit ids end here


def _connectors(r: _Reader, t: dict, path: str, site: SiteConfig,
                charger: ChargerConfig) -> list[ChargerConfig]:
    """A charger's entries: itself, or one per [[charger.connector]] table. A connector takes
    the charger's keys and overrides the sharing ones (and a Modbus socket its unit_id, by
    default its id); the charger's max_a then caps the connectors' sum per phase."""
    sequential = t.get("sequential", False)
    if not isinstance(sequential, bool):
        r.problem(f"{path}.sequential", sequential, "must be true or false")
        sequential = False
    raw = t.get("connector")
    if raw is None:
        if "sequential" in t:
            r.problem(f"{path}.sequential", MISSING, "needs [[charger.connector]] tables "
                      "(a charger with one connector powers it alone anyway)")
        return [charger]
    if not isinstance(raw, list) or not raw or not all(isinstance(x, dict) for x in raw):
        r.problem(f"{path}.connector", raw, "must be one or more tables ([[charger.connector]] with id = 1, ...)")
        return [charger]
    out: list[ChargerConfig] = []
    seen: set[int] = set()
    units: dict[int, int] = {}  # Modbus: unit id -> the connector it addresses
    for k, ct in enumerate(raw, start=1):
        cpath = f"{path}.connector[{k}]"
        r.only(ct, cpath, CONNECTOR_KEYS | ({"unit_id"} if charger.protocol == "modbus" else set()))
        number = r.number(ct, "id", cpath, _MISSING, 1, MAX_CONNECTOR_ID, " (OCPP connectorId / evseId, "
                          "Modbus socket; 0 is the whole charger)", integer=True)
        if number is None:
            continue
        if number in seen:
            r.problem(f"{cpath}.id", number, "is used by another connector of this charger; ids must be unique")
            continue
        seen.add(number)
        wiring = r.text(ct, "phases", cpath, charger.phases)
        if "phases" in ct and not _wiring_ok(wiring, site):
            r.problem(f"{cpath}.phases", wiring,
                      f"must be 1 to {site.phases} different phases of this {site.phases}-phase site "
                      f"({', '.join(site.phase_names)}) in the order wired to the connector's L1, L2, L3")
            wiring = charger.phases
        _between_phases(r, cpath, wiring, site)
        link = charger.link
        if link is not None:
            link = SerialSettings(**{**link.__dict__, "unit_id": r.number(ct, "unit_id", cpath, number, 0, 255,
                                                                          integer=True)})
            # two sockets on one unit: one car's limit and draw would be the other's, and the
            # socket nobody addresses would go uncontrolled and uncounted
            if link.unit_id in units:
                r.problem(f"{cpath}.unit_id", link.unit_id, f"is also the unit of connector {units[link.unit_id]}: "
                          "each socket needs a unit of its own (a connector's unit_id is its id unless set)")
            units.setdefault(link.unit_id, number)
        entry = ChargerConfig(**{
            **charger.__dict__, "id": f"{charger.id}/{number}", "phases": wiring, "link": link,
            "min_a": r.number(ct, "min_a", cpath, charger.min_a, 1, 80, " A"),
            "max_a": r.number(ct, "max_a", cpath, charger.max_a, 1, 80, " A"),
            "priority": r.number(ct, "priority", cpath, charger.priority, 1, 100, integer=True),
            "weight": r.number(ct, "weight", cpath, charger.weight, 0, 100, lo_open=True),
            "mode": r.text(ct, "mode", cpath, charger.mode, MODES),
            "charger_id": charger.id, "connector": number, "charger_max_a": charger.max_a,
            "sequential": sequential})
        if entry.min_a > entry.max_a:
            r.problem(f"{cpath}.min_a", entry.min_a, f"must not exceed its max_a ({fmt(entry.max_a)} A)")
        if entry.max_a > charger.max_a:
            r.problem(f"{cpath}.max_a", entry.max_a, f"must not exceed the charger's max_a "
                      f"({fmt(charger.max_a)} A: it caps the sum of its connectors)")
        if charger.protocol == "modbus" and charger.profile in charger_profiles.profile_names() \
                and charger.profile != "custom":
            profile = charger_profiles.load_profile(charger.profile)
            if entry.min_a < profile.min_a or profile.max_a is not None and entry.max_a > profile.max_a:
                r.problem(f"{cpath}.max_a" if entry.min_a >= profile.min_a else f"{cpath}.min_a",
                          entry.max_a if entry.min_a >= profile.min_a else entry.min_a,
                          f'must lie within what profile "{profile.name}" takes '
                          f"({fmt(profile.min_a)} to {fmt(profile.max_a or 80)} A)")
        out.append(entry)
    siblings = tuple(c.connector for c in out)
    return [ChargerConfig(**{**c.__dict__, "siblings": siblings}) for c in out]


def _modbus_profile(r: _Reader, t: dict, path: str, charger: ChargerConfig) -> ChargerConfig:
    """Check the charger profile name, and the register table of a custom one."""
    names = charger_profiles.profile_names()
    if "profile" in t and charger.profile not in names:
        r.problem(f"{path}.profile", charger.profile, "must be one of " + ", ".join(f'"{n}"' for n in names))
        return charger
    registers = t.get("registers")
    if charger.profile != "custom":
        if registers is not None:
            r.problem(f"{path}.registers", _MISSING, 'is only allowed with profile = "custom"')
        elif "profile" in t:
            _within_profile(r, t, path, charger, charger_profiles.load_profile(charger.profile))
        return charger
    if registers is None:
        r.problem(f"{path}.registers", _MISSING, 'is required when profile = "custom" '
                  f"([{path.split('[')[0]}.registers] with limit = {{ address = ..., type = ... }})")
        return charger
    try:
        profile = charger_profiles.custom_profile(registers, f"{path}.registers")
    except charger_profiles.ProfileError as e:
        r.problems.extend(f"{r.source}: {p}" for p in e.problems)
        return charger
    _within_profile(r, t, path, charger, profile)
    return ChargerConfig(**{**charger.__dict__, "registers": dict(registers)})


def _within_profile(r: _Reader, t: dict, path: str, charger: ChargerConfig,
                    profile: charger_profiles.ChargerProfile) -> None:
    """What the device cannot do is a config error: a min_a it turns into a pause (the core
    would believe the car charges), a max_a it refuses, a watchdog it cannot hold."""
    takes = f"{fmt(profile.min_a)} to {fmt(profile.max_a)} A" if profile.max_a else f"{fmt(profile.min_a)} A or more"
    what = f'profile "{profile.name}" takes 0 (pause) or {takes}'
    if charger.min_a < profile.min_a:
        r.problem(f"{path}.min_a", t.get("min_a", charger.min_a), f"must be at least {fmt(profile.min_a)} A: {what}")
    if profile.max_a is not None and charger.max_a > profile.max_a:
        r.problem(f"{path}.max_a", t.get("max_a", charger.max_a), f"must be at most {fmt(profile.max_a)} A: {what}")
    wd = profile.watchdog
    if wd is not None and wd.timeout is not None:
        if not wd.holds(charger.watchdog_s):
            r.problem(f"{path}.watchdog_s", t.get("watchdog_s", charger.watchdog_s),
                      f'must be {profile.watchdog_range()} for profile "{profile.name}"')
    elif "watchdog_s" in t:
        r.problem(f"{path}.watchdog_s", t["watchdog_s"],
                  f'cannot be set for profile "{profile.name}": it takes {profile.watchdog_range()}')


LOAD_KEYS = {"id", "driver", "phases", "power_w", "priority", "mode", "min_on_s", "min_off_s"}
LOAD_DRIVER_KEYS = {
    "shelly": {"host", "port", "switch_id", "lease_s", "password"},
    "modbus-coil": SERIAL_KEYS | {"coil"},
    "gpio": {"pin", "active_high"},
}


def _load(r: _Reader, t: Any, path: str, site: SiteConfig) -> LoadConfig | None:
    if not isinstance(t, dict):
        r.problem(path, t, "must be a table ([[load]])")
        return None
    driver = r.text(t, "driver", path, _MISSING, LOAD_DRIVERS)
    r.only(t, path, LOAD_KEYS | LOAD_DRIVER_KEYS.get(driver, set()))
    load_id = r.text(t, "id", path, _MISSING)
    if "id" in t and not load_id.strip():
        r.problem(f"{path}.id", load_id, "must not be empty")
    wiring = r.text(t, "phases", path, "A")
    if not _wiring_ok(wiring, site):
        r.problem(f"{path}.phases", wiring, f"must be 1 to {site.phases} different phases of this "
                  f"{site.phases}-phase site ({', '.join(site.phase_names)}), e.g. \"A\" or \"ABC\"")
        wiring = "A"
    _between_phases(r, path, wiring, site)
    active_high = r.flag(t, "active_high", path, True)
    load = LoadConfig(
        id=load_id, driver=driver, phases=wiring,
        power_w=r.number(t, "power_w", path, _MISSING, 1, 60000, " W") or 1.0,
        priority=r.number(t, "priority", path, 1, 1, 100, integer=True),
        mode=r.text(t, "mode", path, "standard", MODES),
        min_on_s=r.number(t, "min_on_s", path, 0.0, 0, 86400, " s"),
        min_off_s=r.number(t, "min_off_s", path, 0.0, 0, 86400, " s"),
    )
    if driver == "shelly":
        load = replace(load, host=r.text(t, "host", path, _MISSING),
                       port=r.number(t, "port", path, 80, 1, 65535, integer=True),
                       switch_id=r.number(t, "switch_id", path, 0, 0, 255, integer=True),
                       lease_s=r.number(t, "lease_s", path, 60.0, 10, 3600, " s"),
                       password=r.text(t, "password", path, ""))
        if "host" in t and not load.host.strip():
            r.problem(f"{path}.host", load.host, "must not be empty (the Shelly's IP address or name)")
        if "password" in t and isinstance(t["password"], str) and not load.password:
            r.problem(f"{path}.password", "", "must not be empty; leave the key out for a Shelly without authentication")
    elif driver == "modbus-coil":
        load = replace(load, link=_serial(r, t, path, "tcp", unit_hi=247),
                       coil=r.number(t, "coil", path, 0, 0, 65535, " (0-based coil address)", integer=True))
    elif driver == "gpio":
        load = replace(load, pin=r.number(t, "pin", path, _MISSING, 0, 27, " (BCM GPIO number)", integer=True),
                       active_high=True if active_high is None else active_high)
    amps = load.power_w / (site.voltage_v * len(wiring))
    if amps > site.limit_a:
        r.problem(f"{path}.power_w", load.power_w, f"draws {amps:.1f} A per phase when on, more than the "
                  f"site limit ({fmt(site.limit_a)} A): it could never switch on")
    return load


def _loads(r: _Reader, data: dict, site: SiteConfig, charger_ids: list[str],
           hardware_pins: set[int]) -> list[LoadConfig]:
    raw = data.get("load", [])
    if not isinstance(raw, list):
        r.problem("load", raw, "must be an array of tables ([[load]])")
        return []
    loads = [x for i, t in enumerate(raw, start=1) if (x := _load(r, t, f"load[{i}]", site)) is not None]
    ids = [x.id for x in loads]
    pins = [x.pin for x in loads if x.pin is not None]
    for i, x in enumerate(loads, start=1):
        if x.id and (ids.count(x.id) > 1 or x.id in charger_ids):
            r.problem(f"load[{i}].id", x.id, "is used by another [[load]] or [[charger]]; ids must be unique")
        if x.pin is not None and (pins.count(x.pin) > 1 or x.pin in hardware_pins):
            r.problem(f"load[{i}].pin", x.pin, "is used by another load or by [hardware]; one relay per pin")
    return loads


def _loads_share_the_meters_wire(r: _Reader, loads: list[LoadConfig], meter: MeterConfig) -> None:
    """A relay board on the meter's RS485 port shares its one client: every device on a wire
    uses the same serial settings (where the load sets none it takes the meter's)."""
    if meter.link.transport != "rtu" or meter.profile == "custom" or meter.profile not in profile_names():
        return
    prof = load_profile(meter.profile)
    wire = (meter.link.baudrate or prof.baudrate, meter.link.parity or prof.parity,
            meter.link.stopbits or prof.stopbits)
    for i, x in enumerate(loads, start=1):
        link = x.link
        if link is None or link.transport != "rtu" or \
                os.path.normpath(link.device) != os.path.normpath(meter.link.device):
            continue
        for key, value, want in (("baudrate", link.baudrate, wire[0]), ("parity", link.parity, wire[1]),
                                 ("stopbits", link.stopbits, wire[2])):
            if value is not None and value != want:
                r.problem(f"load[{i}].{key}", value, f"must be {show(want)} as the meter's on {link.device}: "
                          "every device on one RS485 wire uses the same settings (or leave it out)")


GRIDS = ("TN", "TT", "IT")


def _between_phases(r: _Reader, path: str, wiring: str, site: SiteConfig) -> None:
    """An IT grid has no neutral: a load is wired between two phases (or across three)."""
    if site.grid == "IT" and len(wiring) < 2:
        r.problem(f"{path}.phases", wiring, 'must name two or three phases on an IT grid (site.grid = "IT" '
                  'has no neutral: a load sits between two phases), e.g. "AB" or "ABC"')


def _wiring_ok(wiring: str, site: SiteConfig) -> bool:
    return (1 <= len(wiring) <= site.phases and len(set(wiring)) == len(wiring)
            and set(wiring) <= set(site.phase_names))


def _circuits(r: _Reader, data: dict, chargers: list) -> list[CircuitConfig]:
    raw = data.get("circuit", [])
    if not isinstance(raw, list):
        r.problem("circuit", raw, "must be an array of tables ([[circuit]])")
        return []
    known = {getattr(c, "station", c.id) for c in chargers}  # chargers (by their own id) and loads
    connectors = {c.id: c.station for c in chargers if getattr(c, "charger_id", "")}
    out: list[CircuitConfig] = []
    owner: dict[str, str] = {}
    for i, t in enumerate(raw, start=1):
        path = f"circuit[{i}]"
        if not isinstance(t, dict):
            r.problem(path, t, "must be a table ([[circuit]])")
            continue
        r.only(t, path, {"id", "fuse_a", "margin_a", "chargers", "parent"})
        circuit = CircuitConfig(
            id=r.text(t, "id", path, _MISSING),
            fuse_a=r.number(t, "fuse_a", path, _MISSING, 1, 1000, " A") or 0.0,
            margin_a=r.number(t, "margin_a", path, 0.0, 0, 100, " A"),
            chargers=r.strings(t, "chargers", path),
            parent=r.text(t, "parent", path, ""),
        )
        if circuit.fuse_a and circuit.fuse_a <= circuit.margin_a:
            r.problem(f"{path}.margin_a", circuit.margin_a, f"must be below fuse_a ({fmt(circuit.fuse_a)} A)")
        for member in circuit.chargers:
            if member in connectors:
                r.problem(f"{path}.chargers", member, f'names a connector: list its charger "{connectors[member]}" '
                          "(a circuit covers all its connectors)")
            elif member not in known:
                r.problem(f"{path}.chargers", member,
                          "names no [[charger]] id (nor [[load]] id); known: " + ", ".join(sorted(known)))
            elif member in owner:
                r.problem(f"{path}.chargers", member,
                          f'is already in circuit "{owner[member]}": list a charger only in its innermost '
                          'circuit and set parent = "..." for nesting')
            else:
                owner[member] = circuit.id
        out.append(circuit)
    ids = [c.id for c in out]
    by_id = {c.id: c for c in out}
    for i, c in enumerate(out, start=1):
        if ids.count(c.id) > 1:
            r.problem(f"circuit[{i}].id", c.id, "is used by another [[circuit]]; ids must be unique")
        if c.parent and c.parent not in by_id:
            r.problem(f"circuit[{i}].parent", c.parent, "names no [[circuit]] id")
        seen, cur = {c.id}, by_id.get(c.parent)
        while cur is not None:
            if cur.id in seen:
                r.problem(f"circuit[{i}].parent", c.parent, "makes a loop of circuits")
                break
            seen.add(cur.id)
            cur = by_id.get(cur.parent)
    return out


def _hardware(r: _Reader, data: dict) -> HardwareConfig | None:
    if "hardware" not in data:
        return None
    t = r.table(data, "hardware", "hardware")
    r.only(t, "hardware", {"led_pin", "button_pin"})
    hw = HardwareConfig(
        led_pin=r.number(t, "led_pin", "hardware", None, 0, 27, " (BCM GPIO number)", integer=True),
        button_pin=r.number(t, "button_pin", "hardware", None, 0, 27, " (BCM GPIO number)", integer=True),
    )
    if hw.led_pin is not None and hw.led_pin == hw.button_pin:
        r.problem("hardware.button_pin", hw.button_pin, "must differ from led_pin")
    return hw


def _mqtt(r: _Reader, data: dict) -> MqttConfig | None:
    if "mqtt" not in data:
        return None
    t = r.table(data, "mqtt", "mqtt")
    r.only(t, "mqtt", set(MqttConfig.__dataclass_fields__))
    tls = t.get("tls", False)
    if not isinstance(tls, bool):
        r.problem("mqtt.tls", tls, "must be true or false")
        tls = False
    cfg = MqttConfig(
        host=r.text(t, "host", "mqtt", _MISSING),
        port=r.number(t, "port", "mqtt", 8883 if tls else 1883, 1, 65535, integer=True),
        username=r.text(t, "username", "mqtt", ""),
        password=r.text(t, "password", "mqtt", ""),
        tls=tls,
        topic=r.text(t, "topic", "mqtt", "evfuse"),
        discovery_prefix=r.text(t, "discovery_prefix", "mqtt", "homeassistant"),
    )
    if "host" in t and not cfg.host.strip():
        r.problem("mqtt.host", cfg.host, "must not be empty (the broker's address or name)")
    if cfg.password and not cfg.username:
        r.problem("mqtt.username", _MISSING, "is required with mqtt.password")
    for key, value in (("topic", cfg.topic), ("discovery_prefix", cfg.discovery_prefix)):
        if value and not _topic_ok(value) or key == "topic" and not value:
            r.problem(f"mqtt.{key}", value, 'must be a topic like "evfuse" or "home/evfuse": no +, #, '
                      "empty levels or leading/trailing /" + ("" if key == "topic" else '; "" = no discovery'))
    return cfg


def _topic_ok(topic: str) -> bool:
    return not any(c in topic for c in "+#\0") and all(topic.split("/"))


def _web(r: _Reader, data: dict, ocpp: OcppConfig) -> WebConfig | None:
    if "web" not in data:
        return None
    t = r.table(data, "web", "web")
    r.only(t, "web", {"listen", "password"})
    listen = r.text(t, "listen", "web", "0.0.0.0:8080")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        r.problem("web.listen", listen, 'must be "ADDRESS:PORT", e.g. "0.0.0.0:8080"')
        listen = "0.0.0.0:8080"
    web = WebConfig(listen=listen, password=r.text(t, "password", "web", ""))
    if "password" in t and isinstance(t["password"], str) and not web.password:
        r.problem("web.password", "", "must not be empty; leave the key out for a read-only page")
    anywhere = {"0.0.0.0", "::", "[::]"}
    if web.port and web.port == ocpp.port and (web.host == ocpp.host or {web.host, ocpp.host} & anywhere):
        r.problem("web.listen", listen, f"uses the OCPP port ({ocpp.listen}); choose another port, e.g. 8080")
    return web


def _warnings(cfg: Config) -> list[str]:
    """Valid but risky settings an installer should see."""
    out = []
    fallback = cfg.control.fallback_a
    for c in cfg.chargers:
        if 0 < fallback < c.min_a:
            out.append(f'charger "{c.id}": control.fallback_a ({fmt(fallback)} A) is below its min_a '
                       f"({fmt(c.min_a)} A): it pauses whenever the controller falls back")
    for c in cfg.chargers:
        if c.protocol != "modbus":
            continue
        watchdog = _modbus_profile_of(c).watchdog
        if watchdog is None:
            out.append(f'charger "{c.id}": profile "{c.profile}" has no watchdog: it is not protected if '
                       "the Pi dies (it keeps its last limit until someone changes it)")
        elif watchdog.optional:
            out.append(f'charger "{c.id}": profile "{c.profile}" has a watchdog on some firmware only: '
                       "`evfuse status` says whether this charger has one; without it, it is not protected "
                       "if the Pi dies")
    for x in cfg.loads:
        if not x.leased:
            out.append(f'load "{x.id}": driver "{x.driver}" has no lease the device enforces: if evfuse or '
                       "the Pi dies it stays as it was (on, if it was on) until someone switches it; only "
                       "the fuse protects the site then. A Shelly (toggle_after) switches off by itself")
    for phase in cfg.site.phase_names:
        total = sum(charger_fallback_a(c, cfg.control) for c in cfg.chargers if phase in c.phases)
        if total > cfg.site.limit_a:
            out.append(f"phase {phase}: all chargers at control.fallback_a draw {fmt(total)} A, more than "
                       f"the site limit {fmt(cfg.site.limit_a)} A; with the meter lost only the fuse protects the site")
    return out


def _modbus_profile_of(c: ChargerConfig) -> charger_profiles.ChargerProfile:
    if c.profile == "custom":
        return charger_profiles.custom_profile(c.registers)
    return charger_profiles.load_profile(c.profile)


def parse_config(data: dict, source: str = "<config>") -> Config:
    """Validate a parsed TOML document. Raises ConfigError listing every problem."""
    problems: list[str] = []
    r = _Reader(source, problems)
    r.only(data, "", {"site", "meter", "control", "ocpp", "charger", "circuit", "hardware", "mqtt", "web",
                      "load"})
    site = _site(r, data)
    meter = _meter(r, data)
    control = _control(r, data)
    ocpp = _ocpp(r, data)
    raw_chargers = data.get("charger", [])
    if not isinstance(raw_chargers, list):
        r.problem("charger", raw_chargers, "must be an array of tables ([[charger]])")
        raw_chargers = []
    per_table = [_charger(r, t, f"charger[{i}]", site) or [] for i, t in enumerate(raw_chargers, start=1)]
    chargers = [c for entries in per_table for c in entries]
    if not raw_chargers and not data.get("load"):
        r.problem("charger", _MISSING, "at least one [[charger]] or [[load]] is required")
    ids = [entries[0].station for entries in per_table if entries]
    for i, entries in enumerate(per_table, start=1):
        if entries and entries[0].station and ids.count(entries[0].station) > 1:
            r.problem(f"charger[{i}].id", entries[0].station, "is used by another [[charger]]; ids must be unique")
    hardware = _hardware(r, data)
    hw_pins = {p for p in (hardware.led_pin, hardware.button_pin) if p is not None} if hardware else set()
    loads = _loads(r, data, site, ids, hw_pins)
    _loads_share_the_meters_wire(r, loads, meter)
    circuits = _circuits(r, data, chargers + loads)
    mqtt = _mqtt(r, data)
    web = _web(r, data, ocpp)
    if problems:
        raise ConfigError(problems)
    cfg = Config(site=site, meter=meter, control=control, ocpp=ocpp, chargers=tuple(chargers),
                 circuits=tuple(circuits), hardware=hardware, mqtt=mqtt, web=web, source=source,
                 loads=tuple(loads))
    _fallbacks_fit_circuits(r, cfg)
    if problems:
        raise ConfigError(problems)
    return Config(**{**cfg.__dict__, "warnings": tuple(_warnings(cfg))})


def _fallbacks_fit_charger(r: _Reader, cfg: Config) -> None:
    """A charger's own max_a caps its connectors' sum like a circuit: their fallbacks must fit it."""
    for i, (station, entries) in enumerate(cfg.stations().items(), start=1):
        if not entries[0].charger_id:
            continue
        for phase in cfg.site.phase_names:
            on = [c for c in entries if phase in c.phases]
            total = sum(charger_fallback_a(c, cfg.control) for c in on)
            cap = entries[0].charger_max_a
            if total > cap + 1e-9:
                most = math.floor(cap / len(on) * 10) / 10
                r.problem(f"charger[{i}].max_a", MISSING,
                          f'charger "{station}": its {len(on)} connectors hold {fmt(total)} A on phase {phase} at '
                          f"their fallback (control.fallback_a), more than its max_a ({fmt(cap)} A): set control.fallback_a "
                          f"to at most {most:g} A, or raise its max_a")
                break


def _fallbacks_fit_circuits(r: _Reader, cfg: Config) -> None:
    """What the chargers under a circuit hold by themselves (their fallback: with the meter
    lost, and when evfuse is gone) must fit the circuit: nobody is there to share it then."""
    _fallbacks_fit_charger(r, cfg)
    under_of: dict[str, list[ChargerConfig]] = {c.id: [] for c in cfg.circuits}
    for c in cfg.chargers:
        for x in cfg.circuit_chain(c.id):
            under_of[x.id].append(c)
    for i, circuit in enumerate(cfg.circuits, start=1):
        under = under_of[circuit.id]
        worst = None  # (total, phase, chargers on it)
        for phase in cfg.site.phase_names:
            on = [c for c in under if phase in c.phases]
            total = sum(charger_fallback_a(c, cfg.control) for c in on)
            if total > circuit.limit_a + 1e-9 and (worst is None or total > worst[0]):
                worst = (total, phase, len(on))
        if worst is not None:
            total, phase, n = worst
            most = math.floor(circuit.limit_a / n * 10) / 10
            r.problem(f"circuit[{i}].fuse_a", circuit.fuse_a,
                      f'circuit "{circuit.id}": the {n} chargers under it hold {fmt(total)} A on phase {phase} '
                      "at their fallback "
                      f"(control.fallback_a: with the meter lost, and when evfuse is gone), more than its "
                      f"{fmt(circuit.limit_a)} A: set control.fallback_a to at most {most:g} A, or lower "
                      "those chargers' max_a")


def load_config(path: str | Path) -> Config:
    """Read and validate a config file. Raises ConfigError (never anything else for bad input)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
    return parse_config(data, str(path))
