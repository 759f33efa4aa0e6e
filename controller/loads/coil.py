"""A relay on a Modbus relay board (RS485 RTU or TCP): one coil per load. FC5 switches it, FC1
reads it back. The board has no lease: if evfuse dies the relay stays as it is, so check-config
says so, and `close` switches it off on every stop. On a serial port shared with the meter it
goes through the one bus client of that port, behind the meter's reads (controller/meter/bus.py).
It measures nothing: the core counts it at its whole current when on and learns its draw
from the meter's step when it switches.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config import LoadConfig
from controller.loads.base import LinkError, SwitchDriver
from controller.meter.bus import BusError, ModbusBus, SerialLine, open_bus


@dataclass(frozen=True)
class BoardDefaults:
    """The usual RS485 relay board: 9600 8N1 (override with baudrate/parity/stopbits)."""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1


class CoilSwitch(SwitchDriver):
    protocol = "modbus-coil"

    def __init__(self, config: LoadConfig, voltage_v: float, timeout_s: float = 1.0,
                 defaults=BoardDefaults(), **kw):
        super().__init__(config, voltage_v, **kw)
        assert config.link is not None, "a modbus-coil load needs a link"
        self.timeout_s = timeout_s
        self.defaults = defaults  # serial settings where the config is silent (the meter's on its wire)
        self._bus: ModbusBus | None = None

    @property
    def where(self) -> str:
        return f"{self._bus.where if self._bus else self.config.link.host or self.config.link.device} " \
               f"unit {self.config.link.unit_id} coil {self.config.coil}"

    async def _open(self) -> None:
        line = SerialLine.of(self.config.link, self.defaults) if self.config.link.transport == "rtu" else None
        try:
            self._bus = open_bus(self.config.link, timeout_s=self.timeout_s, line=line)
        except ValueError as e:  # another device on this port uses other settings
            self._fault = str(e)
            raise

    async def _shut(self) -> None:
        if self._bus is not None:
            await self._bus.release()
            self._bus = None

    async def _write(self, on: bool, lease_s: float | None = None) -> None:
        if self._bus is None:
            raise LinkError("not started")
        try:
            await self._bus.write_coil(self.config.link.unit_id, self.config.coil, on)
        except BusError as e:
            raise LinkError(str(e)) from None

    async def _read(self) -> tuple[bool, float | None, float | None]:
        if self._bus is None:
            raise LinkError("not started")
        try:
            bits = await self._bus.read_coils(self.config.link.unit_id, self.config.coil, 1)
        except BusError as e:
            raise LinkError(str(e)) from None
        if not bits:
            self.faults["bad-data"] += 1
            raise LinkError(f"{self.where}: empty coil reply")
        return bool(bits[0]), None, None
