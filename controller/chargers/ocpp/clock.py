"""Time for the OCPP side: an injectable clock, OCPP timestamps, and the charger clock offset.

Leases are kept in monotonic time (what the runtime compares `lease_until` with), while
profiles carry wall-clock times in the *charger's* idea of UTC. Chargers' clocks drift, so
we estimate how far ahead (+) or behind (-) a charger is from the timestamps it sends.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from datetime import datetime, timedelta, timezone


class SystemClock:
    """The real clocks. Tests pass an object with the same two methods."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(timezone.utc)


def format_time(t: datetime) -> str:
    """OCPP dateTime, UTC, whole seconds: chargers differ in how they parse fractions."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime | None:
    """An OCPP dateTime as aware UTC datetime; None for anything unparseable (bad data is
    not data). Naive times are taken as UTC, as many chargers omit the zone."""
    if not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


# How far one charger timestamp may move the offset estimate (upwards: towards longer leases
# on the charger's clock), and how closely a window of estimates must agree to be taken at once.
MAX_STEP_S = 5.0
AGREE_S = 10.0
AGREE_AFTER = 2  # estimates that agree before they are taken at once
ROBUST_AFTER = 3  # estimates before a median outvotes a single odd one


class ClockOffset:
    """Estimates charger clock minus our clock from (charger timestamp, our receive time) pairs.

    A lease on the charger's clock ends at our estimate of its clock + lease_s, so an estimate
    too far ahead stretches the lease (after the Pi dies the limit holds that much longer), one
    too far behind only shortens it. Hence: the median of the recent estimates (one odd
    timestamp, or values buffered during an outage, never outvote the rest); a move upwards is
    at most MAX_STEP_S per timestamp unless the whole window agrees (a charger whose clock really
    is off is learned from its first AGREE_AFTER timestamps); a move downwards follows the
    median at once as soon as ROBUST_AFTER estimates make it robust. One timestamp an hour ahead moves the estimate by MAX_STEP_S, not
    by an hour.
    """

    def __init__(self, window: int = 8):
        self._recent: deque[float] = deque(maxlen=window)
        self._seconds = 0.0

    def observe(self, charger_time: datetime | None, received: datetime) -> None:
        if charger_time is None:
            return
        self._recent.append((charger_time - received).total_seconds())
        target = statistics.median(self._recent)
        agreed = len(self._recent) >= AGREE_AFTER and max(self._recent) - min(self._recent) <= AGREE_S
        if agreed or (len(self._recent) >= ROBUST_AFTER and target < self._seconds):
            self._seconds = target
        else:
            self._seconds += max(-MAX_STEP_S, min(MAX_STEP_S, target - self._seconds))

    def reset(self) -> None:
        self._recent.clear()
        self._seconds = 0.0

    @property
    def seconds(self) -> float:
        return self._seconds

    def charger_now(self, our_now: datetime) -> datetime:
        return our_now + timedelta(seconds=self._seconds)
