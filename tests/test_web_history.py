"""The web page's history: a fixed-size ring per series, oldest overwritten, gaps as missing,
and a binary export a browser decodes with a DataView."""

import json
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.web.history import MISSING, SIX_HOURS_S, History, encode


def decode(blob: bytes) -> tuple[dict, dict[str, list[float | None]]]:
    """What app.js does with GET /api/history."""
    (n,) = struct.unpack_from("<I", blob, 0)
    head = json.loads(blob[4:4 + n])
    off = 4 + n
    assert off % 2 == 0
    series = {}
    for name in head["series"]:
        raw = struct.unpack_from(f"<{head['count']}h", blob, off)
        off += 2 * head["count"]
        series[name] = [None if v == head["missing"] else v / head["scale"] for v in raw]
    assert off == len(blob)
    return head, series


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def phases(a, b=0.0, c=0.0):
    return [("A", a), ("B", b), ("C", c)]


def test_samples_come_back_oldest_first_in_tenths_of_an_amp():
    clock = Clock(1002.3)
    h = History(seconds=10, clock=clock, wall=lambda: 5000.0)
    for s, amps in ((1000, 12.34), (1001, 12.36), (1002, -1.0)):
        h.record(s, phases(amps), [("garage", 16.0, amps)])
    head, series = decode(h.export())
    assert head["count"] == 3 and head["phases"] == ["A", "B", "C"] and head["chargers"] == ["garage"]
    assert series["phase:A"] == [12.3, 12.4, -1.0]
    assert series["limit:garage"] == [16.0] * 3
    assert head["end"] == 5000.0 - 0.3  # wall time of the last sample, from the monotonic clock


def test_the_ring_keeps_only_the_last_capacity_seconds():
    h = History(seconds=5)
    for s in range(100, 113):
        h.record(s, phases(float(s)), [])
    _, series = decode(h.export())
    assert series["phase:A"] == [108.0, 109.0, 110.0, 111.0, 112.0]
    assert h.count == 5


def test_a_late_sampler_leaves_a_gap_never_the_old_values():
    h = History(seconds=6)
    for s in range(0, 6):
        h.record(s, phases(1.0), [("x", 6.0, 5.0)])
    h.record(9, phases(2.0), [("x", 7.0, None)])  # seconds 6-8 were never sampled
    _, series = decode(h.export())
    assert series["phase:A"] == [1.0, 1.0, None, None, None, 2.0]
    assert series["draw:x"] == [5.0, 5.0, None, None, None, None]
    h.record(100, phases(3.0), [("x", 8.0, 8.0)])  # longer than the whole window
    _, series = decode(h.export())
    assert series["phase:A"] == [None] * 5 + [3.0]


def test_the_same_second_twice_or_an_earlier_one_is_ignored():
    h = History(seconds=4)
    assert h.record(10, phases(1.0), [])
    assert not h.record(10, phases(9.0), [])
    assert not h.record(3, phases(9.0), [])
    assert decode(h.export())[1]["phase:A"] == [1.0]


def test_chargers_added_and_removed_by_a_reload():
    h = History(seconds=4)
    h.record(1, phases(1.0), [("old", 6.0, 6.0)])
    h.record(2, phases(1.0), [("old", 6.0, 6.0), ("new", 10.0, 9.0)])
    h.record(3, phases(1.0), [("new", 11.0, 10.0)])
    head, series = decode(h.export())
    assert head["chargers"] == ["new"]
    assert series["limit:new"] == [None, 10.0, 11.0]


def test_values_out_of_range_are_clipped_and_nan_is_missing():
    assert encode(5000.0) == 32767 and encode(-5000.0) == -32767
    assert encode(float("nan")) == MISSING and encode(None) == MISSING


def test_export_of_a_window():
    h = History(seconds=100)
    for s in range(50):
        h.record(s, phases(float(s)), [])
    head, series = decode(h.export(seconds=3))
    assert head["count"] == 3 and series["phase:A"] == [47.0, 48.0, 49.0]


def test_marks_are_bounded_and_exported_within_the_window():
    wall = Clock(10_000.0)
    h = History(seconds=60, marks=3, clock=Clock(100.0), wall=wall)
    h.record(100, phases(1.0), [])
    for i in range(5):
        h.mark("cut", f"overload {i}" + "x" * 500, t=9_990.0 + i)
    assert len(h.marks) == 3 and all(len(m.text) <= 160 for m in h.marks)
    h.mark("fault", "long ago", t=1.0)
    head, _ = decode(h.export())
    assert [m["text"][:9] for m in head["marks"]] == ["overload ", "overload "]
    assert head["marks"][0]["kind"] == "cut"


def test_six_hours_of_ten_chargers_fit_in_one_megabyte():
    h = History()  # 6 h at 1 s
    chargers = [(f"c{i}", 16.0, 15.5) for i in range(10)]
    for s in range(SIX_HOURS_S + 100):
        if s % 997 == 0 or s > SIX_HOURS_S:  # writing all 21600 s takes long; gaps fill the rest
            h.record(s, phases(20.0, 18.0, 17.0), chargers)
    for i in range(500):
        h.mark("fault", f"charger c{i % 10} not connected")
    size = h.nbytes()
    rings = (3 + 2 * 10) * SIX_HOURS_S * 2
    assert rings <= size <= rings + 150_000, size  # the int16 rings, and the marks on top
    assert size < 1_100_000
    head, series = decode(h.export())
    assert head["count"] == SIX_HOURS_S and series["draw:c9"][-1] == 15.5


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 12),
       steps=st.lists(st.tuples(st.integers(-2, 15), st.floats(-50, 50)), max_size=40))
def test_matches_a_plain_list_of_the_last_seconds(capacity, steps):
    """Against a model: a dict second -> value, of which the last `capacity` seconds ending at
    the newest one are shown, missing where nothing was recorded."""
    h = History(seconds=capacity)
    model: dict[int, float] = {}
    second = 0
    for gap, amps in steps:
        second += gap
        if h.record(second, phases(amps), []):
            model[second] = round(amps * 10) / 10
    if not model:
        assert h.count == 0
        return
    last, first = max(model), min(model)
    shown = range(max(first, last - capacity + 1), last + 1)
    _, series = decode(h.export())
    assert series["phase:A"] == [model.get(s) for s in shown]
