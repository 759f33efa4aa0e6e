"""Which loads to ask for a fresh report now (OCPP TriggerMessage MeterValues, where the
charger can).

A fall on the meter that no change of ours explains may be a car that tapered or stopped
between two of its charger's reports, or a household load that switched off: the meter cannot
tell. The draw model takes the safe side and lowers what it is sure those loads draw, so the
room the fall freed is given away only once their next report shows where the fall was: up to
a minute with periodic reports. Asking for that report at once wins the time back.
Asking is never needed for safety: an answer that does not come changes nothing.
"""

from __future__ import annotations

from controller.core.draw import LoadMemory
from controller.core.site import SiteModel

ASK_FALL_A = 0.5  # a floor lowered by at least this much without a report of its own
ASK_EVERY_S = 10.0  # the drivers ask one charger at most this often (a trigger is extra traffic)


def to_ask(site: SiteModel, before: list[LoadMemory], after: list[LoadMemory]) -> tuple[int, ...]:
    """Indices of the loads whose certain draw the meter lowered in this decision while no
    report of theirs came (the draw model's `seen` fell, `report_at` did not move)."""
    out = []
    for spec, a, b in zip(site.chargers, before, after):
        if a is b or b.report_at != a.report_at or b.offline:
            continue
        if any(b.seen[p] < a.seen[p] - ASK_FALL_A for p in spec.phase_idx):
            out.append(spec.index)
    return tuple(out)
