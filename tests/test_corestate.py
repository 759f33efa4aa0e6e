"""core.json (controller/corestate.py): what a new Controller resumes from. A missing, damaged
or foreign file is a fresh start, logged, never a crash; a good one resumes only what still
holds under the current config. The state directory is the test's own (conftest.py)."""

from __future__ import annotations

import json
import logging
import os
import time
import tomllib
from pathlib import Path

import pytest

from controller import corestate
from controller.config import parse_config
from controller.runtime import Controller

CONFIG = """
[site]
fuse_a = 25
[meter]
host = "127.0.0.1"
[ocpp]
lease_s = 120
[[charger]]
id = "a"
max_a = 16
[[charger]]
id = "b"
max_a = 16
"""


def config():
    return parse_config(tomllib.loads(CONFIG), "test.toml")


def write(data) -> None:
    path = Path(os.environ["STATE_DIRECTORY"]) / corestate.FILE
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def good(planned=True, left=30.0, **entry) -> dict:
    now = time.time()
    e = {"limit_a": 16.0, "held_a": 16.0, "lease_until": now + left, "mode": "standard",
         "max_a": 16.0, "protocol": "ocpp", "paused_at": None, **entry}
    return {"format": corestate.FORMAT, "planned": planned, "saved_at": now, "site": "127.0.0.1:502",
            "chargers": {"a": e}}


def resumed(controller) -> list:
    return [m.resume for m in controller.state.loads]


@pytest.mark.parametrize("content", ["{not json", "[]", json.dumps({"format": "other/9", "chargers": {}}),
                                     json.dumps({**good(), "saved_at": time.time() + 3600}),
                                     json.dumps(good(protocol="modbus")), json.dumps(good(left=-1)),
                                     json.dumps(good(limit_a="16")), json.dumps(good(held_a=1.0)),
                                     json.dumps({**good(), "site": "192.168.1.9:502"})])
def test_a_damaged_foreign_or_stale_file_is_a_fresh_start(content, caplog):
    write(content)
    with caplog.at_level(logging.INFO, logger="evfuse.state"):
        c = Controller(config())
    assert resumed(c) == [None, None]
    assert caplog.records  # said once why


def test_no_file_is_a_fresh_start():
    assert resumed(Controller(config())) == [None, None]


def test_a_planned_stop_is_resumed_and_a_crash_only_counted():
    write(good())
    r = resumed(Controller(config()))
    assert r[0].carry and r[0].limit_a == 16.0 and r[1] is None
    write(good(planned=False))
    r = resumed(Controller(config()))
    assert not r[0].carry and r[0].held_a == 16.0


def test_a_lease_is_never_counted_longer_than_lease_s_from_now():
    write(good(left=10_000))
    c = Controller(config())
    assert resumed(c)[0].until <= c.clock() + 120 + 1


def test_the_snapshot_round_trips_through_a_new_controller():
    write(good())
    old = Controller(config())
    data = corestate.snapshot(old.site, old.state.loads, old.drivers, old.config, True, old.clock(), time.time())
    # not talked to yet: it still holds what was saved, until the same end
    assert data["chargers"]["a"]["held_a"] == 16.0 and data["planned"] is True
    assert "b" not in data["chargers"]  # nothing known of b
    write(data)
    assert resumed(Controller(config()))[0].limit_a == 16.0


# ---------------------------------------------------------------------- switchable loads

LOADS = CONFIG + """
[[load]]
id = "boiler"
driver = "shelly"
host = "127.0.0.1"
phases = "A"
power_w = 3000
lease_s = 30
[[load]]
id = "pump"
driver = "modbus-coil"
transport = "tcp"
host = "127.0.0.1"
coil = 0
phases = "B"
power_w = 1000
"""


def with_loads():
    return parse_config(tomllib.loads(LOADS), "test.toml")


def starts(controller) -> dict:
    return {spec.id: m.resume for spec, m in zip(controller.site.chargers, controller.state.loads)
            if spec.kind == "switch"}


def test_a_switch_starts_from_the_saved_state_and_switch_time():
    now = time.time()
    data = good()
    data["loads"] = {"boiler": {"on": True, "switched_at": now - 100, "lease_until": now + 10_000, "driver": "shelly"},
                     "pump": {"on": False, "switched_at": now - 40, "lease_until": None, "driver": "modbus-coil"}}
    write(data)
    c = Controller(with_loads())
    s = starts(c)
    assert s["boiler"].on is True and abs(c.clock() - s["boiler"].switched_at - 100) < 2
    assert s["pump"].on is False and abs(c.clock() - s["pump"].switched_at - 40) < 2
    boiler = c.state.loads[2]
    assert boiler.high_a > 0 and boiler.high_until <= c.clock() + 30 + 1  # never beyond its lease_s
    assert c.state.loads[3].high_a == 0.0  # left off: counted at 0 until heard


@pytest.mark.parametrize("entry", [{"on": "yes"}, {"driver": "gpio"}, {"switched_at": None},
                                   {"switched_at": time.time() + 3600}, {"lease_until": "soon"}])
def test_a_damaged_switch_entry_is_a_start_with_nothing_saved(entry):
    data = good()
    data["loads"] = {"boiler": {"on": True, "switched_at": time.time() - 100, "lease_until": None,
                                "driver": "shelly", **entry}}
    write(data)
    s = starts(Controller(with_loads()))
    assert s["boiler"].on is None and s["boiler"].switched_at is None


def test_a_switch_state_round_trips_through_the_snapshot():
    c = Controller(with_loads())
    boiler, pump = c.drivers[2], c.drivers[3]
    now = c.clock()
    # as its driver saw it: on since 50 s (renewed 5 s ago), the pump off since 20 s
    boiler._output, boiler._output_at, boiler._renewed_at, boiler._lease_now = True, now - 50, now - 5, 30.0
    pump._output, pump._output_at = False, now - 20
    data = corestate.snapshot(c.site, c.state.loads, c.drivers, c.config, True, now, time.time())
    b, p = data["loads"]["boiler"], data["loads"]["pump"]
    assert b["on"] is True and p["on"] is False and p["lease_until"] is None
    assert abs(time.time() - b["switched_at"] - 50) < 2 and abs(b["lease_until"] - time.time() - 25) < 2
    write(data)
    s = starts(Controller(with_loads()))
    assert s["boiler"].on is True and s["pump"].on is False
