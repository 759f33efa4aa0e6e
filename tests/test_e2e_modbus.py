"""End to end with a Modbus charger: the real `evfuse run` shares the fuse between an OCPP
charge point and an emulated Heidelberg on Modbus TCP, and when the service dies the
Heidelberg's own watchdog drops it to the failsafe current evfuse programmed."""

import time

import pytest

from controller.sim.chargepoint import SimOptions
from controller.sim.live_site import SimCharger
from controller.sim.modbus_charger import ChargerEmulator

from e2e_kit import FAST, Service, heidelberg_toml

pytestmark = pytest.mark.timeout(90)


async def test_ocpp_and_modbus_chargers_share_and_fall_back(tmp_path):
    heidelberg = ChargerEmulator("heidelberg")
    port = await heidelberg.start_tcp()
    try:
        modbus = heidelberg_toml(heidelberg, port, watchdog_s=3)
        chargers = (SimCharger("garage", "ABC", SimOptions(version="1.6", response_delay_s=1.0)),)
        svc = Service(chargers, control=FAST + modbus, tmp_path=tmp_path)
        svc.site.extra_loads.append(lambda: (heidelberg.draw_a(),) * 3)
        async with svc:
            # Phase A: 24 - 3 = 21 A between two 3-phase chargers.
            await svc.until(lambda: svc.limit("garage") == 10.5 and heidelberg.limit_a == 10.5,
                            "10.5 A each")
            assert heidelberg.failsafe_a == 6.0 and heidelberg.watchdog_s() == 3.0
            svc.proc.kill()
            await svc.proc.wait()
            killed = time.monotonic()
            await svc.until(lambda: heidelberg.tripped(), "the Heidelberg's watchdog to fire", 10,
                            service_may_exit=True)
            assert time.monotonic() - killed <= 3.0 + 2.0  # its timeout, plus a busy machine
            assert heidelberg.offered_a() == 6.0
    finally:
        await heidelberg.stop()
