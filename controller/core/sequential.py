"""Chargers that power one connector at a time (`sequential = true`): of their connectors
whose cars want current, only one takes part in the sharing and gets the charger's whole
share; the others wait with the reason naming the one that charges.

The one that charges: the best priority (lowest number); at equal priority the one that has
current now keeps it (no swapping cars back and forth), then the first in the file. The
charger's own max_a is a circuit of its connectors (site.py), so the switch from one to the
other is break before make like any other change.
"""

from __future__ import annotations

from controller.core.causes import Cause
from controller.core.draw import LoadMemory
from controller.core.fill import Want
from controller.core.site import SiteModel


def one_at_a_time(site: SiteModel, memories: list[LoadMemory], wants: list[Want],
                  targets: dict) -> list[Want]:
    """`wants` without the waiting connectors of sequential chargers; their targets (0, why)
    go into `targets`."""
    groups: dict[str, list[Want]] = {}
    for w in wants:
        spec = site.chargers[w.index]
        if spec.sequential:
            groups.setdefault(spec.charger_id, []).append(w)
    waiting: set[int] = set()
    for group in groups.values():
        if len(group) < 2:
            continue
        best = min(group, key=lambda w: (w.priority, not memories[w.index].limit_a > 0, w.index))
        for w in group:
            if w is not best:
                waiting.add(w.index)
                targets[w.index] = (0.0, Cause.SEQUENTIAL, site.chargers[best.index].id)
    return [w for w in wants if w.index not in waiting] if waiting else wants
