"""Find a SunSpec meter model by walking the model chain (the only profile found at run time).

At a base address the device answers "SunS"; then each model is [id, length, data...] and
the next model starts right after its data, until id 0xFFFF.
"""

from __future__ import annotations

from controller.meter.bus import ExceptionReply, ModbusBus, Priority
from controller.meter.profile import MeterProfile, resolve_sunspec

SUNS = [0x5375, 0x6E53]  # "SunS"
END = 0xFFFF
MAX_MODELS = 64  # a chain longer than this is garbage, not a device


class DiscoveryFailed(Exception):
    """The device answered but holds no meter model we can use (installer words in str())."""


async def discover(bus: ModbusBus, unit: int, profile: MeterProfile) -> MeterProfile:
    """The profile with concrete addresses. Raises BusError (no/odd answer) or DiscoveryFailed."""
    for base in profile.sunspec_bases:
        try:
            marker = await bus.read_holding_registers(unit, base, 2, Priority.METER)
        except ExceptionReply:  # nothing at this base; no answer at all propagates
            continue
        if marker != SUNS:
            continue
        seen: list[int] = []
        address = base + 2
        for _ in range(MAX_MODELS):
            header = await bus.read_holding_registers(unit, address, 2, Priority.METER)
            if len(header) != 2:
                raise DiscoveryFailed(f"SunSpec model header at {address} is {len(header)} registers long")
            model_id, length = header
            if model_id == END:
                break
            if model_id in profile.sunspec_models:
                return resolve_sunspec(profile, model_id, address + 2, length)
            seen.append(model_id)
            address += 2 + length
        found = ", ".join(map(str, seen)) or "none"
        raise DiscoveryFailed(f"SunSpec device at {base} has no meter model "
                              f"{' or '.join(map(str, profile.sunspec_models))} (models found: {found})")
    raise DiscoveryFailed("no SunSpec marker (\"SunS\") at "
                          + ", ".join(map(str, profile.sunspec_bases)) + ": not a SunSpec device?")
