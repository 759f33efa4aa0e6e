"""Pure decoder: known register images, word orders, scaling, sign, invert, and the
property that no register content whatsoever becomes a sample with impossible values."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.meter.codec import encode, from_raw, raw_value
from controller.meter.decode import Fault, Rejection, decode, profile_problem
from controller.meter.profile import (ProfileError, custom_profile, load_profile, profile_names,
                                      resolve_sunspec)
from controller.model import MeterSample


def sdm630_words(volts=(230.0, 231.0, 232.0), amps=(10.0, 5.0, 1.5), watts=(2300.0, -1155.0, 348.0)):
    words = []
    for v in (*volts, *amps, *watts):
        words += encode(v, "float32")
    return [words]


def test_sdm630_known_image_hand_encoded():
    # 230.0 = 0x43660000, 10.0 = 0x41200000, -2300.0 = 0xC50FC000 as float32 big-endian
    words = [0x4366, 0, 0x4366, 0, 0x4366, 0, 0x4120, 0, 0x4120, 0, 0x4120, 0,
             0xC50F, 0xC000, 0x450F, 0xC000, 0x450F, 0xC000]
    s = decode(load_profile("sdm630"), [words], t=5.0, site_phases=3)
    assert s == MeterSample(t=5.0, current_a=(-10.0, 10.0, 10.0), voltage_v=(230.0, 230.0, 230.0),
                            power_w=(-2300.0, 2300.0, 2300.0))


def test_em24_low_word_first_and_scale():
    # 230.0 V x0.1 -> 2300 = 0x000008FC, low word first -> [0x08FC, 0x0000]
    p = load_profile("em24")
    words = [0] * 24
    words[0:2] = [0x08FC, 0]
    words[2:4] = [0x08FC, 0]
    words[4:6] = [0x08FC, 0]
    words[0x0C:0x0E] = [0x2710, 0]  # 10000 x 0.001 = 10 A
    words[0x12:0x14] = [0x59D8, 0]  # 23000 x 0.1 = 2300 W
    words[0x14:0x16] = [0xA628, 0xFFFF]  # -23000 -> -2300 W: export on phase B
    s = decode(p, [words], t=0.0, site_phases=3)
    assert s.voltage_v == (230.0, 230.0, 230.0)
    assert s.current_a == pytest.approx((10.0, 0.0, 0.0))
    assert s.power_w == pytest.approx((2300.0, -2300.0, 0.0))


def test_abb_big_endian_uint32_current_takes_sign_of_power():
    p = load_profile("abb-b23")
    words = [0] * 28
    for i in range(3):
        words[2 * i:2 * i + 2] = [0, 2300]  # 230.0 V
        words[0x0C + 2 * i:0x0E + 2 * i] = [0, 1000]  # 10.00 A, unsigned
    words[0x16:0x18] = [0xFFFC, 0x7D90]  # -230000 x 0.01 = -2300 W
    s = decode(p, [words], t=0.0, site_phases=3)
    assert s.current_a == (-10.0, 10.0, 10.0)
    assert s.power_w[0] == pytest.approx(-2300.0)


def test_word_order_matters():
    big = custom_profile([{"quantity": "current", "phase": "A", "function": 4, "address": 0,
                           "type": "float32", "word_order": "big"}])
    little = custom_profile([{"quantity": "current", "phase": "A", "function": 4, "address": 0,
                              "type": "float32", "word_order": "little"}])
    assert decode(big, [[0x4120, 0x0000]], 0.0, 1).current_a[0] == 10.0
    assert decode(little, [[0x0000, 0x4120]], 0.0, 1).current_a[0] == 10.0


def test_invert_per_phase_flips_current_and_power():
    s = decode(load_profile("sdm630"), sdm630_words(), 0.0, 3, invert=("B",))
    assert s.current_a == (10.0, 5.0, 1.5)
    assert s.power_w == (2300.0, 1155.0, 348.0)


def test_one_phase_site_reads_phase_a_only_even_if_b_and_c_are_dead():
    s = decode(load_profile("sdm630"), sdm630_words(volts=(230.0, 0.0, 0.0)), 0.0, site_phases=1)
    assert s.current_a == (10.0, 0.0, 0.0) and s.voltage_v == (230.0, 0.0, 0.0)


def test_sunspec_203_scale_factors():
    p = resolve_sunspec(load_profile("sunspec"), 203, data_start=100, length=105)
    words = [0] * 21
    words[1:4] = [1000, 500, 150]  # x 10^-2
    words[4] = (-2) & 0xFFFF
    words[6:9] = [2300, 2310, 2320]  # x 10^-1
    words[13] = (-1) & 0xFFFF
    words[17:20] = [2300, (-1155) & 0xFFFF, 348]
    words[20] = 0
    s = decode(p, [words], 0.0, 3)
    assert s.current_a == pytest.approx((10.0, -5.0, 1.5))
    assert s.voltage_v == pytest.approx((230.0, 231.0, 232.0))
    assert s.power_w == (2300.0, -1155.0, 348.0)
    words[4] = 0x8000  # scale factor "not implemented"
    assert decode(p, [words], 0.0, 3).kind == Fault.UNIMPLEMENTED


@pytest.mark.parametrize("patch, kind", [
    ({6: 0x7FC0, 7: 0}, Fault.NAN),
    ({6: 0x7F80, 7: 0}, Fault.INFINITE),
    ({6: 0x447A, 7: 0x4000}, Fault.CURRENT_RANGE),  # 1001 A
    ({2: 0, 3: 0}, Fault.VOLTAGE_RANGE),  # 0 V on phase B
    ({4: 0x43FA, 5: 0x8000}, Fault.VOLTAGE_RANGE),  # 501 V
    ({0x10: 0x4B00, 0x11: 0}, Fault.POWER_RANGE),  # 8.4 MW
])
def test_bad_values_are_rejected(patch, kind):
    words = sdm630_words()[0]
    for i, w in patch.items():
        words[i] = w
    result = decode(load_profile("sdm630"), [words], 0.0, 3)
    assert isinstance(result, Rejection) and result.kind == kind, result


@pytest.mark.parametrize("data_type, raw", [("uint16", 0xFFFF), ("int16", 0x8000), ("int16", 0x7FFF),
                                            ("uint32", 0xFFFFFFFF), ("int32", 0x80000000)])
def test_unimplemented_sentinels(data_type, raw):
    p = custom_profile([{"quantity": "current", "phase": "A", "function": 3, "address": 0, "type": data_type}])
    words = encode(from_raw(raw, data_type), data_type)
    assert decode(p, [words], 0.0, 1).kind == Fault.UNIMPLEMENTED


def test_wrong_register_count_is_rejected():
    words = sdm630_words()[0]
    assert decode(load_profile("sdm630"), [words[:16]], 0.0, 3).kind == Fault.REGISTER_COUNT
    assert decode(load_profile("sdm630"), [words + [0]], 0.0, 3).kind == Fault.REGISTER_COUNT
    assert decode(load_profile("sdm630"), [], 0.0, 3).kind == Fault.REGISTER_COUNT


def test_codec_round_trip_both_word_orders():
    for order in ("big", "little"):
        assert from_raw(raw_value(encode(-123456, "int32", order), order), "int32") == -123456
        assert from_raw(raw_value(encode(1.5, "float32", order), order), "float32") == 1.5


def test_every_profile_file_loads_and_fits_its_phases():
    names = profile_names()
    assert {"sdm630", "sdm120", "em24", "abb-b23", "shelly-pro-3em", "sunspec", "custom"} <= set(names)
    for name in names[:-1]:
        p = load_profile(name)
        assert p.provenance and "unverified" in p.provenance
        assert profile_problem(p, p.phases) is None
    assert load_profile("sdm630").reads[0].count == 18  # one request for V, I, P
    assert "measures 1 phase" in profile_problem(load_profile("sdm120"), 3)


def test_unknown_profile_name():
    with pytest.raises(ProfileError, match="known: abb-b23"):
        load_profile("sdm999")


# ------------------------------------------------------------------ properties

word = st.integers(0, 0xFFFF)
profiles = [load_profile(n) for n in profile_names()[:-1] if n != "sunspec"]
profiles.append(resolve_sunspec(load_profile("sunspec"), 203, 2, 105))
profiles.append(resolve_sunspec(load_profile("sunspec"), 213, 2, 124))


@st.composite
def register_images(draw):
    profile = draw(st.sampled_from(profiles))
    replies = [draw(st.lists(word, min_size=b.count, max_size=b.count)) for b in profile.reads]
    return profile, replies


@settings(max_examples=400, deadline=None)
@given(register_images(), st.integers(1, 3), st.sets(st.sampled_from("ABC")))
def test_no_register_content_yields_an_impossible_sample(image, phases, invert):
    profile, replies = image
    result = decode(profile, replies, 1.0, min(phases, profile.phases), tuple(invert))
    if isinstance(result, Rejection):
        return
    for values, bound in ((result.current_a, 1000.0), (result.power_w, 500000.0), (result.voltage_v, 500.0)):
        assert all(math.isfinite(v) and abs(v) <= bound for v in values)
    used = min(phases, profile.phases)
    assert all(50.0 <= abs(v) <= 500.0 for v in result.voltage_v[:used])
    assert all(v == 0.0 for v in result.current_a[used:])


@settings(max_examples=200, deadline=None)
@given(st.lists(word, max_size=40))
def test_any_reply_length_but_the_right_one_is_rejected(words):
    p = load_profile("sdm630")
    result = decode(p, [words], 0.0, 3)
    if len(words) != 18:
        assert result.kind == Fault.REGISTER_COUNT
