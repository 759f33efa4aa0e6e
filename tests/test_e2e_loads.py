"""End to end with switchable loads: the real `evfuse run` process, a simulated site on
loopback (Modbus meter server fed by household + cars + the boiler) and a boiler on the
Shelly Gen2 emulator (a real aiohttp server). The site: 25 A fuse, 1 A margin (24 A),
household 3 / 2 / 2.5 A; the boiler 3000 W on phase A (13.1 A when on)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from controller.sim.chargepoint import SimOptions
from controller.sim.live_site import SimCharger
from controller.sim.shelly import SimShelly

from e2e_kit import FAST, Service

pytestmark = pytest.mark.timeout(120)

SOLAR = "solar_start_delay_s = 1\nsolar_stop_grace_s = 1\nexcess_threshold_w = 500\n"


def boiler_toml(port: int, lease_s: int = 10, **keys) -> str:
    lines = ["[[load]]", 'id = "boiler"', 'driver = "shelly"', 'host = "127.0.0.1"', f"port = {port}",
             'phases = "A"', "power_w = 3000", f"lease_s = {lease_s}"]
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in keys.items()]
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def site_with_boiler(tmp_path, chargers=(), control: str = FAST, **keys):
    shelly = SimShelly(power_w=3000)
    port = await shelly.start()
    try:
        svc = Service(chargers, control=control + boiler_toml(port, **keys), tmp_path=tmp_path)
        svc.site.extra_loads.append(lambda: (shelly.draw_a(), 0.0, 0.0))
        async with svc:
            yield svc, shelly
    finally:
        await shelly.stop()


async def test_switches_on_with_room_off_at_once_on_an_overload_and_waits_min_off_s(tmp_path):
    async with site_with_boiler(tmp_path, min_on_s=600, min_off_s=8) as (svc, shelly):
        await svc.until(shelly.is_on, "the boiler switched on with room", 30)
        await svc.until(lambda: svc.logged("load boiler: switched on"), "the switch logged")
        svc.site.household = lambda t: (10.0, 0.0, 0.0)  # 3 + 10 + 13.1 A on a 24 A limit
        await svc.until(lambda: not shelly.is_on(), "the overload to switch it off, min_on_s or not", 10)
        off_seen = time.monotonic()
        # The fast path on the overloaded sample, not the persistent-overload pause.
        assert not svc.logged("overload on phase A for")
        assert svc.logged("load boiler: switched off (shed")
        svc.site.household = lambda t: (0.0, 0.0, 0.0)
        await svc.until(shelly.is_on, "the boiler back once min_off_s is over", 30)
        assert time.monotonic() - off_seen >= 8.0 - 0.5  # never before min_off_s


async def test_sigkill_leaves_the_boiler_off_by_itself_within_its_lease(tmp_path):
    async with site_with_boiler(tmp_path) as (svc, shelly):
        await svc.until(shelly.is_on, "the boiler on", 30)
        svc.proc.kill()
        await svc.proc.wait()
        killed = time.monotonic()
        assert shelly.is_on()  # its lease still runs ...
        await svc.until(lambda: not shelly.is_on(), "the lease to end on the device", 15, service_may_exit=True)
        assert time.monotonic() - killed <= 10.0 + 1.0  # ... and ends within lease_s, nobody renewing


async def test_sigterm_leaves_the_boiler_on_under_a_short_lease_that_ends_by_itself(tmp_path):
    # lease_s 10 < ocpp.stop_lease_s (60): the stop renews it for 10 s, then nobody does
    async with site_with_boiler(tmp_path) as (svc, shelly):
        await svc.until(shelly.is_on, "the boiler on", 30)
        assert await svc.signal(15) == 0
        stopped = time.monotonic()
        assert shelly.is_on()  # for a next process to find on ...
        last = [p for m, p in shelly.calls if m == "Switch.Set"][-1]
        assert last == {"id": "0", "on": "true", "toggle_after": "10"}
        await svc.until(lambda: not shelly.is_on(), "the boiler off by its own timer", 15, service_may_exit=True)
        assert time.monotonic() - stopped <= 10.0 + 1.0  # ... and off by itself without one
        assert shelly.switched[-1][3] == "timer"


async def test_a_car_and_a_boiler_share_by_priority(tmp_path):
    car = (SimCharger("garage", "ABC", SimOptions(version="1.6", response_delay_s=1.0), priority=1),)
    # min_off_s short: the boiler may switch on before the car's charger took its first profile,
    # and that car drawing its own 16 A is then an overload the boiler (priority 2) is cut for.
    async with site_with_boiler(tmp_path, chargers=car, priority=2, min_off_s=5) as (svc, shelly):
        # Phase A: 24 - 3 = 21 A, both floors fit (6 + 13.1): the boiler on, the car the rest.
        await svc.until(lambda: shelly.is_on() and 7.5 <= (svc.limit("garage") or 0) <= 7.9,
                        "boiler on, the car at the rest (about 7.9 A)", 40)
        svc.site.household = lambda t: (5.0, 0.0, 0.0)  # 16 A left on A: not room for both
        await svc.until(lambda: not shelly.is_on(), "the lower-priority boiler off", 15)
        await svc.until(lambda: (svc.limit("garage") or 0) >= 15.5, "the car at the room left (about 16 A)", 30)
        assert svc.proc.returncode is None


async def test_an_excess_boiler_follows_the_export(tmp_path):
    async with site_with_boiler(tmp_path, control=FAST + SOLAR, mode="excess") as (svc, shelly):
        await asyncio.sleep(3.0)
        assert not shelly.is_on()  # importing: no surplus
        svc.site.household = lambda t: (-25.0, 0.0, 0.0)  # 17.5 A export: 4 kW
        await svc.until(shelly.is_on, "the boiler on the surplus", 30)
        await asyncio.sleep(3.0)
        assert shelly.is_on()  # its own draw is surplus it uses: it stays on
        svc.site.household = lambda t: (0.0, 0.0, 0.0)
        await svc.until(lambda: not shelly.is_on(), "the boiler off without surplus", 30)


async def test_after_a_start_a_boiler_the_device_reports_off_waits_min_off_s(tmp_path):
    # evfuse knows nothing of how long the boiler has been off: from the device's word, it
    # counts min_off_s from its start (a compressor never short-cycles on a restart of evfuse).
    async with site_with_boiler(tmp_path, min_off_s=8) as (svc, shelly):
        await svc.until(lambda: svc.logged("load boiler: stays off (found off at the start; restart delay"),
                        "the start's off", 20)
        started = time.monotonic()
        await svc.until(shelly.is_on, "the boiler on once min_off_s is over", 40)
        assert time.monotonic() - started >= 8.0 - 0.5


async def test_a_planned_restart_never_switches_a_running_boiler_off(tmp_path):
    # min_on_s long: the boiler is held on across the restart; lease_s 30 gives the new process
    # time to start on a loaded machine before the stop's short lease would end.
    async with site_with_boiler(tmp_path, lease_s=30, min_on_s=600) as (svc, shelly):
        await svc.until(shelly.is_on, "the boiler on", 30)
        await svc.until(lambda: svc.logged("load boiler: switched on"), "the switch logged")
        on_since = time.monotonic()
        assert await svc.signal(15) == 0
        assert shelly.is_on()
        sets = len(shelly.calls)
        await svc.start_again()
        await svc.until(lambda: svc.logged("load boiler: kept on (found on at the start"),
                        "the new process to keep it on", 30)
        # the new process renewed its lease (a Switch.Set on=true with the full toggle_after)
        await svc.until(lambda: {"id": "0", "on": "true", "toggle_after": "30"} in
                        [p for m, p in shelly.calls[sets:] if m == "Switch.Set"], "the lease renewed", 30)
        await svc.steady(shelly.is_on, "the boiler still on", 3.0)
        assert shelly.offs(since=on_since) == 0, "the boiler was switched off across the restart"
        assert svc.logged("load boiler: the last process left it on")


async def test_a_boiler_switched_off_before_a_restart_waits_its_min_off_s_across_it(tmp_path):
    async with site_with_boiler(tmp_path, min_off_s=20) as (svc, shelly):
        await svc.until(lambda: svc.logged("load boiler: stays off"), "the start's min_off_s", 30)
        await svc.until(shelly.is_on, "the boiler on after its first min_off_s", 60)
        svc.site.household = lambda t: (15.0, 0.0, 0.0)  # 3 + 15 + 13.1 A on a 24 A limit
        await svc.until(lambda: not shelly.is_on(), "the overload to switch it off", 15)
        off_at = time.monotonic()
        svc.site.household = lambda t: (0.0, 0.0, 0.0)  # room again, at once
        assert await svc.signal(15) == 0
        assert not shelly.is_on()
        await svc.start_again()
        await svc.until(lambda: svc.logged("load boiler: the last process left it off"), "the saved state read", 30)
        await svc.until(shelly.is_on, "the boiler on once min_off_s is over", 60)
        assert time.monotonic() - off_at >= 20.0 - 0.5  # never before min_off_s, restart or not
        assert svc.logged("stays off (found off at the start; restart delay")
