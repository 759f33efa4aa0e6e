"""`evfuse simulate [SCENARIO]`: run the core against a simulated site, faster than real time,
and print what it delivered and how long the site sat above its main fuse."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict

from controller.config import ConfigError
from controller.sim.offline.loop import SimResult, run
from controller.sim.offline.scenario import DEFAULT_SCENARIO, builtin_names, load_scenario


def register(sub) -> None:
    p = sub.add_parser("simulate", help="run the controller against a simulated site (offline)",
                       description="Run the control core against a simulated site in simulated "
                                   "time and report energy, fuse excursions and the oracle ratio.")
    p.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO,
                   help=f"built-in scenario name or path to a scenario .toml (default: {DEFAULT_SCENARIO})")
    p.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    p.add_argument("--duration", type=float, metavar="S", help="simulated seconds (overrides the scenario)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (overrides the scenario)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=simulate)


def simulate(args) -> int:
    if args.list:
        for name in builtin_names():
            print(f"{name:24} {load_scenario(name).description}")
        return 0
    if args.duration is not None and args.duration <= 0:
        print("evfuse simulate: --duration must be above 0 seconds", file=sys.stderr)
        return 2
    try:
        scn = load_scenario(args.scenario).with_overrides(args.duration, args.seed)
    except ConfigError as e:
        print(f"evfuse simulate: {args.scenario}: {len(e.problems)} problem(s):", file=sys.stderr)
        for line in e.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    started = time.perf_counter()  # wall clock for the speed line only, never inside the run
    result = run(scn)
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({**asdict(result), "oracle_ratio": result.oracle_ratio}, indent=2))
    else:
        print(format_result(result, scn.description))
        print(f"(ran in {elapsed:.1f} s: {result.steps / max(elapsed, 1e-9):,.0f} steps/s)")
    return 0


def format_result(r: SimResult, description: str = "") -> str:
    """The human report; fits 80 columns."""
    hours, minutes = divmod(round(r.duration_s / 60), 60)
    lines = [f"scenario {r.scenario}, seed {r.seed}"]
    if description:
        lines.append(description)
    restarts = f", {r.restarts} planned restart(s)" if r.restarts else ""
    restarts += f", {r.crashes} crash(es)" if r.crashes else ""
    lines += [f"{hours} h {minutes:02d} min simulated in {r.step_s:g} s steps: "
              f"{r.steps} decisions, {r.commands} limits sent{restarts}", "",
              f"{'charger':<22}{'cars':>5}{'energy kWh':>12}{'starts':>8}{'stops':>7}"
              f"{'unexplained':>13}"]
    for c in r.chargers:
        lines.append(f"{c.id[:21]:<22}{c.cars:>5}{c.energy_kwh:>12.2f}{c.starts:>8}{c.stops:>7}"
                     f"{c.unexplained_stops:>13}")
        if len(c.per_car) > 1:  # a row per car where several came
            for n, (starts, stops, unexplained) in enumerate(c.per_car, start=1):
                lines.append(f"{'  car ' + str(n):<22}{'':>5}{'':>12}{starts:>8}{stops:>7}{unexplained:>13}")
    lines.append(f"{'total':<22}{'':>5}{r.ev_kwh:>12.2f}")
    f, lim, h = r.fuse, r.limit, r.household_fuse
    ratio = f"{r.oracle_ratio:.3f}" if r.oracle_ratio is not None else "n/a (oracle got nothing)"
    lines += [
        "",
        "true currents against the main fuse (any phase)",
        f"  time above the fuse       {f.seconds_above:9.2f} s in {f.excursions} excursion(s)",
        f"  caused by the controller  {f.controller_s:9.2f} s (must be 0: the rest is household"
        " rises",
        f"                                      within the cars' response "
        f"{r.max_response_s:g} s + one {r.step_s:g} s sample)",
        f"  ampere-seconds above      {f.amp_seconds:9.1f} A s, longest {f.longest_s:.2f} s",
        f"  household alone above     {h.seconds_above:9.2f} s (no charger control can help)",
        "true currents against the limits (fuse_a - margin_a, every circuit)",
        f"  time above a limit        {lim.seconds_above:9.2f} s, caused by the controller "
        f"{lim.controller_s:.2f} s",
        f"  overload left standing    {lim.standing_s:9.2f} s (beyond overload_pause_s + response)",
        f"  EV energy / oracle        {r.ev_kwh:9.2f} / {r.oracle_kwh:.2f} kWh = {ratio}",
    ]
    if r.wiring_detected_s:
        lines += ["wiring as measured (chargers wired otherwise than configured)"]
        lines += [f"  {cid[:21]:<22} detected " + ("never" if t is None else f"after {t:.0f} s")
                  for cid, t in r.wiring_detected_s.items()]
        lines += [f"  time above the fuse before detection {r.above_fuse_before_detect_s:.2f} s"]
    return "\n".join(lines)
