"""Helpers for config tests: the smallest valid site, and parse / problems for a TOML text."""

from __future__ import annotations

import tomllib

import pytest

from controller.config import ConfigError, parse_config

MINIMAL = """
[site]
fuse_a = 25
[meter]
host = "127.0.0.1"
[[charger]]
id = "garage"
"""


def parse(text: str):
    return parse_config(tomllib.loads(text), "site.toml")


def problems(text: str) -> list[str]:
    """The problems a bad config is refused with (the test fails if it is accepted)."""
    with pytest.raises(ConfigError) as e:
        parse(text)
    return e.value.problems
