"""Simulated Modbus chargers: real pymodbus servers speaking a charger profile's register map.

The emulator follows the profile (the same data the driver uses), plus the device behaviour
a profile cannot express: the charger's own watchdog (no renewal within the timeout -> it
falls to its failsafe current), a power cycle (volatile registers reset, the limit back at
the hardware maximum), a car that draws min(offered, car max) after a short delay, and faults
(silence, exception replies). Writes that cover only part of a multi-word register, values
the charger does not take, and unknown addresses are refused as the devices do.

    charger = ChargerEmulator("heidelberg", unit_id=2)
    port = await charger.start_tcp()        # or start_serial(pty path); or SharedBus for RTU
    ... charger.offered_a(), charger.writes, charger.power_cycle() ...
    await charger.stop()
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from controller.chargers.modbus.profile import ChargerProfile, Register, custom_profile, load_profile
from controller.chargers.modbus.values import decode_number, encode_amps, encode_seconds, encode_text
from controller.meter.codec import encode
from controller.model import CarState

CAR_MIN_A = 6.0  # IEC 61851: a car does not charge below 6 A


@dataclass(frozen=True)
class Write:
    t: float  # monotonic
    function: int  # 5, 6 or 16
    address: int
    values: tuple  # words, or (bool,) for a coil


class _Served:
    """A pymodbus server for `_devices()`, on an RTU serial device; stopped by stop()."""

    _server: ModbusTcpServer | ModbusSerialServer | None = None

    def _devices(self) -> SimDevice | list[SimDevice]:
        raise NotImplementedError

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        raise NotImplementedError

    async def start_serial(self, device: str, baudrate: int = 19200, parity: str = "N", stopbits: int = 1) -> None:
        """Answer RTU on a serial device (in tests: the server end of a PtyLink, parity "N")."""
        self._server = ModbusSerialServer(self._devices(), framer=FramerType.RTU, port=device, baudrate=baudrate,
                                          parity=parity, stopbits=stopbits, trace_packet=self._trace_packet)
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None


class ChargerEmulator(_Served):
    """One charger at one unit id."""

    def __init__(self, profile: str | ChargerProfile = "heidelberg", *, unit_id: int | None = None,
                 registers: dict[str, Any] | None = None, hardware_max_a: float = 16.0,
                 car_max_a: float = 16.0, car_phases: int = 3, car_present: bool = True,
                 response_s: float = 0.1, validity_s: float | None = None, device_failsafe_a: float = 6.0,
                 without: tuple[str, ...] = (), limit_scale: float | None = None):
        if isinstance(profile, ChargerProfile):
            self.profile = profile
        elif profile == "custom":
            self.profile = custom_profile(registers or {})
        else:
            self.profile = load_profile(profile)
        # Firmware variants: sections this one lacks (it answers them with an exception), and
        # another unit of the limit register (Wallbe firmware on a Phoenix EV-CC: 0.1 A).
        self.profile = replace(self.profile, **{name: None for name in without})
        if limit_scale is not None:
            limit = self.profile.limit
            self.profile = replace(self.profile, limit=replace(limit, register=replace(limit.register, scale=limit_scale)))
        self.unit_id = self.profile.unit_id if unit_id is None else unit_id
        self.hardware_max_a = hardware_max_a
        self.car_max_a = car_max_a
        self.car_phases = car_phases
        self.car_present = car_present
        self.response_s = response_s
        wd = self.profile.watchdog
        # A watchdog set on the device itself (Alfen validity time), not over Modbus.
        self.validity_s = validity_s if validity_s is not None else (wd.device_default_s if wd else 0.0)
        self.device_failsafe_a = device_failsafe_a
        self.silent = False  # take requests, never answer, change nothing (a dead charger)
        self.exception_code: int | None = None  # answer every request with this exception
        self.writes: list[Write] = []
        self.renewals: list[float] = []  # times the watchdog was renewed
        self.requests = 0
        self.power_cycles = 0
        self._power_on()

    # ----------------------------------------------------------------- device state

    def _power_on(self) -> None:
        p = self.profile
        self.memory: dict[int, int] = {}  # writable holding registers, as the charger keeps them
        self._store(p.limit.register, encode_amps(p.limit.register, self.hardware_max_a))
        if p.failsafe is not None and p.failsafe.writable:
            self._store(p.failsafe.register, encode_amps(p.failsafe.register, 0.0))
        if p.watchdog is not None and p.watchdog.timeout is not None:
            self._store(p.watchdog.timeout, encode_seconds(p.watchdog.timeout, 0.0))  # 0 = off
        for w in p.init:
            self.memory[w.address] = 0
        self.enabled = True
        self.renewed_at = time.monotonic()
        self._draw = 0.0
        self._draw_target = 0.0
        self._draw_since = self.renewed_at

    def power_cycle(self) -> None:
        """Mains off and on: every volatile setting is back at its power-on value."""
        self.power_cycles += 1
        self._power_on()

    def _store(self, reg: Register, words: list[int]) -> None:
        for i, w in enumerate(words):
            self.memory[reg.address + i] = w

    def _value(self, reg: Register) -> float:
        return decode_number(reg, [self.memory[reg.address + i] for i in range(reg.words)]) or 0.0

    @property
    def limit_a(self) -> float:
        """What the limit register holds."""
        return self._value(self.profile.limit.register)

    @property
    def failsafe_a(self) -> float:
        fs = self.profile.failsafe
        if fs is None:
            return math.nan
        return self._value(fs.register) if fs.writable else self.device_failsafe_a

    def watchdog_s(self) -> float:
        """The watchdog timeout in force, 0 = none."""
        wd = self.profile.watchdog
        if wd is None:
            return 0.0
        return self._value(wd.timeout) if wd.timeout is not None else self.validity_s

    def tripped(self, now: float | None = None) -> bool:
        timeout = self.watchdog_s()
        now = time.monotonic() if now is None else now
        return timeout > 0 and now - self.renewed_at > timeout

    def offered_a(self, now: float | None = None) -> float:
        """The current the charger offers the car right now."""
        if not self.enabled:
            return 0.0
        amps = self.failsafe_a if self.tripped(now) else self.limit_a
        return min(amps, self.hardware_max_a) if amps >= CAR_MIN_A else 0.0

    def draw_a(self, now: float | None = None) -> float:
        """Per-line draw of the car: follows the offer after response_s."""
        now = time.monotonic() if now is None else now
        target = min(self.offered_a(now), self.car_max_a) if self.car_present else 0.0
        if target != self._draw_target:
            self._draw = self._current_draw(now)
            self._draw_target, self._draw_since = target, now
        return self._current_draw(now)

    def _current_draw(self, now: float) -> float:
        return self._draw_target if now - self._draw_since >= self.response_s else self._draw

    def car(self, now: float | None = None) -> CarState:
        if not self.car_present:
            return CarState.NO_CAR
        return CarState.CHARGING if self.draw_a(now) > 0 else CarState.CONNECTED

    def writes_to(self, address: int) -> list[Write]:
        return [w for w in self.writes if w.address == address]

    # ----------------------------------------------------------------- register image

    def _dynamic(self, now: float) -> dict[tuple[int, int], int]:
        """Registers computed on every read: status, currents, remaining validity, read-only failsafe."""
        p = self.profile
        out: dict[tuple[int, int], int] = {}

        def put(reg: Register, words: list[int]) -> None:
            for i, w in enumerate(words):
                out[(reg.function, reg.address + i)] = w

        if p.status is not None:
            state = self.car(now)
            raw = next((k for k, v in p.status.values.items() if v == state), "0")
            reg = p.status.register
            put(reg, encode_text(raw, reg.count) if reg.type == "ascii" else encode(float(raw), reg.type, reg.word_order))
        draw = self.draw_a(now)
        for line, reg in enumerate(p.currents):
            amps = draw if line < self.car_phases else 0.0
            put(reg, encode(amps / reg.scale, reg.type, reg.word_order))
        wd = p.watchdog
        if wd is not None and wd.remaining is not None:
            left = max(0.0, self.validity_s - (now - self.renewed_at))
            put(wd.remaining, encode(float(math.floor(left)), wd.remaining.type, wd.remaining.word_order))
        if p.failsafe is not None and not p.failsafe.writable:
            put(p.failsafe.register, encode(self.device_failsafe_a / p.failsafe.register.scale,
                                            p.failsafe.register.type, p.failsafe.register.word_order))
        return out

    def _registers(self) -> list[Register]:
        p = self.profile
        regs = [p.limit.register, *p.currents]
        regs += [r for r in (p.status and p.status.register, p.failsafe and p.failsafe.register) if r]
        if p.watchdog is not None:
            regs += [r for r in (p.watchdog.timeout, p.watchdog.remaining) if r]
        return regs

    def sim_device(self) -> SimDevice:
        """The pymodbus device; usable alone or with others on one SharedBus."""
        addresses: dict[int, set[int]] = {3: set(self.memory), 4: set()}
        for reg in self._registers():
            addresses[reg.function].update(range(reg.address, reg.address + reg.words))
        blocks = []
        for function in (3, 4):
            data: list[SimData] = []
            for a in sorted(addresses[function]):
                if data and data[-1].address + data[-1].count == a:
                    data[-1].count += 1
                else:
                    data.append(SimData(a, count=1, values=0, datatype=DataType.REGISTERS))
            blocks.append(data or [SimData(65534, values=0, datatype=DataType.REGISTERS)])
        coil = self.profile.enable_coil
        bits = [SimData(coil if coil is not None else 0, values=False, datatype=DataType.BITS)]
        return SimDevice(self.unit_id, simdata=(bits, [SimData(0, values=False, datatype=DataType.BITS)],
                                                blocks[0], blocks[1]), action=self._on_request)

    # ----------------------------------------------------------------- requests

    async def _on_request(self, function: int, start: int, address: int, count: int,
                          registers: list[int], values: Any) -> ExcCodes | None:
        if self.silent:
            return None  # the reply is dropped on the way out; nothing changes
        self.requests += 1
        if self.exception_code is not None:
            return ExcCodes(self.exception_code)
        now = time.monotonic()
        wd = self.profile.watchdog
        if wd is not None and wd.renewed_by == "any" and not self.tripped(now):
            self._renew(now)
        if values is not None and function in (5, 15):
            return self._write_coil(now, address, values)
        if values is not None and function in (6, 16):
            return self._write(now, function, address, list(values))
        if function in (3, 4, 6, 16):  # a read, or a write's echo (pymodbus reads the value back)
            function = 4 if function == 4 else 3
            dynamic = self._dynamic(now)
            for a in range(address, address + count):
                registers[a - start] = dynamic.get((function, a), self.memory.get(a, 0) if function == 3 else 0)
        return None

    def _renew(self, now: float) -> None:
        self.renewed_at = now
        self.renewals.append(now)

    def _write_coil(self, now: float, address: int, values: Any) -> ExcCodes | None:
        if address != self.profile.enable_coil:
            return ExcCodes.ILLEGAL_ADDRESS
        self.enabled = bool(values[0])
        self.writes.append(Write(now, 5, address, (self.enabled,)))
        return None

    def _write(self, now: float, function: int, address: int, words: list[int]) -> ExcCodes | None:
        p = self.profile
        writable = {p.limit.register.address: p.limit.register}
        if p.failsafe is not None and p.failsafe.writable:
            writable[p.failsafe.register.address] = p.failsafe.register
        if p.watchdog is not None and p.watchdog.timeout is not None:
            writable[p.watchdog.timeout.address] = p.watchdog.timeout
        end = address + len(words)
        covered = [r for a, r in writable.items() if a < end and address < a + r.words]
        init = {w.address for w in p.init}
        if not covered and not set(range(address, end)) <= init:
            return ExcCodes.ILLEGAL_ADDRESS
        for reg in covered:  # a multi-word value must be written whole, in one request
            if reg.address < address or reg.address + reg.words > end:
                return ExcCodes.ILLEGAL_VALUE
            amps = decode_number(reg, words[reg.address - address: reg.address - address + reg.words])
            if reg in (p.limit.register, p.failsafe and p.failsafe.register) and not (
                    amps is not None and (amps == 0 or p.min_a - 1e-6 <= amps <= self.hardware_max_a + 1e-6)):
                return ExcCodes.ILLEGAL_VALUE
        for i, w in enumerate(words):
            self.memory[address + i] = w
        self.writes.append(Write(now, function, address, tuple(words)))
        if p.watchdog is not None and p.limit.register in covered:
            self._renew(now)  # a limit write renews every watchdog, and ends a fallback
        return None

    # ----------------------------------------------------------------- server

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        return b"" if sending and self.silent else packet

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0 = a free port); returns the port."""
        self._server = ModbusTcpServer(self.sim_device(), address=(host, port), trace_packet=self._trace_packet)
        await self._server.serve_forever(background=True)
        return self._server.transport.sockets[0].getsockname()[1]

    def _devices(self) -> SimDevice:
        return self.sim_device()


class SharedBus(_Served):
    """Several simulated devices behind one RTU port, as on a real RS485 bus: e.g. the main
    meter (a MeterServer) and a Heidelberg charger; or behind one TCP endpoint, as the sockets
    of a twin. Each keeps its own `silent` switch."""

    def __init__(self, *devices: Any):
        self.devices = {self._sim_device(d).id: d for d in devices}

    @staticmethod
    def _sim_device(device: Any) -> SimDevice:
        # MeterServer builds its SimDevice in _device(); chargers expose sim_device().
        return device.sim_device() if hasattr(device, "sim_device") else device._device()

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        unit = packet[6] if self._tcp and len(packet) > 6 else packet[0] if packet else None  # MBAP / RTU
        if sending and getattr(self.devices.get(unit), "silent", False):
            return b""
        return packet

    _tcp = False

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Several units behind one Modbus TCP endpoint (the sockets of an Alfen twin: units
        1 and 2); returns the port."""
        self._tcp = True
        self._server = ModbusTcpServer(self._devices(), address=(host, port), trace_packet=self._trace_packet)
        await self._server.serve_forever(background=True)
        return self._server.transport.sockets[0].getsockname()[1]

    def _devices(self) -> list[SimDevice]:
        return [self._sim_device(d) for d in self.devices.values()]
