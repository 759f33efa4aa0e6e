"""Switchable loads ([[load]]): boilers, heat pumps and pumps on a smart plug or a relay.

Every driver is a ChargerDriver to the runtime: it reports a ChargerReading (car CHARGING
when switched on, CONNECTED when off and ready; acked_a its whole current when on, 0 off;
its own measurement where it has one) and takes a limit: anything above 0 switches it on.
    shelly       Gen2+ RPC over HTTP (controller/loads/shelly.py): toggle_after is its lease
    modbus-coil  a relay board's coil over Modbus RTU/TCP (controller/loads/coil.py)
    gpio         a relay on a Pi pin through gpiozero (controller/loads/gpio.py)
"""

from __future__ import annotations

from controller.config import Config, LoadConfig
from controller.loads.base import SwitchDriver


def load_drivers(cfg: Config) -> list[SwitchDriver]:
    """One driver per [[load]], in config order (no I/O until start())."""
    return [make_driver(x, cfg) for x in cfg.loads]


def make_driver(load: LoadConfig, cfg: Config) -> SwitchDriver:
    if load.driver == "shelly":
        from controller.loads.shelly import ShellySwitch
        return ShellySwitch(load, cfg.site.voltage_v)
    if load.driver == "modbus-coil":
        from controller.loads.coil import CoilSwitch
        return CoilSwitch(load, cfg.site.voltage_v, timeout_s=cfg.meter.timeout_s)
    from controller.loads.gpio import GpioSwitch
    return GpioSwitch(load, cfg.site.voltage_v)
