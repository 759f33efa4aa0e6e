"""Config loading: the shipped example is valid, and each kind of mistake gets a message that
names the file, the key path, the value and what is allowed."""

import tomllib

import pytest

from controller.cli import main
from controller.config import EXAMPLE_CONFIG, load_config, parse_config

from config_kit import MINIMAL, parse, problems


def test_shipped_example_is_valid():
    cfg = load_config(EXAMPLE_CONFIG)
    assert cfg.site.fuse_a == 25 and cfg.site.limit_a == 24
    assert [c.id for c in cfg.chargers] == ["garage", "carport"]
    assert cfg.circuit_chain("carport")[0].id == "garage-board"


def test_minimal_config_gets_documented_defaults():
    cfg = parse(MINIMAL)
    c = cfg.chargers[0]
    assert (c.protocol, c.phases, c.min_a, c.max_a, c.priority, c.weight, c.mode) == \
        ("ocpp", "ABC", 6.0, 16.0, 1, 1.0, "standard")
    assert cfg.control.fallback_a == 6.0 and cfg.ocpp.lease_s == 120
    assert cfg.meter.stale_after_s == 3.0 and cfg.hardware is None


def test_unknown_key_is_an_error_naming_the_key_path():
    out = problems(MINIMAL + "max_amps = 16\n")
    assert len(out) == 1
    assert out[0].startswith("site.toml: charger[1].max_amps: unknown key")
    assert "max_a" in out[0]


def test_unknown_section_is_an_error():
    assert "unknown key" in problems(MINIMAL + "[sitee]\nfuse_a = 1\n")[0]


@pytest.mark.parametrize("snippet, key, allowed", [
    ("max_a = 100", "charger[1].max_a = 100", "from 1 to 80"),
    ('mode = "turbo"', 'charger[1].mode = "turbo"', '"solar-only"'),
    ('phases = "AAB"', 'charger[1].phases = "AAB"', "different phases"),
    ('phases = "ABCD"', 'charger[1].phases = "ABCD"', "1 to 3"),
    ("min_a = 10\nmax_a = 8", "charger[1].min_a = 10.0", "must not exceed max_a"),
    ("weight = 0", "charger[1].weight = 0", "above 0"),
    ('priority = "high"', 'charger[1].priority = "high"', "whole number"),
])
def test_charger_value_errors(snippet, key, allowed):
    out = problems(MINIMAL + snippet + "\n")
    assert len(out) == 1, out
    assert out[0].startswith(f"site.toml: {key}: ")
    assert allowed in out[0]


def test_phase_c_is_rejected_on_single_phase_site():
    text = MINIMAL.replace("fuse_a = 25", "fuse_a = 25\nphases = 1") + 'phases = "C"\n'
    out = problems(text)
    assert out == [out[0]] and 'charger[1].phases = "C"' in out[0] and "1-phase site (A)" in out[0]


def test_single_phase_site_defaults_charger_wiring_to_a():
    cfg = parse(MINIMAL.replace("fuse_a = 25", "fuse_a = 25\nphases = 1"))
    assert cfg.chargers[0].phases == "A"


def test_fuse_must_exceed_margin():
    out = problems(MINIMAL.replace("fuse_a = 25", "fuse_a = 25\nmargin_a = 25"))
    assert "site.margin_a = 25.0" in out[0] and "below site.fuse_a" in out[0]


def test_fuse_is_required():
    out = problems(MINIMAL.replace("fuse_a = 25", ""))
    assert out == ["site.toml: site.fuse_a: is required"]


def test_poll_interval_must_be_positive_and_below_stale():
    out = problems(MINIMAL.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\npoll_interval_s = 0'))
    assert "meter.poll_interval_s = 0" in out[0] and "above 0" in out[0]
    out = problems(MINIMAL.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\npoll_interval_s = 4'))
    assert "below meter.stale_after_s" in out[0]


def test_transport_needs_its_address():
    out = problems(MINIMAL.replace('host = "127.0.0.1"', 'transport = "rtu"'))
    assert out == ['site.toml: meter.device: is required when transport = "rtu" (e.g. "/dev/ttyUSB0")']


def test_duplicate_charger_ids():
    out = problems(MINIMAL + '[[charger]]\nid = "garage"\n')
    assert any("charger[2].id" in p and "unique" in p for p in out)


def test_circuit_members_must_exist_and_be_in_one_circuit():
    text = MINIMAL + '''
[[charger]]
id = "carport"
[[circuit]]
id = "a"
fuse_a = 20
chargers = ["garage", "nope"]
[[circuit]]
id = "b"
fuse_a = 20
chargers = ["garage"]
'''
    out = problems(text)
    assert any('circuit[1].chargers = "nope": names no [[charger]] id' in p for p in out)
    assert any('circuit[2].chargers = "garage": is already in circuit "a"' in p for p in out)


def test_circuit_parent_chain_and_loops():
    ok = parse(MINIMAL + '''
[[circuit]]
id = "main"
fuse_a = 32
[[circuit]]
id = "sub"
fuse_a = 20
parent = "main"
chargers = ["garage"]
''')
    assert [c.id for c in ok.circuit_chain("garage")] == ["sub", "main"]
    out = problems(MINIMAL + '''
[[circuit]]
id = "x"
fuse_a = 32
parent = "y"
[[circuit]]
id = "y"
fuse_a = 20
parent = "x"
''')
    assert any("loop" in p for p in out)


def test_all_problems_reported_together():
    out = problems(MINIMAL + 'max_a = 100\nmode = "x"\n')
    assert len(out) == 2


def test_risky_fallback_gives_warnings_not_errors():
    cfg = parse(MINIMAL.replace("[[charger]]", "[control]\nfallback_a = 3\n[[charger]]"))
    assert any("below its min_a" in w for w in cfg.warnings)


def test_check_config_command(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL)
    assert main(["check-config", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + "max_a = 100\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: charger[1].max_a = 100" in err


def test_check_config_unreadable_and_invalid_toml(tmp_path, capsys):
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[site\n")
    assert main(["check-config", str(broken)]) == 1
    assert "not valid TOML" in capsys.readouterr().err


FOUR_UNDER_16 = MINIMAL.replace('[[charger]]\nid = "garage"\n', "") + "".join(
    f'[[charger]]\nid = "bay{n}"\nphases = "A"\n' for n in range(4)) + """
[[circuit]]
id = "garage-board"
fuse_a = 16
chargers = ["bay0", "bay1", "bay2", "bay3"]
"""


def test_fallbacks_under_a_circuit_must_fit_it():
    """With the meter lost or evfuse gone every charger holds its fallback by itself: four
    chargers at 6 A (24 A) under a 16 A sub-breaker would trip it, so the config is refused."""
    found = problems(FOUR_UNDER_16)
    assert found == ['site.toml: circuit[1].fuse_a = 16.0: circuit "garage-board": the 4 chargers under it '
                     'hold 24 A on phase A at their fallback (control.fallback_a: with the meter lost, and when evfuse is gone), '
                     'more than its 16 A: set control.fallback_a to at most 4 A, or lower those chargers\' max_a']
    fixed = parse(FOUR_UNDER_16.replace("[site]", "[control]\nfallback_a = 4\n[site]"))
    assert [c.id for c in fixed.chargers] == ["bay0", "bay1", "bay2", "bay3"]
    off = parse(FOUR_UNDER_16.replace('id = "bay3"\n', 'id = "bay3"\nmode = "off"\n')
                .replace('id = "bay2"\n', 'id = "bay2"\nmode = "off"\n'))  # off holds 0: 12 A fits
    assert len(off.chargers) == 4


# ---------------------------------------------------------------------- several connectors

TWIN = """
[site]
fuse_a = 40
[meter]
host = "127.0.0.1"
[[charger]]
id = "twin"
min_a = 6
max_a = 32
priority = 2
  [[charger.connector]]
  id = 1
  max_a = 16
  [[charger.connector]]
  id = 2
  phases = "BCA"
  max_a = 16
  weight = 2
"""


def test_every_connector_is_an_entry_of_its_own_with_the_chargers_keys_under_its_own():
    cfg = parse(TWIN)
    one, two = cfg.chargers
    assert (one.id, one.station, one.connector, one.connector_id) == ("twin/1", "twin", 1, 1)
    assert (two.id, two.phases, two.max_a, two.weight, two.priority) == ("twin/2", "BCA", 16.0, 2.0, 2)
    assert (one.phases, one.min_a, one.charger_max_a, one.siblings) == ("ABC", 6.0, 32.0, (1, 2))
    assert list(cfg.stations()) == ["twin"]
    plain = parse(MINIMAL).chargers[0]
    assert (plain.station, plain.connector, plain.connector_id, plain.charger_id) == ("garage", 0, 1, "")


def test_a_circuit_naming_a_charger_covers_all_its_connectors():
    cfg = parse(TWIN + '[[circuit]]\nid = "board"\nfuse_a = 32\nchargers = ["twin"]\n')
    assert [c.id for c in cfg.circuit_chain("twin/1")] == ["board"]
    assert [c.id for c in cfg.circuit_chain("twin/2")] == ["board"]
    out = problems(TWIN + '[[circuit]]\nid = "board"\nfuse_a = 32\nchargers = ["twin/2"]\n')
    assert out == ['site.toml: circuit[1].chargers = "twin/2": names a connector: list its charger "twin" '
                   '(a circuit covers all its connectors)']


@pytest.mark.parametrize("change, key, allowed", [
    (("  id = 2\n  phases", "  id = 1\n  phases"), "charger[1].connector[2].id = 1", "ids must be unique"),
    (("  id = 2\n", "  id = 0\n"), "charger[1].connector[2].id = 0", "from 1 to 247"),
    (("  id = 2\n", '  id = "two"\n'), 'charger[1].connector[2].id = "two"', "whole number"),
    (('phases = "BCA"', 'phases = "BCX"'), 'charger[1].connector[2].phases = "BCX"', "different phases"),
    (("  weight = 2", "  weight = 0"), "charger[1].connector[2].weight = 0", "above 0"),
    (("  weight = 2", '  mode = "turbo"'), 'charger[1].connector[2].mode = "turbo"', '"excess"'),
    (("  weight = 2", "  max_amps = 2"), "charger[1].connector[2].max_amps: unknown key", "max_a"),
    (("  weight = 2", "  unit_id = 2"), "charger[1].connector[2].unit_id: unknown key", "allowed"),
    (("  id = 2\n  phases = \"BCA\"\n  max_a = 16", "  id = 2\n  max_a = 40"),
     "charger[1].connector[2].max_a = 40", "must not exceed the charger's max_a (32 A"),
    (("max_a = 32", "max_a = 32\nsequential = 1"), "charger[1].sequential = 1", "true or false"),
    (('id = "twin"', 'id = "tw/in"'), 'charger[1].id = "tw/in"', 'must not contain "/"'),
])
def test_connector_mistakes_name_the_key_and_what_is_allowed(change, key, allowed):
    out = problems(TWIN.replace(*change))
    assert any(p.startswith(f"site.toml: {key}") and allowed in p for p in out), out


def test_sequential_needs_connectors_and_connector_tables_must_be_tables():
    out = problems(MINIMAL + "sequential = true\n")
    assert out == ["site.toml: charger[1].sequential: needs [[charger.connector]] tables "
                   "(a charger with one connector powers it alone anyway)"]
    out = problems(MINIMAL + "connector = 2\n")
    assert out[0].startswith("site.toml: charger[1].connector = 2: must be one or more tables")


def test_the_connectors_fallbacks_must_fit_the_chargers_own_max_a():
    out = problems(TWIN.replace("max_a = 32", "max_a = 10").replace("max_a = 16", "max_a = 10")
                   + "[control]\nfallback_a = 6\n")
    assert out == ['site.toml: charger[1].max_a: charger "twin": its 2 connectors hold 12 A on phase A '
                   "at their fallback (control.fallback_a), more than its max_a (10 A): set control.fallback_a to at "
                   "most 5 A, or raise its max_a"]


def test_a_modbus_twin_takes_a_unit_per_socket_by_default_its_connector_id():
    cfg = parse(TWIN.replace('id = "twin"', 'id = "twin"\nprotocol = "modbus"\nprofile = "alfen"\n'
                             'host = "10.0.0.9"').replace("  weight = 2", "  unit_id = 7"))
    assert [(c.id, c.link.unit_id, c.link.host) for c in cfg.chargers] == \
        [("twin/1", 1, "10.0.0.9"), ("twin/2", 7, "10.0.0.9")]


def test_check_config_lists_the_connectors(tmp_path, capsys):
    path = tmp_path / "twin.toml"
    path.write_text(TWIN.replace("max_a = 32", "max_a = 32\nsequential = true"))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 charger(s)" in out
    assert "twin: 2 connector(s), together at most 32 A per phase (one at a time: sequential)" in out
    assert "twin/2: phases BCA, 6-16 A, priority 2, weight 2, mode standard" in out

# ---------------------------------------------------------------------- [[load]]

LOADS_ONLY = '''
[site]
fuse_a = 25
[meter]
host = "127.0.0.1"
[[load]]
id = "boiler"
driver = "shelly"
host = "192.168.1.60"
power_w = 3000
'''


def test_a_site_may_have_loads_and_no_charger():
    cfg = parse_config(tomllib.loads(LOADS_ONLY), "evfuse.toml")
    assert cfg.chargers == () and [x.id for x in cfg.loads] == ["boiler"]
    boiler = cfg.loads[0]
    assert (boiler.driver, boiler.phases, boiler.port, boiler.switch_id, boiler.lease_s) == ("shelly", "A", 80, 0, 60.0)
    assert not [w for w in cfg.warnings if "boiler" in w]  # a Shelly has a lease


def test_load_problems_name_the_file_the_key_and_what_is_allowed():
    text = LOADS_ONLY + '''
[[load]]
id = "pump"
driver = "relay"
power_w = 1000
[[load]]
id = "boiler"
driver = "gpio"
pin = 40
phases = "AD"
power_w = 0
mode = "sometimes"
coil = 3
'''
    out = problems(text)
    assert any('site.toml: load[2].driver = "relay": must be one of "shelly", "modbus-coil", "gpio"' in p for p in out)
    assert any("load[3].pin = 40: must be a whole number from 0 to 27" in p for p in out)
    assert any('load[3].phases = "AD": must be 1 to 3 different phases' in p for p in out)
    assert any("load[3].power_w = 0: must be a number from 1 to 60000 W" in p for p in out)
    assert any('load[3].mode = "sometimes": must be one of' in p for p in out)
    assert any("load[3].coil: unknown key" in p for p in out)  # a gpio load has no coil
    assert any('load[3].id = "boiler": is used by another' in p for p in out)


def test_a_shelly_password_is_checked_and_only_for_a_shelly():
    cfg = parse_config(tomllib.loads(LOADS_ONLY.replace("power_w = 3000", 'power_w = 3000\npassword = "s3cret"')),
                       "evfuse.toml")
    assert cfg.loads[0].password == "s3cret"
    assert parse_config(tomllib.loads(LOADS_ONLY), "evfuse.toml").loads[0].password == ""  # no auth
    out = problems(LOADS_ONLY.replace("power_w = 3000", 'power_w = 3000\npassword = ""'))
    assert any('site.toml: load[1].password = "": must not be empty' in p for p in out), out
    out = problems(LOADS_ONLY.replace("power_w = 3000", "power_w = 3000\npassword = 1234"))
    assert any("load[1].password = 1234: must be a string in quotes" in p for p in out), out
    gpio = LOADS_ONLY + '[[load]]\nid = "pump"\ndriver = "gpio"\npin = 5\npower_w = 500\npassword = "x"\n'
    assert any("load[2].password: unknown key" in p for p in problems(gpio))


def test_a_load_without_a_device_lease_is_flagged_and_one_too_big_refused():
    text = LOADS_ONLY + '''
[[load]]
id = "pump"
driver = "modbus-coil"
transport = "rtu"
device = "/dev/ttyUSB0"
unit_id = 3
coil = 1
power_w = 1100
[[load]]
id = "heatpump"
driver = "gpio"
pin = 22
phases = "ABC"
power_w = 6000
'''
    cfg = parse_config(tomllib.loads(text), "evfuse.toml")
    for name in ("pump", "heatpump"):
        assert any(f'load "{name}"' in w and "no lease the device enforces" in w for w in cfg.warnings), cfg.warnings
    out = problems(LOADS_ONLY.replace("power_w = 3000", "power_w = 9000"))
    assert any("load[1].power_w = 9000.0: draws 39.1 A per phase when on, more than the site limit" in p
               for p in out)


def test_a_load_may_sit_under_a_circuit():
    text = LOADS_ONLY + '''
[[circuit]]
id = "utility"
fuse_a = 16
chargers = ["boiler"]
'''
    from controller.core.site import SiteModel
    site = SiteModel.from_config(parse_config(tomllib.loads(text), "evfuse.toml"))
    assert site.circuits[0].members == (0,) and site.chargers[0].kind == "switch"


def test_a_relay_board_on_the_meters_wire_must_use_its_settings():
    text = '''
[site]
fuse_a = 25
[meter]
transport = "rtu"
device = "/dev/ttyUSB0"
[[load]]
id = "pump"
driver = "modbus-coil"
transport = "rtu"
device = "/dev/ttyUSB0"
unit_id = 7
baudrate = 19200
power_w = 1100
'''
    out = problems(text)
    assert any("load[1].baudrate = 19200: must be 9600 as the meter's on /dev/ttyUSB0" in p for p in out), out
    parse_config(tomllib.loads(text.replace("baudrate = 19200\n", "")), "evfuse.toml")  # its settings: fine


# --------------------------------------------------------------------------- IT grids (issue 11)

def test_an_it_grid_is_a_site_key_and_loads_sit_between_two_phases():
    cfg = parse(MINIMAL.replace("fuse_a = 25", 'fuse_a = 25\ngrid = "IT"') + 'phases = "AB"\n')
    assert cfg.site.grid == "IT" and cfg.chargers[0].phases == "AB"
    assert parse(MINIMAL).site.grid == "TN"  # the default
    one = problems(MINIMAL.replace("fuse_a = 25", 'fuse_a = 25\ngrid = "IT"') + 'phases = "A"\n')
    assert any("charger[1].phases" in p and "IT grid" in p and '"AB"' in p for p in one), one
    bad = problems(MINIMAL.replace("fuse_a = 25", 'fuse_a = 25\ngrid = "it"'))
    assert any("site.grid" in p and '"TN", "TT", "IT"' in p for p in bad), bad


def test_check_config_names_the_file_and_key_of_a_one_phase_load_on_an_it_grid(tmp_path, capsys):
    path = tmp_path / "evfuse.toml"
    path.write_text(MINIMAL.replace("fuse_a = 25", 'fuse_a = 25\ngrid = "IT"') + 'phases = "B"\n')
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr()
    text = err.out + err.err
    assert str(path) in text and "charger[1].phases" in text and "IT grid" in text, text


def test_watts_per_amp_on_tn_and_it_grids():
    from controller.core.site import on_current_a, watts_per_amp
    assert watts_per_amp(230, 1) == 230 and watts_per_amp(230, 3) == 690
    assert watts_per_amp(230, 2, "IT") == 230  # one current through both phases
    assert watts_per_amp(230, 3, "IT") == pytest.approx(398.37, abs=0.01)
    assert on_current_a(2300, 230, 2, "IT") == 10.0 and on_current_a(2300, 230, 2) == 5.0
