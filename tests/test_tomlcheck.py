"""One shape for every problem evfuse reports about a file it reads: the config, a Modbus
charger's register table and a meter's register table say the same mistake the same way."""

from __future__ import annotations

import pytest

from controller.config import ConfigError, parse_config
from controller.tomlcheck import MISSING, Checker

SITE = {"site": {"fuse_a": 25}}
METER_OK = {"quantity": "current", "phase": "A", "function": 4, "address": 6, "type": "float32"}
CHARGER = {"id": "cp", "protocol": "modbus", "host": "10.0.0.3", "profile": "custom"}


def problems(doc) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(doc, "evfuse.toml")
    return e.value.problems


def test_the_shape():
    c = Checker("evfuse.toml: ")
    c.problem("charger[1].max_a", 90, "must be a number from 1 to 80 A")
    c.problem("site.fuse_a", MISSING, "is required")
    c.only({"fuse": 1}, "site", {"fuse_a"})
    assert c.problems == ["evfuse.toml: charger[1].max_a = 90: must be a number from 1 to 80 A",
                          "evfuse.toml: site.fuse_a: is required",
                          "evfuse.toml: site.fuse: unknown key; allowed here: fuse_a"]


def test_the_same_mistakes_read_alike_in_meter_and_charger_register_tables():
    meter = {"profile": "custom", "host": "10.0.0.2",
             "registers": [{**METER_OK, "address": 70000, "type": "int8", "colour": 1}]}
    charger = {**CHARGER, "registers": {"limit": {"address": 70000, "type": "int8", "colour": 1}}}
    found = problems({**SITE, "meter": meter, "charger": [charger]})
    for where in ("meter.registers[1]", "charger[1].registers.limit"):
        assert (f"evfuse.toml: {where}.address = 70000: must be a whole number from 0 to 65535 "
                "(0-based wire address; manuals listing 30001/40001 are 1-based)") in found
        assert any(p.startswith(f'evfuse.toml: {where}.type = "int8": must be one of ') for p in found)
        assert any(p.startswith(f"evfuse.toml: {where}.colour: unknown key; allowed here: ") for p in found)
