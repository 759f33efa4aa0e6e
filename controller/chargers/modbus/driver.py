"""ModbusCharger: the ChargerDriver of one charger we command over Modbus (RTU or TCP).

One background task per charger does everything on the wire, in this order of care:
  1. programme the charger's own safety net where the profile has one (failsafe current =
     the charger's fallback, config.charger_fallback_a; watchdog timeout = watchdog_s, plus
     the profile's init writes), then write the wanted limit;
  2. renew the watchdog well inside the timeout in force (a third of it: the programmed one,
     or the device's own) by re-writing the limit;
  3. read back state, per-line current and the registers we programmed at the profile's
     rate; a limit or watchdog that reads differently from what we wrote means the charger
     was reset (power cut, reboot): it is programmed again at once.
`apply` writes immediately (the fast path never waits for a poll) and shares a lock with
the keep-alive so the last limit asked for is always the last one written.

Faults never raise out of the runtime API. Two failed requests in a row (or a link that is
down) make the charger offline; from then on `reading().lease_until` says until when it may
still hold its last limit (the last request that may have renewed its watchdog + the
timeout), None when it has no watchdog (it holds the limit for ever). The task keeps
retrying the whole programming sequence, spaced so a dead charger costs the shared bus at
most one timeout every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Any

from controller.chargers.base import ChargerDriver, DriverStatus, QuietGate
from controller.chargers.modbus.profile import ChargerProfile, Register, custom_profile, load_profile
from controller.chargers.modbus.values import (decode_number, encode_amps, encode_seconds, status_text,
                                               words_to_amps)
from controller.config import ChargerConfig, Config, ControlConfig, charger_fallback_a
from controller.meter.bus import (BusError, BusKey, ExceptionReply, LinkDown, ModbusBus, NoAnswer, SerialLine,
                                  open_bus)
from controller.meter.codec import plan_reads
from controller.model import CarState, ChargerReading
from controller.tasks import cancel_and_wait

log = logging.getLogger("controller.chargers.modbus")

KEEPALIVE_FRACTION = 3  # renew the watchdog three times per timeout: one lost write is harmless
OFFLINE_AFTER_FAILURES = 2  # one lost reply on a noisy RS485 line is not an outage
RETRY_MIN_S = 2.0  # while offline, try again at most this often (each try may cost a bus timeout)
CLOSE_TIMEOUT_S = 3.0
REQUEST_BOUND = 4  # bus timeouts one request may take at most, queueing behind others included


@dataclass(frozen=True)
class ModbusSettings:
    """What every Modbus charger needs beyond its own [[charger]] table."""

    control: ControlConfig
    timeout_s: float = 1.0  # answer time of one request; a port shared with the meter keeps the meter's

    @staticmethod
    def of(cfg: Config) -> ModbusSettings:
        return ModbusSettings(control=cfg.control, timeout_s=cfg.meter.timeout_s)


def profile_for(config: ChargerConfig) -> ChargerProfile:
    """The profile a [[charger]] names (raises ProfileError when unknown or malformed)."""
    if config.profile == "custom":
        return custom_profile(dict(config.registers))
    return load_profile(config.profile)


def serial_line(config: ChargerConfig, profile: ChargerProfile) -> SerialLine:
    return SerialLine.of(config.link, profile)


def modbus_chargers(cfg: Config) -> list[ModbusCharger]:
    """One driver per `protocol = "modbus"` charger of the config (no I/O until start())."""
    settings = ModbusSettings.of(cfg)
    return [ModbusCharger(c, settings) for c in cfg.chargers if c.protocol == "modbus"]


class ModbusCharger(ChargerDriver):
    def __init__(self, config: ChargerConfig, settings: ModbusSettings, *,
                 profile: ChargerProfile | None = None, poll_interval_s: float | None = None):
        super().__init__(config)
        assert config.link is not None, "a Modbus charger needs a link"
        self.settings = settings
        self.profile = profile or profile_for(config)
        self.unit = config.link.unit_id
        self.poll_interval_s = poll_interval_s or self.profile.poll_interval_s
        # What it holds by itself once we are gone: exactly what the core assumes it holds.
        self.fallback_a = charger_fallback_a(config, settings.control)
        # Sections only some firmware has, and the limit's unit where firmware differs, are
        # found out once, before the first programming; until then nothing is claimed.
        self._probed = not self._probes_needed()
        self._derive()
        self._bus: ModbusBus | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._closed = False
        self._target_a: float | None = None  # None: control.fallback_a until the first apply
        self._limit_a: float | None = None  # last limit the charger acknowledged
        self._limit_words: list[int] | None = None  # what the limit register must read back
        self._writes = 0  # bumped by every limit write, to ignore read-backs that raced one
        self._last_write = -math.inf
        self._ready = False  # programmed and answering
        self._reprogram = False
        self._failures = 0
        self._renewed_at: float | None = None  # last request that may have renewed the watchdog
        self._failsafe_ok = self.profile.failsafe is None or self.profile.failsafe.writable
        self.notes: dict[str, str] = {}
        self._car = CarState.UNKNOWN
        self._draw: tuple[float, ...] | None = None
        self._draw_at: float | None = None  # when the read that gave _draw was sent
        self._fault = ""  # current fault episode, "" while healthy
        self.faults = {"timeout": 0, "exception": 0, "link": 0, "bad-data": 0, "reset": 0}
        self._quiet = QuietGate()  # stay_quiet(): no bus traffic before its end

    def _derive(self) -> None:
        """What follows from the profile as this device has it."""
        # The timeout in force (what we programme, or the charger's own), and the keep-alive
        # derived from it, never from a configured value the device cannot hold.
        self.watchdog_s = self.profile.effective_watchdog_s(self.config.watchdog_s)
        self.keepalive_s = self.watchdog_s / KEEPALIVE_FRACTION if self.watchdog_s is not None else None
        self.failsafe_a = self._device_amps(self.fallback_a)
        self._reads = plan_reads((r.function, r.address, r.address + r.words) for r, _ in self._readback())

    def _probes_needed(self) -> bool:
        p = self.profile
        return bool(p.limit.probe or (p.failsafe and p.failsafe.optional) or (p.watchdog and p.watchdog.optional))

    @property
    def where(self) -> str:
        return f"{BusKey.of(self.config.link).where} unit {self.unit}"

    # ------------------------------------------------------------------ runtime API

    def reading(self, now: float) -> ChargerReading:
        lease = None
        if not self._ready and self.watchdog_s is not None and self._renewed_at is not None and self._failsafe_ok:
            lease = self._renewed_at + self.watchdog_s
        return ChargerReading(online=self._ready, car=self._car, draw_lines_a=self._draw, draw_at=self._draw_at,
                              lease_until=lease, acked_a=self._limit_a)

    async def apply(self, limit_a: float) -> bool:
        self._target_a = max(0.0, min(limit_a, self.config.max_a))
        if not self._ready or self._closed:
            return False
        return await self._write_limit()

    def status(self) -> DriverStatus:
        notes = {"where": self.where, "profile": self.profile.description, **self.notes}
        if self.watchdog_s is not None:
            notes["watchdog_s"] = f"{self.watchdog_s:g}"
        if self._fault:
            notes["fault"] = self._fault
        return DriverStatus(protocol=f"modbus/{self.profile.name}", connected=self._ready, limit_a=self._limit_a,
                            fallback_protected=self._probed and self.profile.protected and self._failsafe_ok,
                            notes=notes)

    async def start(self) -> None:
        if self._task is not None:
            return
        line = serial_line(self.config, self.profile) if self.config.link.transport == "rtu" else None
        self._bus = open_bus(self.config.link, timeout_s=self.settings.timeout_s, line=line)
        self._bus.set_min_gap(self.unit, self.profile.min_gap_s)
        if not self.profile.protected:
            self._warn_unprotected()
        self._task = asyncio.create_task(self._run(), name=f"modbus charger {self.id}")

    async def close(self, fallback_a: float | None) -> None:
        """Stop; with fallback_a, first leave the limit there (bounded in time). The failsafe
        and watchdog stay programmed, so a charger we could not reach falls back by itself."""
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if fallback_a is not None and self._ready:
            self._target_a = max(0.0, min(fallback_a, self.config.max_a))
            try:
                if not await asyncio.wait_for(self._write_limit(), CLOSE_TIMEOUT_S):
                    self._event(logging.WARNING, "fallback limit not written before shutdown", REASON="close")
            except asyncio.TimeoutError:
                self._event(logging.WARNING, "fallback limit not confirmed before shutdown", REASON="close-timeout")
        self._ready = False
        if self._bus is not None:
            await self._bus.release()
            self._bus = None

    async def leave(self, fallback_a: float, stop_lease_s: float) -> None:
        """Planned stop: with a watchdog and a failsafe we know, the limit is left as it is and
        the charger's own watchdog takes it to the failsafe (its fallback) once we are silent;
        without them it is left at fallback_a, as by close(). stop_lease_s is OCPP's: the
        watchdog, not a lease we send, bounds a Modbus charger."""
        if self.lease_end() is None:
            await self.close(fallback_a)
            return
        await self.close(None)
        self._event(logging.INFO, f"limit {self._limit_a:g} A kept until its watchdog "
                    f"({self.watchdog_s:g} s) falls back (planned stop)", REASON="stop")

    def lease_end(self) -> float | None:
        protected = self._probed and self.profile.protected and self._failsafe_ok
        if not protected or self._limit_a is None or self._renewed_at is None or self.watchdog_s is None:
            return None
        return self._renewed_at + self.watchdog_s

    def stay_quiet(self, until: float | None) -> None:
        self._quiet.hold(until)

    # ------------------------------------------------------------------ the task

    async def _run(self) -> None:
        # Resumed after a restart: even a read renews some watchdogs, so the bus stays quiet
        # until the first meter sample (or the saved lease's end).
        await self._quiet.wait()
        next_poll = 0.0
        while True:
            if not self._ready or self._reprogram:
                if not await self._programme():
                    await self._sleep(max(RETRY_MIN_S, self.poll_interval_s))
                    continue
                next_poll = time.monotonic() + self.poll_interval_s
            now = time.monotonic()
            if now >= next_poll:
                await self._poll()
                next_poll = time.monotonic() + self.poll_interval_s
            if self._ready and self.keepalive_s is not None and time.monotonic() - self._last_write >= self.keepalive_s:
                await self._write_limit()
            deadline = next_poll
            if self.keepalive_s is not None:
                deadline = min(deadline, self._last_write + self.keepalive_s)
            await self._sleep(deadline - time.monotonic())

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), max(0.0, seconds))
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    def _warn_unprotected(self) -> None:
        self._event(logging.WARNING, f"profile {self.profile.name}: no watchdog on this charger: it is not "
                    "protected if the Pi dies (it keeps its last limit)", FAULT="no-watchdog")

    async def _probe(self) -> None:
        """Find out what this charger's firmware has: optional failsafe and watchdog registers
        (an exception reply means absent) and the unit of the limit register. Once per driver:
        after our own writes, the limit's read-back would tell nothing."""
        p = self.profile
        found: dict[str, Any] = {}
        for name, section, reg in (("failsafe", p.failsafe, p.failsafe and p.failsafe.register),
                                   ("watchdog", p.watchdog, p.watchdog and p.watchdog.timeout)):
            if section is None or not section.optional or reg is None:
                continue
            try:
                await self._read(reg)
            except ExceptionReply:
                found[name] = None
                self.notes[name] = "absent on this firmware"
            else:
                self.notes[name] = "present"
        if "failsafe" in found and p.watchdog is not None:
            # Without a failsafe current we know, its watchdog would fall to a current nobody
            # assumed: claim nothing and count it at its last limit, as an unprotected one.
            found["watchdog"] = None
        probe = p.limit.probe
        if probe is not None:
            raw = (await self._read(p.limit.register))[0]
            scale = probe.scale if raw >= probe.at_least else p.limit.register.scale
            register = replace(p.limit.register, scale=scale)
            found["limit"] = replace(p.limit, register=register)
            self.notes["limit_unit"] = f"{scale:g} A (read back {raw} before the first write)"
            self._event(logging.INFO, f"limit register counts in {scale:g} A (it read {raw}, "
                        f"{'at least' if raw >= probe.at_least else 'below'} {probe.at_least})", REASON="probe")
        self.profile = replace(p, **found)
        self._probed = True
        self._failsafe_ok = self.profile.failsafe is None or self.profile.failsafe.writable
        self._derive()
        if p.protected and not self.profile.protected:
            self._warn_unprotected()

    async def _read(self, reg: Register) -> list[int]:
        reply = await self._request(self._bus.read_registers(self.unit, reg.function, reg.address, reg.words),
                                    renews=False)
        if len(reply) != reg.words:
            raise NoAnswer(f"{self.where} answered {len(reply)} registers instead of {reg.words}")
        return reply

    async def _programme(self) -> bool:
        """Init writes, failsafe, watchdog, limit, then one read-back. True when all answered."""
        try:
            if not self._probed:
                await self._probe()
        except BusError as e:
            self._failed(e, "probing")
            return False
        p = self.profile
        try:
            for w in p.init:
                await self._write_words(w.address, [w.value], renews=False)
            if p.failsafe is not None and p.failsafe.writable:
                await self._write_words(p.failsafe.register.address, encode_amps(p.failsafe.register, self.failsafe_a),
                                        renews=False)
            if p.watchdog is not None and p.watchdog.timeout is not None:
                await self._write_words(p.watchdog.timeout.address,
                                        encode_seconds(p.watchdog.timeout, self.watchdog_s), renews=False)
        except BusError as e:
            self._failed(e, "programming")
            return False
        was_fault = self._fault
        self._fault = ""  # the programming below reports its own outcome
        self._reprogram = False
        if not await self._write_limit() or not await self._poll():
            self._ready = False
            self._fault = self._fault or was_fault
            return False
        self._ready = True
        if self._reprogram:  # it does not keep what we wrote a moment ago: not a reset
            self._reprogram = False
            self._event(logging.ERROR, "the charger does not keep the values just written: wrong profile "
                        "or unit id? its own fallback may not work", FAULT="not-kept")
        self._event(logging.INFO, f"ready at {self.where}: limit {self._limit_a:g} A, " + self._safety_text(),
                    REASON="reconnect" if was_fault else "connect", LIMIT_A=self._limit_a)
        return True

    def _safety_text(self) -> str:
        p = self.profile
        if p.watchdog is None:
            return "no watchdog"
        if p.watchdog.timeout is None:
            net = f"its own validity time (assumed {self.watchdog_s:g} s)"
        else:
            net = f"watchdog {self.watchdog_s:g} s"
        failsafe = f"failsafe {self.failsafe_a:g} A" if p.failsafe is None or p.failsafe.writable else "its own safe current"
        return f"{net} then {failsafe}, renewed every {self.keepalive_s:g} s"

    async def _write_limit(self) -> bool:
        """Write the wanted limit now (and the enable coil where the profile pauses with it)."""
        async with self._write_lock:
            wanted = self.fallback_a if self._target_a is None else self._target_a
            amps = self._device_amps(wanted)
            reg = self.profile.limit.register
            coil = self.profile.enable_coil
            words = encode_amps(reg, amps if amps > 0 or coil is None else self.profile.min_a)
            self._writes += 1
            try:
                if coil is not None and amps == 0:
                    await self._bus.write_coil(self.unit, coil, False)
                await self._write_words(reg.address, words, renews=True, function=self.profile.limit.write_function)
                if coil is not None and amps > 0:
                    await self._bus.write_coil(self.unit, coil, True)
            except BusError as e:
                self._failed(e, f"writing limit {amps:g} A")
                return False
            self._last_write = time.monotonic()
            self._limit_words = words
            self._healthy()
            if amps != self._limit_a:
                self._event(logging.INFO, f"limit {amps:g} A" + (" (paused)" if amps == 0 else ""), LIMIT_A=amps)
            self._limit_a = amps
            return True

    def _device_amps(self, amps: float) -> float:
        """What the charger can take: below its minimum means pause; steps round down."""
        if amps < self.profile.min_a:
            return 0.0
        reg = self.profile.limit.register
        step = 0.1 if reg.type == "float32" else reg.scale
        return round(math.floor(amps / step + 1e-6) * step, 3)

    # ------------------------------------------------------------------ read-back

    def _readback(self) -> list[tuple[Register, str]]:
        p = self.profile
        regs: list[tuple[Register, str]] = [(p.limit.register, "limit")]
        if p.status is not None:
            regs.append((p.status.register, "status"))
        regs += [(r, f"current{i}") for i, r in enumerate(p.currents)]
        if p.failsafe is not None:
            regs.append((p.failsafe.register, "failsafe"))
        if p.watchdog is not None and p.watchdog.timeout is not None:
            regs.append((p.watchdog.timeout, "watchdog"))
        if p.watchdog is not None and p.watchdog.remaining is not None:
            regs.append((p.watchdog.remaining, "remaining"))
        return regs

    async def _poll(self) -> bool:
        writes_before = self._writes
        sent_at = time.monotonic()
        words: dict[tuple[int, int], int] = {}
        try:
            for function, address, count in self._reads:
                reply = await self._request(self._bus.read_registers(self.unit, function, address, count),
                                            renews=False)
                if len(reply) != count:
                    raise NoAnswer(f"{self.where} answered {len(reply)} registers instead of {count}")
                words.update({(function, address + i): w for i, w in enumerate(reply)})
        except BusError as e:
            self._failed(e, "reading back")
            return False
        read_at = time.monotonic()
        self._healthy()
        values = {role: [words[(r.function, r.address + i)] for i in range(r.words)] for r, role in self._readback()}
        self._take_readings(values, sent_at)
        if self._writes == writes_before:  # no limit write raced this read: the comparison holds
            self._check_programmed(values, read_at)
        return True

    def _take_readings(self, values: dict[str, list[int]], sent_at: float) -> None:
        p = self.profile
        if p.status is not None:
            car = p.status.car(status_text(p.status.register, values["status"]))
            if car != self._car:
                self._event(logging.INFO, f"car {car.value}", CAR=car.value)
                self._car = car
        if p.currents:
            lines = tuple(words_to_amps(r, values[f"current{i}"]) for i, r in enumerate(p.currents))
            if any(a is None for a in lines):
                # Bad data is not data: an unknown draw lets the core count the commanded limit.
                self.faults["bad-data"] += 1
                self._draw = None
            else:
                self._draw, self._draw_at = lines, sent_at

    def _check_programmed(self, values: dict[str, list[int]], read_at: float) -> None:
        p = self.profile
        lost = []
        if self._limit_words is not None and values["limit"] != self._limit_words:
            lost.append(f"limit reads {decode_number(p.limit.register, values['limit'])} A")
        if p.watchdog is not None and p.watchdog.timeout is not None:
            if values["watchdog"] != encode_seconds(p.watchdog.timeout, self.watchdog_s):
                lost.append("watchdog timeout changed")
        if p.failsafe is not None:
            failsafe = decode_number(p.failsafe.register, values["failsafe"])
            if p.failsafe.writable and values["failsafe"] != encode_amps(p.failsafe.register, self.failsafe_a):
                lost.append("failsafe current changed")
            elif not p.failsafe.writable:
                self._check_device_failsafe(failsafe)
        if p.watchdog is not None and p.watchdog.remaining is not None:
            remaining = decode_number(p.watchdog.remaining, values["remaining"])
            if remaining is not None and self._renewed_at is not None:
                # The validity the charger really has (set on the device, maybe not to its
                # default): the lease never assumes less, the keep-alive never waits longer.
                validity = remaining + read_at - self._renewed_at
                self.watchdog_s = max(self.watchdog_s, validity)
                if validity >= 1.0:
                    self.keepalive_s = min(self.keepalive_s, validity / KEEPALIVE_FRACTION)
        if lost:
            self.faults["reset"] += 1
            self._event(logging.WARNING, "charger lost its settings (" + ", ".join(lost) +
                        "): power cut or reset? programming it again", FAULT="reset")
            self._reprogram = True
            self._wake.set()

    def _check_device_failsafe(self, failsafe: float | None) -> None:
        ok = failsafe is not None and failsafe <= self.fallback_a + 0.05
        if ok != self._failsafe_ok or failsafe is None:
            if ok:
                self._event(logging.INFO, f"its own safe current {failsafe:g} A is within its fallback")
            else:
                shown = "unknown" if failsafe is None else f"{failsafe:g} A"
                self._event(logging.ERROR, f"its own safe current is {shown}, above its fallback "
                            f"({self.fallback_a:g} A): set it on the charger; until then a lost link "
                            "is counted at its last limit for ever", FAULT="safe-current")
        self._failsafe_ok = ok

    # ------------------------------------------------------------------ requests and faults

    async def _write_words(self, address: int, words: list[int], *, renews: bool, function: int | None = None) -> None:
        function = function or self.profile.limit.write_function
        if function == 6 and len(words) == 1:
            await self._request(self._bus.write_register(self.unit, address, words[0]), renews)
        else:
            await self._request(self._bus.write_registers(self.unit, address, words), renews)

    async def _request(self, call, renews: bool) -> Any:
        """Run one bus request, keeping the failure count and the watchdog renewal time."""
        any_renews = self.profile.watchdog is not None and self.profile.watchdog.renewed_by == "any"
        try:
            try:
                # The bus answers within its own timeout; this outer bound only guards against
                # a request that is never answered at all (queued behind a stuck worker).
                result = await asyncio.wait_for(call, REQUEST_BOUND * self._bus.timeout_s + 1.0)
            except asyncio.TimeoutError:
                raise NoAnswer(f"no answer from {self.where} in time (bus busy?)") from None
        except LinkDown:
            raise  # never left this computer: renewed nothing
        except ExceptionReply:
            self._failures = 0  # it answered: the link is alive
            self._renewed_at = time.monotonic() if renews or any_renews else self._renewed_at
            raise
        except NoAnswer:
            # It may have arrived and only the reply got lost: assume it renewed.
            if renews or any_renews:
                self._renewed_at = time.monotonic()
            raise
        if renews or any_renews:
            self._renewed_at = time.monotonic()
        self._failures = 0
        return result

    def _failed(self, e: BusError, doing: str) -> None:
        kind = "link" if isinstance(e, LinkDown) else "exception" if isinstance(e, ExceptionReply) else "timeout"
        self.faults[kind] += 1
        if kind != "exception":
            self._failures += 1
        offline = kind == "link" or self._failures >= OFFLINE_AFTER_FAILURES
        text = f"{doing}: {e}"
        if offline and self._ready:
            self._ready = False
            lease = self.reading(time.monotonic()).lease_until
            held = ("it keeps its last limit (no watchdog)" if lease is None else
                    f"its watchdog falls back within {max(0.0, lease - time.monotonic()):.0f} s")
            self._event(logging.WARNING, f"offline ({text}); {held}", FAULT=kind, LEASE_UNTIL=lease)
        elif text != self._fault and (not self._fault or kind == "exception"):
            level = logging.ERROR if kind == "exception" else logging.WARNING
            self._event(level, text, FAULT=kind)
        self._fault = text

    def _healthy(self) -> None:
        """A request went through: end a fault episode of a charger that stayed online."""
        if self._fault and self._ready:
            self._event(logging.INFO, "answering normally again", REASON="recovered")
            self._fault = ""

    def _event(self, level: int, message: str, **fields) -> None:
        """One structured log line about a state change of this charger."""
        log.log(level, "%s: %s", self.id, message, extra={"CHARGER_ID": self.id, **fields})
