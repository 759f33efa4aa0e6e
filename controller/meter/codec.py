"""Register words <-> numbers, for the word types meters use.

Pure functions, shared by the decoder, the Modbus chargers and the simulated devices, so a
word-order mistake cannot hide in one of them only; and how to read a set of registers in
as few requests as possible. Within a word the bytes are always big-endian (Modbus);
`word_order` says which 16-bit word comes first for 32-bit types.
"""

from __future__ import annotations

import math
import struct

WORDS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
WORD_ORDERS = ("big", "little")

# Raw values meters use for "not implemented / not available" (SunSpec and others).
# A float32 sentinel is NaN already, which is rejected on its own.
UNIMPLEMENTED = {
    "uint16": {0xFFFF},
    "int16": {0x7FFF, 0x8000},
    "uint32": {0xFFFFFFFF},
    "int32": {0x7FFFFFFF, 0x80000000},
    "float32": set(),
}


def raw_value(words: list[int] | tuple[int, ...], word_order: str = "big") -> int:
    """The unsigned integer the words spell, most significant word first after ordering."""
    ordered = words if word_order == "big" else list(reversed(words))
    raw = 0
    for w in ordered:
        raw = (raw << 16) | (w & 0xFFFF)
    return raw


def from_raw(raw: int, data_type: str) -> float:
    """Interpret an unsigned raw value as `data_type` (may return NaN or inf for float32)."""
    if data_type == "float32":
        return struct.unpack(">f", raw.to_bytes(4, "big"))[0]
    bits = 16 * WORDS[data_type]
    if data_type.startswith("int") and raw >= 1 << (bits - 1):
        return float(raw - (1 << bits))
    return float(raw)


def encode(value: float, data_type: str, word_order: str = "big") -> list[int]:
    """Words for `value` (already divided by the register's scale); used by the simulator."""
    if data_type == "float32":
        raw = int.from_bytes(struct.pack(">f", value), "big")
    else:
        bits = 16 * WORDS[data_type]
        n = int(round(value)) if math.isfinite(value) else 0
        raw = n & ((1 << bits) - 1)
    words = [(raw >> (16 * i)) & 0xFFFF for i in reversed(range(WORDS[data_type]))]
    return words if word_order == "big" else list(reversed(words))


MAX_READ = 125  # registers one Modbus read may ask for


def plan_reads(spans) -> list[tuple[int, int, int]]:
    """(function, first, end) register spans -> the fewest (function, address, count) reads
    that cover them all, without asking for a register nobody named (an unknown gap may be
    unimplemented and answer an exception). Used for meters and chargers alike."""
    blocks: list[list[int]] = []
    for function, start, end in sorted(set(spans)):
        last = blocks[-1] if blocks else None
        if last and last[0] == function and start <= last[2] and end - last[1] <= MAX_READ:
            last[2] = max(last[2], end)
        else:
            blocks.append([function, start, end])
    return [(f, s, e - s) for f, s, e in blocks]
