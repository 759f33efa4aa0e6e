"""The service collects cycles rarely (controller/gc_policy.py) because the core makes none:
every object a decision builds is freed by reference counting. These tests hold both."""

from __future__ import annotations

import gc

from controller import gc_policy
from core_kit import make_site, settle

SITE = """
[site]
fuse_a = 32
[[charger]]
id = "a"
phases = "ABC"
[[charger]]
id = "b"
phases = "B"
priority = 2
[[charger]]
id = "c"
phases = "CAB"
[[circuit]]
id = "garage"
fuse_a = 20
chargers = ["b", "c"]
"""


def test_decisions_leave_no_cycles_for_the_collector():
    site = make_site(SITE, fast_ramp=False)
    settle(site, (5.0, 5.0, 5.0), seconds=5)  # imports and caches made once, outside the count
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        state = None
        for household in ((5.0, 5.0, 5.0), (30.0, 12.0, 3.0), (2.0, 28.0, 40.0), (0.0, 0.0, 0.0)):
            decision, _ = settle(site, household, seconds=40, state=state)  # ramps, cuts, overloads
            state = decision.state
        assert gc.collect() == 0, "a decision built a reference cycle: only the collector frees it"
    finally:
        if was_enabled:
            gc.enable()


def test_settle_freezes_what_exists_and_collects_young_objects_rarely():
    saved = gc.get_threshold()
    try:
        gc_policy.settle()
        assert gc.get_threshold()[0] == gc_policy.YOUNG_THRESHOLD
        assert gc.get_threshold()[1:] == saved[1:]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
