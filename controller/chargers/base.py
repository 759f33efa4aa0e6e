"""The one interface every charger driver implements, whatever its protocol.

The runtime only ever talks to chargers through this: it reads a ChargerReading snapshot
(no I/O) before each decision, and sends a new limit with `apply`. Protocol details
(profiles, registers, units, keep-alives, leases) stay inside the driver.
"""

from __future__ import annotations

import abc
import asyncio
import time
from dataclasses import dataclass, field

from controller.config import ChargerConfig
from controller.model import ChargerReading


@dataclass
class DriverStatus:
    """What `evfuse status` and the logs show about a charger's link, beyond the reading."""

    protocol: str  # "ocpp1.6", "ocpp2.0.1", "modbus/heidelberg", ...
    connected: bool
    limit_a: float | None  # last limit the charger acknowledged (None = none yet)
    compliant: bool = True
    fallback_protected: bool = True  # the charger falls back by itself if evfuse dies
    notes: dict[str, str] = field(default_factory=dict)  # e.g. {"unit": "W", "profile": "TxDefault"}


class ChargerDriver(abc.ABC):
    """One charger. Implementations must never raise out of apply/reading/close for
    link problems: they record them and report them through reading() and status()."""

    def __init__(self, config: ChargerConfig):
        self.config = config

    @property
    def id(self) -> str:
        return self.config.id

    @abc.abstractmethod
    def reading(self, now: float) -> ChargerReading:
        """Latest known state, per-line draw and compliance. Pure snapshot, no I/O."""

    @abc.abstractmethod
    async def apply(self, limit_a: float) -> bool:
        """Send a new limit (0 = pause). Returns True once the charger accepted it, False when
        it refused or the link is down. The caller bounds the time with its own timeout and
        sends the next decision regardless, so this must be safe to cancel."""

    @abc.abstractmethod
    def status(self) -> DriverStatus:
        """Link and protocol details for status output and logs."""

    async def start(self) -> None:
        """Begin background work (keep-alives, lease renewal, read-back polling)."""

    async def close(self, fallback_a: float | None) -> None:
        """Stop background work. With fallback_a, first leave the charger at that limit
        (bounded in time: a dead link must not hold up shutdown)."""

    # A planned restart (controller/core/resume.py): a car charges on through it. A driver
    # without these falls back to fallback_a on stop and is never resumed.

    async def leave(self, fallback_a: float, stop_lease_s: float) -> None:
        """Planned stop (SIGTERM): keep the charger's limit, bounded by a lease it enforces by
        itself (at most stop_lease_s where it takes a lease, its watchdog where it has one),
        so it falls back on its own if evfuse does not come back; a charger with no such bound
        is left at fallback_a. Bounded in time, like close()."""
        await self.close(fallback_a)

    def lease_end(self) -> float | None:
        """Monotonic time until which the charger holds its acknowledged limit by itself (its
        lease or watchdog), or None: nothing acknowledged, or nothing bounds it."""
        return None

    def ask_report(self) -> None:
        """Ask the charger for a fresh measurement now, if its protocol can (OCPP
        TriggerMessage), at most once per core.ask.ASK_EVERY_S; the answer comes as a normal report.
        Default: nothing (a polled Modbus charger is read often anyway)."""

    def stay_quiet(self, until: float | None) -> None:
        """Send nothing to the charger (nothing that would renew its lease) until the monotonic
        time `until` or a call with None: a resumed limit is never promised beyond the lease the
        last process gave it before a meter sample showed its room."""


class QuietGate:
    """What a driver's stay_quiet() holds: `wait()` returns at the monotonic time `until`, or
    at once when released with None. Shared by the drivers so each says only what it keeps
    quiet (a Modbus bus, an OCPP link's initialisation)."""

    def __init__(self, monotonic=time.monotonic):
        self._monotonic = monotonic
        self._until: float | None = None
        self._released = asyncio.Event()

    def hold(self, until: float | None) -> None:
        self._until = until
        if until is None:
            self._released.set()

    async def wait(self) -> None:
        while self._until is not None:
            left = self._until - self._monotonic()
            if left <= 0:
                self._until = None
                break
            self._released.clear()
            try:
                await asyncio.wait_for(self._released.wait(), left)
            except asyncio.TimeoutError:
                pass
