"""Time for the OCPP side: an injectable clock, OCPP timestamps, and the charger clock offset.

Leases are kept in monotonic time (what the runtime compares `lease_until` with), while
profiles carry wall-clock times in the *charger's* idea of UTC. Chargers' clocks drift, so
we estimate how far ahead (+) or behind (-) a charger is from the timestamps it sends.
"""

from __future__ import annotations

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


class ClockOffset:
    """Estimates charger clock minus our clock from (charger timestamp, our receive time) pairs.

    A timestamp is taken some time before we receive it (sampling, buffering, transit), so
    each pair underestimates the offset by that delay. The largest of the recent estimates is
    the least delayed one, hence the best. Buffered values sent after an outage are simply
    smaller and lose to fresh ones.
    """

    def __init__(self, window: int = 8):
        self._recent: deque[float] = deque(maxlen=window)

    def observe(self, charger_time: datetime | None, received: datetime) -> None:
        if charger_time is not None:
            self._recent.append((charger_time - received).total_seconds())

    def reset(self) -> None:
        self._recent.clear()

    @property
    def seconds(self) -> float:
        return max(self._recent) if self._recent else 0.0

    def charger_now(self, our_now: datetime) -> datetime:
        return our_now + timedelta(seconds=self.seconds)
