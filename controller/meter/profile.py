"""Meter profiles: which registers hold which phase quantity, loaded from data files.

Register facts live in `profiles/<name>.toml` (one file per meter family) so a wrong
address is corrected in one place. `custom` builds the same structure from the config's
`[[meter.registers]]` table. Everything here is pure: no I/O except reading package data.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from controller.meter import codec
from controller.meter.codec import MAX_READ, WORD_ORDERS, WORDS
from controller.model import PHASE_INDEX, SITE_PHASES
from controller.tomlcheck import MISSING, Checker, Problems

QUANTITIES = ("current", "voltage", "power")
FUNCTIONS = (3, 4)  # read holding registers, read input registers
CURRENT_SIGNS = ("power", "as-read")
REGISTER_KEYS = {"quantity", "phase", "function", "address", "type", "word_order", "scale"}


class ProfileError(Problems):
    """A profile (file or custom table) is malformed; str() lists the problems."""


@dataclass(frozen=True)
class RegisterSpec:
    """One per-phase quantity: where it is and how to turn its words into SI units."""

    quantity: str  # "current" (A) | "voltage" (V, phase to neutral) | "power" (W, + import)
    phase: int  # 0, 1, 2 = meter L1, L2, L3 = site phase A, B, C
    function: int  # 3 holding | 4 input
    address: int  # 0-based wire address
    type: str  # a key of codec.WORDS
    word_order: str = "big"
    scale: float = 1.0  # SI value = raw * scale (* 10**sf when scale_register is set)
    scale_register: int | None = None  # SunSpec: address of an int16 power-of-ten exponent

    @property
    def words(self) -> int:
        return WORDS[self.type]


@dataclass(frozen=True)
class ReadBlock:
    """One Modbus read request."""

    function: int
    address: int
    count: int

    def covers(self, function: int, address: int, count: int) -> bool:
        return (function == self.function and address >= self.address
                and address + count <= self.address + self.count)


@dataclass(frozen=True)
class ModeCheck:
    """A setting of the meter that changes what its readings mean (e.g. a mode in which
    exported power does not read negative), read once when polling starts."""

    function: int
    address: int
    expect: tuple[int, ...]  # raw uint16 values that are fine
    what: str  # installer words: "application mode"
    fix: str  # what to set, and where
    names: dict[int, str] = field(default_factory=dict)  # raw value -> the name the manual uses


@dataclass(frozen=True)
class MeterProfile:
    name: str
    description: str
    phases: int  # phases the meter measures (1 or 3)
    reads: tuple[ReadBlock, ...]
    registers: tuple[RegisterSpec, ...]
    current_sign: str = "power"  # "power": current is a magnitude, take the sign of the power
    min_gap_s: float = 0.0  # quiet time the meter needs between two requests
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    provenance: str = ""  # where the register facts come from, and whether verified
    checks: tuple[ModeCheck, ...] = ()
    # SunSpec: the register map is found at run time by walking the model chain.
    discovery: str = ""  # "" | "sunspec"
    sunspec_bases: tuple[int, ...] = ()
    sunspec_models: dict[int, tuple[RegisterSpec, ...]] = field(default_factory=dict)

    def phase_registers(self, quantity: str, phase: int) -> RegisterSpec | None:
        return next((r for r in self.registers if r.quantity == quantity and r.phase == phase), None)


# --------------------------------------------------------------------------- parsing


def parse_registers(entries: Any, path: str, default_function: int | None = None,
                    allow_scale_register: bool = False) -> tuple[list[RegisterSpec], list[str]]:
    """Validate a list of register tables. Returns the specs and the problems found,
    each problem naming the key path (``meter.registers[2].type``) and what is allowed."""
    c = Checker()
    specs: list[RegisterSpec] = []
    if not isinstance(entries, list):
        return [], [f"{path}: must be a list of tables ([[{path}]])"]
    allowed = REGISTER_KEYS | ({"scale_register"} if allow_scale_register else set())
    for i, t in enumerate(entries, start=1):
        where = f"{path}[{i}]"
        if not isinstance(t, dict):
            c.problem(where, MISSING, "must be a table")
            continue
        before = len(c.problems)
        c.only(t, where, allowed)
        spec = _register(t, where, default_function, c)
        if spec is not None and len(c.problems) == before:
            specs.append(spec)
    seen: dict[tuple[str, int], int] = {}
    for i, s in enumerate(specs, start=1):
        key = (s.quantity, s.phase)
        if key in seen:
            c.problem(f"{path}[{i}]", MISSING, f"{s.quantity} of phase {SITE_PHASES[s.phase]} is "
                      f"already given by {path}[{seen[key]}]")
        seen.setdefault(key, i)
    return specs, c.problems


def _register(t: dict, where: str, default_function: int | None, c: Checker) -> RegisterSpec | None:
    quantity = c.choice(t, "quantity", where, QUANTITIES, required=True)
    phase = c.choice(t, "phase", where, SITE_PHASES, required=True)
    function = c.choice(t, "function", where, FUNCTIONS, default_function, required=default_function is None)
    data_type = c.choice(t, "type", where, tuple(WORDS), required=True)
    word_order = c.choice(t, "word_order", where, WORD_ORDERS, "big")
    address = c.address(t, "address", where)
    scale = t.get("scale", 1.0)
    if (not isinstance(scale, (int, float)) or isinstance(scale, bool)
            or not math.isfinite(scale) or scale == 0):
        c.problem(f"{where}.scale", scale, "must be a non-zero number (SI value = raw x scale)")
        scale = None
    scale_register = t.get("scale_register")
    if scale_register is not None and (not isinstance(scale_register, int) or scale_register < 0):
        c.problem(f"{where}.scale_register", scale_register, "must be a register offset")
        scale_register = None
    if None in (quantity, phase, function, data_type, word_order, address, scale):
        return None
    return RegisterSpec(quantity=quantity, phase=PHASE_INDEX[phase], function=function,
                        address=address, type=data_type, word_order=word_order,
                        scale=float(scale), scale_register=scale_register)


def plan_reads(registers: list[RegisterSpec] | tuple[RegisterSpec, ...]) -> tuple[ReadBlock, ...]:
    """Fewest reads covering every register (and SunSpec scale register) of a meter."""
    spans = [(r.function, r.address, r.address + r.words) for r in registers]
    spans += [(r.function, r.scale_register, r.scale_register + 1) for r in registers if r.scale_register is not None]
    return tuple(ReadBlock(*b) for b in codec.plan_reads(spans))


# --------------------------------------------------------------------------- loading


def profile_names() -> list[str]:
    """Every built-in profile name plus "custom"."""
    files = resources.files("controller.meter.profiles").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml")) + ["custom"]


def load_profile(name: str) -> MeterProfile:
    """A built-in profile by name. Raises ProfileError for an unknown name or a bad file."""
    if name not in profile_names() or name == "custom":
        raise ProfileError([f'no built-in meter profile "{name}"; known: {", ".join(profile_names())}'])
    text = resources.files("controller.meter.profiles").joinpath(f"{name}.toml").read_text("utf-8")
    return _from_table(name, tomllib.loads(text))


def custom_profile(entries: Any, path: str = "meter.registers") -> MeterProfile:
    """A profile from the config's register table."""
    specs, problems = parse_registers(entries, path)
    if problems:
        raise ProfileError(problems)
    if not specs:
        raise ProfileError([f"{path}: at least one register is required"])
    phases = max(s.phase for s in specs) + 1
    return MeterProfile(name="custom", description="register table from the config", phases=phases,
                        reads=plan_reads(specs), registers=tuple(specs),
                        provenance="the installer's config")


def _from_table(name: str, t: dict) -> MeterProfile:
    where = f"profile {name}"
    serial = t.get("serial", {})
    base = dict(name=name, description=t["description"], phases=t["phases"],
                current_sign=t.get("current_sign", "power"), min_gap_s=float(t.get("min_gap_s", 0.0)),
                baudrate=serial.get("baudrate", 9600), parity=serial.get("parity", "N"),
                stopbits=serial.get("stopbits", 1), provenance=t["provenance"])
    if base["current_sign"] not in CURRENT_SIGNS:
        raise ProfileError([f"{where}: current_sign must be one of {CURRENT_SIGNS}"])
    if t.get("discovery") == "sunspec":
        models: dict[int, tuple[RegisterSpec, ...]] = {}
        for m in t["model"]:
            specs, problems = parse_registers(m["register"], f"{where} model {m['id']}",
                                              m.get("function", 3), allow_scale_register=True)
            if problems:
                raise ProfileError(problems)
            models[m["id"]] = tuple(specs)
        return MeterProfile(**base, reads=(), registers=(), discovery="sunspec",
                            sunspec_bases=tuple(t["bases"]), sunspec_models=models)
    specs, problems = parse_registers(t["register"], f"{where} register", t.get("function"))
    reads = tuple(ReadBlock(b["function"], b["address"], b["count"]) for b in t.get("read", ()))
    reads = reads or plan_reads(specs)
    for s in specs:
        if not any(b.covers(s.function, s.address, s.words) for b in reads):
            problems.append(f"{where}: register {s.address} ({s.quantity} {SITE_PHASES[s.phase]}) is in no [[read]]")
    checks = tuple(ModeCheck(c["function"], c["address"], tuple(c["expect"]), c["what"], c["fix"],
                             {int(k): v for k, v in c.get("names", {}).items()}) for c in t.get("check", ()))
    if problems:
        raise ProfileError(problems)
    return MeterProfile(**base, reads=reads, registers=tuple(specs), checks=checks)


def resolve_sunspec(profile: MeterProfile, model_id: int, data_start: int, length: int) -> MeterProfile:
    """The concrete register map once discovery found model `model_id` whose data (after the
    ID and length words) starts at `data_start`. Offsets in the profile file become addresses."""
    specs = tuple(
        replace(s, address=data_start + s.address,
                scale_register=None if s.scale_register is None else data_start + s.scale_register)
        for s in profile.sunspec_models[model_id])
    reads = plan_reads(specs)
    # One read from the start of the model is cheaper than several small ones.
    end = max(b.address + b.count for b in reads)
    if end - data_start <= min(length, MAX_READ):
        reads = (ReadBlock(specs[0].function, data_start, end - data_start),)
    return replace(profile, reads=reads, registers=specs, discovery="",
                   description=f"{profile.description} (model {model_id} at {data_start - 2})")
