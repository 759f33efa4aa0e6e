"""Exact expected currents for the sharing rules (issue: foundation, scenario tests)."""

from controller.core.decide import decide, initial_state
from controller.model import CarState, ChargerReading, MeterSample

from core_kit import charging, limits, make_site, settle

THREE_PHASE_30A = """
[site]
fuse_a = 32
margin_a = 2
"""


def test_weights_two_to_one_inside_a_priority():
    site = make_site(THREE_PHASE_30A + """
[[charger]]
id = "a"
max_a = 32
weight = 2
[[charger]]
id = "b"
max_a = 32
weight = 1
""")
    d, _ = settle(site, (0, 0, 0))
    assert limits(d) == {"a": 20.0, "b": 10.0}
    assert d.chargers[0].reason == "phase A headroom"


def test_higher_tier_starves_lower_only_when_it_must():
    text = """
[site]
fuse_a = {fuse}
margin_a = 0
[[charger]]
id = "first"
priority = 1
[[charger]]
id = "second"
priority = 2
"""
    plenty, _ = settle(make_site(text.format(fuse=40)), (0, 0, 0))
    assert limits(plenty) == {"first": 16.0, "second": 16.0}
    tight, _ = settle(make_site(text.format(fuse=20)), (0, 0, 0))
    assert limits(tight) == {"first": 14.0, "second": 6.0}  # both mins fit: nobody starves
    starved, _ = settle(make_site(text.format(fuse=11)), (0, 0, 0))
    assert limits(starved) == {"first": 11.0, "second": 0.0}
    assert starved.chargers[1].reason.startswith("restart delay")  # it was shed at the start


def test_capped_chargers_surplus_goes_to_the_others():
    site = make_site(THREE_PHASE_30A + """
[[charger]]
id = "small"
max_a = 8
[[charger]]
id = "big"
max_a = 32
""")
    d, _ = settle(site, (0, 0, 0))
    assert limits(d) == {"small": 8.0, "big": 22.0}
    assert d.chargers[0].reason == "max_a"


def test_13_amps_across_three_chargers_runs_two_at_6_5():
    site = make_site("""
[site]
phases = 1
fuse_a = 13
margin_a = 0
[[charger]]
id = "a"
[[charger]]
id = "b"
[[charger]]
id = "c"
""")
    d, _ = settle(site, (0, 0, 0), seconds=0)
    # They may hold their fallback (6 A) already: from there the fast ramp of this site goes on.
    assert limits(d) == {"a": 6.5, "b": 6.5, "c": 0.0}
    assert d.chargers[2].reason == "shed: no room for min_a (priority 1)"
    d, _ = settle(site, (0, 0, 0))
    assert limits(d) == {"a": 6.5, "b": 6.5, "c": 0.0}


def test_asymmetric_household_three_phase_limited_by_tightest_phase():
    site = make_site("""
[site]
fuse_a = 25
margin_a = 0
[[charger]]
id = "three"
phases = "ABC"
max_a = 32
[[charger]]
id = "one-on-b"
phases = "B"
max_a = 7
""")
    d, _ = settle(site, (10, 3, 3))
    assert limits(d) == {"three": 15.0, "one-on-b": 7.0}
    assert d.chargers[0].reason == "phase A headroom"


def test_rotated_wiring_maps_measured_lines_to_site_phases():
    site = make_site("""
[site]
fuse_a = 25
margin_a = 0
[[charger]]
id = "rotated"
phases = "BCA"
max_a = 32
""")
    # At its 6 A start limit the charger measures L1=6, L2=5, L3=4: B=6, C=5, A=4 on the site.
    reading = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(6.0, 5.0, 4.0))]
    state = decide(site, initial_state(site), None, reading, 0).state
    d = decide(site, state, MeterSample(1, (4 + 12, 6 + 2, 5 + 1)), reading, 1)
    assert d.household_a == (12.0, 2.0, 1.0)
    assert limits(d) == {"rotated": 13.0}  # phase A: 25 - 12


def test_two_phase_charger_on_split_phase_site():
    site = make_site("""
[site]
phases = 2
fuse_a = 20
margin_a = 0
[[charger]]
id = "split"
phases = "AB"
max_a = 32
""")
    d, _ = settle(site, (4, 9, 0))
    assert limits(d) == {"split": 11.0}
    assert d.chargers[0].reason == "phase B headroom"


def test_circuit_of_20_amps_with_two_16_amp_chargers():
    site = make_site("""
[site]
fuse_a = 63
[[charger]]
id = "a"
[[charger]]
id = "b"
[[circuit]]
id = "garage-board"
fuse_a = 20
chargers = ["a", "b"]
""")
    d, _ = settle(site, (0, 0, 0))
    assert limits(d) == {"a": 10.0, "b": 10.0}
    assert d.chargers[0].reason == "circuit garage-board phase A headroom"


def test_nested_circuit_parent_limits_children():
    site = make_site("""
[site]
fuse_a = 63
[[charger]]
id = "a"
[[charger]]
id = "b"
[[charger]]
id = "c"
[[circuit]]
id = "sub"
fuse_a = 32
chargers = ["a", "b"]
parent = "main"
[[circuit]]
id = "main"
fuse_a = 24
chargers = ["c"]
""")
    d, _ = settle(site, (0, 0, 0))
    assert limits(d) == {"a": 8.0, "b": 8.0, "c": 8.0}


def test_max_import_binds_before_the_fuse():
    site = make_site("""
[site]
fuse_a = 32
margin_a = 0
max_import_kw = 11
[[charger]]
id = "a"
max_a = 32
""")
    d, _ = settle(site, (1, 1, 1))
    # (11000 W - 3 x 1 A x 230 V) / (3 x 230 V) = 14.94 A, rounded down
    assert limits(d) == {"a": 14.9}
    assert d.chargers[0].reason == "max import headroom"


def test_limits_are_rounded_down_to_a_tenth():
    site = make_site("""
[site]
phases = 1
fuse_a = 20
margin_a = 0
[[charger]]
id = "a"
[[charger]]
id = "b"
[[charger]]
id = "c"
""")
    d, _ = settle(site, (0.05, 0, 0))
    assert limits(d) == {"a": 6.6, "b": 6.6, "c": 6.6}
