"""`evfuse check-config FILE`: validate a config file the way the service would load it."""

from __future__ import annotations

import sys

from controller.config import ConfigError, load_config


def register(sub) -> None:
    p = sub.add_parser("check-config", help="validate a config file; exit 0 when it is valid")
    p.add_argument("file", help="path to evfuse.toml")
    p.set_defaults(func=check_config)


def check_config(args) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        count = len(e.problems)
        print(f"{args.file}: {count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
        for line in e.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    for line in cfg.warnings:
        print(f"warning: {line}")
    from controller.learned_wiring import describe_kept  # the state directory: what the service learned
    for line in describe_kept(cfg):
        print(line)
    circuits = f", {len(cfg.circuits)} circuit(s)" if cfg.circuits else ""
    stations = cfg.stations()
    circuits = (f", {len(cfg.loads)} switchable load(s)" if cfg.loads else "") + circuits
    print(f"{args.file}: ok ({cfg.site.phases}-phase site, fuse {cfg.site.fuse_a:g} A, "
          f"{len(stations)} charger(s){circuits})")
    for station, entries in stations.items():
        if entries[0].charger_id:
            print(f"  {station}: {len(entries)} connector(s), together at most {entries[0].charger_max_a:g} A "
                  f"per phase{' (one at a time: sequential)' if entries[0].sequential else ''}")
            for c in entries:
                print(f"    {c.id}: phases {c.phases}, {c.min_a:g}-{c.max_a:g} A, priority {c.priority}, "
                      f"weight {c.weight:g}, mode {c.mode}"
                      + (f", unit {c.link.unit_id}" if c.link is not None else ""))
    return 0
