"""An IT grid (no neutral, voltage_v phase-to-phase): the import cap and the solar surplus
count a current measured on one phase at voltage_v / sqrt(3) (3-phase supply), the same basis
as a 3-phase load's sqrt(3) x V x A. Counted at voltage_v, a car at the cap looked like sqrt(3)
times it and was cut again and again. Pure core, cars drawing their limits."""

from __future__ import annotations

import math

import pytest

from controller.core.causes import Cause
from controller.core.site import watts_per_amp

from core_kit import limits, make_site, settle

IT = """
[site]
fuse_a = 63
voltage_v = 230
grid = "{grid}"
max_import_kw = 11
[[charger]]
id = "car"
phases = "ABC"
max_a = 32
"""


@pytest.mark.parametrize("grid", ["IT", "TN"])
@pytest.mark.parametrize("household_a", [0.0, 5.0])
def test_a_car_at_the_import_cap_stays_there(grid, household_a):
    site = make_site(IT.format(grid=grid))
    # what is left of 11 kW beside the household, in the car's amps (IT, no household: 27.6 A)
    cap_a = (11000 - 3 * household_a * site.phase_volts) / watts_per_amp(230, 3, grid)
    decision, _ = settle(site, (household_a,) * 3, seconds=120)
    car = decision.chargers[0]
    assert cap_a - 0.2 <= car.limit_a <= cap_a, limits(decision)
    assert car.cause is Cause.SHARE and car.detail == "max import"


def test_phase_volts():
    assert make_site(IT.format(grid="IT")).phase_volts == pytest.approx(230 / math.sqrt(3))
    assert make_site(IT.format(grid="TN")).phase_volts == 230
