"""What every switchable-load driver shares: the reading the core takes, the wanted state,
and one background task that keeps the device where it should be.

The task, every poll: (re)sends the wanted state when the device differs from it or, for a
device with a lease, when the lease is due for renewal (a third of it: one lost request is
harmless), then reads the output and what it measures. `apply` sends at once (the fast path
never waits for a poll) under the same lock, so the last state asked for is the last sent.

Two failed requests in a row make it offline; from then on `reading().lease_until` says until
when it may still be on (a leased device: its last renewal + the lease; one reported off: it
is off), None for a device without a lease (it holds what it holds for ever).
Garbage from the device (NaN, a negative or impossible power) is rejected and counted.

After a start nothing is sent until the core's first decision: a device found on stays on
(and a lease the last process gave it is not renewed before that decision). A planned stop
(`leave`) leaves a leased device that is on on, under a lease of at most stop_lease_s, for the
next process to find; one without a lease is switched off, as on every stop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from controller.chargers.base import ChargerDriver, DriverStatus
from controller.config import LoadConfig
from controller.core.site import on_current_a
from controller.model import CarState, ChargerReading
from controller.tasks import cancel_and_wait

log = logging.getLogger("evfuse.loads")

OFFLINE_AFTER_FAILURES = 2
MAX_POWER_W = 60000.0  # a household load above this is a garbled reply
MAX_CURRENT_A = 1000.0
# Measured above power_w by more than this, this many reads in a row: it does not draw what its
# config promises (power_w is the most it draws when on), so the core counts it as a fixed load
# at what it measures and switches it off until it is back within (core: NON_COMPLIANT).
OVER_TOLERANCE_A = 1.0
OVER_READS = 3


class LinkError(Exception):
    """A request to the device got no usable answer; str() is meant for an installer."""


class SwitchDriver(ChargerDriver):
    protocol = "switch"
    lease_s: float | None = None  # the device's own lease (None: it has none)
    poll_s = 1.0
    close_timeout_s = 3.0

    def __init__(self, config: LoadConfig, voltage_v: float, clock=time.monotonic):
        super().__init__(config)
        self.clock = clock
        self.on_a = on_current_a(config.power_w, voltage_v, len(config.phases))
        self.voltage_v = voltage_v
        self._want_on: bool | None = None  # until the first decision: left as it is (None)
        self._started_at: float | None = None
        self._lease_now: float | None = None  # the lease of the last switch-on (leave() shortens it)
        self._output: bool | None = None  # what the device last said (None: not heard yet)
        self._output_at: float | None = None  # ... as of then
        self._power_w: float | None = None
        self._current_a: float | None = None
        self._draw_at: float | None = None
        self._failures = 0
        self._online = False
        self._ok_at: float | None = None  # last answered request
        self._renewed_at: float | None = None  # last lease renewal the device confirmed
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False
        self._fault = ""
        self._over = 0  # reads in a row above power_w
        self.faults = {"link": 0, "bad-data": 0}

    # ------------------------------------------------------------------ device I/O (subclasses)

    async def _write(self, on: bool, lease_s: float | None = None) -> None:
        """Switch the output (on: with a lease where the device has one, `lease_s` or its own).
        Raises LinkError."""
        raise NotImplementedError

    async def _read(self) -> tuple[bool, float | None, float | None]:
        """(output, power W or None, current A or None) as the device reports. Raises LinkError."""
        raise NotImplementedError

    async def _open(self) -> None:
        """Acquire what the link needs (a session, a bus, a pin)."""

    async def _shut(self) -> None:
        """Release it."""

    # ------------------------------------------------------------------ runtime API

    def reading(self, now: float) -> ChargerReading:
        on = self._output
        car = CarState.UNKNOWN if on is None else CarState.CHARGING if on else CarState.CONNECTED
        lines = None
        draw_at = self._draw_at
        if self._current_a is not None and len(self.config.phases) == 1:
            lines = (self._current_a,)
        elif on is False and self._power_w is None and self._current_a is None and self._online:
            # It measures nothing, but a relay that reads back open draws nothing: a fact the
            # draw model takes at once (what the meter credited it at switch-on is cleared).
            lines, draw_at = (0.0,) * len(self.config.phases), self._output_at
        lease_until = None
        if not self._online and self.lease_s is not None:
            if on and self._renewed_at is not None:
                lease_until = self._renewed_at + self.lease_s
            elif on is False and self._ok_at is not None:
                lease_until = self._ok_at  # it said it was off: it holds 0 (its own fallback)
            elif on is None and self._started_at is not None:
                # Not heard since the start: on at most for a lease the last process gave it.
                lease_until = self._started_at + self.lease_s
        return ChargerReading(online=self._online, car=car, draw_lines_a=lines, draw_at=draw_at,
                              power_w=self._power_w, lease_until=lease_until,
                              compliant=self._over < OVER_READS,
                              acked_a=None if on is None else (self.on_a if on else 0.0))

    async def apply(self, limit_a: float) -> bool:
        self._want_on = limit_a > 0
        try:
            async with self._lock:
                await self._send(self._want_on)
        except LinkError as e:
            self._failed(str(e))
            return False
        self._wake.set()  # read back soon
        return True

    def status(self) -> DriverStatus:
        notes = {"power": f"{self.config.power_w:g} W when on ({self.on_a:g} A per phase)",
                 "switched": "on" if self._output else "off" if self._output is False else "unknown"}
        if self._power_w is not None:
            notes["measured"] = f"{self._power_w:g} W"
        if self.lease_s is not None:
            notes["lease"] = f"switches off by itself {self.lease_s:g} s after the last renewal"
        else:
            notes["lease"] = "none: stays as it is if evfuse dies"
        if self._fault:
            notes["fault"] = self._fault
        return DriverStatus(protocol=self.protocol, connected=self._online, compliant=self._over < OVER_READS,
                            limit_a=None if self._output is None else (self.on_a if self._output else 0.0),
                            fallback_protected=self.lease_s is not None, notes=notes)

    async def start(self) -> None:
        self._started_at = self.clock()
        await self._open()
        self._task = asyncio.create_task(self._run(), name=f"load {self.id}")

    async def leave(self, fallback_a: float, stop_lease_s: float) -> None:
        """Planned stop: a leased device on stays on under a lease of at most stop_lease_s (the
        next process finds it on, no off/on cycle; without one it goes off by itself then).
        A device without a lease is switched off (nothing would ever bound it)."""
        if self.lease_s is None or self._want_on is False or not self._output:
            return await self.close(fallback_a)
        self._closed = True
        await cancel_and_wait(self._task)
        lease = min(stop_lease_s, self.lease_s)
        try:
            if self._want_on:  # ours: shorten its lease (not decided yet: its old lease runs out)
                async with asyncio.timeout(self.close_timeout_s):
                    async with self._lock:
                        await self._send(True, lease)
            log.info("load %s: left on for the next start; it switches itself off within %g s "
                     "unless evfuse starts again", self.id, lease if self._want_on else self.lease_s,
                     extra={"LOAD_ID": self.id, "STATE": "stopped"})
        except (LinkError, TimeoutError) as e:
            log.warning("load %s: could not shorten its lease on stop (%s); it switches itself off "
                        "within %g s", self.id, e or "timeout", self.lease_s,
                        extra={"LOAD_ID": self.id, "FAULT": "stop"})
        await self._shut()

    def lease_end(self) -> float | None:
        """Until when a device it last switched on stays on by itself (None: off, or no lease)."""
        if self.lease_s is None or not self._output or self._renewed_at is None:
            return None
        return self._renewed_at + (self._lease_now or self.lease_s)

    @property
    def fault(self) -> str:
        """Why its link is down ("" while up or not tried yet): for an installer."""
        return "" if self._online else self._fault

    def switched(self) -> tuple[bool, float] | None:
        """(its output as last known, when that was first seen or made), None: not heard."""
        if self._output is None or self._output_at is None:
            return None
        return self._output, self._output_at

    async def close(self, fallback_a: float | None) -> None:
        self._closed = True
        await cancel_and_wait(self._task)
        if fallback_a is not None:
            self._want_on = fallback_a > 0
            try:
                async with asyncio.timeout(self.close_timeout_s):
                    async with self._lock:
                        await self._send(self._want_on)
                log.info("load %s: switched %s on stop", self.id, "on" if self._want_on else "off",
                         extra={"LOAD_ID": self.id, "STATE": "stopped"})
            except (LinkError, TimeoutError) as e:
                log.warning("load %s: could not switch it off on stop (%s)%s", self.id, e or "timeout",
                            "; its lease switches it off by itself" if self.lease_s else
                            "; it has no lease: it stays as it is", extra={"LOAD_ID": self.id, "FAULT": "stop"})
        await self._shut()

    # ------------------------------------------------------------------ the background task

    async def _send(self, on: bool, lease_s: float | None = None) -> None:
        await self._write(on, lease_s)
        now = self.clock()
        self._ok(now)
        if on != self._output:
            self._output_at = now
        self._output = on
        if on and self.lease_s is not None:
            self._renewed_at = now  # the reply came now: the device's timer started no later
            self._lease_now = lease_s or self.lease_s

    async def _run(self) -> None:
        while not self._closed:
            try:
                async with self._lock:
                    due = (self.lease_s is not None and self._want_on and
                           (self._renewed_at is None or self.clock() - self._renewed_at >= self.lease_s / 3))
                    if due or (self._want_on is not None and self._output is not None
                               and self._output != self._want_on):
                        await self._send(self._want_on)
                    sent = self.clock()
                    output, power_w, current_a = await self._read()
                self._ok(self.clock())
                self._take(output, power_w, current_a, sent)
            except LinkError as e:
                self._failed(str(e))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass

    def _take(self, output: bool, power_w: float | None, current_a: float | None, at: float) -> None:
        if output != self._output and self._output is not None:
            log.info("load %s: the device reports it %s", self.id, "on" if output else "off",
                     extra={"LOAD_ID": self.id, "SWITCHED": "on" if output else "off"})
        if output != self._output:
            self._output_at = at
        self._output = output
        if power_w is not None and not (math.isfinite(power_w) and -50 <= power_w <= MAX_POWER_W):
            self.faults["bad-data"] += 1
            power_w = current_a = None
        if current_a is not None and not (math.isfinite(current_a) and 0 <= current_a <= MAX_CURRENT_A):
            self.faults["bad-data"] += 1
            power_w = current_a = None
        if power_w is not None or current_a is not None:
            self._power_w = max(0.0, power_w) if power_w is not None else None
            self._current_a = current_a
            self._draw_at = at
            n = len(self.config.phases)
            amps = current_a if current_a is not None and n == 1 else (self._power_w or 0.0) / (self.voltage_v * n)
            was = self._over >= OVER_READS
            self._over = self._over + 1 if amps > self.on_a + OVER_TOLERANCE_A else 0
            if (self._over >= OVER_READS) != was:
                log.warning("load %s: %s", self.id, f"draws {amps:.1f} A, more than its power_w "
                            f"({self.config.power_w:g} W = {self.on_a:g} A): counted at what it draws, "
                            "switched off; set power_w to what it really draws" if not was else
                            "draws within its power_w again", extra={"LOAD_ID": self.id, "FAULT": "compliance"})

    def _ok(self, now: float) -> None:
        self._failures = 0
        self._ok_at = now
        if not self._online:
            self._online = True
            if self._fault:
                log.info("load %s: link back", self.id, extra={"LOAD_ID": self.id, "LINK": "up"})
            self._fault = ""

    def _failed(self, why: str) -> None:
        self._failures += 1
        if self._failures >= OFFLINE_AFTER_FAILURES and (self._online or not self._fault):
            self._online = False
            self.faults["link"] += 1
            self._fault = why
            log.warning("load %s: link down: %s", self.id, why, extra={"LOAD_ID": self.id, "LINK": "down"})
