"""The shelly load driver against the Shelly Gen2 emulator (controller/sim/shelly.py, a real
aiohttp server on 127.0.0.1): switching, the toggle_after lease renewed and ending by itself,
measured power in the reading, a device gone, garbage rejected; and the emulator's JSON-RPC
POST path, which the driver does not use, against a plain aiohttp client."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import replace

import aiohttp
import pytest

from controller.config import LoadConfig
from controller.loads.shelly import ShellySwitch
from controller.model import CarState
from controller.sim.shelly import SimShelly

pytestmark = pytest.mark.timeout(60)

ON_A = 13.1


async def until(predicate, what: str, timeout: float = 15.0) -> None:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def shelly_and_driver(lease_s: float = 60.0, password: str = "", password_sim: str | None = None, **sim):
    device = SimShelly(password=password_sim, **sim)
    port = await device.start()
    config = LoadConfig(id="boiler", driver="shelly", phases="A", power_w=3000, host="127.0.0.1", port=port)
    driver = ShellySwitch(replace(config, lease_s=lease_s, password=password), 230.0)
    driver.poll_s = 0.1
    try:
        await driver.start()
        yield device, driver
    finally:
        await driver.close(None)
        await device.stop()


async def test_on_with_a_lease_then_off_and_the_reading_says_so():
    async with shelly_and_driver() as (device, driver):
        assert await driver.apply(ON_A)
        assert device.is_on()
        method, params = [c for c in device.calls if c[0] == "Switch.Set"][-1]
        assert params == {"id": "0", "on": "true", "toggle_after": "60"}
        await until(lambda: driver.reading(time.monotonic()).power_w == 3000.0, "the measured power")
        r = driver.reading(time.monotonic())
        assert r.online and r.car is CarState.CHARGING and r.acked_a == ON_A
        assert r.draw_lines_a == (pytest.approx(3000 / 230, abs=0.01),)
        assert await driver.apply(0.0)
        assert not device.is_on()
        method, params = [c for c in device.calls if c[0] == "Switch.Set"][-1]
        assert "toggle_after" not in params  # it would flip back on
        await until(lambda: driver.reading(time.monotonic()).power_w == 0.0, "no power once off")
        r = driver.reading(time.monotonic())
        assert r.car is CarState.CONNECTED and r.acked_a == 0.0


async def test_the_lease_is_renewed_well_before_it_ends():
    async with shelly_and_driver(lease_s=1.5) as (device, driver):
        assert await driver.apply(ON_A)
        start = time.monotonic()
        while time.monotonic() - start < 4.0:  # more than two leases
            assert device.is_on()
            await asyncio.sleep(0.05)
        sets = [p for m, p in device.calls if m == "Switch.Set" and p.get("on") == "true"]
        assert len(sets) >= 4


async def test_a_dead_driver_leaves_the_load_off_within_its_lease():
    async with shelly_and_driver(lease_s=1.0) as (device, driver):
        assert await driver.apply(ON_A)
        driver._task.cancel()  # evfuse gone: nobody renews
        await asyncio.sleep(0.05)
        killed = time.monotonic()
        await until(lambda: not device.is_on(), "the device's own timer to switch it off", 5)
        assert time.monotonic() - killed <= 1.0 + 0.5


async def test_close_switches_it_off():
    device = SimShelly()
    port = await device.start()
    try:
        config = LoadConfig(id="boiler", driver="shelly", power_w=3000, host="127.0.0.1", port=port)
        driver = ShellySwitch(config, 230.0)
        await driver.start()
        assert await driver.apply(ON_A)
        await driver.close(0.0)
        assert not device.is_on()
    finally:
        await device.stop()


async def test_a_device_gone_is_offline_and_counted_until_its_lease_ends():
    async with shelly_and_driver(lease_s=30.0) as (device, driver):
        assert await driver.apply(ON_A)
        device.offline = True
        await until(lambda: not driver.reading(time.monotonic()).online, "offline")
        r = driver.reading(time.monotonic())
        assert r.lease_until is not None and 20 < r.lease_until - time.monotonic() <= 30.0
        assert r.acked_a == ON_A  # last seen on: counted on until the lease ends
        device.offline = False
        await until(lambda: driver.reading(time.monotonic()).online, "back online")


async def test_garbage_power_is_rejected_and_counted():
    async with shelly_and_driver(power_w=math.nan) as (device, driver):
        assert await driver.apply(ON_A)
        await until(lambda: driver.faults["bad-data"] >= 2, "bad data counted")
        r = driver.reading(time.monotonic())
        assert r.power_w is None and r.draw_lines_a is None
        assert r.acked_a == ON_A  # still counted at its whole current


async def test_the_emulator_speaks_json_rpc_over_post_too():
    device = SimShelly(power_w=2000)
    port = await device.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/rpc"
            async with http.post(url, json={"id": 7, "method": "Switch.Set",
                                            "params": {"id": 0, "on": True, "toggle_after": 0.5}}) as r:
                body = await r.json()
            assert body["id"] == 7 and body["result"] == {"was_on": False}
            async with http.post(url, json={"id": 8, "method": "Switch.GetStatus", "params": {"id": 0}}) as r:
                status = (await r.json())["result"]
            assert status["output"] is True and status["apower"] == 2000.0 and status["timer_duration"] == 0.5
            await until(lambda: not device.is_on(), "toggle_after to flip it back", 5)
            async with http.post(url, json={"id": 9, "method": "Switch.GetStatus", "params": {"id": 3}}) as r:
                assert (await r.json())["error"]["code"] == -105
            async with http.get(f"http://127.0.0.1:{port}/rpc/Switch.Set?id=0") as r:
                assert r.status == 400 and "on" in (await r.json())["message"]
    finally:
        await device.stop()


async def test_a_load_drawing_above_its_power_w_is_flagged_not_compliant():
    async with shelly_and_driver(power_w=3600) as (device, driver):  # configured 3000 W
        assert await driver.apply(ON_A)
        await until(lambda: not driver.reading(time.monotonic()).compliant, "flagged")
        assert not driver.status().compliant
        device.power_w = 2900
        await until(lambda: driver.reading(time.monotonic()).compliant, "within its power_w again")


# ---------------------------------------------------------------------- authentication

async def test_with_the_password_it_answers_the_digest_challenge_and_switches():
    async with shelly_and_driver(password="s3cret", password_sim="s3cret") as (device, driver):
        assert await driver.apply(ON_A)
        assert device.is_on()
        await until(lambda: driver.reading(time.monotonic()).power_w == 3000.0, "a status read through auth")
        assert device.auth_failures == 0 and device.nonces  # it was challenged, and answered right
        assert driver.reading(time.monotonic()).online


async def test_a_wrong_password_is_authentication_failed_and_the_load_offline(caplog):
    async with shelly_and_driver(password="wrong", password_sim="s3cret") as (device, driver):
        assert not await driver.apply(ON_A)
        assert not device.is_on() and device.auth_failures >= 1
        await until(lambda: "fault" in driver.status().notes, "the link fault")
        assert not driver.reading(time.monotonic()).online
        assert "authentication failed" in driver.status().notes["fault"]
        assert not any(m == "Switch.Set" for m, _ in device.calls)  # nothing got through
    lines = [r for r in caplog.records if "authentication failed" in r.getMessage()]
    assert lines and all(getattr(r, "LOAD_ID", None) == "boiler" for r in lines)
    assert "load boiler" in lines[0].getMessage()


async def test_no_password_for_a_device_with_authentication_says_to_set_one():
    async with shelly_and_driver(password_sim="s3cret") as (device, driver):
        assert not await driver.apply(ON_A)
        await until(lambda: "fault" in driver.status().notes, "the link fault")
        assert "set the load's password" in driver.status().notes["fault"]


async def test_the_emulator_refuses_a_replayed_or_forged_answer():
    device = SimShelly(password="s3cret")
    port = await device.start()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/rpc/Switch.GetStatus?id=0"
            async with session.get(url) as r:
                assert r.status == 401
                challenge = r.headers["WWW-Authenticate"]
            assert challenge.startswith("Digest ") and 'algorithm=SHA-256' in challenge and 'qop="auth"' in challenge
            forged = ('Digest username="admin", realm="shellyplus1pm-sim", nonce="0000", uri="/rpc/Switch.GetStatus?id=0", '
                      'algorithm=SHA-256, response="00", qop=auth, nc=00000001, cnonce="x"')
            async with session.get(url, headers={"Authorization": forged}) as r:
                assert r.status == 401
            async with session.get(f"http://127.0.0.1:{port}/rpc/Shelly.GetDeviceInfo") as r:
                assert r.status == 200  # never protected, as on the device
            async with session.post(f"http://127.0.0.1:{port}/rpc", json={"id": 1, "method": "Switch.GetStatus",
                                                                           "params": {"id": 0}}) as r:
                assert r.status == 401
        assert device.auth_failures == 1
    finally:
        await device.stop()


# ---------------------------------------------------------------------- restarts

async def test_found_on_nothing_is_sent_before_a_decision_not_even_a_renewal():
    async with shelly_and_driver(lease_s=30) as (device, driver):
        device.call("Switch.Set", {"id": 0, "on": True, "toggle_after": 30})  # the last process's
        sets = len([c for c in device.calls if c[0] == "Switch.Set"])
        await until(lambda: driver.reading(time.monotonic()).acked_a == ON_A, "found on")
        await asyncio.sleep(0.5)  # five polls
        assert len([c for c in device.calls if c[0] == "Switch.Set"]) == sets and device.is_on()
        assert driver.switched()[0] is True


async def test_not_heard_yet_it_may_be_on_for_one_lease_from_the_start():
    device = SimShelly()
    device.offline = True
    port = await device.start()
    config = LoadConfig(id="boiler", driver="shelly", phases="A", power_w=3000, host="127.0.0.1", port=port,
                        lease_s=30)
    driver = ShellySwitch(config, 230.0)
    try:
        await driver.start()
        r = driver.reading(time.monotonic())
        assert not r.online and r.acked_a is None
        assert r.lease_until == pytest.approx(driver._started_at + 30)
    finally:
        await driver.close(None)
        await device.stop()


async def test_a_planned_stop_leaves_it_on_under_the_short_lease():
    async with shelly_and_driver(lease_s=60) as (device, driver):
        assert await driver.apply(ON_A)
        await driver.leave(0.0, 20)
        assert device.is_on()
        assert [p for m, p in device.calls if m == "Switch.Set"][-1] == {"id": "0", "on": "true", "toggle_after": "20"}
        assert driver.lease_end() == pytest.approx(time.monotonic() + 20, abs=1)
        assert device.timer_until[0] - device.clock() == pytest.approx(20, abs=1)


async def test_a_planned_stop_leaves_an_off_one_off():
    async with shelly_and_driver() as (device, driver):
        assert await driver.apply(ON_A)
        assert await driver.apply(0.0)
        await driver.leave(0.0, 20)
        assert not device.is_on() and driver.lease_end() is None
