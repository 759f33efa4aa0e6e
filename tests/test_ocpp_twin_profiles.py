"""Pure parts of driving a charger with several connectors: the station cap that never lets
the connectors together exceed their limits on any phase, the forms tried, and the model of
what a charge point does with per-connector profiles (OCPP 1.6 §3.13)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from controller.chargers.ocpp.composite import HeldProfile, install, share_cap, station_limits_a
from controller.chargers.ocpp.profiles import (
    CAP_PROFILE_IDS, EACH, V16, V201, ProfileForm, Rate, base_profile, dynamic_profile, profile_ids,
    station_cap_a, twin_forms)
from test_ocpp_profiles import validate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
AMPS = Rate("A", 230.0 * 3)


@pytest.mark.parametrize("connectors, cap", [
    ([("ABC", 10), ("ABC", 6)], 16.0),  # same wiring: the sum
    ([("ABC", 10), ("BCA", 6)], 16.0),  # rotated: still every phase carries both
    ([("A", 10), ("B", 6)], 6.0),  # one phase each: either may take all the cap, so the least
    ([("ABC", 10), ("A", 6)], 10.0),  # B and C carry only the first
    ([("ABC", 0), ("ABC", 0)], 0.0),
    ([("ABC", 6.07), ("ABC", 6.07)], 12.1),  # rounded down, never up
])
def test_the_station_cap_never_lets_a_phase_carry_more_than_its_connectors_limits(connectors, cap):
    assert station_cap_a(connectors) == cap
    for p in "ABC":  # whoever takes it, no phase gets more than the limits on it allow
        on = sum(a for wiring, a in connectors if p in wiring)
        if on or any(p in w for w, _ in connectors):
            assert cap <= on + 1e-9


def test_twin_forms_never_put_a_tx_default_on_connector_0():
    for version in (V16, V201):
        forms = twin_forms(version, "Absolute")
        assert forms[0] == ProfileForm("TxDefaultProfile", EACH, "Absolute")
        assert all(f.target != 0 or f.purpose != "TxDefaultProfile" for f in forms)
        assert forms[-1].purpose in ("ChargePointMaxProfile", "ChargingStationMaxProfile")
        assert twin_forms(version, "Absolute", max_stack_level=1) == [f for f in forms if f.dynamic_level <= 1]


@pytest.mark.parametrize("version", [V16, V201])
def test_per_connector_and_cap_profiles_are_schema_valid(version):
    form = ProfileForm("TxDefaultProfile", EACH, "Relative").on(2)
    cap = ProfileForm("ChargePointMaxProfile" if version == V16 else "ChargingStationMaxProfile", 0, "Absolute")
    for target, profile in ((2, base_profile(version, form, AMPS, 6, NOW, profile_id=profile_ids(2)[0])),
                            (2, dynamic_profile(version, form, AMPS, 9.5, NOW, 120, 30, profile_id=profile_ids(2)[1])),
                            (0, dynamic_profile(version, cap, AMPS, 15.5, NOW, 120, profile_id=CAP_PROFILE_IDS[1]))):
        validate(version, target, profile)
    assert len({*profile_ids(1), *profile_ids(2), *CAP_PROFILE_IDS}) == 6  # none replaces another


def _held(target, purpose, limit, level=0):
    profile = {"chargingProfileId": 100 + target * 10 + level + 5 * ("Max" in purpose), "stackLevel": level,
               "chargingProfilePurpose": purpose, "chargingProfileKind": "Absolute",
               "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
                                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}
    return HeldProfile(target, profile, NOW)


def test_a_connector_0_tx_default_applies_to_each_connector_and_a_connector_one_overrides_it():
    held = install([], _held(0, "TxDefaultProfile", 16))
    per, cap = station_limits_a(held, NOW, volts_per_amp=690, tx_starts={1: NOW, 2: NOW})
    assert per == {1: 16.0, 2: 16.0} and cap is None  # two cars at 16 A each: the old bug
    held = install(held, _held(2, "TxDefaultProfile", 6))
    held = install(held, _held(0, "ChargePointMaxProfile", 20))
    per, cap = station_limits_a(held, NOW, volts_per_amp=690, tx_starts={1: NOW, 2: NOW})
    assert per == {1: 16.0, 2: 6.0} and cap == 20.0
    assert share_cap({1: 16.0, 2: 6.0}, cap) == pytest.approx({1: 20 * 16 / 22, 2: 20 * 6 / 22})
    assert share_cap({1: 10.0, 2: 6.0}, cap) == {1: 10.0, 2: 6.0}
