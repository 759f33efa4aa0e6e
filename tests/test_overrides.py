"""Overrides of the TOML at run time: the same rules as the config file, kept in the state
directory across restarts, shown in `evfuse status`, and applied by a real Controller to real
OCPP charge points in the next decision without any reconnect."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.config import ConfigError, parse_config
from controller.overrides import FILE, OverrideError, Overrides, check
from controller.sim.live_site import SimCharger
from controller.status import render, snapshot
from controller_kit import running, until

BASE = {
    "site": {"fuse_a": 25},
    "meter": {"host": "127.0.0.1"},
    "charger": [{"id": "garage", "min_a": 6, "max_a": 16}],
}


def _config(**charger):
    data = json.loads(json.dumps(BASE))
    data["charger"][0].update(charger)
    return parse_config(data, "evfuse.toml")


def _file_accepts(key, value) -> bool:
    try:
        _config(**{key: value})
        return True
    except ConfigError:
        return False


def _override_accepts(key, value) -> bool:
    try:
        check(_config(), "garage", key, value)
        return True
    except OverrideError:
        return False


values = st.one_of(st.integers(-5, 120), st.floats(allow_nan=True, allow_infinity=True),
                   st.booleans(), st.text(max_size=12), st.sampled_from(["standard", "off", "excess"]))


@given(st.sampled_from(["mode", "priority", "weight"]), values)
def test_an_override_follows_the_config_files_rules(key, value):
    assert _override_accepts(key, value) == _file_accepts(key, value)


@given(values)
def test_max_a_is_what_the_file_allows_within_min_a_and_the_files_max_a(value):
    inside = isinstance(value, (int, float)) and not isinstance(value, bool) and 6 <= value <= 16
    assert _override_accepts("max_a", value) == (_file_accepts("max_a", value) and inside)


def test_unknown_target_key_and_bad_value_are_clear_and_change_nothing():
    cfg, store = _config(), Overrides()
    with pytest.raises(OverrideError, match='"porch" names no charger.*garage'):
        store.set(cfg, "porch", "weight", 2, "mqtt")
    with pytest.raises(OverrideError, match='unknown override "fuse_a"; allowed: mode, priority'):
        store.set(cfg, "garage", "fuse_a", 30, "mqtt")
    with pytest.raises(OverrideError, match="max_a = 20: must be a number from 6 .* to 16 A"):
        store.set(cfg, "garage", "max_a", 20, "mqtt")
    with pytest.raises(OverrideError, match="site.pause = 'yes': must be true or false"):
        store.set(cfg, "site", "pause", "yes", "mqtt")
    with pytest.raises(OverrideError, match='unknown override "weight"; allowed: pause'):
        store.set(cfg, "site", "weight", None, "mqtt")
    assert store.as_dict() == {}
    assert store.apply(cfg) is cfg


def test_kept_in_the_state_directory_and_refitted_to_a_new_file():
    cfg = _config()
    store = Overrides()
    assert store.set(cfg, "garage", "max_a", 10, "web")
    assert store.set(cfg, "site", "pause", True, "mqtt")
    assert not store.set(cfg, "garage", "max_a", 10.0, "web")  # same value: no change
    path = Path(os.environ["STATE_DIRECTORY"]) / FILE
    assert json.loads(path.read_text())["overrides"]["garage"]["max_a"] == {"value": 10.0, "source": "web"}
    again = Overrides.load(cfg)
    assert again.as_dict() == {"garage": {"max_a": 10.0}, "site": {"pause": True}}
    assert again.pause_source() == "mqtt"
    assert again.apply(cfg).charger("garage").max_a == 10.0
    smaller = _config(max_a=8)  # the installer lowered max_a below the override
    assert Overrides.load(smaller).as_dict() == {"site": {"pause": True}}
    assert "to 8 A" in again.refit(smaller)[0]
    assert Overrides.load(cfg).as_dict() == {"site": {"pause": True}}  # the drop was saved


def test_a_damaged_file_is_ignored(caplog):
    path = Path(os.environ["STATE_DIRECTORY"]) / FILE
    path.write_text('{"version": 1, "overrides": {"garage": {"weight": {"value": -1, "source": "x"}}}}')
    assert Overrides.load(_config()).as_dict() == {}
    assert "dropped" in caplog.text
    path.write_text("{not json")
    assert Overrides.load(_config()).as_dict() == {}


TWO = (SimCharger("garage"), SimCharger("carport"))


def _limits(controller) -> dict[str, float]:
    return {c.id: c.limit_a for c in controller.decision.chargers}


async def test_weight_and_max_a_apply_in_the_next_decision_without_reconnect(tmp_path, caplog):
    async with running(tmp_path, TWO) as (site, controller):
        garage, carport = site.points["garage"], site.points["carport"]
        await until(lambda: garage.composite_limit_a() == carport.composite_limit_a() == 10.5,
                    "an even share of 21 A", 60)
        links = [d.link for d in controller.drivers]
        caplog.clear()
        caplog.set_level(logging.INFO, "evfuse.runtime")
        controller.set_override("garage", "weight", 2, "mqtt")
        assert _limits(controller)["carport"] < 10.5  # the cut is in the very next decision
        assert [r for r in caplog.records if getattr(r, "OVERRIDE", None) == "weight=2"][0].SOURCE == "mqtt"
        await until(lambda: garage.composite_limit_a() == 14.0 and carport.composite_limit_a() == 7.0,
                    "a 2:1 share", 60)
        controller.set_override("garage", "max_a", 8, "web")
        assert _limits(controller)["garage"] == 8.0
        await until(lambda: garage.composite_limit_a() == 8.0, "garage capped at 8 A")
        with pytest.raises(OverrideError):
            controller.set_override("garage", "max_a", 32, "web")
        assert controller.overrides == {"garage": {"weight": 2.0, "max_a": 8.0}}
        assert [d.link for d in controller.drivers] == links  # nobody reconnected
        controller.set_override("garage", "max_a", None, "web")  # clears that one
        assert controller.overrides == {"garage": {"weight": 2.0}}
        controller.clear_overrides("mqtt")
        assert controller.overrides == {}
        await until(lambda: garage.composite_limit_a() == carport.composite_limit_a() == 10.5,
                    "the file's even share again", 60)


async def test_site_pause_holds_like_the_button_and_survives_a_restart(tmp_path):
    async with running(tmp_path, TWO) as (site, controller):
        await until(lambda: all(cp.composite_limit_a() == 10.5 for cp in site.points.values()), "charging", 60)
        controller.set_override("site", "pause", True, "mqtt")
        assert set(_limits(controller).values()) == {0.0}
        assert controller.decision.chargers[0].reason == "paused over MQTT"
        snap = snapshot(controller)
        assert snap["paused"] == "paused over MQTT"
        assert snap["overrides"] == {"site": {"pause": True}}
        text = render(json.loads(json.dumps(snap)))
        assert "PAUSED: paused over MQTT (resume it there to resume)" in text
        assert "site.pause = true" in text
        await until(lambda: all(cp.composite_limit_a() == 0 for cp in site.points.values()), "paused")
    async with running(tmp_path, TWO) as (site, controller):  # a restart: still paused
        assert controller.pause_reason == "paused over MQTT"
        assert set(_limits(controller).values()) == {0.0}
        controller.set_override("site", "pause", False, "web")
        assert controller.overrides == {}
        await until(lambda: all(cp.composite_limit_a() == 10.5 for cp in site.points.values()),
                    "charging again", 60)


async def test_each_pause_is_released_where_it_was_set(tmp_path):
    async with running(tmp_path, (SimCharger("garage"),)) as (site, controller):
        controller.set_user_pause("paused by button")
        controller.set_override("site", "pause", True, "web")
        controller.set_override("site", "pause", False, "mqtt")  # MQTT releases the override pause
        assert controller.pause_reason == "paused by button"  # the button's still holds
        assert set(_limits(controller).values()) == {0.0}
        controller.set_override("site", "pause", True, "web")
        controller.set_user_pause(None)  # the button releases its own
        assert controller.pause_reason == "paused on the web page"
        assert set(_limits(controller).values()) == {0.0}
        controller.clear_overrides("web")
        assert controller.pause_reason is None
        await until(lambda: site.points["garage"].composite_limit_a() == 16.0, "charging again", 60)
