"""Pure OCPP parts without a network: rounding and units, the profiles built for each version,
unit and kind (validated against the official JSON schemas shipped with the ocpp package),
the composite-limit calculator, MeterValues parsing, the compliance watch and the clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.messages import Call, _validate_payload

from controller.chargers.ocpp.caps import pick_unit
from controller.chargers.ocpp.clock import AGREE_S, MAX_STEP_S, ROBUST_AFTER, ClockOffset, format_time, parse_time
from controller.chargers.ocpp.compliance import ComplianceWatch
from controller.chargers.ocpp.composite import HeldProfile, composite_limit_a, install
from controller.chargers.ocpp.meter import parse_meter_values
from controller.chargers.ocpp.profiles import (
    BASE_PROFILE_ID, DYNAMIC_PROFILE_ID, V16, V201, ProfileForm, Rate, base_profile, candidate_forms,
    dynamic_profile, round_down_a, schedule_limit)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
AMPS = Rate("A", 230 * 3)
WATTS = Rate("W", 230 * 3)
TX_DEFAULT = ProfileForm("TxDefaultProfile", 0, "Absolute")


def sched(p: dict) -> dict:
    s = p["chargingSchedule"]
    return s[0] if isinstance(s, list) else s


def validate(version: str, target: int, profile: dict) -> None:
    """Raise unless the SetChargingProfile request is valid per the OCPP JSON schema."""
    payload = ({"connectorId": target, "csChargingProfiles": profile} if version == V16
               else {"evseId": target, "chargingProfile": profile})
    _validate_payload(Call("1", "SetChargingProfile", payload), version)


# --------------------------------------------------------------------------- rounding and units


@pytest.mark.parametrize("raw, expected", [(10.37, 10.3), (10.3, 10.3), (6.0, 6.0), (0.09, 0.0),
                                           (0, 0.0), (-3, 0.0), (float("nan"), 0.0), (15.99999, 15.9)])
def test_limits_round_down_to_a_tenth_and_never_below_zero(raw, expected):
    assert round_down_a(raw) == expected


@given(st.floats(min_value=0, max_value=80, allow_nan=False))
def test_rounding_never_allows_more_and_loses_under_a_tenth(limit):
    r = round_down_a(limit)
    assert r <= limit + 1e-6 and limit - r < 0.1 + 1e-6
    assert abs(r * 10 - round(r * 10)) < 1e-9  # a multiple of 0.1, as 1.6 demands


def test_watts_are_amps_times_voltage_times_phases_in_use_rounded_down():
    assert schedule_limit(10.06, "W", 230 * 2) == 4600.0
    assert schedule_limit(16, "W", 230) == 3680.0
    assert schedule_limit(16, "A", 230) == 16.0


@pytest.mark.parametrize("allowed, unit", [("Current", "A"), ("Power", "W"), ("Current,Power", "A"),
                                           ("A,W", "A"), ("W", "W"), (None, "A"), ("nonsense", "A")])
def test_unit_choice_prefers_amps(allowed, unit):
    assert pick_unit(allowed) == unit


# --------------------------------------------------------------------------- profile building


@pytest.mark.parametrize("version", [V16, V201])
@pytest.mark.parametrize("rate", [AMPS, WATTS])
@pytest.mark.parametrize("form", candidate_forms(V16, "Absolute") + candidate_forms(V16, "Relative"),
                         ids=lambda f: f.describe())
def test_every_form_builds_schema_valid_profiles(version, rate, form):
    if form.purpose == "ChargePointMaxProfile" and version == V201:
        form = ProfileForm("ChargingStationMaxProfile", 0, "Absolute", form.base_level, form.dynamic_level)
    base = base_profile(version, form, rate, 6, NOW)
    dynamic = dynamic_profile(version, form, rate, 13.37, NOW, 120, relative_start_age_s=30)
    validate(version, form.target, base)
    validate(version, form.target, dynamic)
    for p in (base, dynamic):
        assert p["chargingProfilePurpose"] == form.purpose
        assert sched(p)["chargingSchedulePeriod"][0]["startPeriod"] == 0
        assert sched(p)["chargingRateUnit"] == rate.unit
        assert "transactionId" not in p
    assert base["stackLevel"] == form.base_level < dynamic["stackLevel"] == form.dynamic_level
    assert "validTo" not in base and "duration" not in sched(base)  # never expires
    id_key = "chargingProfileId" if version == V16 else "id"
    assert (base[id_key], dynamic[id_key]) == (BASE_PROFILE_ID, DYNAMIC_PROFILE_ID)
    if form.purpose != "TxDefaultProfile":
        assert base["chargingProfileKind"] == dynamic["chargingProfileKind"] == "Absolute"


def test_absolute_dynamic_profile_is_valid_from_the_recent_past_until_now_plus_lease():
    p = dynamic_profile(V201, TX_DEFAULT, AMPS, 10, NOW, 120)
    assert parse_time(p["validFrom"]) < NOW
    assert parse_time(p["validTo"]) == NOW + timedelta(seconds=120)
    start = parse_time(sched(p)["startSchedule"])
    assert start + timedelta(seconds=sched(p)["duration"]) == parse_time(p["validTo"])
    assert isinstance(p["chargingSchedule"], list) and sched(p)["id"] == 1


def test_relative_dynamic_profile_ends_lease_after_now_counted_from_the_transaction_start():
    form = ProfileForm("TxDefaultProfile", 0, "Relative")
    p = dynamic_profile(V16, form, AMPS, 10, NOW, 120, relative_start_age_s=3600.2)
    assert p["chargingProfileKind"] == "Relative" and "validFrom" not in p
    assert "startSchedule" not in sched(p) and sched(p)["duration"] == 3720  # never longer


def test_candidate_forms_start_with_the_preferred_kind_and_respect_the_stack_limit():
    forms = candidate_forms(V201, "Relative", max_stack_level=1)
    assert forms[0] == ProfileForm("TxDefaultProfile", 0, "Relative")
    assert all(f.dynamic_level <= 1 for f in forms)
    assert forms[-1].purpose == "ChargingStationMaxProfile" and forms[-1].kind == "Absolute"


# --------------------------------------------------------------------------- composite limit


def held(profile: dict, target: int = 0, at: datetime = NOW) -> HeldProfile:
    return HeldProfile(target, profile, at)


@pytest.mark.parametrize("version", [V16, V201])
def test_dynamic_wins_while_valid_then_the_base_takes_over(version):
    store = install(install([], held(base_profile(version, TX_DEFAULT, AMPS, 6, NOW))),
                    held(dynamic_profile(version, TX_DEFAULT, AMPS, 14, NOW, 120)))
    assert composite_limit_a(store, NOW, volts_per_amp=690) == 14
    assert composite_limit_a(store, NOW + timedelta(seconds=119), volts_per_amp=690) == 14
    assert composite_limit_a(store, NOW + timedelta(seconds=120), volts_per_amp=690) == 6
    assert composite_limit_a(store, NOW + timedelta(days=400), volts_per_amp=690) == 6


def test_relative_lease_counts_from_the_transaction_start_or_receipt():
    form = ProfileForm("TxDefaultProfile", 0, "Relative")
    store = [held(base_profile(V16, form, AMPS, 6, NOW)),
             held(dynamic_profile(V16, form, AMPS, 12, NOW, 60, relative_start_age_s=100))]
    tx_start = NOW - timedelta(seconds=100)
    at = NOW + timedelta(seconds=59)
    assert composite_limit_a(store, at, volts_per_amp=690, tx_start=tx_start) == 12
    assert composite_limit_a(store, NOW + timedelta(seconds=60), volts_per_amp=690, tx_start=tx_start) == 6
    assert composite_limit_a(store, at, volts_per_amp=690) == 12  # no transaction: from receipt


def test_installing_replaces_same_id_and_same_level_and_purpose():
    a = dynamic_profile(V16, TX_DEFAULT, AMPS, 10, NOW, 60)
    b = dynamic_profile(V16, TX_DEFAULT, AMPS, 8, NOW, 60)
    other = {**b, "chargingProfileId": 99}  # same level and purpose, other id
    store = install(install(install([], held(a)), held(b)), held(other))
    assert len(store) == 1 and store[0].profile["chargingProfileId"] == 99


def test_station_maximum_caps_the_transaction_limit_and_watts_convert():
    cap = dynamic_profile(V16, ProfileForm("ChargePointMaxProfile", 0, "Absolute"), WATTS, 10, NOW, 60)
    tx = dynamic_profile(V16, TX_DEFAULT, AMPS, 16, NOW, 60)
    store = [held(cap), held(tx)]
    assert composite_limit_a(store, NOW, volts_per_amp=690) == pytest.approx(10)
    assert composite_limit_a([held(tx)], NOW - timedelta(hours=1), volts_per_amp=690) is None


def test_connector_specific_profile_beats_whole_charger_one_at_the_same_level():
    whole = dynamic_profile(V16, TX_DEFAULT, AMPS, 16, NOW, 60)
    one = {**dynamic_profile(V16, ProfileForm("TxDefaultProfile", 1, "Absolute"), AMPS, 7, NOW, 60),
           "chargingProfileId": 5}
    store = [held(whole, 0), held(one, 1)]
    assert composite_limit_a(store, NOW, volts_per_amp=690, connector=1) == 7
    assert composite_limit_a(store, NOW, volts_per_amp=690, connector=2) == 16


def test_tx_profile_needs_a_transaction_and_overrides_tx_default():
    tx_default = dynamic_profile(V16, TX_DEFAULT, AMPS, 16, NOW, 600)
    tx = {**dynamic_profile(V16, TX_DEFAULT, AMPS, 5, NOW, 600), "chargingProfileId": 7,
          "chargingProfilePurpose": "TxProfile", "stackLevel": 0, "transactionId": 1}
    store = [held(tx_default), held(tx)]
    assert composite_limit_a(store, NOW, volts_per_amp=690) == 16
    assert composite_limit_a(store, NOW, volts_per_amp=690, tx_start=NOW) == 5


def test_recurring_daily_profile_repeats_and_later_periods_apply():
    p = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
         "chargingProfileKind": "Recurring", "recurrencyKind": "Daily",
         "chargingSchedule": {"startSchedule": format_time(NOW), "chargingRateUnit": "A",
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10},
                                                         {"startPeriod": 3600, "limit": 6}]}}
    assert composite_limit_a([held(p)], NOW + timedelta(days=3, minutes=5), volts_per_amp=690) == 10
    assert composite_limit_a([held(p)], NOW + timedelta(days=3, hours=2), volts_per_amp=690) == 6


# --------------------------------------------------------------------------- meter values


def sv(value, measurand="Current.Import", phase=None, unit=None):
    d = {"value": value, "measurand": measurand}
    if phase:
        d["phase"] = phase
    if unit:
        d["unit"] = unit
    return d


def test_meter_values_per_line_offered_power_energy_and_timestamps():
    report = parse_meter_values([{"timestamp": "2025-03-01T12:00:00Z", "sampled_value": [
        sv("7.9", phase="L1"), sv("8.1", phase="L2-N"), sv("8.0", phase="L3"),
        sv("16", "Current.Offered"), sv("5.5", "Power.Active.Import", unit="kW"), sv("1234", None, unit="Wh"),
        sv("230", "Voltage", phase="L1"), sv("1", phase="L1-L2")]}], lines_in_use=3)
    assert report.lines_a == (7.9, 8.1, 8.0)
    assert (report.offered_a, report.power_w, report.energy_wh) == (16, 5500, 1234)
    assert report.timestamps == (NOW,)


def test_meter_values_bad_data_is_skipped_and_phaseless_current_counts_on_every_line():
    report = parse_meter_values([{"timestamp": "garbage", "sampled_value": [
        sv("nan", phase="L1"), sv("abc", phase="L2"), sv("-5", phase="L3"), sv("2000", phase="L1"),
        sv("9.5")]}, "not a dict"], lines_in_use=2)
    assert report.lines_a == (9.5, 9.5) and report.timestamps == ()
    assert parse_meter_values("junk", 3).lines_a is None


def test_meter_values_2_0_1_units_and_lines_beyond_the_wiring_ignored():
    report = parse_meter_values([{"timestamp": "2025-03-01T12:00:00Z", "sampled_value": [
        {"value": 7.0, "measurand": "Current.Import", "phase": "L1", "unit_of_measure": {"unit": "A"}},
        {"value": 7.0, "measurand": "Current.Import", "phase": "L2"},
        {"value": 3.2, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "kW"}}]}], lines_in_use=1)
    assert report.lines_a == (7.0,) and report.power_w == pytest.approx(3200)


# --------------------------------------------------------------------------- compliance, clock


def test_compliance_needs_the_draw_over_limit_plus_tolerance_for_longer_than_the_allowance():
    w = ComplianceWatch(tolerance_a=1.5, allowance_s=15)
    assert not w.observe(0, 10, (11.4, 0, 0))  # within tolerance
    assert not w.observe(1, 10, (16, 16, 16))
    assert not w.observe(15.5, 10, (16, 16, 16)) and w.compliant
    assert w.observe(16.5, 10, (16, 16, 16)) and not w.compliant
    assert w.observe(17, 10, (9, 9, 9)) and w.compliant
    assert not w.observe(18, None, (30,)) and not w.observe(18, 10, None)


def test_a_lowered_limit_restarts_the_allowance():
    w = ComplianceWatch(tolerance_a=1, allowance_s=5)
    w.observe(0, 16, (20,))
    w.limit_lowered(4)
    assert not w.observe(8, 6, (20,)) and w.compliant
    assert w.observe(9.5, 6, (20,)) and not w.compliant


def test_clock_offset_learns_a_clock_that_really_is_off():
    offset = ClockOffset()
    assert offset.seconds == 0 and offset.charger_now(NOW) == NOW
    offset.observe(NOW + timedelta(seconds=3600 - 2), NOW)  # delayed sample
    offset.observe(NOW + timedelta(seconds=3600), NOW)
    offset.observe(None, NOW)
    assert 3598 <= offset.seconds <= 3600


def test_one_timestamp_an_hour_ahead_moves_the_offset_by_one_step_only():
    offset = ClockOffset()
    for _ in range(5):
        offset.observe(NOW + timedelta(seconds=1), NOW)
    offset.observe(NOW + timedelta(seconds=3600), NOW)
    assert offset.seconds <= 1 + MAX_STEP_S
    offset.observe(NOW + timedelta(seconds=1), NOW)
    assert offset.seconds == 1
    first = ClockOffset()  # even as the very first timestamp of a connection
    first.observe(NOW + timedelta(seconds=3600), NOW)
    first.observe(NOW, NOW)
    assert first.seconds <= 2 * MAX_STEP_S


@settings(max_examples=300, deadline=None)
@given(true_offset=st.floats(-7200, 7200), jitter=st.lists(st.floats(0, 2), min_size=3, max_size=30),
       odd_at=st.integers(0, 29), odd=st.floats(-86400, 86400))
def test_one_odd_timestamp_never_stretches_a_lease_by_more_than_two_steps(true_offset, jitter, odd_at, odd):
    """After ROBUST_AFTER timestamps, the estimate is never ahead of the charger's true clock
    by more than its delays plus two steps, whatever one odd timestamp says: so a lease on
    the charger's clock never ends more than that after lease_s."""
    offset = ClockOffset()
    for i, delay in enumerate(jitter):
        sample = odd if i == odd_at else true_offset - delay  # delayed samples understate it
        offset.observe(NOW + timedelta(seconds=sample), NOW)
        if i + 1 >= ROBUST_AFTER:
            assert offset.seconds <= true_offset + max(2 * MAX_STEP_S, AGREE_S) + 1e-6


@pytest.mark.parametrize("text, expected", [("2025-03-01T12:00:00Z", NOW), ("2025-03-01T12:00:00", NOW),
                                            ("2025-03-01T13:00:00+01:00", NOW), ("yesterday", None),
                                            (None, None), (5, None)])
def test_ocpp_times_parse_to_utc_or_none(text, expected):
    assert parse_time(text) == expected
