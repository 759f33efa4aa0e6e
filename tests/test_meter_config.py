"""check-config reports bad meter profiles and custom register tables with key paths."""

import pytest

from controller.config import ConfigError, parse_config


def config(meter: dict, phases: int = 3) -> dict:
    return {"site": {"phases": phases, "fuse_a": 25}, "meter": {"host": "10.0.0.2", **meter},
            "charger": [{"id": "garage"}]}


def problems(meter: dict, phases: int = 3) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(config(meter, phases), "evfuse.toml")
    return str(e.value)


def test_unknown_profile_lists_the_known_ones():
    text = problems({"profile": "sdm6300"})
    assert 'evfuse.toml: meter.profile = "sdm6300": must be one of' in text
    assert '"sdm630"' in text and '"custom"' in text


def test_bad_custom_register_names_the_key_path_and_allowed_values():
    registers = [
        {"quantity": "current", "phase": "A", "function": 4, "address": 0, "type": "float32"},
        {"quantity": "current", "phase": "B", "function": 4, "address": 2, "type": "float"},
        {"quantity": "amps", "phase": "C", "function": 5, "address": 70000, "type": "int16", "colour": 1},
    ]
    text = problems({"profile": "custom", "registers": registers})
    assert 'evfuse.toml: meter.registers[2].type = "float": must be one of "int16", "uint16", "int32", ' \
           '"uint32", "float32"' in text
    assert 'meter.registers[3].quantity = "amps": must be one of "current", "voltage", "power"' in text
    assert "meter.registers[3].function = 5: must be one of 3, 4" in text
    assert "meter.registers[3].address = 70000: must be a whole number from 0 to 65535" in text
    assert "meter.registers[3].colour: unknown key" in text


def test_custom_table_must_cover_every_site_phase():
    registers = [{"quantity": "current", "phase": "A", "function": 4, "address": 0, "type": "float32"}]
    assert "has no current register for site phase B, C" in problems({"profile": "custom", "registers": registers})
    cfg = parse_config(config({"profile": "custom", "registers": registers}, phases=1))
    assert cfg.meter.registers[0]["type"] == "float32"


def test_duplicate_register_is_reported():
    r = {"quantity": "current", "phase": "A", "function": 4, "address": 0, "type": "float32"}
    assert "meter.registers[2]: current of phase A is already given by meter.registers[1]" in \
        problems({"profile": "custom", "registers": [r, r]}, phases=1)


def test_one_phase_meter_on_three_phase_site():
    assert 'meter.profile = "sdm120": measures 1 phase(s) but site.phases = 3' in problems({"profile": "sdm120"})
    assert parse_config(config({"profile": "sdm120"}, phases=1)).meter.profile == "sdm120"
