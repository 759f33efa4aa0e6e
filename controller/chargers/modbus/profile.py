"""Modbus charger profiles: where a charger keeps its limit, watchdog, failsafe, state and
currents, loaded from data files.

Register facts live in `profiles/<name>.toml` (one file per charger family) so a wrong
address is corrected in one place; `custom` builds the same structure from the config's
`[charger.registers]` table with the same parser. Pure: no I/O except reading package data.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from controller.meter.codec import WORD_ORDERS, WORDS
from controller.model import CarState
from controller.tomlcheck import MISSING, Checker, Problems, show

# "ascii": `count` words of two characters each (high byte first), NULs and spaces dropped.
TYPES = (*WORDS, "ascii")
READ_FUNCTIONS = (3, 4)
WRITE_FUNCTIONS = (6, 16)  # FC6 single register (16-bit types only) or FC16 (one request, all words)
RENEWED_BY = ("write", "any")
CAR_STATES = {s.value: s for s in CarState}
TRANSPORTS = ("tcp", "rtu")

REGISTER_KEYS = {"function", "address", "type", "word_order", "scale", "count"}
SECTION_KEYS = {"limit", "enable_coil", "status", "currents", "watchdog", "failsafe", "init", "min_a",
                "max_a", "poll_interval_s"}
FILE_KEYS = SECTION_KEYS | {"description", "provenance", "verified_on_hardware", "transport", "unit_id",
                            "serial", "min_gap_s"}


class ProfileError(Problems):
    """A profile (file or custom table) is malformed; str() lists the problems."""


@dataclass(frozen=True)
class Register:
    """One value on the charger: where it is and how its words turn into SI units."""

    function: int  # 3 holding | 4 input (reads); writes always go to holding registers
    address: int  # 0-based wire address
    type: str  # a key of codec.WORDS, or "ascii"
    word_order: str = "big"
    scale: float = 1.0  # SI value = raw * scale (A, s)
    count: int = 0  # words; only for "ascii"

    @property
    def words(self) -> int:
        return self.count if self.type == "ascii" else WORDS[self.type]


@dataclass(frozen=True)
class ScaleProbe:
    """Firmware variants that take the limit in another unit, told apart by what the limit
    register reads before we write it: a read-back of at least `at_least` raw units means
    the register counts in `scale` (e.g. Wallbe firmware on a Phoenix EV-CC: 0.1 A)."""

    at_least: int
    scale: float


@dataclass(frozen=True)
class Limit:
    register: Register
    write_function: int = 16
    probe: ScaleProbe | None = None


@dataclass(frozen=True)
class Status:
    register: Register
    values: dict[str, CarState]  # raw value as text ("7", "C2") -> car state

    def car(self, raw: str) -> CarState:
        return self.values.get(raw, CarState.UNKNOWN)


@dataclass(frozen=True)
class Watchdog:
    """The charger's own communication watchdog: without renewal it falls to its failsafe."""

    timeout: Register | None  # writable timeout (scale: seconds per raw unit), None = set on the device
    remaining: Register | None  # read-only seconds left before the fallback
    device_default_s: float  # the timeout when it is not programmable (until read back otherwise)
    renewed_by: str  # "write": only a limit write renews it; "any": every request does
    min_s: float = 1.0  # the shortest timeout the device takes (programmable timeouts only)
    limit_s: float | None = None  # the longest it takes, when less than the register could hold
    optional: bool = False  # some firmware has it, some does not: probed before use

    @property
    def max_s(self) -> float:
        """The longest timeout the device holds, in seconds."""
        if self.timeout is None:
            return math.inf
        bits = 16 * self.timeout.words - (1 if self.timeout.type.startswith("int") else 0)
        register_max = ((1 << bits) - 1) * self.timeout.scale
        return register_max if self.limit_s is None else min(register_max, self.limit_s)

    def holds(self, seconds: float) -> bool:
        """Whether `watchdog_s = seconds` can be programmed as it is."""
        return self.timeout is not None and self.min_s - 1e-9 <= seconds <= self.max_s + 1e-9


@dataclass(frozen=True)
class Failsafe:
    register: Register
    writable: bool = True  # False: configured on the device, we can only read and compare it
    optional: bool = False  # some firmware has it, some does not: probed before use


@dataclass(frozen=True)
class InitWrite:
    address: int
    value: int
    why: str


@dataclass(frozen=True)
class ChargerProfile:
    name: str
    description: str
    provenance: str
    verified_on_hardware: bool
    limit: Limit
    enable_coil: int | None = None  # pause = coil off instead of limit 0
    status: Status | None = None
    currents: tuple[Register, ...] = ()  # per charger line L1, L2, L3
    watchdog: Watchdog | None = None
    failsafe: Failsafe | None = None
    init: tuple[InitWrite, ...] = ()
    min_a: float = 6.0  # smallest non-zero limit the charger takes; below it means pause
    max_a: float | None = None  # largest limit it takes (None = not documented)
    poll_interval_s: float = 1.0  # the read-back rate the charger is comfortable with
    min_gap_s: float = 0.0
    transport: str = "tcp"
    unit_id: int = 1
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1

    @property
    def protected(self) -> bool:
        """The charger falls back by itself when evfuse stops talking to it (for an optional
        watchdog: if the charger turns out to have it)."""
        return self.watchdog is not None

    def effective_watchdog_s(self, configured_s: float) -> float | None:
        """The watchdog timeout in force with `watchdog_s = configured_s`: the configured one
        where it is programmable (clamped to what the device holds; check-config refuses
        values outside), the device's own where it is fixed, None without a watchdog."""
        wd = self.watchdog
        if wd is None:
            return None
        if wd.timeout is None:
            return wd.device_default_s
        return min(max(configured_s, wd.min_s), wd.max_s)

    def watchdog_range(self) -> str:
        """What `watchdog_s` may be for this profile, in words, for config errors."""
        wd = self.watchdog
        if wd is None:
            return "nothing: this charger has no watchdog"
        if wd.timeout is None:
            return (f"nothing: its validity time is set on the charger itself ({wd.device_default_s:g} s "
                    "by default); leave watchdog_s out")
        return f"{wd.min_s:g} to {wd.max_s:g} s"


# --------------------------------------------------------------------------- parsing


class _Parser(Checker):
    """Register sections of a profile file or a custom table (problems name the key path)."""

    def table(self, t: dict, key: str, path: str) -> dict | None:
        value = t.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(f"{path}.{key}", value, "must be a table, e.g. { address = 261, type = \"uint16\" }")
            return None
        return value

    def number(self, t: dict, key: str, path: str, default: float, lo: float, hi: float) -> float:
        value = t.get(key, default)
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                or not lo <= value <= hi):
            self.problem(f"{path}.{key}", value, f"must be a number from {lo:g} to {hi:g}")
            return default
        return float(value)

    def register(self, t: Any, path: str, default_function: int = 3, extra: set[str] = frozenset()) -> Register | None:
        if not isinstance(t, dict):
            self.problem(path, t, "must be a table, e.g. { address = 261, type = \"uint16\", scale = 0.1 }")
            return None
        before = len(self.problems)
        self.only(t, path, REGISTER_KEYS | extra)
        function = self.choice(t, "function", path, READ_FUNCTIONS, default_function)
        address = self.address(t, "address", path)
        data_type = self.choice(t, "type", path, TYPES, required=True)
        word_order = self.choice(t, "word_order", path, WORD_ORDERS, "big")
        scale = t.get("scale", 1.0)
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale) or scale <= 0:
            self.problem(f"{path}.scale", scale, "must be a positive number (SI value = raw x scale)")
        count = t.get("count", 0)
        if data_type == "ascii" and (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 16):
            self.problem(f"{path}.count", count if "count" in t else MISSING,
                         'is required for type = "ascii": the number of registers, 1 to 16')
        elif data_type != "ascii" and "count" in t:
            self.problem(f"{path}.count", count, 'is only for type = "ascii"')
        if len(self.problems) > before:
            return None
        return Register(function, address, data_type, word_order, float(scale), count if data_type == "ascii" else 0)


def parse_sections(t: dict, p: _Parser, path: str) -> dict[str, Any]:
    """The register sections shared by profile files and the custom table -> ChargerProfile fields."""
    out: dict[str, Any] = {}
    limit_t = t.get("limit")
    if limit_t is None:
        p.problem(f"{path}.limit", MISSING, "is required: the register that takes the current limit")
    else:
        reg = p.register(limit_t, f"{path}.limit", 3, {"write_function", "scale_probe"})
        write_function = p.choice(limit_t, "write_function", f"{path}.limit", WRITE_FUNCTIONS, 16) \
            if isinstance(limit_t, dict) else 16
        probe = _scale_probe(limit_t, p, f"{path}.limit") if isinstance(limit_t, dict) else None
        if reg is not None:
            if reg.function != 3:
                p.problem(f"{path}.limit.function", reg.function, "must be 3: a limit is a holding register")
            elif reg.type == "ascii":
                p.problem(f"{path}.limit.type", reg.type, "must be a number type")
            elif write_function == 6 and reg.words != 1:
                p.problem(f"{path}.limit.write_function", 6, f"writes one register; {reg.type} needs 16")
            else:
                out["limit"] = Limit(reg, write_function, probe)
    if "enable_coil" in t:
        out["enable_coil"] = p.address(t, "enable_coil", path)
    status_t = p.table(t, "status", path)
    if status_t is not None:
        out["status"] = _status(status_t, p, f"{path}.status")
    if "currents" in t:
        currents = t["currents"]
        if not isinstance(currents, list) or not 1 <= len(currents) <= 3:
            p.problem(f"{path}.currents", currents, "must be a list of 1 to 3 registers, one per line L1, L2, L3")
        else:
            regs = [p.register(c, f"{path}.currents[{i}]") for i, c in enumerate(currents, start=1)]
            for i, r in enumerate(regs, start=1):
                if r is not None and r.type == "ascii":
                    p.problem(f"{path}.currents[{i}].type", r.type, "must be a number type")
            out["currents"] = tuple(r for r in regs if r is not None)
    watchdog_t = p.table(t, "watchdog", path)
    if watchdog_t is not None:
        out["watchdog"] = _watchdog(watchdog_t, p, f"{path}.watchdog")
    failsafe_t = p.table(t, "failsafe", path)
    if failsafe_t is not None:
        reg = p.register(failsafe_t, f"{path}.failsafe", 3, {"writable", "optional"})
        writable = p.flag(failsafe_t, "writable", f"{path}.failsafe", True)
        optional = p.flag(failsafe_t, "optional", f"{path}.failsafe", False)
        if reg is not None and writable is not None and optional is not None:
            out["failsafe"] = Failsafe(reg, writable, optional)
    if "init" in t:
        out["init"] = _init(t["init"], p, f"{path}.init")
    if "min_a" in t:
        out["min_a"] = p.number(t, "min_a", path, 6.0, 0, 80)
    if "max_a" in t:
        out["max_a"] = p.number(t, "max_a", path, 80.0, 1, 80)
    if "poll_interval_s" in t:
        out["poll_interval_s"] = p.number(t, "poll_interval_s", path, 1.0, 0.05, 60)
    return out


def _status(t: dict, p: _Parser, path: str) -> Status | None:
    reg = p.register(t, path, 3, {"values"})
    values = t.get("values")
    if not isinstance(values, dict) or not values:
        p.problem(f"{path}.values", MISSING if values is None else values,
                  'is required: raw value -> car state, e.g. { "7" = "charging" }')
        return None
    states: dict[str, CarState] = {}
    for raw, state in values.items():
        if state not in CAR_STATES:
            p.problem(f"{path}.values.{raw}", state, f"must be one of {', '.join(map(show, CAR_STATES))}")
        else:
            states[str(raw)] = CAR_STATES[state]
    return None if reg is None else Status(reg, states)


def _scale_probe(t: dict, p: _Parser, path: str) -> ScaleProbe | None:
    probe_t = p.table(t, "scale_probe", path)
    if probe_t is None:
        return None
    p.only(probe_t, f"{path}.scale_probe", {"at_least", "scale"})
    at_least = p.number(probe_t, "at_least", f"{path}.scale_probe", 0, 1, 65535)
    scale = p.number(probe_t, "scale", f"{path}.scale_probe", 0, 0.001, 1000)
    if not at_least or not scale:
        p.problem(f"{path}.scale_probe", MISSING, "needs at_least (raw read-back) and scale (its unit)")
        return None
    return ScaleProbe(int(at_least), scale)


def _watchdog(t: dict, p: _Parser, path: str) -> Watchdog | None:
    allowed = REGISTER_KEYS | {"remaining", "device_default_s", "renewed_by", "min_s", "max_s", "optional"}
    p.only(t, path, allowed)
    timeout = None
    if "address" in t:
        timeout = p.register({k: v for k, v in t.items() if k in REGISTER_KEYS}, path, 3)
    remaining_t = p.table(t, "remaining", path)
    remaining = p.register(remaining_t, f"{path}.remaining", 3) if remaining_t is not None else None
    if "address" not in t and "device_default_s" not in t:
        p.problem(path, MISSING, "needs address (a writable timeout) or device_default_s (a timeout set "
                  "on the charger itself)")
    default_s = p.number(t, "device_default_s", path, 0.0, 0, 86400)
    renewed_by = p.choice(t, "renewed_by", path, RENEWED_BY, required=True)
    min_s = p.number(t, "min_s", path, 1.0, 0, 86400)
    limit_s = p.number(t, "max_s", path, 0.0, 0, 86400) if "max_s" in t else None
    optional = p.flag(t, "optional", path, False)
    if timeout is None and ("min_s" in t or "max_s" in t):
        p.problem(f"{path}.min_s" if "min_s" in t else f"{path}.max_s", MISSING,
                  "is only for a programmable timeout (with address)")
    if renewed_by is None or optional is None:
        return None
    return Watchdog(timeout, remaining, default_s, renewed_by, min_s, limit_s, optional)


def _init(entries: Any, p: _Parser, path: str) -> tuple[InitWrite, ...]:
    if not isinstance(entries, list):
        p.problem(path, entries, "must be a list of { address, value, why }")
        return ()
    out = []
    for i, e in enumerate(entries, start=1):
        where = f"{path}[{i}]"
        if not isinstance(e, dict):
            p.problem(where, e, "must be a table { address, value, why }")
            continue
        p.only(e, where, {"address", "value", "why"})
        address = p.address(e, "address", where)
        value = e.get("value")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
            p.problem(f"{where}.value", MISSING if value is None else value, "must be a whole number from 0 to 65535")
            continue
        if address is not None:
            out.append(InitWrite(address, value, str(e.get("why", ""))))
    return tuple(out)


# --------------------------------------------------------------------------- loading


def profile_names() -> list[str]:
    """Every built-in charger profile name plus "custom"."""
    files = resources.files("controller.chargers.modbus.profiles").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml")) + ["custom"]


def load_profile(name: str) -> ChargerProfile:
    """A built-in profile by name. Raises ProfileError for an unknown name or a bad file."""
    if name not in profile_names() or name == "custom":
        raise ProfileError([f'no built-in charger profile "{name}"; known: {", ".join(profile_names())}'])
    text = resources.files("controller.chargers.modbus.profiles").joinpath(f"{name}.toml").read_text("utf-8")
    t = tomllib.loads(text)
    p = _Parser(f"charger profile {name}: ")
    p.only(t, "", FILE_KEYS)
    fields = parse_sections(t, p, "")
    serial = t.get("serial", {})
    meta = dict(name=name, description=t.get("description", ""), provenance=t.get("provenance", ""),
                verified_on_hardware=bool(t.get("verified_on_hardware", False)),
                transport=p.choice(t, "transport", "", TRANSPORTS, "tcp"), unit_id=int(t.get("unit_id", 1)),
                min_gap_s=float(t.get("min_gap_s", 0.0)), baudrate=serial.get("baudrate", 9600),
                parity=serial.get("parity", "N"), stopbits=serial.get("stopbits", 1))
    if not meta["provenance"]:
        p.problem(".provenance", MISSING, "is required: where the register facts come from")
    if p.problems:
        raise ProfileError(p.problems)
    return ChargerProfile(**meta, **fields)


def custom_profile(table: Any, path: str = "charger.registers") -> ChargerProfile:
    """A profile from a config's `[charger.registers]` table; problems name `path`."""
    p = _Parser("")
    if not isinstance(table, dict):
        raise ProfileError([f"{path}: must be a table ([charger.registers])"])
    p.only(table, path, SECTION_KEYS)
    fields = parse_sections(table, p, path)
    if p.problems:
        raise ProfileError(p.problems)
    return ChargerProfile(name="custom", description="register table from the config",
                          provenance="the installer's config", verified_on_hardware=False, **fields)
