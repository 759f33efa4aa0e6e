"""A reload disturbs nothing it does not concern: the pure plan of what changed, and end to end
a real `evfuse run` with real OCPP charge points on SIGHUP — a weight changed, a charger
added, one removed — while every other charger stays connected and keeps its limit."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket

from controller_kit import running, until
from e2e_kit import Service, heidelberg_toml

from controller.config import load_config, parse_config
from controller.reload import plan
from controller.runtime import retunable
from controller.sim.live_site import SimCharger
from controller.sim.modbus_charger import ChargerEmulator

BASE = {
    "site": {"fuse_a": 25},
    "meter": {"host": "127.0.0.1"},
    "ocpp": {"listen": "127.0.0.1:9000"},
    "charger": [{"id": "garage"}, {"id": "carport", "password": "pw"},
                {"id": "heidel", "protocol": "modbus", "profile": "heidelberg", "host": "127.0.0.1"}],
}


def _cfg(change=lambda d: None):
    data = json.loads(json.dumps(BASE))
    change(data)
    return parse_config(data, "evfuse.toml")


def test_sharing_keys_and_circuits_are_retuned_in_place():
    def tune(d):
        d["charger"][0].update(weight=3, priority=2, max_a=10, mode="excess", min_a=8)
        d["circuit"] = [{"id": "board", "fuse_a": 20, "chargers": ["garage"]}]
        d["site"]["fuse_a"] = 20
        d["control"] = {"ramp_up_delay_s": 3}
    p = plan(_cfg(), _cfg(tune))
    assert p.retuned == ("garage",) and p.in_place and retunable(_cfg(), _cfg(tune))
    assert (p.added, p.removed, p.relinked, p.meter, p.ocpp_listener, p.ocpp_links) == ((), (), (), False, False, False)


def test_added_removed_and_relinked_chargers_are_named_one_by_one():
    def change(d):
        d["charger"][1]["password"] = "new"  # relinked: its link depends on it
        del d["charger"][0]
        d["charger"].append({"id": "street"})
    p = plan(_cfg(), _cfg(change))
    assert (p.added, p.removed, p.relinked, p.retuned) == (("street",), ("garage",), ("carport",), ())
    assert not p.in_place and not p.meter and not p.ocpp_listener
    assert p.describe() == "added street; removed garage; reconnecting carport"


def test_meter_ocpp_and_fallback_changes_touch_their_part_only():
    p = plan(_cfg(), _cfg(lambda d: d["meter"].update(poll_interval_s=0.5)))
    assert p.meter and not p.relinked and not p.ocpp_links
    p = plan(_cfg(), _cfg(lambda d: d["ocpp"].update(listen="127.0.0.1:9001")))
    assert p.ocpp_listener and p.ocpp_links and not p.relinked and not p.meter
    p = plan(_cfg(), _cfg(lambda d: d["ocpp"].update(lease_s=300)))
    assert p.ocpp_links and not p.ocpp_listener and not p.relinked
    # fallback_a is programmed into every charger: OCPP links re-initialise, Modbus ones anew
    p = plan(_cfg(), _cfg(lambda d: d.update(control={"fallback_a": 8})))
    assert p.ocpp_links and p.relinked == ("heidel",)


# ------------------------------------------------------------------ end to end

class Watch:
    """Samples every charge point in the background: did it ever disconnect, and the lowest
    limit it held, from the moment watching starts."""

    def __init__(self, svc: Service, ids):
        self.svc, self.ids = svc, ids
        self.lowest = {i: svc.limit(i) for i in ids}
        self.dropped: set[str] = set()
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        while True:
            for i in self.ids:
                cp = self.svc.site.points[i]
                if not cp.connected:
                    self.dropped.add(i)
                self.lowest[i] = min(self.lowest[i], cp.composite_limit_a())
            await asyncio.sleep(0.02)

    async def stop(self):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _edit(svc: Service, change) -> None:
    with open(svc.config_path) as f:
        text = f.read()
    with open(svc.config_path, "w") as f:
        f.write(change(text))
    svc.proc.send_signal(signal.SIGHUP)


def _connects(svc: Service, cp_id: str) -> int:
    return sum(1 for line in svc.log if f"{cp_id}: connected" in line)


async def test_a_weight_change_applies_without_a_fallback_or_a_reconnect(tmp_path):
    chargers = (SimCharger("big"), SimCharger("small"))
    async with Service(chargers, tmp_path=tmp_path) as svc:
        await svc.steady(lambda: svc.limit("big") == svc.limit("small") == 10.5, "an even share of 21 A")
        watch = Watch(svc, ("big", "small"))
        connects = {i: _connects(svc, i) for i in ("big", "small")}
        _edit(svc, lambda t: re.sub(r'(id = "big"\n(?:.*\n)*?)weight = 1', r"\1weight = 2", t, count=1))
        await svc.until(lambda: svc.logged("config reloaded: retuned big"), "the reload", 20)
        await svc.steady(lambda: (svc.limit("big"), svc.limit("small")) == (14.0, 7.0), "the 2:1 share")
        await watch.stop()
        assert watch.dropped == set()
        assert watch.lowest == {"big": 10.5, "small": 7.0}  # never at the 6 A fallback, never paused
        assert {i: _connects(svc, i) for i in ("big", "small")} == connects


async def test_adding_and_removing_chargers_leaves_the_others_alone(tmp_path):
    chargers = (SimCharger("garage"), SimCharger("carport"))
    async with Service(chargers, tmp_path=tmp_path, fuse_a=63) as svc:
        await svc.steady(lambda: svc.limit("garage") == svc.limit("carport") == 16.0, "both at max_a")
        watch = Watch(svc, ("garage", "carport"))
        connects = {i: _connects(svc, i) for i in ("garage", "carport")}
        # add one
        street = SimCharger("street")
        svc.site.chargers += (street,)
        _edit(svc, lambda t: t + '\n[[charger]]\nid = "street"\nphases = "ABC"\nmax_a = 16\n')
        await svc.until(lambda: svc.logged("config reloaded: added street"), "the reload", 20)
        await svc.site.start_charger(street, svc.ocpp_port)  # accepted now, on the same server
        await svc.steady(lambda: svc.limit("street") == 16.0, "the new charger at max_a")
        # remove one
        _edit(svc, lambda t: re.sub(r'\[\[charger\]\]\nid = "carport"\n(?:[a-z_]+ = .*\n)*', "", t))
        await svc.until(lambda: svc.logged("config reloaded: removed carport"), "the reload", 20)
        removed = svc.site.points["carport"]
        await svc.until(lambda: not removed.connected, "the removed charger's link closed", 20)
        assert removed.composite_limit_a() == 6.0  # left at the fallback, not at its old share
        await asyncio.sleep(2.0)
        await watch.stop()
        assert watch.dropped == {"carport"}
        assert watch.lowest["garage"] == 16.0
        assert _connects(svc, "garage") == connects["garage"]
        assert svc.limit("street") == 16.0 and svc.site.points["street"].connected
        assert svc.proc.returncode is None


async def test_a_meter_change_restarts_the_meter_only(tmp_path):
    async with running(tmp_path, (SimCharger("garage"),)) as (site, controller):
        await until(lambda: site.points["garage"].composite_limit_a() == 16.0, "charging", 60)
        links, meter = [d.link for d in controller.drivers], controller.meter
        path = tmp_path / "evfuse.toml"
        path.write_text(path.read_text().replace("poll_interval_s = 0.25", "poll_interval_s = 0.2"))
        change = await controller.retune(load_config(path))
        assert change.meter and change.describe() == "meter restarted"
        assert controller.meter is not meter and controller.meter.poll_interval_s == 0.2
        cycles = controller.cycles
        await until(lambda: controller.meter.last_sample is not None and controller.cycles > cycles + 5,
                    "samples from the new reader")
        assert [d.link for d in controller.drivers] == links
        assert site.points["garage"].composite_limit_a() == 16.0


async def test_a_modbus_charger_added_and_removed_beside_an_ocpp_one(tmp_path):
    heidelberg = ChargerEmulator("heidelberg")
    port = await heidelberg.start_tcp()
    modbus = heidelberg_toml(heidelberg, port, watchdog_s=10)
    try:
        async with running(tmp_path, (SimCharger("garage"),), fuse_a=63) as (site, controller):
            site.extra_loads.append(lambda: (heidelberg.draw_a(),) * 3)
            garage = site.points["garage"]
            await until(lambda: garage.composite_limit_a() == 16.0, "garage at max_a", 60)
            link = controller.drivers[0].link
            path = tmp_path / "evfuse.toml"
            original = path.read_text()
            path.write_text(original + modbus)
            change = await controller.retune(load_config(path))
            assert change.added == ("shed",) and change.in_place is False
            await until(lambda: heidelberg.failsafe_a == 6.0 and heidelberg.watchdog_s() == 10.0,
                        "the Heidelberg programmed", 30)
            await until(lambda: heidelberg.limit_a == 16.0 and controller.drivers[1].status().limit_a == 16.0,
                        "the Heidelberg at max_a", 60)
            path.write_text(original)
            change = await controller.retune(load_config(path))
            assert change.removed == ("shed",)
            assert heidelberg.limit_a == 6.0  # left at the fallback when it was retired
            assert [d.id for d in controller.drivers] == ["garage"]
            assert controller.drivers[0].link is link and garage.composite_limit_a() == 16.0
            assert not any("shed" in f for f in controller.faults)
    finally:
        await heidelberg.stop()


async def test_a_new_ocpp_listener_restarts_the_ocpp_server_only(tmp_path):
    async with running(tmp_path, (SimCharger("garage"),)) as (site, controller):
        garage = site.points["garage"]
        await until(lambda: garage.composite_limit_a() == 16.0, "charging", 60)
        old_port, meter = controller.ocpp_port, controller.meter
        path = tmp_path / "evfuse.toml"
        path.write_text(path.read_text().replace('listen = "127.0.0.1:0"', 'listen = "127.0.0.1:0"\nheartbeat_s = 60'))
        change = await controller.retune(load_config(path))
        assert change.ocpp_links and not change.ocpp_listener  # settings only: links re-initialised
        await until(lambda: not garage.connected, "garage's link closed for its new settings")
        assert controller.ocpp_port == old_port and controller.meter is meter
        await garage.stop()
        await garage.start()  # the charger reconnects, as real ones do
        await until(lambda: controller.drivers[0].status().connected, "reconnected to the same server")
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        new_port = free.getsockname()[1]
        free.close()
        path.write_text(path.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{new_port}"'))
        change = await controller.retune(load_config(path))
        assert change.ocpp_listener and change.describe() == "OCPP server restarted"
        assert controller.ocpp_port == new_port and controller.meter is meter
        await until(lambda: not garage.connected, "the old server's links closed")
        garage.url = f"ws://127.0.0.1:{new_port}/garage"
        await garage.stop()
        await garage.start()
        await until(lambda: controller.drivers[0].status().connected, "connected to the new listener")
        assert garage.composite_limit_a() == 16.0  # it kept charging at its share throughout


TWIN_TOML = """
[site]
fuse_a = 40
[meter]
host = "127.0.0.1"
[[charger]]
id = "twin"
max_a = 32
  [[charger.connector]]
  id = 1
  [[charger.connector]]
  id = 2
  weight = {weight}
{more}
"""


def test_a_twins_connectors_are_retuned_alone_and_relinked_together():
    import tomllib

    def cfg(weight=1, more=""):
        return parse_config(tomllib.loads(TWIN_TOML.format(weight=weight, more=more)), "twin.toml")

    change = plan(cfg(), cfg(weight=2))
    assert change.in_place and change.retuned == ("twin/2",)
    # a connector more changes the charger they share one link of: all of it is made anew
    change = plan(cfg(), cfg(more="  [[charger.connector]]\n  id = 3\n"))
    assert change.added == ("twin/3",) and set(change.relinked) == {"twin/1", "twin/2"}
