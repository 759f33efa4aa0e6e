"""One Modbus client per wire: a serial port or a TCP endpoint, shared by every device on it.

DESIGN §2: a shared RS485 bus must have exactly one client with ordered access, meter reads
first. A ModbusBus owns one pymodbus client and one worker task that runs requests strictly
one after another, highest priority first, keeping a minimum quiet gap between two requests
to the same unit. When the link drops (TCP peer gone, USB adapter unplugged) requests fail
fast with LinkDown while the bus reconnects with a bounded backoff; nobody restarts anything.

Use `open_bus(link, ...)` to get the shared bus for a link and `await bus.release()` when done.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymodbus import ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.framer import FramerType

from controller.config import SerialSettings
from controller.tasks import cancel_and_wait

log = logging.getLogger("evfuse.bus")
# pymodbus logs every timeout and every failed reconnect at WARNING/ERROR: at 4 polls a second
# that buries the journal. The bus reports link episodes itself, once each.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0  # an adapter plugged back in is picked up within this

EXCEPTION_HINTS = {
    1: "function not supported: wrong profile (input vs holding registers)?",
    2: "wrong profile or unit id?",
    3: "value not accepted: wrong profile?",
    4: "the device reports an internal failure",
    6: "the device is busy",
    10: "the gateway has no path to that unit",
    11: "the gateway got no answer from that unit id",
}


class Priority(enum.IntEnum):
    """Lower runs first. The meter feeds the safety path, so it never waits behind chargers."""

    METER = 0
    CHARGER = 1
    BACKGROUND = 2


class BusError(Exception):
    """A request got no usable answer. str() is meant for an installer."""


class LinkDown(BusError):
    """Not connected (port missing, peer refusing); the bus keeps trying in the background."""


class NoAnswer(BusError):
    """Request sent, no reply within the timeout."""


class ExceptionReply(BusError):
    def __init__(self, function: int, address: int, code: int):
        self.function, self.address, self.code = function, address, code
        hint = EXCEPTION_HINTS.get(code, "")
        super().__init__(f"register {address} answered exception {code}" + (f": {hint}" if hint else ""))


@dataclass(frozen=True)
class BusKey:
    transport: str  # "tcp" | "rtu"
    where: str  # "host:port" or the serial device path

    @staticmethod
    def of(link: SerialSettings) -> BusKey:
        if link.transport == "rtu":
            return BusKey("rtu", os.path.normpath(link.device))
        return BusKey("tcp", f"{link.host}:{link.port}")


@dataclass(frozen=True)
class SerialLine:
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1

    def __str__(self) -> str:
        return f"{self.baudrate} 8{self.parity}{self.stopbits}"

    @classmethod
    def of(cls, link: SerialSettings, defaults) -> SerialLine:
        """The settings a device's config asks for, the profile's `defaults` where it is silent
        (any object with baudrate, parity and stopbits: a meter or charger profile)."""
        return cls(link.baudrate or defaults.baudrate, link.parity or defaults.parity,
                   link.stopbits or defaults.stopbits)


class ModbusBus:
    """Serialized, prioritized access to one Modbus wire. Create through open_bus()."""

    def __init__(self, key: BusKey, timeout_s: float, line: SerialLine | None = None):
        self.key = key
        self.line = line
        self.timeout_s = timeout_s
        self._client = self._make_client()
        self._queue: asyncio.PriorityQueue = asyncio.PriorityQueue()
        self._seq = itertools.count()  # FIFO among equal priorities
        self._worker: asyncio.Task | None = None
        self._min_gap: dict[int, float] = {}
        self._last_reply: dict[int, float] = {}
        self._backoff = RECONNECT_FIRST_S
        self._retry_at = 0.0
        self._down_reason = ""  # set while the link is down (logged once per episode)
        self._users = 0
        self.requests = 0  # answered or not; for status and benchmarks

    @property
    def where(self) -> str:
        return f"{self.key.where} ({self.line})" if self.line else self.key.where

    @property
    def connected(self) -> bool:
        return self._client.connected

    def set_min_gap(self, unit: int, gap_s: float) -> None:
        """Quiet time `unit` needs between the end of one reply and the next request to it
        (Eastron: 100 ms). The largest value asked for wins."""
        self._min_gap[unit] = max(gap_s, self._min_gap.get(unit, 0.0))

    # ----------------------------------------------------------------- requests

    async def read_holding_registers(self, unit: int, address: int, count: int,
                                     priority: Priority = Priority.CHARGER) -> list[int]:
        return await self._submit(unit, priority, 3, address,
                                  lambda c: c.read_holding_registers(address, count=count, device_id=unit))

    async def read_input_registers(self, unit: int, address: int, count: int,
                                   priority: Priority = Priority.CHARGER) -> list[int]:
        return await self._submit(unit, priority, 4, address,
                                  lambda c: c.read_input_registers(address, count=count, device_id=unit))

    async def read_registers(self, unit: int, function: int, address: int, count: int,
                             priority: Priority = Priority.CHARGER) -> list[int]:
        """Function code 3 (holding) or 4 (input)."""
        read = self.read_holding_registers if function == 3 else self.read_input_registers
        return await read(unit, address, count, priority)

    async def write_registers(self, unit: int, address: int, values: list[int],
                              priority: Priority = Priority.CHARGER) -> None:
        await self._submit(unit, priority, 16, address,
                           lambda c: c.write_registers(address, values, device_id=unit))

    async def write_register(self, unit: int, address: int, value: int,
                             priority: Priority = Priority.CHARGER) -> None:
        """Function code 6: some chargers (Heidelberg, Phoenix) document only this write."""
        await self._submit(unit, priority, 6, address,
                           lambda c: c.write_register(address, value, device_id=unit))

    async def write_coil(self, unit: int, address: int, value: bool,
                         priority: Priority = Priority.CHARGER) -> None:
        await self._submit(unit, priority, 5, address,
                           lambda c: c.write_coil(address, value, device_id=unit))

    async def read_coils(self, unit: int, address: int, count: int,
                         priority: Priority = Priority.CHARGER) -> list[bool]:
        """Function code 1 (a relay board's outputs)."""
        return await self._submit(unit, priority, 1, address,
                                  lambda c: c.read_coils(address, count=count, device_id=unit))

    async def _submit(self, unit: int, priority: Priority, function: int, address: int,
                      call: Callable[[Any], Awaitable[Any]]) -> Any:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name=f"modbus bus {self.key.where}")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((int(priority), next(self._seq), unit, function, address, call, future))
        # If the caller is cancelled the request still runs to completion on the wire (a
        # half-done RTU exchange would garble the next one); its answer is just dropped.
        return await future

    # ----------------------------------------------------------------- worker

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            _, _, unit, function, address, call, future = await self._queue.get()
            if future.done():  # the caller gave up while queued
                continue
            try:
                await self._ensure_connected()
                wait = self._last_reply.get(unit, -1e9) + self._min_gap.get(unit, 0.0) - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                result = await self._execute(unit, function, address, call)
            except BusError as e:
                if not future.done():
                    future.set_exception(e)
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                self._last_reply[unit] = loop.time()

    async def _execute(self, unit: int, function: int, address: int, call) -> Any:
        self.requests += 1
        try:
            reply = await call(self._client)
        except ModbusException as e:
            if not self._client.connected:
                raise LinkDown(f"lost the connection to {self.where}") from e
            raise NoAnswer(f"no answer from {self.where} unit {unit}") from e
        if reply.isError():
            raise ExceptionReply(function, address, getattr(reply, "exception_code", 0))
        if reply.function_code != function:  # a late reply to an earlier request
            raise NoAnswer(f"{self.where} unit {unit} answered another request")
        if function == 1:
            return list(reply.bits)
        return list(reply.registers) if function in (3, 4) else None

    async def _ensure_connected(self) -> None:
        if self._client.connected:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            raise LinkDown(self._down_reason)
        if await self._client.connect():
            if self._down_reason:
                log.info("Modbus link %s is back", self.where,
                         extra={"BUS": self.key.where, "BUS_STATE": "up"})
            self._down_reason = ""
            self._backoff = RECONNECT_FIRST_S
            return
        reason = (f"cannot open {self.where}" if self.key.transport == "rtu"
                  else f"cannot connect to {self.key.where}")
        if not self._down_reason:
            log.warning("Modbus link %s is down: %s; retrying every %g s at most", self.where, reason,
                        RECONNECT_MAX_S, extra={"BUS": self.key.where, "BUS_STATE": "down"})
        self._down_reason = reason
        self._retry_at = loop.time() + self._backoff
        self._backoff = min(self._backoff * 2, RECONNECT_MAX_S)
        raise LinkDown(reason)

    def _make_client(self):
        # retries=0: the caller decides whether to ask again (the meter simply polls again).
        # reconnect_delay=0: the bus reconnects itself, with its own bounded backoff.
        if self.key.transport == "rtu":
            line = self.line or SerialLine()
            return AsyncModbusSerialClient(self.key.where, framer=FramerType.RTU, baudrate=line.baudrate,
                                           parity=line.parity, stopbits=line.stopbits,
                                           timeout=self.timeout_s, retries=0, reconnect_delay=0)
        host, _, port = self.key.where.rpartition(":")
        return AsyncModbusTcpClient(host, port=int(port), timeout=self.timeout_s, retries=0,
                                    reconnect_delay=0)

    async def release(self) -> None:
        """Drop one user; the last one closes the client and stops the worker."""
        self._users -= 1
        if self._users > 0:
            return
        _registry.pop(self.key, None)
        await cancel_and_wait(self._worker)
        while not self._queue.empty():
            *_, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(LinkDown(f"{self.where} was closed"))
        self._client.close()


_registry: dict[BusKey, ModbusBus] = {}


def open_bus(link: SerialSettings, *, timeout_s: float, line: SerialLine | None = None) -> ModbusBus:
    """The bus for `link`, shared with every other user of the same port or endpoint.

    Serial settings must agree between users of one port (they share the wire); a second
    user with different settings is a configuration error, reported as ValueError.
    """
    key = BusKey.of(link)
    bus = _registry.get(key)
    if bus is None:
        bus = _registry[key] = ModbusBus(key, timeout_s, line if key.transport == "rtu" else None)
    elif key.transport == "rtu" and line is not None and bus.line != line:
        raise ValueError(f"{key.where} is already used at {bus.line}; every device on one RS485 "
                         f"port must use the same settings (asked for {line})")
    bus._users += 1
    return bus
