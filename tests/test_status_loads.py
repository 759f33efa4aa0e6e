"""Switchable loads in a running Controller (in this process, against a LiveSite and the
Shelly emulator): `evfuse status` lists them, a load that measures nothing has its draw learned
from the meter's step when it switches on (kept in the state directory, shown in status), and
a reload keeps a load's driver unless its link changed."""

from __future__ import annotations

import pytest
from controller_kit import running, until

from controller import statedir
from controller.config import load_config
from controller.sim.shelly import SimShelly
from controller.status import render, snapshot

pytestmark = pytest.mark.timeout(90)


def boiler(port: int, **keys) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return f'[[load]]\nid = "boiler"\ndriver = "shelly"\nhost = "127.0.0.1"\nport = {port}\npower_w = 3000\n' + extra


async def test_status_shows_the_load_and_learns_the_draw_of_one_that_measures_nothing(tmp_path):
    shelly = SimShelly(power_w=2760, measures=False)  # draws 12 A; configured 3000 W
    port = await shelly.start()
    try:
        async with running(tmp_path, (), extra=boiler(port)) as (site, controller):
            site.extra_loads.append(lambda: (shelly.draw_a(), 0.0, 0.0))
            await until(shelly.is_on, "the boiler on", 30)
            await until(lambda: controller.learned_w.get("boiler") is not None, "its draw learned", 30)
            assert abs(controller.learned_w["boiler"] - 2760) <= 120  # the meter's step, not power_w
            assert statedir.read_json("loads.json") == controller.learned_w
            snap = snapshot(controller)
            assert snap["chargers"] == []
            (entry,) = snap["loads"]
            assert entry["id"] == "boiler" and entry["state"] == "on" and entry["measured_w"] is None
            assert entry["learned_w"] == round(controller.learned_w["boiler"]) and entry["fallback_protected"]
            text = render(snap)
            assert "boiler" in text and f"{entry['learned_w']}*" in text and "loads 1/1 on" in text
            assert any("draws" in e.text and "learned from the meter" in e.text for e in controller.events)
    finally:
        await shelly.stop()


async def test_a_reload_keeps_a_load_whose_link_did_not_change(tmp_path):
    shelly = SimShelly(power_w=3000)
    port = await shelly.start()
    try:
        async with running(tmp_path, (), extra=boiler(port)) as (site, controller):
            site.extra_loads.append(lambda: (shelly.draw_a(), 0.0, 0.0))
            await until(shelly.is_on, "the boiler on", 30)
            driver = controller.drivers[-1]
            path = tmp_path / "evfuse.toml"
            path.write_text(path.read_text().replace("power_w = 3000\n", "power_w = 3000\npriority = 4\n"))
            await controller.retune(load_config(path))
            assert controller.drivers[-1] is driver and controller.site.chargers[-1].priority == 4
            assert shelly.is_on()
            path.write_text(path.read_text().replace("priority = 4\n", 'priority = 4\nmode = "off"\n'))
            await controller.retune(load_config(path))
            await until(lambda: not shelly.is_on(), "mode off applied", 10)
    finally:
        await shelly.stop()


async def test_a_reload_that_moves_a_load_to_another_device_switches_the_old_one_off(tmp_path):
    old, new = SimShelly(power_w=3000), SimShelly(power_w=3000)
    old_port, new_port = await old.start(), await new.start()
    try:
        async with running(tmp_path, (), extra=boiler(old_port)) as (site, controller):
            site.extra_loads.append(lambda: (old.draw_a() + new.draw_a(), 0.0, 0.0))
            await until(old.is_on, "the boiler on", 30)
            path = tmp_path / "evfuse.toml"
            path.write_text(path.read_text().replace(f"port = {old_port}\n", f"port = {new_port}\n"))
            await controller.retune(load_config(path))
            assert any("config reloaded: reconnecting load(s) boiler" in e.text for e in controller.events)
            await until(lambda: not old.is_on() and new.is_on(), "the new device on, the old one off", 30)
    finally:
        await old.stop()
        await new.stop()


async def test_a_refused_switch_is_a_fault_of_the_load_in_its_own_words(tmp_path, caplog):
    """The Shelly answers Switch.GetStatus but refuses Switch.Set: the fault names the load and
    what it did not do, with LOAD_ID= (not CHARGER_ID=) in the journal."""
    import logging

    shelly = SimShelly(power_w=3000)
    shelly.refuse = {"Switch.Set"}
    port = await shelly.start()
    try:
        with caplog.at_level(logging.INFO, logger="evfuse.runtime"):
            async with running(tmp_path, (), extra=boiler(port)) as (site, controller):
                await until(lambda: "load boiler did not switch on (link lost or refused)" in controller.faults,
                            "the refused switch-on as a fault", 30)
                assert not shelly.is_on()
                shelly.refuse = set()
                await until(shelly.is_on, "the boiler on once the device takes it", 30)
                await until(lambda: not any("did not switch" in f for f in controller.faults), "the fault ended", 30)
    finally:
        await shelly.stop()
    records = [r for r in caplog.records if "did not switch on" in r.getMessage()]
    assert records and all(getattr(r, "LOAD_ID", None) == "boiler" and not hasattr(r, "CHARGER_ID")
                           for r in records)
    assert not any("charger boiler" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("password", ["s3cret", "wrong"])
async def test_a_shelly_with_authentication_switches_with_its_password_and_a_wrong_one_is_a_fault(tmp_path, password):
    from controller.core.causes import Cause

    shelly = SimShelly(power_w=3000, password="s3cret")
    port = await shelly.start()
    try:
        async with running(tmp_path, (), extra=boiler(port, password=f'"{password}"')) as (site, controller):
            site.extra_loads.append(lambda: (shelly.draw_a(), 0.0, 0.0))
            if password == "s3cret":
                await until(shelly.is_on, "the boiler on through the digest challenge", 30)
                assert shelly.auth_failures == 0
                return
            await until(lambda: any("authentication failed" in f for f in controller.faults), "the fault", 30)
            (fault,) = [f for f in controller.faults if "authentication failed" in f]
            assert fault.startswith("load boiler not reachable: ") and "check the load's password" in fault
            assert controller.decision.chargers[0].cause is Cause.LINK_DOWN  # offline to the core
            assert snapshot(controller)["loads"][0]["connected"] is False
            assert not shelly.is_on() and shelly.auth_failures > 0
    finally:
        await shelly.stop()
