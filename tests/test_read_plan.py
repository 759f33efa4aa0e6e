"""One read planner for meters and Modbus chargers: the fewest requests that cover every
register named, never one nobody named, never more than one Modbus read can carry."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.chargers.modbus.driver import ModbusCharger, ModbusSettings
from controller.config import ChargerConfig, ControlConfig, SerialSettings
from controller.meter.codec import MAX_READ, plan_reads
from controller.meter.profile import load_profile

span = st.tuples(st.sampled_from([3, 4]), st.integers(0, 400), st.integers(1, 4)).map(
    lambda t: (t[0], t[1], t[1] + t[2]))


@given(st.lists(span, min_size=1, max_size=30))
def test_plan_covers_exactly_the_named_registers(spans):
    named = {(f, a) for f, s, e in spans for a in range(s, e)}
    reads = plan_reads(spans)
    asked = [(f, a) for f, address, count in reads for a in range(address, address + count)]
    assert set(asked) == named and len(asked) == len(set(asked))  # all of them, nothing else, once
    assert all(count <= MAX_READ for _, _, count in reads)
    for f, s, e in spans:  # a multi-word value is never split over two reads
        assert any(rf == f and ra <= s and e <= ra + rc for rf, ra, rc in reads)


def test_meters_and_chargers_plan_with_it():
    assert [(b.function, b.address, b.count) for b in load_profile("sdm630").reads] == [(4, 0, 18)]
    config = ChargerConfig(id="hd", protocol="modbus", profile="heidelberg", link=SerialSettings(host="x"))
    heidelberg = ModbusCharger(config, ModbusSettings(control=ControlConfig()))
    assert heidelberg._reads == [(3, 257, 1), (3, 261, 2), (4, 5, 4)]
