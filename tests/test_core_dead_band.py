"""The dead band: a raise smaller than dead_band_a is not sent at once (it would chatter with
the household's noise), but one that holds for BAND_HOLD_S is, so a household estimate
that read high for a moment never keeps a car below its share for good. Closed loop on
decide() with TRUE car draws (tests/test_core_reclaim.py's Site)."""

from __future__ import annotations

import random

from controller.core.ramp import BAND_HOLD_S

from test_core_reclaim import LIMIT_A, TWO, Car
from test_core_reclaim import Site as _Site

EVEN = TWO.replace("priority = 2", "priority = 1")


def Site(cars) -> _Site:
    return _Site(cars, text=EVEN)

SHARE_A = (LIMIT_A - 2.0) / 2  # household 2 A, two cars that take all they are offered


def limits(site: Site) -> tuple[float, ...]:
    return tuple(c.limit_a for c in site.decision.chargers)


def test_a_small_gap_left_by_a_household_blip_is_closed():
    site = Site([Car(), Car()])
    site.run(until=60.0)
    assert limits(site) == (SHARE_A, SHARE_A)
    site.household_a = 2.8  # for a few seconds: both are cut to 10.6 A
    site.run(until=70.0, t=60.5)
    assert limits(site) == (10.6, 10.6)
    site.household_a = 2.0  # back: each share is 0.4 A more, inside the 0.5 A dead band
    site.run(until=71.0, t=70.5)
    assert limits(site) == (10.6, 10.6)  # not at once ...
    site.worst_over_a = 0.0  # the household's step was not the controller's doing; from here on:
    site.run(until=70.0 + BAND_HOLD_S - 1.0, t=71.5)
    assert limits(site) == (10.6, 10.6)
    site.run(until=70.0 + BAND_HOLD_S + 1.0, t=70.0 + BAND_HOLD_S - 0.5)
    assert limits(site) == (SHARE_A, SHARE_A)  # ... but once it held BAND_HOLD_S
    assert site.worst_over_a <= 0.0


def test_a_gap_that_does_not_hold_is_not_sent():
    site = Site([Car(), Car()])
    site.run(until=60.0)
    site.household_a = 2.8
    site.run(until=70.0, t=60.5)
    site.household_a = 2.0
    site.run(until=70.0 + BAND_HOLD_S - 2.0, t=70.5)  # a 0.4 A gap for less than BAND_HOLD_S ...
    site.household_a = 2.8
    site.run(until=70.0 + BAND_HOLD_S + 5.0, t=70.0 + BAND_HOLD_S - 1.5)  # ... then the room is gone again
    assert limits(site) == (10.6, 10.6)


def test_a_noisy_household_gets_few_changes_and_never_an_overload():
    rng = random.Random(7)
    site = Site([Car(), Car()])
    changes = []
    t = 0.0
    while t < 600.0:
        site.household_a = 2.0 + rng.uniform(0.0, 0.3)  # meter noise, a new value every sample
        site.run(until=t, t=t)
        changes.append(limits(site))
        if t == 100.0:  # settled: its first ramp met the noise; from here on, only the dead band
            site.worst_over_a = 0.0
        t += 0.5
    after_settling = changes[200:]  # from 100 s on
    n = sum(1 for a, b in zip(after_settling, after_settling[1:]) if a != b)
    assert n <= 5  # not a new limit with every noisy sample
    assert min(min(c) for c in after_settling) >= SHARE_A - 0.4  # and close to the share
    assert site.worst_over_a <= 0.0
