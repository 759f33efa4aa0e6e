"""Charger profiles, the custom register table and the config checks around them (pure)."""

from __future__ import annotations

import pytest

from controller.chargers.modbus.profile import ProfileError, custom_profile, load_profile, profile_names
from controller.chargers.modbus.values import decode_text, encode_amps, encode_text, status_text
from controller.config import ConfigError, parse_config
from controller.model import CarState

SITE = {"site": {"fuse_a": 25}, "meter": {"host": "10.0.0.2"}}
HEIDELBERG_LIKE = {
    "limit": {"address": 261, "type": "uint16", "scale": 0.1, "write_function": 6},
    "failsafe": {"address": 262, "type": "uint16", "scale": 0.1},
    "watchdog": {"address": 257, "type": "uint16", "scale": 0.001, "renewed_by": "any"},
    "status": {"function": 4, "address": 5, "type": "uint16", "values": {"7": "charging", "2": "no-car"}},
    "currents": [{"function": 4, "address": 6 + i, "type": "uint16", "scale": 0.1} for i in range(3)],
}


def config(**charger):
    base = {"id": "cp", "protocol": "modbus", "host": "10.0.0.3"}
    return parse_config({**SITE, "charger": [{**base, **charger}]}, "evfuse.toml")


def test_every_builtin_profile_loads_and_says_where_its_facts_come_from():
    assert profile_names() == ["alfen", "bender", "heidelberg", "phoenix", "custom"]
    for name in profile_names()[:-1]:
        p = load_profile(name)
        assert p.provenance and not p.verified_on_hardware
    assert load_profile("heidelberg").watchdog.max_s == pytest.approx(65.535)
    assert [load_profile(n).protected for n in ("alfen", "bender", "heidelberg", "phoenix")] == [
        True, True, True, False]
    assert load_profile("bender").watchdog.optional and load_profile("bender").failsafe.optional


def test_values_round_down_and_keep_word_order():
    alfen = load_profile("alfen").limit.register
    assert encode_amps(alfen, 10.57) == [0x4128, 0x0000]  # 10.5 A, float32 high word first
    heidelberg = load_profile("heidelberg").limit.register
    assert encode_amps(heidelberg, 10.59) == [105]
    assert encode_text("C2", 5) == [0x4332, 0, 0, 0, 0] and decode_text([0x4332, 0, 0, 0, 0]) == "C2"
    phoenix_status = load_profile("phoenix").status
    assert phoenix_status.car(status_text(phoenix_status.register, [0x0043])) == CarState.CHARGING


def test_custom_profile_from_config():
    cfg = config(profile="custom", registers=HEIDELBERG_LIKE)
    assert cfg.chargers[0].registers["limit"]["address"] == 261
    profile = custom_profile(cfg.chargers[0].registers)
    assert profile.protected and profile.limit.write_function == 6 and len(profile.currents) == 3
    assert not any("watchdog" in w for w in cfg.warnings)


@pytest.mark.parametrize("registers, message", [
    ({}, "charger[1].registers.limit: is required"),
    ({"limit": {"address": 70000, "type": "uint16"}}, "charger[1].registers.limit.address = 70000: must be a whole"),
    ({"limit": {"address": 1, "type": "int8"}}, 'charger[1].registers.limit.type = "int8": must be one of'),
    ({"limit": {"address": 1, "type": "float32", "write_function": 6}}, "writes one register; float32 needs 16"),
    ({"limit": {"address": 1, "type": "uint16"}, "status": {"address": 5, "type": "uint16",
                                                           "values": {"7": "driving"}}},
     'charger[1].registers.status.values.7 = "driving": must be one of'),
    ({"limit": {"address": 1, "type": "uint16"}, "watchdog": {"address": 2, "type": "uint16"}},
     "charger[1].registers.watchdog.renewed_by: is required"),
    ({"limit": {"address": 1, "type": "uint16"}, "colour": 1}, "charger[1].registers.colour: unknown key"),
])
def test_custom_register_errors_name_file_key_and_allowed_values(registers, message):
    with pytest.raises(ConfigError) as e:
        config(profile="custom", registers=registers)
    assert any(p.startswith("evfuse.toml: ") and message in p for p in e.value.problems), e.value.problems


def test_profile_names_are_checked():
    with pytest.raises(ConfigError) as e:
        config(profile="heidelburg")
    assert any('charger[1].profile = "heidelburg": must be one of "alfen", "bender", "heidelberg"' in p
               for p in e.value.problems)
    with pytest.raises(ConfigError) as e:
        config(profile="heidelberg", registers=HEIDELBERG_LIKE)
    assert any('registers: is only allowed with profile = "custom"' in p for p in e.value.problems)
    with pytest.raises(ConfigError) as e:
        config(profile="custom")
    assert any('registers: is required when profile = "custom"' in p for p in e.value.problems)


def test_charger_without_watchdog_is_a_warning():
    cfg = config(profile="phoenix")
    assert any('charger "cp": profile "phoenix" has no watchdog: it is not protected if the Pi dies' in w
               for w in cfg.warnings)
    assert any('profile "bender" has a watchdog on some firmware only' in w for w in config(profile="bender").warnings)
    assert not any("no watchdog" in w for w in config(profile="heidelberg").warnings)


def test_bad_builtin_profile_name_is_a_profile_error():
    with pytest.raises(ProfileError, match="no built-in charger profile"):
        load_profile("wallbe")
