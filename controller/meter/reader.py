"""Poll the main meter on a steady schedule and hand every valid sample on at once.

The reader is the only place that turns meter I/O into MeterSamples. It never invents a
reading: a poll that times out, gets an exception, or decodes to something implausible
yields no sample, is counted by kind, and is logged once when such an episode starts and
once when it ends. The runtime watches `age()` against meter.stale_after_s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable

from controller.config import MeterConfig
from controller.meter.bus import (BusError, BusKey, ExceptionReply, LinkDown, ModbusBus, NoAnswer, Priority,
                                  SerialLine, open_bus)
from controller.meter.decode import Fault, Rejection, decode, profile_problem
from controller.meter.profile import MeterProfile, custom_profile, load_profile
from controller.meter.sunspec import DiscoveryFailed, discover
from controller.model import SITE_PHASES, MeterSample
from controller.tasks import cancel_and_wait

log = logging.getLogger("evfuse.meter")

TCP_POLL_S = 0.25
RTU_MIN_POLL_S = 0.25
# Over RTU the meter may share the wire with chargers: poll at most a third of the time the
# wire can carry, so chargers and a retry still fit between two meter reads.
RTU_WIRE_SHARE = 3.0


def profile_for(config: MeterConfig) -> MeterProfile:
    """The profile the config names (raises ProfileError when it is unknown or malformed)."""
    if config.profile == "custom":
        return custom_profile(list(config.registers))
    return load_profile(config.profile)


def serial_line(config: MeterConfig, profile: MeterProfile) -> SerialLine:
    return SerialLine.of(config.link, profile)


def default_poll_interval(config: MeterConfig, profile: MeterProfile) -> float:
    """TCP: 0.25 s. RTU: what the baud rate sustains with room left for other devices."""
    if config.link.transport == "tcp":
        return TCP_POLL_S
    line = serial_line(config, profile)
    bits_per_char = 1 + 8 + (0 if line.parity == "N" else 1) + line.stopbits
    char_s = bits_per_char / line.baudrate
    gap = max(min_gap(config, profile), 3.5 * char_s)  # 3.5 characters: RTU frame separation
    reads = profile.reads or (None,)  # SunSpec: size unknown before discovery; assume 40 registers
    wire = sum((8 + 5 + 2 * (b.count if b else 40)) * char_s + gap for b in reads)
    return max(RTU_MIN_POLL_S, math.ceil(RTU_WIRE_SHARE * wire / 0.05) * 0.05)


def min_gap(config: MeterConfig, profile: MeterProfile) -> float:
    return profile.min_gap_s if config.min_gap_s is None else config.min_gap_s


class MeterReadError(Exception):
    """A read failed; str() says what went wrong in installer words."""


class MeterReader:
    """Reads one meter. `on_sample` is called with each valid sample the moment it is decoded,
    from the reader's task; it must not block (hand the sample on, do not await I/O in it)."""

    def __init__(self, config: MeterConfig, site_phases: int = 3,
                 on_sample: Callable[[MeterSample], None] | None = None):
        self.config = config
        self.site_phases = site_phases
        self.on_sample = on_sample
        self.profile = profile_for(config)
        problem = profile_problem(self.profile, site_phases)
        if problem:
            raise ValueError(problem)
        self.poll_interval_s = config.poll_interval_s or default_poll_interval(config, self.profile)
        self.unit = config.link.unit_id
        self.last_sample: MeterSample | None = None
        self.samples = 0
        self.rejections: Counter[Fault] = Counter()
        self.skipped_ticks = 0  # poll ticks dropped because a poll overran (a slow meter)
        self.fault: Rejection | None = None  # the current fault episode, None while healthy
        self._fault_since = 0.0
        self._fault_polls = 0
        self._consumer_failed = False
        self.mode_fault: str | None = None  # a meter setting that changes what readings mean
        self._modes_checked = not self.profile.checks
        self._bus: ModbusBus | None = None
        self._task: asyncio.Task | None = None

    @property
    def where(self) -> str:
        where = BusKey.of(self.config.link).where
        if self.config.link.transport == "rtu":
            where += f" ({serial_line(self.config, self.profile)})"
        return f"{where} unit {self.unit}"

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the last valid sample was taken, None before the first one."""
        if self.last_sample is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_sample.t

    # ----------------------------------------------------------------- life cycle

    def open(self) -> None:
        """Attach to the shared bus for the meter's port (no I/O yet)."""
        if self._bus is None:
            line = serial_line(self.config, self.profile) if self.config.link.transport == "rtu" else None
            self._bus = open_bus(self.config.link, timeout_s=self.config.timeout_s, line=line)
            self._bus.set_min_gap(self.unit, min_gap(self.config, self.profile))

    async def start(self) -> None:
        """Start polling in the background."""
        self.open()
        if self._task is None:
            self._task = asyncio.create_task(self._poll_forever(), name="meter reader")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._bus is not None:
            await self._bus.release()
            self._bus = None

    async def _poll_forever(self) -> None:
        """Polls on ticks start + k * interval (no drift). A poll that overruns its tick
        skips the ticks it missed instead of firing them back to back: at most one request
        to the meter is ever outstanding."""
        interval = self.poll_interval_s
        start = time.monotonic()
        k = 0
        while True:
            await self.poll()
            elapsed = time.monotonic() - start
            next_k = max(k + 1, math.floor(elapsed / interval) + 1)
            self.skipped_ticks += next_k - k - 1
            k = next_k
            await asyncio.sleep(max(0.0, start + k * interval - time.monotonic()))

    # ----------------------------------------------------------------- one poll

    async def poll(self) -> MeterSample | Rejection:
        """Read and decode once; count, log and hand on the result."""
        self.open()
        result = await self._read()
        if isinstance(result, MeterSample):
            self._healthy(result)
            self.last_sample = result
            self.samples += 1
            if self.on_sample is not None:
                self._deliver(result)
        else:
            self._rejected(result)
        return result

    async def _read(self) -> MeterSample | Rejection:
        assert self._bus is not None
        try:
            if self.profile.discovery:
                self.profile = await discover(self._bus, self.unit, self.profile)
                log.info("meter %s: found %s", self.where, self.profile.description,
                         extra={"METER": self.where, "METER_PROFILE": self.profile.description})
            if not self._modes_checked:
                await self._check_modes()
            replies = [await self._bus.read_registers(self.unit, b.function, b.address, b.count, Priority.METER)
                       for b in self.profile.reads]
        except NoAnswer as e:
            return Rejection(Fault.TIMEOUT, str(e))
        except ExceptionReply as e:
            return Rejection(Fault.EXCEPTION, str(e))
        except LinkDown as e:
            return Rejection(Fault.DISCONNECTED, str(e))
        except BusError as e:
            return Rejection(Fault.TIMEOUT, str(e))
        except DiscoveryFailed as e:
            return Rejection(Fault.DISCOVERY, str(e))
        return decode(self.profile, replies, time.monotonic(), self.site_phases, self.config.invert)

    async def _check_modes(self) -> None:
        """Read the profile's mode registers once (a timeout is retried with the next poll)."""
        for check in self.profile.checks:
            try:
                raw = (await self._bus.read_registers(self.unit, check.function, check.address, 1, Priority.METER))[0]
            except ExceptionReply:
                log.info("meter %s: cannot read its %s (register %#x): taken as it is", self.where, check.what,
                         check.address, extra={"METER": self.where})
                continue
            if raw not in check.expect:
                shown = check.names.get(raw, str(raw))
                self.mode_fault = f"{check.what} is {shown}: {check.fix}"
                log.error("meter %s: %s; until then exported power may read as import", self.where,
                          self.mode_fault, extra={"METER": self.where, "FAULT": "meter-mode",
                                                  "FAULT_DETAIL": self.mode_fault})
        self._modes_checked = True

    def _deliver(self, sample: MeterSample) -> None:
        try:
            self.on_sample(sample)
        except Exception:  # a consumer bug must not stop the meter; say so once
            if not self._consumer_failed:
                log.exception("meter sample consumer failed; further failures are not logged")
            self._consumer_failed = True

    def _rejected(self, rejection: Rejection) -> None:
        self.rejections[rejection.kind] += 1
        self._fault_polls += 1
        if self.fault is None or self.fault.kind != rejection.kind:
            state = "started" if self.fault is None else "changed"
            if self.fault is None:
                self._fault_since = time.monotonic()
                self._fault_polls = 1
            log.warning("meter %s: no valid reading (%s): %s", self.where, rejection.kind.value,
                        rejection.detail, extra={"METER": self.where, "FAULT": rejection.kind.value,
                                                 "FAULT_STATE": state, "FAULT_DETAIL": rejection.detail})
        self.fault = rejection

    def _healthy(self, sample: MeterSample) -> None:
        if self.fault is None:
            return
        duration = time.monotonic() - self._fault_since
        fields = {f"METER_{p}": round(sample.current_a[i], 2) for i, p in enumerate(SITE_PHASES)}
        log.info("meter %s: valid readings again after %.1f s (%d polls without a reading, last: %s)",
                 self.where, duration, self._fault_polls, self.fault.kind.value,
                 extra={"METER": self.where, "FAULT": self.fault.kind.value, "FAULT_STATE": "ended",
                        "FAULT_DURATION_S": round(duration, 1), "FAULT_POLLS": self._fault_polls, **fields})
        self.fault = None

    # ----------------------------------------------------------------- for the CLI

    async def read_sample(self, tries: int = 3) -> MeterSample:
        """One sample, asking up to `tries` times; raises MeterReadError in installer words."""
        result: MeterSample | Rejection | None = None
        for attempt in range(tries):
            result = await self.poll()
            if isinstance(result, MeterSample):
                return result
            if result.kind == Fault.DISCONNECTED and attempt + 1 < tries:
                await asyncio.sleep(0.5)  # give the bus's reconnect backoff a chance
        assert isinstance(result, Rejection)
        raise MeterReadError(explain(result, self.where, tries))


def explain(rejection: Rejection, where: str, tries: int) -> str:
    """Installer words for why a meter read failed."""
    kind = rejection.kind
    if kind == Fault.TIMEOUT:
        return f"no answer from {where} after {tries} tries: check wiring, address, unit id and baud rate"
    if kind in (Fault.EXCEPTION, Fault.DISCONNECTED, Fault.DISCOVERY):
        return rejection.detail
    return (f"the meter at {where} answered, but {rejection.detail}: wrong profile, word order "
            "or a phase not connected?")
