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
        from controller.loads.coil import BoardDefaults, CoilSwitch
        from controller.meter.bus import BusKey
        from controller.meter.reader import profile_for, serial_line
        defaults = BoardDefaults()
        if load.link.transport == "rtu" and cfg.meter.link.transport == "rtu" and \
                BusKey.of(load.link) == BusKey.of(cfg.meter.link):
            defaults = serial_line(cfg.meter, profile_for(cfg.meter))  # one wire, one setting: the meter's
        return CoilSwitch(load, cfg.site.voltage_v, timeout_s=cfg.meter.timeout_s, defaults=defaults)
    from controller.loads.gpio import GpioSwitch
    return GpioSwitch(load, cfg.site.voltage_v)


def _link(load: LoadConfig) -> tuple:
    """What a driver is made from: a change here needs a new driver (the others apply in place)."""
    return (load.driver, load.host, load.port, load.switch_id, load.lease_s, load.password, load.link,
            load.coil, load.pin, load.active_high, load.power_w, load.phases)


def relink(cfg: Config, current: list[SwitchDriver]) -> tuple[list[SwitchDriver], list[SwitchDriver],
                                                               list[SwitchDriver]]:
    """For a reloaded config: (a driver per [[load]] in order, drivers to retire, new drivers).
    A load whose link is unchanged keeps its driver, its device and its state."""
    by_id = {d.id: d for d in current}
    drivers, fresh = [], []
    for load in cfg.loads:
        old = by_id.get(load.id)
        if old is not None and _link(old.config) == _link(load):
            old.config = load  # mode, priority, min_on_s, min_off_s: the core's business
            drivers.append(by_id.pop(load.id))
        else:
            drivers.append(make_driver(load, cfg))
            fresh.append(drivers[-1])
    return drivers, list(by_id.values()), fresh


def switch_reason(decision) -> str:
    """A core decision's reason in a switchable load's words (it has no min_a or max_a of its
    own: its whole current is both)."""
    from controller.core.causes import Cause
    if decision.cause is Cause.MAX:
        return "room for it"
    if decision.cause is Cause.RESUMED:
        return "left as its device is until a meter sample shows the room"
    return decision.reason.replace("min_a", "its whole current")
