"""A Modbus relay board (the cheap RS485/TCP 4/8/16-channel kind): a real pymodbus server
whose coils are its relays (FC5 switches one, FC1 reads them back). What the modbus-coil load
driver's tests talk to, alone on TCP or beside the meter on one RTU bus (SharedBus).

    board = RelayBoard(unit_id=5, relays=4, loads_w={2: 2000})
    port = await board.start_tcp()
    ... board.is_on(2), board.draw_a(2), board.writes ...
    await board.stop()
"""

from __future__ import annotations

import time
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from controller.sim.modbus_charger import SharedBus, Write, _Served

VOLTS = 230.0


class RelayBoard(_Served):
    def __init__(self, unit_id: int = 1, relays: int = 8, loads_w: dict[int, float] | None = None):
        self.unit_id = unit_id
        self.relays = [False] * relays
        self.loads_w = dict(loads_w or {})  # what the load behind relay n draws when it is on
        self.writes: list[Write] = []
        self.silent = False  # no answers (a board unplugged from the bus)
        self.requests = 0

    def is_on(self, relay: int) -> bool:
        return self.relays[relay]

    def draw_a(self, relay: int) -> float:
        return self.loads_w.get(relay, 0.0) / VOLTS if self.relays[relay] else 0.0

    def sim_device(self) -> SimDevice:
        bits = [SimData(0, count=len(self.relays), values=False, datatype=DataType.BITS)]
        return SimDevice(self.unit_id, simdata=(bits, [SimData(0, values=False, datatype=DataType.BITS)],
                                                [SimData(0, values=0, datatype=DataType.REGISTERS)],
                                                [SimData(0, values=0, datatype=DataType.REGISTERS)]),
                         action=self._on_request)

    async def _on_request(self, function: int, start: int, address: int, count: int,
                          registers: list, values: Any) -> ExcCodes | None:
        if self.silent:
            return None
        self.requests += 1
        if function in (5, 15) and values is not None:
            if not 0 <= address < len(self.relays) or address + len(values) > len(self.relays):
                return ExcCodes.ILLEGAL_ADDRESS
            for i, v in enumerate(values):
                self.relays[address + i] = bool(v)
            self.writes.append(Write(time.monotonic(), function, address, tuple(bool(v) for v in values)))
        if function == 1:  # answer from the relays as they are (a test may flip one by hand)
            for w in range(len(registers)):  # the simulator keeps bits packed 16 to a word
                bits = [(start + w) * 16 + b for b in range(16)]
                registers[w] = sum(1 << b for b, i in enumerate(bits) if i < len(self.relays) and self.relays[i])
        return None

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        return b"" if sending and self.silent else packet

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = ModbusTcpServer(self.sim_device(), address=(host, port), trace_packet=self._trace_packet)
        await self._server.serve_forever(background=True)
        return self._server.transport.sockets[0].getsockname()[1]

    def _devices(self) -> SimDevice:
        return self.sim_device()


__all__ = ["RelayBoard", "SharedBus"]
