"""Connectors of a charger with several (twin wallboxes, pillars) as loads of the core: the
charger's max_a caps their sum per phase like a circuit of its own, a circuit naming the
charger covers every connector, and a sequential charger gives its whole share to one."""

from __future__ import annotations

from controller.model import CarState, ChargerReading
from core_kit import charging, limits, make_site, settle

TWIN = """
[site]
fuse_a = {fuse}
margin_a = 0
[[charger]]
id = "twin"
max_a = {cap}
{extra}
  [[charger.connector]]
  id = 1
  max_a = 16
  [[charger.connector]]
  id = 2
  max_a = 16
  {second}
[[charger]]
id = "solo"
max_a = 16
"""


def twin(fuse=63, cap=20, extra="", second="", more=""):
    return make_site(TWIN.format(fuse=fuse, cap=cap, extra=extra, second=second) + more)


def test_the_connectors_are_loads_named_by_charger_and_connector_under_its_cap():
    site = twin()
    assert [(s.id, s.charger_id, s.connector) for s in site.chargers] == \
        [("twin/1", "twin", 1), ("twin/2", "twin", 2), ("solo", "", 0)]
    cap = site.circuits[-1]
    assert (cap.id, cap.limit_a, cap.members) == ("twin (charger max_a)", 20.0, (0, 1))
    assert site.chargers[0].circuits == (0,) and site.chargers[2].circuits == ()


def test_the_charger_cap_is_shared_by_its_connectors_by_weight():
    site = twin(second="weight = 3")
    decision, _ = settle(site, (0, 0, 0))
    assert limits(decision) == {"twin/1": 6.0, "twin/2": 14.0, "solo": 16.0}
    assert "twin (charger max_a)" in decision.chargers[1].reason


def test_a_circuit_naming_the_charger_holds_every_connector_inside_the_charger_cap():
    site = twin(cap=32, more='[[circuit]]\nid = "board"\nfuse_a = 24\nchargers = ["twin"]\n')
    board = next(c for c in site.circuits if c.id == "board")
    assert board.members == (0, 1)
    assert site.chargers[1].circuits == (1, 0)  # its charger's cap innermost, then the board
    decision, _ = settle(site, (0, 0, 0))
    assert limits(decision) == {"twin/1": 12.0, "twin/2": 12.0, "solo": 16.0}


def test_one_connector_without_a_car_leaves_the_whole_cap_to_the_other():
    site = twin()
    readings = [ChargerReading(car=CarState.NO_CAR), ChargerReading(car=CarState.CHARGING),
                ChargerReading(car=CarState.CHARGING)]
    decision, _ = settle(site, (0, 0, 0), readings=readings)
    assert limits(decision) == {"twin/1": 0.0, "twin/2": 16.0, "solo": 16.0}


def test_a_sequential_charger_gives_its_whole_share_to_the_best_priority_connector():
    site = make_site(TWIN.format(fuse=63, cap=16, extra="sequential = true\npriority = 2",
                                 second="priority = 1"))
    decision, _ = settle(site, (0, 0, 0))
    assert limits(decision) == {"twin/1": 0.0, "twin/2": 16.0, "solo": 16.0}
    assert decision.chargers[0].reason == "waits: twin/2 charges (one at a time)"
    # the car on 2 leaves: 1 takes over
    readings = [ChargerReading(car=CarState.CHARGING), ChargerReading(car=CarState.NO_CAR),
                ChargerReading(car=CarState.CHARGING)]
    decision, _ = settle(site, (0, 0, 0), readings=readings, state=decision.state, t0=100)
    assert limits(decision) == {"twin/1": 16.0, "twin/2": 0.0, "solo": 16.0}


def test_at_equal_priority_the_connector_already_charging_keeps_a_sequential_charger():
    site = make_site(TWIN.format(fuse=63, cap=16, extra="sequential = true", second=""))
    readings = [ChargerReading(car=CarState.NO_CAR), ChargerReading(car=CarState.CHARGING),
                ChargerReading(car=CarState.CHARGING)]
    decision, _ = settle(site, (0, 0, 0), readings=readings)
    assert limits(decision)["twin/2"] == 16.0
    decision, _ = settle(site, (0, 0, 0), readings=charging(3), state=decision.state, t0=100)
    assert limits(decision) == {"twin/1": 0.0, "twin/2": 16.0, "solo": 16.0}


def test_the_twins_connectors_and_the_solo_share_the_fuse_by_priority():
    site = make_site(TWIN.format(fuse=30, cap=32, extra="", second="priority = 2"))
    decision, _ = settle(site, (0, 0, 0))
    # every floor fits; the rest goes to priority 1 (twin/1 and solo) first
    assert limits(decision) == {"twin/1": 12.0, "twin/2": 6.0, "solo": 12.0}
    decision, _ = settle(site, (8, 8, 8))
    # 22 A left: priority 2 at its floor, the sum within it on every phase
    got = limits(decision)
    assert got["twin/2"] == 6.0 and got["twin/1"] >= 6.0 and got["solo"] >= 6.0
    assert sum(got.values()) <= 22.0
