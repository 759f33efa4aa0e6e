"""Pure construction of the two charging profiles evfuse keeps on every OCPP charger.

- base profile: `control.fallback_a`, no expiry, lowest stack level. It is what the charger
  obeys by itself once evfuse is gone.
- dynamic profile: the allocator's limit, one stack level higher, same purpose, valid for
  `ocpp.lease_s` only. evfuse renews it at about half the lease; if evfuse dies, it expires
  and the base profile takes over.

Both use the same purpose so the dynamic one *replaces* the base one while valid (per purpose
the highest valid stack level wins). Mixing purposes would be wrong: a ChargePointMax base
would cap every dynamic TxDefault limit at the fallback.

Output is the OCPP wire format (camelCase dicts) for 1.6 (`csChargingProfiles`) or 2.0.1
(`chargingProfile`). No I/O, no clock reads: times are passed in, already in the charger's
clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.chargers.ocpp.clock import format_time

V16 = "1.6"
V201 = "2.0.1"

# Fixed ids: installing a profile with an id the charger already holds replaces it, so a
# restarted evfuse (or a change of form) overwrites its own old profiles instead of piling up.
BASE_PROFILE_ID = 4801
DYNAMIC_PROFILE_ID = 4802

# validFrom is put this far in the past so a charger whose clock is slightly behind our
# estimate does not see a profile that is "not yet valid".
VALID_FROM_SKEW_S = 60

TX_DEFAULT = "TxDefaultProfile"
MAX_PURPOSE = {V16: "ChargePointMaxProfile", V201: "ChargingStationMaxProfile"}
# A charger with several connectors: the form's target when every connector gets its own
# profile (connectorId / evseId N), each with ids of its own, and the station cap beside them.
EACH = -1
CAP_PROFILE_IDS = (4803, 4804)


def profile_ids(target: int) -> tuple[int, int]:
    """(base id, dynamic id) of the profiles on connector/EVSE `target` of a charger with several
    connectors (a charger with one keeps BASE_PROFILE_ID / DYNAMIC_PROFILE_ID)."""
    return BASE_PROFILE_ID + 10 * target, DYNAMIC_PROFILE_ID + 10 * target


def station_cap_a(connectors: list[tuple[str, float]]) -> float:
    """The station cap that never lets a charger's connectors together draw more than their
    limits allow on any site phase: (site phases, amps) per connector -> the least, over the
    phases any of them uses, of the limits of the connectors on that phase. Any one connector
    may take all of it (the charger splits a cap as it likes), so a phase no connector shares
    with the others bounds it too."""
    phases = {p for wiring, _ in connectors for p in wiring}
    if not phases:
        return 0.0
    return round_down_a(min(sum(a for wiring, a in connectors if p in wiring) for p in phases))


def round_down_a(limit_a: float) -> float:
    """Limits go out as multiples of 0.1 A (the 1.6 schema demands it), always rounded
    down so we never allow more than the allocator decided. Negative or NaN -> 0 (pause)."""
    if not limit_a > 0:
        return 0.0
    return math.floor(limit_a * 10 + 1e-6) / 10


def schedule_limit(limit_a: float, unit: str, volts_per_amp: float) -> float:
    """The number to put in a schedule period: amps rounded down to 0.1 A, or, for a charger
    that only takes watts, those amps x voltage x phases in use, rounded down to 1 W."""
    amps = round_down_a(limit_a)
    if unit == "W":
        return float(math.floor(amps * volts_per_amp + 1e-6))
    return amps


@dataclass(frozen=True)
class ProfileForm:
    """How a charger takes its limits: purpose, connector/EVSE id, kind and stack levels.

    target is the 1.6 connectorId or 2.0.1 evseId (0 = the whole charger). kind applies to
    the dynamic profile; station-max profiles are always Absolute (2.0.1 K01 forbids Relative
    there, and we keep 1.6 the same).
    """

    purpose: str
    target: int
    kind: str  # "Absolute" | "Relative"
    base_level: int = 0
    dynamic_level: int = 1

    def describe(self) -> str:
        where = "each connector" if self.target == EACH else self.target
        return f"{self.purpose}@{where} {self.kind} levels {self.base_level}/{self.dynamic_level}"

    def on(self, target: int) -> "ProfileForm":
        """The same form on one connector/EVSE."""
        return ProfileForm(self.purpose, target, self.kind, self.base_level, self.dynamic_level)


def twin_forms(version: str, preferred_kind: str, max_stack_level: int | None = None) -> list[ProfileForm]:
    """Forms for a charger with several connectors, best first: a TxDefault profile on each
    connector (OCPP 1.6 §3.13: one on connector 0 would apply to EACH connector), with the
    station cap beside it where the charger takes one; then, for a charger that refuses
    per-connector profiles, the station cap alone at what the connectors may draw together."""
    other = "Relative" if preferred_kind == "Absolute" else "Absolute"
    forms = [
        ProfileForm(TX_DEFAULT, EACH, preferred_kind),
        ProfileForm(TX_DEFAULT, EACH, other),
        ProfileForm(TX_DEFAULT, EACH, preferred_kind, 1, 2),
        ProfileForm(MAX_PURPOSE[version], 0, "Absolute"),
        ProfileForm(MAX_PURPOSE[version], 0, "Absolute", 1, 2),
    ]
    if max_stack_level is not None and max_stack_level >= 1:
        forms = [f for f in forms if f.dynamic_level <= max_stack_level]
    return forms


def candidate_forms(version: str, preferred_kind: str, max_stack_level: int | None = None) -> list[ProfileForm]:
    """Forms to try, best first, when a charger rejects a profile.

    TxDefault on the whole charger is the standard way; then the same with the other kind
    (chargers with broken clocks reject Absolute, some firmware rejects Relative), then
    stack levels 1/2 (some chargers keep level 0 for themselves), then on connector/EVSE 1
    (some refuse TxDefault on 0), and last the station-wide maximum profile.
    """
    other = "Relative" if preferred_kind == "Absolute" else "Absolute"
    forms = [
        ProfileForm(TX_DEFAULT, 0, preferred_kind),
        ProfileForm(TX_DEFAULT, 0, other),
        ProfileForm(TX_DEFAULT, 0, preferred_kind, 1, 2),
        ProfileForm(TX_DEFAULT, 1, preferred_kind),
        ProfileForm(TX_DEFAULT, 1, other),
        ProfileForm(MAX_PURPOSE[version], 0, "Absolute"),
        ProfileForm(MAX_PURPOSE[version], 0, "Absolute", 1, 2),
    ]
    if max_stack_level is not None and max_stack_level >= 1:  # 0 = nonsense: try anyway
        forms = [f for f in forms if f.dynamic_level <= max_stack_level]
    return forms


@dataclass(frozen=True)
class Rate:
    """The charger's unit and how to convert amps to it."""

    unit: str = "A"  # "A" | "W"
    volts_per_amp: float = 230.0 * 3  # site voltage x phases in use, for W
    phases: int | None = None  # phases the car was seen to use, sent as numberPhases (None: not known)


def _schedule(version: str, rate: Rate, limit: float, start: datetime | None,
              duration_s: int | None) -> dict:
    schedule: dict = {
        "chargingRateUnit": rate.unit,
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
    }
    if rate.phases is not None:  # a watt limit means this many phases' worth of current
        schedule["chargingSchedulePeriod"][0]["numberPhases"] = rate.phases
    if start is not None:
        schedule["startSchedule"] = format_time(start)
    if duration_s is not None:
        schedule["duration"] = duration_s
    if version == V201:
        schedule["id"] = 1
    return schedule


def _profile(version: str, profile_id: int, level: int, purpose: str, kind: str,
             schedule: dict, valid: tuple[datetime, datetime] | None) -> dict:
    profile: dict = {
        "chargingProfileId" if version == V16 else "id": profile_id,
        "stackLevel": level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule if version == V16 else [schedule],
    }
    if valid is not None:
        profile["validFrom"] = format_time(valid[0])
        profile["validTo"] = format_time(valid[1])
    return profile


def base_profile(version: str, form: ProfileForm, rate: Rate, fallback_a: float,
                 charger_now: datetime, profile_id: int = BASE_PROFILE_ID) -> dict:
    """The never-expiring fallback profile at the form's lowest stack level."""
    kind = "Absolute" if form.purpose != TX_DEFAULT else form.kind
    start = charger_now - timedelta(seconds=VALID_FROM_SKEW_S) if kind == "Absolute" else None
    limit = schedule_limit(fallback_a, rate.unit, rate.volts_per_amp)
    schedule = _schedule(version, rate, limit, start, None)
    return _profile(version, profile_id, form.base_level, form.purpose, kind, schedule, None)


def dynamic_profile(version: str, form: ProfileForm, rate: Rate, limit_a: float,
                    charger_now: datetime, lease_s: float, relative_start_age_s: float = 0.0,
                    profile_id: int = DYNAMIC_PROFILE_ID) -> dict:
    """The leased limit profile, one stack level above the base.

    Absolute: validFrom a little in the past, validTo = now + lease, and the schedule's
    duration ends at the same moment (chargers that ignore validTo still honour duration).
    Relative: no wall-clock times at all; the duration counts from the charger's own start
    point (the transaction start while one runs, else receipt), so relative_start_age_s is
    how long ago that start point was, and the lease still ends lease_s from now.
    """
    limit = schedule_limit(limit_a, rate.unit, rate.volts_per_amp)
    if form.kind == "Absolute" or form.purpose != TX_DEFAULT:
        valid_from = charger_now - timedelta(seconds=VALID_FROM_SKEW_S)
        valid_to = charger_now + timedelta(seconds=lease_s)
        duration = int((valid_to - valid_from).total_seconds())
        schedule = _schedule(version, rate, limit, valid_from, duration)
        return _profile(version, profile_id, form.dynamic_level, form.purpose, "Absolute",
                        schedule, (valid_from, valid_to))
    # whole seconds, rounded down: the lease may end a little early, never late
    duration = math.floor(max(0.0, relative_start_age_s) + lease_s)
    schedule = _schedule(version, rate, limit, None, duration)
    return _profile(version, profile_id, form.dynamic_level, form.purpose, "Relative",
                    schedule, None)
