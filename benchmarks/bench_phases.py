"""Issue 11's figure: three 3-phase chargers wired ABC, BCA and CAB, a 1-phase car on each (so
they draw on A, B and C), household 12 A on A, fuse 25 A, margin 1 A. EV energy against the
per-phase ideal (controller/sim/offline/oracle.py) for chargers that report per line live,
every 10 s, only power every 10 s, or nothing; and the seconds above a limit the controller
caused (must be 0). Pure core in simulated time, on the TRUE currents.

    python benchmarks/bench_phases.py [--seconds 3600]
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.config import parse_config  # noqa: E402
from controller.core.site import SiteModel  # noqa: E402
from controller.sim.offline.cars import CarPlan, Metering, SimCharger  # noqa: E402
from controller.sim.offline.household import StepHousehold  # noqa: E402
from controller.sim.offline.loop import ClosedLoop  # noqa: E402
from controller.sim.offline.oracle import Oracle  # noqa: E402

SITE = """
[meter]
host = "127.0.0.1"
[site]
fuse_a = 25
margin_a = 1
[control]
response_s = 5
[[charger]]
id = "abc"
phases = "ABC"
[[charger]]
id = "bca"
phases = "BCA"
[[charger]]
id = "cab"
phases = "CAB"
"""

CASES = {"per line, live": Metering("lines", 0.0), "per line, every 10 s": Metering("lines", 10.0),
         "power only, every 10 s": Metering("power", 10.0), "not measured": Metering("none")}


def run(metering: Metering, seconds: float) -> tuple[float, float, float | None]:
    """(EV energy / ideal, s above a limit caused by the controller, s until every car's phase
    was known or None)."""
    site = SiteModel.from_config(parse_config(tomllib.loads(SITE), "bench.toml"))
    plans = [[CarPlan(s.id, 0.0, 1e9, 100.0, phases=1, delay_s=2.0)] for s in site.chargers]
    chargers = [SimCharger(s, p, site.voltage_v, metering, site.fallback_a(s), fallback_a=site.fallback_a(s))
                for s, p in zip(site.chargers, plans)]
    loop = ClosedLoop(site, StepHousehold([(0.0, (12.0, 0.5, 0.5))]), chargers, 0.25, 0.25, ())
    loop.oracle = Oracle(site, plans, loop.dt)
    known: list[float] = []

    def hook(lp: ClosedLoop, now: float) -> None:
        if not known and lp.state.active and all(a is not None for a in lp.state.active):
            known.append(now)

    loop.on_step = hook
    loop.run(int(seconds / loop.dt))
    ratio = sum(ch.energy_wh for ch in loop.chargers) / loop.oracle.energy_wh
    return ratio, loop.limit.report().controller_s, known[0] if known else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3600.0)
    args = ap.parse_args()
    print(f"{'chargers report':<24}{'EV / ideal':>11}{'s above (ctl)':>15}{'phases known after':>20}")
    for name, metering in CASES.items():
        ratio, above, known = run(metering, args.seconds)
        when = "never" if known is None else f"{known:.0f} s"
        print(f"{name:<24}{ratio:>11.3f}{above:>15.2f}{when:>20}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
