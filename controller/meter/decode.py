"""Registers -> MeterSample, or the reason there is none (DESIGN §1.6: bad data is not data).

Pure: no I/O, no clock. The reader passes the words each read returned and the time they
arrived; this module says whether they make a believable sample. Anything doubtful is a
Rejection with a kind (counted by the reader) and installer words (logged once per episode).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

from controller.meter.codec import UNIMPLEMENTED, from_raw, raw_value
from controller.meter.profile import MeterProfile, RegisterSpec
from controller.model import PHASE_INDEX, SITE_PHASES, MeterSample

MAX_CURRENT_A = 1000.0
VOLTAGE_RANGE_V = (50.0, 500.0)
MAX_POWER_W = MAX_CURRENT_A * VOLTAGE_RANGE_V[1]
MAX_SCALE_EXPONENT = 10  # SunSpec scale factors are small powers of ten


class Fault(str, enum.Enum):
    """Why a poll produced no sample. Values are stable names for logs and status."""

    NAN = "nan"
    INFINITE = "infinite"
    UNIMPLEMENTED = "unimplemented"  # a "not available" sentinel such as 0xFFFF or 0x8000
    SCALE = "bad-scale"  # a scale-factor register outside any sensible power of ten
    CURRENT_RANGE = "current-out-of-range"
    VOLTAGE_RANGE = "voltage-out-of-range"
    POWER_RANGE = "power-out-of-range"
    REGISTER_COUNT = "register-count"
    EXCEPTION = "exception-reply"
    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"
    DISCOVERY = "discovery"  # SunSpec: no usable meter model found


@dataclass(frozen=True, slots=True)
class Rejection:
    kind: Fault
    detail: str  # installer words, e.g. "voltage L2 = 0 V (allowed 50-500 V)"


_UNITS = {"current": "A", "voltage": "V", "power": "W"}


def profile_problem(profile: MeterProfile, site_phases: int) -> str | None:
    """Why this profile cannot serve a site with `site_phases` phases, or None."""
    if profile.discovery:
        return None  # known after discovery; SunSpec models 203/213 are 3 phase
    if profile.phases < site_phases:
        return (f'meter profile "{profile.name}" measures {profile.phases} phase(s) but the site has '
                f"{site_phases}: a meter must see every phase it protects")
    for p in range(site_phases):
        if profile.phase_registers("current", p) is None:
            return f'meter profile "{profile.name}" has no current register for phase {SITE_PHASES[p]}'
    return None


def decode(profile: MeterProfile, replies: Sequence[Sequence[int]], t: float, site_phases: int,
           invert: Sequence[str] = ()) -> MeterSample | Rejection:
    """Turn the words of each read in profile.reads into a sample of the first
    `site_phases` phases (a 1-phase site reads phase A only; other phases stay 0.0)."""
    if len(replies) != len(profile.reads):
        return Rejection(Fault.REGISTER_COUNT, f"{len(replies)} replies for {len(profile.reads)} reads")
    words: dict[tuple[int, int], int] = {}
    for block, reply in zip(profile.reads, replies):
        if len(reply) != block.count:
            return Rejection(Fault.REGISTER_COUNT, f"asked for {block.count} registers at {block.address}, "
                                                   f"got {len(reply)}")
        for i, w in enumerate(reply):
            words[(block.function, block.address + i)] = w

    values: dict[str, list[float]] = {q: [0.0, 0.0, 0.0] for q in _UNITS}
    for p in range(site_phases):
        for quantity in _UNITS:
            spec = profile.phase_registers(quantity, p)
            if spec is None:
                continue
            value = _value(spec, words)
            if isinstance(value, Rejection):
                return value
            problem = _out_of_range(quantity, value)
            if problem is not None:
                kind, allowed = problem
                return Rejection(kind, f"{_name(spec)} = {value:g} {_UNITS[quantity]} (allowed {allowed})")
            values[quantity][p] = value

    current, power = values["current"], values["power"]
    for p in range(site_phases):
        if profile.current_sign == "power" and profile.phase_registers("power", p) is not None:
            current[p] = -abs(current[p]) if power[p] < 0 else abs(current[p])
    for name in invert:
        p = PHASE_INDEX[name]
        current[p], power[p] = -current[p], -power[p]
    v = values["voltage"]
    return MeterSample(t=t, current_a=(current[0], current[1], current[2]),
                       voltage_v=(v[0], v[1], v[2]), power_w=(power[0], power[1], power[2]))


def _name(spec: RegisterSpec) -> str:
    return f"{spec.quantity} L{spec.phase + 1} (register {spec.address})"


def _value(spec: RegisterSpec, words: dict[tuple[int, int], int]) -> float | Rejection:
    try:
        regs = [words[(spec.function, spec.address + i)] for i in range(spec.words)]
    except KeyError:
        return Rejection(Fault.REGISTER_COUNT, f"{_name(spec)} was not read")
    raw = raw_value(regs, spec.word_order)
    if raw in UNIMPLEMENTED[spec.type]:
        return Rejection(Fault.UNIMPLEMENTED, f"{_name(spec)} = 0x{raw:X} (meter says: not available)")
    value = from_raw(raw, spec.type)
    if math.isnan(value):
        return Rejection(Fault.NAN, f"{_name(spec)} is NaN")
    if math.isinf(value):
        return Rejection(Fault.INFINITE, f"{_name(spec)} is infinite")
    value *= spec.scale
    if spec.scale_register is not None:
        sf_word = words.get((spec.function, spec.scale_register))
        if sf_word is None:
            return Rejection(Fault.REGISTER_COUNT, f"scale factor of {_name(spec)} was not read")
        if sf_word == 0x8000:
            return Rejection(Fault.UNIMPLEMENTED, f"scale factor of {_name(spec)} is 0x8000 (not available)")
        exponent = int(from_raw(sf_word, "int16"))
        if abs(exponent) > MAX_SCALE_EXPONENT:
            return Rejection(Fault.SCALE, f"scale factor of {_name(spec)} is 10^{exponent}")
        value *= 10.0 ** exponent
    if not math.isfinite(value):
        return Rejection(Fault.INFINITE, f"{_name(spec)} overflows when scaled")
    return value


def _out_of_range(quantity: str, value: float) -> tuple[Fault, str] | None:
    if quantity == "current" and abs(value) > MAX_CURRENT_A:
        return Fault.CURRENT_RANGE, f"up to {MAX_CURRENT_A:g} A"
    if quantity == "voltage" and not VOLTAGE_RANGE_V[0] <= abs(value) <= VOLTAGE_RANGE_V[1]:
        return Fault.VOLTAGE_RANGE, f"{VOLTAGE_RANGE_V[0]:g}-{VOLTAGE_RANGE_V[1]:g} V"
    if quantity == "power" and abs(value) > MAX_POWER_W:
        return Fault.POWER_RANGE, f"up to {MAX_POWER_W:g} W"
    return None
