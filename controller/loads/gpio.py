"""A relay on a Raspberry Pi pin (gpiozero OutputDevice): a contactor for a heat pump or a
boiler, switched by the Pi itself. No lease: a crashed process or a dead Pi leaves the pin as
it was (a relay board's own pull-down usually drops it when the Pi loses power, but evfuse
cannot know), so check-config says so and `close` switches it off on every stop. It measures
nothing: the core counts it at its whole current when on and learns its draw from the meter.
Its state cannot be read back after a restart, so it starts off (and says so). Off a Pi (no pin
library) the load is offline and evfuse drives nothing: counted as off (whatever the pin does
is household to the meter); tests use gpiozero's MockFactory.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from controller.config import LoadConfig
from controller.loads.base import LinkError, SwitchDriver
from controller.model import ChargerReading

log = logging.getLogger("evfuse.loads")


class GpioSwitch(SwitchDriver):
    protocol = "gpio"

    def __init__(self, config: LoadConfig, voltage_v: float, **kw):
        super().__init__(config, voltage_v, **kw)
        self._device = None
        self._error = ""

    async def _open(self) -> None:
        try:
            from gpiozero import OutputDevice

            # A pin's state cannot be read back after a restart (claiming it as an output may
            # already set a level), so it starts off, a state evfuse knows: its min_off_s runs
            # from the stop that switched it off (core.json), else from now.
            self._device = OutputDevice(self.config.pin, active_high=self.config.active_high, initial_value=False)
            log.info("load %s: GPIO%s off at the start (a pin's state is unknown after a restart: "
                     "treated as off)", self.id, self.config.pin, extra={"LOAD_ID": self.id, "SWITCHED": "off"})
        except Exception as e:  # no GPIO here: BadPinFactory, permissions, pin in use
            self._error = f"GPIO{self.config.pin} unavailable: {e}"
            log.warning("load %s: %s", self.id, self._error, extra={"LOAD_ID": self.id, "FAULT": "gpio"})

    def reading(self, now: float) -> ChargerReading:
        r = super().reading(now)
        if self._device is None and self._started_at is not None:
            # evfuse cannot drive this pin (no GPIO here, or in use): it holds nothing of ours
            return replace(r, lease_until=self._started_at)
        return r

    async def _shut(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None

    async def _write(self, on: bool, lease_s: float | None = None) -> None:
        if self._device is None:
            raise LinkError(self._error or "not started")
        if on:
            self._device.on()
        else:
            self._device.off()

    async def _read(self) -> tuple[bool, float | None, float | None]:
        if self._device is None:
            raise LinkError(self._error or "not started")
        return bool(self._device.value), None, None
