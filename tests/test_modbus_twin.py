"""A Modbus twin whose sockets are units of their own (Alfen NG9xx Double: unit 1 and 2 behind
one TCP endpoint), against two emulated sockets on one pymodbus server: each connector is a
driver of its own on the shared link, with its own unit, limit, car and draw, and what it holds
once evfuse is gone (its own safe current) is what the core assumes, socket by socket."""

from __future__ import annotations

import asyncio
import contextlib
import time
import tomllib

import pytest

from controller.chargers.modbus.driver import modbus_chargers
from controller.config import ConfigError, parse_config
from controller.core.site import SiteModel
from controller.model import CarState
from controller.sim.modbus_charger import ChargerEmulator, SharedBus
from test_modbus_charger_tcp import wait_for

TWIN = """
[site]
fuse_a = 40
[meter]
host = "127.0.0.1"
timeout_s = 0.3
[control]
fallback_a = 6
[[charger]]
id = "alfen"
protocol = "modbus"
profile = "alfen"
host = "127.0.0.1"
port = {port}
max_a = 24
  [[charger.connector]]
  id = 1
  max_a = 16
  [[charger.connector]]
  id = 2
  phases = "BCA"
  max_a = 16
"""


@contextlib.asynccontextmanager
async def twin(cars=(True, False), safe_a=(6.0, 6.0)):
    sockets = {n: ChargerEmulator("alfen", unit_id=n, car_max_a=16.0, car_present=cars[n - 1],
                                  device_failsafe_a=safe_a[n - 1]) for n in (1, 2)}
    bus = SharedBus(*sockets.values())
    port = await bus.start_tcp()
    cfg = parse_config(tomllib.loads(TWIN.format(port=port)), "twin.toml")
    drivers = {d.id: d for d in modbus_chargers(cfg)}
    try:
        for d in drivers.values():
            d.poll_interval_s = 0.1
            await d.start()
        await wait_for(lambda: all(d.reading(time.monotonic()).online for d in drivers.values()), 20)
        yield cfg, sockets, drivers
    finally:
        for d in drivers.values():
            await d.close(None)
        await bus.stop()


async def test_each_socket_of_a_modbus_twin_is_its_own_unit_limit_and_car():
    async with twin() as (cfg, sockets, drivers):
        one, two = drivers["alfen/1"], drivers["alfen/2"]
        assert (one.unit, two.unit) == (1, 2)
        assert await one.apply(10.0) and await two.apply(7.0)
        assert (sockets[1].limit_a, sockets[2].limit_a) == (10.0, 7.0)
        await wait_for(lambda: one.reading(time.monotonic()).car is not CarState.UNKNOWN
                       and two.reading(time.monotonic()).car is not CarState.UNKNOWN, 20)
        assert one.reading(time.monotonic()).car.wants_current
        assert two.reading(time.monotonic()).car is CarState.NO_CAR  # its own socket, not 1's
        await wait_for(lambda: (one.reading(time.monotonic()).draw_lines_a or (0,))[0] == 10.0, 20)
        assert not any(two.reading(time.monotonic()).draw_lines_a or ())
        # the core sees two loads under the charger's 24 A
        site = SiteModel.from_config(cfg)
        cap = site.circuits[-1]
        assert (cap.id, cap.limit_a, cap.members) == ("alfen (charger max_a)", 24.0, (0, 1))
        assert site.chargers[1].wiring == "BCA"


async def test_what_a_modbus_twin_holds_once_evfuse_is_gone_is_what_the_core_assumes():
    async with twin(cars=(True, True)) as (cfg, sockets, drivers):
        one, two = drivers["alfen/1"], drivers["alfen/2"]
        assert await one.apply(12.0) and await two.apply(12.0)
        await wait_for(lambda: sockets[1].draw_a() == 12.0 and sockets[2].draw_a() == 12.0, 20)
        # nobody renews past the sockets' validity time: each falls to its own safe current
        later = time.monotonic() + max(s.validity_s for s in sockets.values()) + 5
        for s in sockets.values():
            s.draw_a(later)  # the offer falls to the safe current; the car follows response_s later
        alone = {n: s.draw_a(later + 1) for n, s in sockets.items()}
        assert alone == {1: one.fallback_a, 2: two.fallback_a} == {1: 6.0, 2: 6.0}
        assert sum(alone.values()) <= cfg.charger("alfen/1").charger_max_a
        assert one.status().fallback_protected and two.status().fallback_protected


async def test_a_socket_whose_own_safe_current_is_above_its_fallback_is_reported_alone():
    async with twin(cars=(True, True), safe_a=(6.0, 10.0)) as (cfg, sockets, drivers):
        one, two = drivers["alfen/1"], drivers["alfen/2"]
        await wait_for(lambda: one.status().fallback_protected, 20)  # socket 1's safe current read
        await asyncio.sleep(1.0)  # socket 2's read many times over (polled every 0.1 s)
        assert not two.status().fallback_protected  # its own socket's, not its neighbour's
        assert one.status().fallback_protected


def test_two_sockets_on_one_unit_are_refused_by_name():
    text = TWIN.format(port=502).replace('  phases = "BCA"', '  phases = "BCA"\n  unit_id = 1')
    with pytest.raises(ConfigError) as error:
        parse_config(tomllib.loads(text), "twin.toml")
    assert str(error.value) == ("twin.toml: charger[1].connector[2].unit_id = 1: is also the unit of connector 1: "
                                "each socket needs a unit of its own (a connector's unit_id is its id unless set)")
    # the default unit (its id) counts too: connector 1 moved to unit 2 meets connector 2's
    text = TWIN.format(port=502).replace("  id = 1\n", "  id = 1\n  unit_id = 2\n")
    with pytest.raises(ConfigError, match=r"connector\[2\]\.unit_id = 2: is also the unit of connector 1"):
        parse_config(tomllib.loads(text), "twin.toml")
