"""A load kept at what it may draw must still fit the import cap beside the other targets.

Found by tests/test_core_properties.py: the first decision after the blind start (every load
at its 6 A fallback), max import 4 kW at 230 V, a charger whose link is down past its lease
(counted as fixed at its 6 A fallback), and phase B exporting, so the household there is
clipped to 0 and the optimistic room is no larger than the plain one.
"""

from __future__ import annotations

from controller.core.decide import decide, initial_state
from controller.model import CarState, ChargerReading, MeterSample
from truth_kit import site_of

EPS = 1e-6
SITE = """
[site]
phases = 3
fuse_a = 46
margin_a = 2
max_import_kw = 4
[control]
fallback_a = 6
[[charger]]
id = "solar"
phases = "B"
mode = "solar-priority"
priority = 3
[[charger]]
id = "std"
phases = "A"
min_a = 1
priority = 1
[[charger]]
id = "down"
phases = "B"
"""


def test_a_kept_load_does_not_plan_past_the_import_cap():
    """Meter A 6 A (std), B 1 A (solar 6 A + down 6 A beside 11 A of export), C 1 A of
    household. Room at the cap: 4000 - 1 A x 230 (household, B clipped at 0) - 6 A x 230
    (down, fixed) = 2390 W. solar keeps its 6 A min_a from the grid (1380 W, a mode cap), so
    std may have 1010 W = 4.3 A. The core used to keep std at its 6 A: the keep pass shared
    the room without solar's mode-capped 6 A and let std keep its own 6 A bound beside it
    although no room was left: 2760 W planned."""
    site = site_of(SITE)
    state = decide(site, initial_state(site), None, [ChargerReading()] * 3, 0.0).state
    now = 0.25
    readings = [ChargerReading(car=CarState.CHARGING, draw_lines_a=(6.0,)),
                ChargerReading(car=CarState.CHARGING, draw_lines_a=(6.0,)),
                ChargerReading(online=False, car=CarState.CHARGING, lease_until=now - 5.0)]
    d = decide(site, state, MeterSample(now, (6.0, 1.0, 1.0)), readings, now)
    solar, std, down = (c.limit_a for c in d.chargers)
    assert down == 6.0  # counted at its own fallback, takes no orders
    planned_w = (solar + std) * 230.0
    room_w = 4000.0 - 1.0 * 230.0 - down * 230.0
    assert planned_w <= room_w + EPS, [(c.id, c.limit_a, c.reason) for c in d.chargers]
    assert std >= 1.0  # cut to what fits, not stopped
