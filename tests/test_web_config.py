"""[web] in the config: absent means no web server; listen and password are checked like every
other key (file, key, value, what is allowed)."""

import re
import tomllib

import pytest

from controller.config import EXAMPLE_CONFIG, WebConfig, parse_config

import config_kit
from config_kit import MINIMAL


def parse(text: str):
    return config_kit.parse(MINIMAL + text)


def problems(text: str) -> list[str]:
    return config_kit.problems(MINIMAL + text)


def test_absent_means_no_web_page_and_the_example_opens_nothing():
    assert parse("").web is None
    example = EXAMPLE_CONFIG.read_text()
    assert parse_config(tomllib.loads(example), "example").web is None  # install.sh copies it
    block = re.search(r"^# \[web\].*?(?=\n\n|\Z)", example, re.S | re.M).group(0)
    uncommented = "\n".join(line[2:].split("  #")[0] for line in block.splitlines())
    web = parse_config(tomllib.loads(example + "\n" + uncommented), "example").web
    assert web == WebConfig(listen="0.0.0.0:8080", password="change-me")


def test_defaults_and_values():
    assert parse("[web]\n").web == WebConfig(listen="0.0.0.0:8080", password="")
    web = parse('[web]\nlisten = "192.168.1.20:80"\npassword = "s3cret"\n').web
    assert (web.host, web.port, web.password) == ("192.168.1.20", 80, "s3cret")


@pytest.mark.parametrize("snippet, key, allowed", [
    ('listen = "8080"', 'web.listen = "8080"', '"ADDRESS:PORT"'),
    ('listen = "0.0.0.0:99999"', 'web.listen = "0.0.0.0:99999"', '"ADDRESS:PORT"'),
    ("listen = 8080", "web.listen = 8080", "string"),
    ('password = ""', 'web.password = ""', "leave the key out for a read-only page"),
    ("password = 1234", "web.password = 1234", "string"),
    ('port = 8080', "web.port", "unknown key; allowed here: listen, password"),
    ('listen = "0.0.0.0:9000"', 'web.listen = "0.0.0.0:9000"', "uses the OCPP port"),
])
def test_bad_values_name_the_key_and_what_is_allowed(snippet, key, allowed):
    out = problems(f"[web]\n{snippet}\n")
    assert len(out) == 1, out
    assert out[0].startswith(f"site.toml: {key}: ") and allowed in out[0]


def test_the_ocpp_port_on_another_address_is_fine():
    web = parse('[ocpp]\nlisten = "127.0.0.1:9000"\n[web]\nlisten = "192.168.1.20:9000"\n').web
    assert web.port == 9000
