"""Register words <-> charger values. Pure; shared by the driver and the emulator so a
word-order or scale mistake cannot hide in one of them only."""

from __future__ import annotations

import math

from controller.chargers.modbus.profile import Register
from controller.meter.codec import UNIMPLEMENTED, encode, from_raw, raw_value

MAX_PLAUSIBLE_A = 1000.0  # anything above is a broken reading, not a current


def decode_number(reg: Register, words: list[int]) -> float | None:
    """SI value of a number register, None for "not available" sentinels, NaN or infinities."""
    raw = raw_value(words, reg.word_order)
    if raw in UNIMPLEMENTED[reg.type]:
        return None
    value = from_raw(raw, reg.type) * reg.scale
    return value if math.isfinite(value) else None


def decode_text(words: list[int]) -> str:
    """Two characters per word, high byte first; NULs and padding spaces dropped."""
    data = b"".join(w.to_bytes(2, "big") for w in words)
    return data.replace(b"\x00", b"").decode("ascii", errors="replace").strip()


def encode_text(text: str, count: int) -> list[int]:
    data = text.encode("ascii").ljust(2 * count, b"\x00")[: 2 * count]
    if count == 1 and len(text) == 1:  # one letter in one word sits in the low byte
        data = b"\x00" + text.encode("ascii")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, 2 * count, 2)]


def status_text(reg: Register, words: list[int]) -> str:
    """The raw status as the profile's value table spells it ("7", "C2")."""
    if reg.type == "ascii":
        return decode_text(words)
    return str(int(from_raw(raw_value(words, reg.word_order), reg.type)))


def limit_raw(reg: Register, amps: float) -> float:
    """The raw number for `amps`: never above the limit (integers round down)."""
    if reg.type == "float32":
        return math.floor(amps * 10 + 1e-6) / 10 / reg.scale  # 0.1 A steps, down
    return float(math.floor(amps / reg.scale + 1e-6))


def encode_amps(reg: Register, amps: float) -> list[int]:
    """Words that set the register to `amps` (rounded down to what the register can hold)."""
    return encode(limit_raw(reg, amps), reg.type, reg.word_order)


def encode_seconds(reg: Register, seconds: float) -> list[int]:
    return encode(float(round(seconds / reg.scale)), reg.type, reg.word_order)


def words_to_amps(reg: Register, words: list[int]) -> float | None:
    value = decode_number(reg, words)
    return None if value is None or abs(value) > MAX_PLAUSIBLE_A else value
