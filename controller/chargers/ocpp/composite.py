"""Pure model of what a charge point does with the profiles it holds (OCPP 1.6 §3.13,
2.0.1 K01/K08): which profiles it keeps, and the composite limit at any moment.

The simulated charge points use it to obey their profiles, and tests use it to prove that a
charger falls back to `control.fallback_a` by itself within `lease_s` of evfuse dying.
Works on wire-format (camelCase) profiles of either version.

Rules modelled:
- installing replaces a held profile with the same id, or with the same stack level and
  purpose on the same connector/EVSE;
- a profile is in force at t when t is inside [validFrom, validTo), the schedule has started
  (Absolute: startSchedule; Relative: the transaction start, or receipt when none runs;
  Recurring: the latest daily/weekly repetition) and its duration has not elapsed, and a
  period has started. TxProfile needs a running transaction;
- per purpose the highest stack level in force wins (a connector-specific profile beats a
  whole-charger one at the same level); TxProfile overrides TxDefaultProfile;
- composite = min(station maximum, transaction limit); None = no limit at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.chargers.ocpp.clock import parse_time

MAX_PURPOSES = ("ChargePointMaxProfile", "ChargingStationMaxProfile")
RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(days=7)}


@dataclass(frozen=True)
class HeldProfile:
    """A profile as the charger holds it: where it was set and when it arrived (charger clock)."""

    target: int  # 1.6 connectorId / 2.0.1 evseId, 0 = whole charger
    profile: dict
    received_at: datetime

    @property
    def id(self) -> int:
        return self.profile.get("chargingProfileId", self.profile.get("id"))

    @property
    def key(self) -> tuple:
        return (self.profile.get("stackLevel"), self.profile.get("chargingProfilePurpose"), self.target)

    @property
    def schedule(self) -> dict:
        s = self.profile.get("chargingSchedule", {})
        return s[0] if isinstance(s, list) else s


def install(held: list[HeldProfile], new: HeldProfile) -> list[HeldProfile]:
    """The charger's profile store after accepting `new`."""
    return [p for p in held if p.id != new.id and p.key != new.key] + [new]


def _schedule_start(p: HeldProfile, t: datetime, tx_start: datetime | None) -> datetime | None:
    kind = p.profile.get("chargingProfileKind")
    sched = p.schedule
    if kind == "Relative":
        return tx_start if tx_start is not None else p.received_at
    start = parse_time(sched.get("startSchedule")) or p.received_at
    if kind == "Recurring":
        period = RECURRENCE.get(p.profile.get("recurrencyKind"))
        if period is None:
            return None
        if t >= start:
            start += period * ((t - start) // period)
    return start


def limit_in_force(p: HeldProfile, t: datetime, tx_start: datetime | None) -> float | None:
    """The limit this one profile imposes at t (its own unit), or None if not in force."""
    valid_from = parse_time(p.profile.get("validFrom"))
    valid_to = parse_time(p.profile.get("validTo"))
    if (valid_from is not None and t < valid_from) or (valid_to is not None and t >= valid_to):
        return None
    if p.profile.get("chargingProfilePurpose") == "TxProfile" and tx_start is None:
        return None
    start = _schedule_start(p, t, tx_start)
    if start is None or t < start:
        return None
    elapsed = (t - start).total_seconds()
    duration = p.schedule.get("duration")
    if duration is not None and elapsed >= duration:
        return None
    started = [x for x in p.schedule.get("chargingSchedulePeriod", []) if x["startPeriod"] <= elapsed]
    if not started:
        return None
    return float(max(started, key=lambda x: x["startPeriod"])["limit"])


def _winner(held: list[HeldProfile], purposes: tuple[str, ...], connector: int, t: datetime,
            tx_start: datetime | None, volts_per_amp: float) -> float | None:
    best: tuple[int, int, float] | None = None  # (stack level, connector-specific, amps)
    for p in held:
        if p.profile.get("chargingProfilePurpose") not in purposes or p.target not in (0, connector):
            continue
        limit = limit_in_force(p, t, tx_start)
        if limit is None:
            continue
        amps = limit / volts_per_amp if p.schedule.get("chargingRateUnit") == "W" else limit
        rank = (p.profile.get("stackLevel", 0), int(p.target == connector), amps)
        if best is None or rank[:2] > best[:2]:
            best = rank
    return None if best is None else best[2]


def composite_limit_a(held: list[HeldProfile], t: datetime, *, volts_per_amp: float,
                      connector: int = 1, tx_start: datetime | None = None) -> float | None:
    """The current (A) the charger allows on `connector` at t (charger clock), or None.

    volts_per_amp converts W profiles: site voltage x phases in use.
    """
    station = _winner(held, MAX_PURPOSES, connector, t, tx_start, volts_per_amp)
    tx = _winner(held, ("TxProfile",), connector, t, tx_start, volts_per_amp)
    if tx is None:
        tx = _winner(held, ("TxDefaultProfile",), connector, t, tx_start, volts_per_amp)
    limits = [x for x in (station, tx) if x is not None]
    return min(limits) if limits else None


def station_limits_a(held: list[HeldProfile], t: datetime, *, volts_per_amp: float,
                     tx_starts: dict[int, datetime | None]) -> tuple[dict[int, float | None], float | None]:
    """A charger with several connectors: (the transaction limit per connector, the station
    cap), in amps, at t. A TxDefault/TxProfile on connector 0 applies to EACH connector (1.6
    §3.13), one on connector N to that one; the station cap (ChargePointMax / ChargingStationMax,
    connector 0 only) limits what all of them draw together, not each."""
    per = {n: (_winner(held, ("TxProfile",), n, t, start, volts_per_amp)
               if start is not None else None) for n, start in tx_starts.items()}
    for n, start in tx_starts.items():
        if per[n] is None:
            per[n] = _winner(held, ("TxDefaultProfile",), n, t, start, volts_per_amp)
    cap = _winner(held, MAX_PURPOSES, 0, t, None, volts_per_amp)
    return per, cap


def share_cap(wants: dict[int, float], cap: float | None) -> dict[int, float]:
    """What each connector's car draws when they want `wants` and the station cap is `cap`:
    all they want when it fits, else the cap split in proportion (a charger may split it any
    way it likes; this is one of them)."""
    total = sum(wants.values())
    if cap is None or total <= cap + 1e-9:  # a cap at their sum: float sums are no excess
        return dict(wants)
    scale = max(0.0, cap) / total if total > 0 else 0.0
    return {n: a * scale for n, a in wants.items()}
