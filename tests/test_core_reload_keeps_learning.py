"""A reload (or the wiring detector's remap) keeps what the meter and the reports taught about
every load whose wiring it does not change: the phases its car uses and the evidence on its
wiring; a load wired anew learns again. Pure core: decide() and remap_state()."""

from __future__ import annotations

from controller.core.decide import decide, initial_state, remap_state
from controller.core.wiring import Evidence
from controller.model import CarState, ChargerReading, MeterSample

from core_kit import make_site

SITE = """
[site]
fuse_a = 25
[[charger]]
id = "a"
phases = "ABC"
[[charger]]
id = "b"
phases = "ABC"
"""


def one_phase_cars(t: float) -> list[ChargerReading]:
    return [ChargerReading(car=CarState.CHARGING, draw_lines_a=(6.0, 0.0, 0.0), draw_at=t)] * 2


def learned():
    site = make_site(SITE)
    state = initial_state(site)
    for t in range(5):
        state = decide(site, state, MeterSample(float(t), (14.0, 2.0, 2.0)), one_phase_cars(t), float(t)).state
    assert state.active == ((0,), (0,))  # both 1-phase cars seen on L1 = phase A
    return site, state


def test_a_reload_that_leaves_the_wiring_keeps_the_learned_phases():
    site, state = learned()
    reloaded = make_site(SITE.replace('id = "b"', 'id = "b"\npriority = 2'))
    after = remap_state(site, reloaded, state)
    assert after.active == state.active
    assert after.wiring == state.wiring
    assert after.net == state.net and after.flips == state.flips


def test_a_load_wired_anew_learns_again_and_the_others_keep_theirs():
    site, state = learned()
    rewired = make_site(SITE.replace('id = "a"\nphases = "ABC"', 'id = "a"\nphases = "BCA"'))
    after = remap_state(site, rewired, state)
    assert after.active == (None, (0,))
    assert after.wiring[0] == Evidence() and after.wiring[1] == state.wiring[1]


def test_loads_added_removed_and_reordered_are_matched_by_id():
    site, state = learned()
    text = SITE.replace('id = "a"', 'id = "c"') + '[[charger]]\nid = "a"\nphases = "ABC"\n'
    after = remap_state(site, make_site(text), state)
    assert [s.id for s in make_site(text).chargers] == ["c", "b", "a"]
    assert after.active == (None, (0,), (0,))
