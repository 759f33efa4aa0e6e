"""Pure parsing of OCPP MeterValues (1.6 and 2.0.1 share the shape) into what the allocator
needs: current per charger line, the current the charger offers the car, power and energy.

Input is the `meter_value` list as the ocpp package hands it to a handler (snake_case keys).
Bad values (non-numbers, NaN, negative currents above plausibility) are skipped, never
guessed: bad data is not data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from controller.chargers.ocpp.clock import parse_time

MAX_PLAUSIBLE_A = 1000.0
ENERGY = "Energy.Active.Import.Register"  # the default measurand when none is named
SCALE = {"W": 1.0, "kW": 1000.0, "Wh": 1.0, "kWh": 1000.0, "A": 1.0}


@dataclass(frozen=True)
class MeterReport:
    lines_a: tuple[float, ...] | None = None  # Current.Import per charger line L1..L3
    offered_a: float | None = None  # Current.Offered
    power_w: float | None = None  # Power.Active.Import (total)
    energy_wh: float | None = None  # Energy.Active.Import.Register
    timestamps: tuple[datetime, ...] = ()  # charger clock, for the offset estimate


def _number(raw) -> float | None:
    try:
        x = float(raw)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _line(phase: str | None) -> int | None:
    """"L2" and "L2-N" are line 2 (index 1); phase-to-phase and neutral values are not draw."""
    if not phase:
        return None
    if phase in ("L1", "L1-N"):
        return 0
    if phase in ("L2", "L2-N"):
        return 1
    if phase in ("L3", "L3-N"):
        return 2
    return -1


def parse_meter_values(meter_value: list, lines_in_use: int) -> MeterReport:
    """Latest value of each quantity across the samples (later samples win; Current.Offered
    per phase is summarised by its highest value).

    A Current.Import without phase is taken to flow on every line in use: overcounting a
    draw only costs capacity, undercounting could overload a phase.
    """
    lines: list[float | None] = [None, None, None]
    phaseless: float | None = None
    offered = power = energy = None
    stamps: list[datetime] = []
    for sample in meter_value if isinstance(meter_value, list) else []:
        if not isinstance(sample, dict):
            continue
        stamp = parse_time(sample.get("timestamp"))
        if stamp is not None:
            stamps.append(stamp)
        for sv in sample.get("sampled_value", []) or []:
            if not isinstance(sv, dict):
                continue
            value = _number(sv.get("value"))
            if value is None:
                continue
            measurand = sv.get("measurand") or ENERGY
            uom = sv.get("unit_of_measure")  # 2.0.1; 1.6 has "unit"
            unit = sv.get("unit") or (uom.get("unit") if isinstance(uom, dict) else None)
            value *= SCALE.get(unit or "", 1.0)
            if measurand == "Current.Import":
                if not 0 <= value <= MAX_PLAUSIBLE_A:
                    continue
                line = _line(sv.get("phase"))
                if line is None:
                    phaseless = value
                elif line >= 0:
                    lines[line] = value
            elif measurand == "Current.Offered" and 0 <= value <= MAX_PLAUSIBLE_A:
                offered = value if offered is None else max(offered, value)
            elif measurand == "Power.Active.Import" and not sv.get("phase"):
                power = value
            elif measurand == ENERGY and not sv.get("phase"):
                energy = value
    per_line = lines[:lines_in_use]
    if any(x is not None for x in per_line):
        draw = tuple(x or 0.0 for x in per_line)
    elif phaseless is not None:
        draw = (phaseless,) * lines_in_use
    else:
        draw = None
    return MeterReport(lines_a=draw, offered_a=offered, power_w=power, energy_wh=energy,
                       timestamps=tuple(stamps))
