"""The last hours in memory, for the web page's plots: per-phase current, each charger's limit
and draw, one sample a second, plus marks where a cut, a fallback, a fault or a pause began.

Fixed size, nothing on disk (an SD card wears): every series is an int16 ring of `seconds`
slots in tenths of an ampere (0.1 A resolution, +-3276.7 A range), so 6 h of a 10-charger
site is (3 + 2 x 10) x 21600 x 2 bytes = 0.99 MB. Slots are indexed by whole seconds of the
monotonic clock: a wall clock that jumps (a Pi without RTC gets its time from NTP after boot)
never reorders or loses samples; wall time is attached only when exported.

Export (GET /api/history) is binary so that 6 h cost a memory copy, not a JSON encode that
would hold the event loop for tens of milliseconds on a Pi:
    uint32 little-endian n | n bytes of JSON header | pad to even | int16 LE series, each
    `count` samples, oldest first, in header["series"] order
"""

from __future__ import annotations

import collections
import json
import struct
import sys
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MISSING = -32768  # no value for this second (no sample yet, link down, a gap)
SCALE = 10  # stored value = round(amps * SCALE)
LIMIT = 32767
SIX_HOURS_S = 6 * 3600
MARKS = 500
MARK_TEXT_MAX = 160


@dataclass(frozen=True, slots=True)
class Mark:
    t: float  # wall clock
    kind: str  # "cut" | "fallback" | "fault" | "pause" | "resume"
    text: str

    def as_dict(self) -> dict:
        return {"t": round(self.t, 1), "kind": self.kind, "text": self.text}


def encode(amps: float | None) -> int:
    if amps is None or amps != amps:  # None or NaN
        return MISSING
    return max(-LIMIT, min(LIMIT, round(amps * SCALE)))


class History:
    def __init__(self, seconds: int = SIX_HOURS_S, marks: int = MARKS,
                 clock=time.monotonic, wall=time.time):
        self.capacity = seconds
        self.clock, self.wall = clock, wall
        self.phase_names: tuple[str, ...] = ()
        self.phases: list[array] = []
        self.chargers: dict[str, tuple[array, array]] = {}  # id -> (limit, draw)
        self.marks: collections.deque[Mark] = collections.deque(maxlen=marks)
        self.first: int | None = None  # first and last second recorded
        self.last: int | None = None

    def _ring(self) -> array:
        return array("h", [MISSING]) * self.capacity

    @property
    def count(self) -> int:
        return 0 if self.last is None else min(self.capacity, self.last - self.first + 1)

    # ------------------------------------------------------------------ writing

    def record(self, second: int, phases: Sequence[tuple[str, float | None]],
               chargers: Iterable[tuple[str, float | None, float | None]]) -> bool:
        """One sample: (phase name, amps) per site phase, (id, limit, draw) per charger.
        A second already recorded (or earlier) is ignored: False."""
        if self.last is not None and second <= self.last:
            return False
        names = tuple(name for name, _ in phases)
        if names != self.phase_names:  # first sample, or a reload changed the site's phases
            self.phase_names = names
            self.phases = [self._ring() for _ in names]
        chargers = list(chargers)
        for gone in set(self.chargers) - {c[0] for c in chargers}:
            del self.chargers[gone]  # removed by a reload: its history goes with it
        if self.last is not None:  # a late sampler leaves gaps, never stale values
            self._clear(max(self.last + 1, second - self.capacity + 1), second)
        slot = second % self.capacity
        for ring, (_, amps) in zip(self.phases, phases):
            ring[slot] = encode(amps)
        for charger_id, limit, draw in chargers:
            rings = self.chargers.get(charger_id)
            if rings is None:
                rings = self.chargers[charger_id] = (self._ring(), self._ring())
            rings[0][slot] = encode(limit)
            rings[1][slot] = encode(draw)
        if self.first is None:
            self.first = second
        self.last = second
        return True

    def _clear(self, start: int, end: int) -> None:
        """Every series to MISSING for the seconds start .. end - 1 (fewer than capacity)."""
        if end <= start:
            return
        a, b = start % self.capacity, end % self.capacity
        spans = [(a, b)] if a < b else [(a, self.capacity), (0, b)]
        for ring in self._all():
            for lo, hi in spans:
                ring[lo:hi] = array("h", [MISSING]) * (hi - lo)

    def mark(self, kind: str, text: str, t: float | None = None) -> Mark:
        m = Mark(self.wall() if t is None else t, kind, text[:MARK_TEXT_MAX])
        self.marks.append(m)
        return m

    def _all(self) -> Iterable[array]:
        yield from self.phases
        for limit, draw in self.chargers.values():
            yield limit
            yield draw

    # ------------------------------------------------------------------ reading

    def series_names(self) -> list[str]:
        return ([f"phase:{p}" for p in self.phase_names]
                + [f"{kind}:{cid}" for cid in self.chargers for kind in ("limit", "draw")])

    def values(self, ring: array, seconds: int | None = None) -> array:
        """The ring's last `seconds` (default: all recorded) values, oldest first."""
        n = self.count if seconds is None else min(seconds, self.count)
        if n == 0:
            return array("h")
        end = self.last % self.capacity + 1
        start = end - n
        if start >= 0:
            return ring[start:end]
        return ring[start + self.capacity:] + ring[:end]

    def end_wall(self) -> float | None:
        """Wall-clock time of the last sample."""
        if self.last is None:
            return None
        return self.wall() - (self.clock() - self.last)

    def header(self, seconds: int | None = None) -> dict:
        n = self.count if seconds is None else min(seconds, self.count)
        end = self.end_wall()
        since = None if end is None else end - (seconds or self.capacity)  # the plot's window
        return {
            "version": 1, "end": None if end is None else round(end, 3), "count": n, "step_s": 1,
            "scale": SCALE, "missing": MISSING, "phases": list(self.phase_names),
            "chargers": list(self.chargers), "series": self.series_names(),
            "marks": [m.as_dict() for m in self.marks if since is not None and m.t >= since - 1],
        }

    def export(self, seconds: int | None = None) -> bytes:
        head = json.dumps(self.header(seconds), separators=(",", ":")).encode()
        head += b" " * (len(head) % 2)  # the int16 data starts on an even offset
        parts = [struct.pack("<I", len(head)), head]
        for ring in self._all():
            chunk = self.values(ring, seconds)
            if sys.byteorder == "big":
                chunk.byteswap()
            parts.append(chunk.tobytes())
        return b"".join(parts)

    def nbytes(self) -> int:
        """Memory held by the sample rings and the marks (what the 6 h budget is about)."""
        rings = sum(sys.getsizeof(r) for r in self._all())
        marks = sum(sys.getsizeof(m) + sys.getsizeof(m.text) + sys.getsizeof(m.kind)
                    for m in self.marks)
        return rings + marks + sys.getsizeof(self.marks)
