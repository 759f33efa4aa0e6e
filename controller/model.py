"""Plain data shared by the core, the drivers and the runtime.

Everything here is an immutable value: no I/O, no clock reads. Per-phase quantities are
always 3-tuples indexed by site phase (A, B, C); phases a site does not have hold 0.0.
Times are monotonic seconds supplied by the caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SITE_PHASES = ("A", "B", "C")
PHASE_INDEX = {name: i for i, name in enumerate(SITE_PHASES)}

Phases = tuple[float, float, float]
ZERO: Phases = (0.0, 0.0, 0.0)


def lines_to_site(wiring: str, lines: tuple[float, ...]) -> Phases:
    """Map per-line values (L1, L2, L3 as the charger reports them) onto site phases.

    A charger wired "BCA" reports its L1 current, which flows on site phase B. Lines the
    charger has but the wiring does not name (a 3-phase charger wired to one phase) are
    ignored: they carry nothing on this site.
    """
    out = [0.0, 0.0, 0.0]
    for line, phase in enumerate(wiring):
        if line < len(lines):
            out[PHASE_INDEX[phase]] += lines[line]
    return (out[0], out[1], out[2])


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One valid reading of the main meter.

    current_a is signed: + import from the grid, - export. voltage_v and power_w are per
    phase as the meter reports them (power signed like current).
    """

    t: float
    current_a: Phases
    voltage_v: Phases = ZERO
    power_w: Phases = ZERO


class CarState(enum.Enum):
    """What a charger tells us about the car at its socket."""

    UNKNOWN = "unknown"  # charger does not say: treated as wanting current
    NO_CAR = "no-car"  # nothing plugged in
    CONNECTED = "connected"  # plugged in, not drawing (suspended by car or charger)
    CHARGING = "charging"
    FAULT = "fault"  # charger reports an error: gets nothing

    @property
    def wants_current(self) -> bool:
        return self in (CarState.UNKNOWN, CarState.CONNECTED, CarState.CHARGING)


@dataclass(frozen=True, slots=True)
class ChargerReading:
    """What the runtime knows about one charger at the moment of a decision.

    online: the link is up and the charger has been initialised (it obeys our commands).
    draw_lines_a: measured current per charger line (L1, L2, L3) or None when the charger
        does not measure (then its commanded limit stands in for its draw).
    draw_at: monotonic time draw_lines_a was measured (None = just now). Chargers report
        every few seconds; the core needs to know whether a report predates its last raise.
    power_w: measured active power of the whole charger (W) where it reports power but no
        per-line currents (an OCPP charger sending only Power.Active.Import), else None.
        draw_at is its time too.
    acked_a: the last limit the charger confirmed it holds (None = never confirmed since
        the link came up). An offline charger holds this one, not the last one we sent.
    lease_until: for an offline charger, the monotonic time at which the limit it holds
        expires and it falls back to control.fallback_a by itself (None = unknown).
    compliant: False once the driver has seen it draw above its limit for too long.
    """

    online: bool = True
    car: CarState = CarState.UNKNOWN
    draw_lines_a: tuple[float, ...] | None = None
    draw_at: float | None = None
    lease_until: float | None = None
    compliant: bool = True
    power_w: float | None = None
    acked_a: float | None = None
