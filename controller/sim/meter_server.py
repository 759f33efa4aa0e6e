"""A simulated main meter: a real pymodbus server (TCP or RTU) speaking a meter profile.

Tests, benchmarks and `evfuse demo` set per-phase current, voltage and power; the server
encodes them into the profile's register image on every request, exactly as the profile
says the real meter would (word order, scale, SunSpec scale factors, unsigned currents).
Faults can be switched on and off while it runs: silence, exception replies, NaN, short
replies, slow replies, dropped connections.

    server = MeterServer("sdm630")
    port = await server.start_tcp()          # 127.0.0.1, a free port
    server.set_phase("A", current_a=-8.0, voltage_v=231.0, power_w=-1840.0)
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from controller.meter.codec import encode
from controller.meter.profile import (MeterProfile, custom_profile, load_profile, resolve_sunspec)
from controller.meter.sunspec import END, SUNS
from controller.model import PHASE_INDEX

# SunSpec image layout: "SunS" at the base, a common model (id 1), the meter model, the end mark.
SUNSPEC_BASE = 40000
SUNSPEC_COMMON_LEN = 66
SUNSPEC_MODEL_LEN = {203: 105, 213: 124}
SUNSPEC_EXPONENT = {"current": -2, "voltage": -1, "power": 0}  # int16 model: 0.01 A, 0.1 V, 1 W


class MeterServer:
    """One simulated meter at one unit id (it ignores other unit ids: exception 4)."""

    def __init__(self, profile: str | MeterProfile = "sdm630", *, unit_id: int = 1,
                 registers: Sequence[dict[str, Any]] = (), sunspec_model: int = 203):
        if isinstance(profile, MeterProfile):
            self.profile = profile
        elif profile == "custom":
            self.profile = custom_profile(list(registers))
        else:
            self.profile = load_profile(profile)
        self._fixed: dict[int, dict[int, int]] = {3: {}, 4: {}}  # words that never change
        if self.profile.discovery == "sunspec":
            self._sunspec_layout(sunspec_model)
        for check in self.profile.checks:  # set up as the installer should (tests override it)
            self._fixed[check.function][check.address] = check.expect[0]
        self.unit_id = unit_id
        self.current_a = [0.0, 0.0, 0.0]
        self.voltage_v = [230.0, 230.0, 230.0]
        self.power_w = [0.0, 0.0, 0.0]
        # Faults, switchable at any time.
        self.silent = False  # receive requests, never answer
        self.exception_code: int | None = None  # answer every read with this exception
        self.nan = False  # every value register reads NaN (floats) or all ones (integers)
        self.short_by = 0  # answer this many registers fewer than asked
        self.delay_s = 0.0  # answer this late
        self.overrides: dict[tuple[int, int], int] = {}  # (function, address) -> word, wins over all
        self.requests = 0  # read requests received
        self._server: ModbusTcpServer | ModbusSerialServer | None = None

    # ----------------------------------------------------------------- values

    def set_phase(self, phase: str | int, *, current_a: float | None = None,
                  voltage_v: float | None = None, power_w: float | None = None) -> None:
        """Set what the meter measures on one phase ("A".."C" or 0..2); None keeps a value.
        current_a is signed like MeterSample (+ import); the image stores what the meter would."""
        p = PHASE_INDEX[phase] if isinstance(phase, str) else phase
        if current_a is not None:
            self.current_a[p] = current_a
        if voltage_v is not None:
            self.voltage_v[p] = voltage_v
        if power_w is not None:
            self.power_w[p] = power_w

    def set_all(self, current_a: Sequence[float], voltage_v: Sequence[float] | None = None,
                power_w: Sequence[float] | None = None) -> None:
        """Set all three phases; power defaults to voltage x current."""
        self.current_a = list(current_a)
        if voltage_v is not None:
            self.voltage_v = list(voltage_v)
        self.power_w = list(power_w) if power_w is not None else [
            u * i for u, i in zip(self.voltage_v, self.current_a)]

    def image(self) -> dict[int, dict[int, int]]:
        """The register words the meter shows right now: {function: {address: word}}."""
        out = {3: dict(self._fixed[3]), 4: dict(self._fixed[4])}
        values = {"current": self.current_a, "voltage": self.voltage_v, "power": self.power_w}
        for spec in self.profile.registers:
            value = values[spec.quantity][spec.phase]
            if spec.quantity == "current" and self.profile.current_sign == "power":
                value = abs(value)  # such meters report a magnitude
            if spec.scale_register is not None:
                exponent = SUNSPEC_EXPONENT[spec.quantity]
                out[spec.function][spec.scale_register] = exponent & 0xFFFF
                value /= 10.0 ** exponent
            value /= spec.scale
            if self.nan:
                value = math.nan
            if spec.type != "float32" and not math.isfinite(value):
                words = [0xFFFF] * spec.words if spec.type.startswith("u") else (
                    [0x8000] + [0] * (spec.words - 1))
                words = words if spec.word_order == "big" else words[::-1]
            else:
                words = encode(value, spec.type, spec.word_order)
            for i, w in enumerate(words):
                out[spec.function][spec.address + i] = w
        for (function, address), word in self.overrides.items():
            out[function][address] = word
        return out

    def _sunspec_layout(self, model_id: int) -> None:
        length = SUNSPEC_MODEL_LEN[model_id]
        model_at = SUNSPEC_BASE + 2 + 2 + SUNSPEC_COMMON_LEN
        hr = self._fixed[3]
        words = SUNS + [1, SUNSPEC_COMMON_LEN] + [0] * SUNSPEC_COMMON_LEN + [model_id, length]
        words += [0] * length + [END, 0]
        hr.update({SUNSPEC_BASE + i: w for i, w in enumerate(words)})
        self.profile = resolve_sunspec(self.profile, model_id, model_at + 2, length)

    # ----------------------------------------------------------------- server

    def _device(self) -> SimDevice:
        image = self.image()
        blocks: list[list[SimData]] = []
        for function in (3, 4):
            # Everything the profile reads exists on the real meter, named by us or not.
            read = {b.address + i for b in self.profile.reads if b.function == function for i in range(b.count)}
            addresses = sorted(set(image[function]) | read)
            data: list[SimData] = []
            for a in addresses:  # one SimData per run of consecutive addresses
                if data and data[-1].address + data[-1].count == a:
                    data[-1].count += 1
                else:
                    data.append(SimData(a, count=1, values=0, datatype=DataType.REGISTERS))
            # pymodbus needs one block per table; an unused table gets one register at the top.
            blocks.append(data or [SimData(65534, values=0, datatype=DataType.REGISTERS)])
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        return SimDevice(self.unit_id, simdata=(bits, list(bits), blocks[0], blocks[1]),
                         action=self._on_request)

    async def _on_request(self, function: int, start: int, address: int, count: int,
                          registers: list[int], values: Any) -> ExcCodes | None:
        self.requests += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.exception_code is not None:
            return ExcCodes(self.exception_code)
        if function in (3, 4) and values is None:
            table = self.image()[function]
            for a in range(address, address + count):
                registers[a - start] = table.get(a, 0)
        return None

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        return b"" if sending and self.silent else packet

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending and self.short_by and getattr(pdu, "registers", None):
            pdu.registers = pdu.registers[: max(0, len(pdu.registers) - self.short_by)]
        return pdu

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0 = a free port); returns the port."""
        self._server = ModbusTcpServer(self._device(), address=(host, port), trace_packet=self._trace_packet,
                                       trace_pdu=self._trace_pdu)
        await self._server.serve_forever(background=True)
        return self._server.transport.sockets[0].getsockname()[1]

    async def start_serial(self, device: str, baudrate: int = 9600, parity: str = "N",
                           stopbits: int = 1) -> None:
        """Answer RTU on a serial device (in tests: the server end of a PtyLink)."""
        self._server = ModbusSerialServer(self._device(), framer=FramerType.RTU, port=device,
                                          baudrate=baudrate, parity=parity, stopbits=stopbits,
                                          trace_packet=self._trace_packet, trace_pdu=self._trace_pdu)
        await self._server.serve_forever(background=True)

    def drop_connections(self) -> int:
        """Close every TCP client connection (the server keeps listening); returns how many."""
        assert self._server is not None
        connections = list(self._server.active_connections.values())
        for c in connections:
            c.close()
        return len(connections)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
