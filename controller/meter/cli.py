"""`evfuse meter --config FILE [--watch]` and `evfuse profiles`: check a meter from the shell."""

from __future__ import annotations

import asyncio
import sys
import time

from controller.config import ConfigError, load_config
from controller.meter.profile import ProfileError, load_profile, profile_names
from controller.meter.reader import MeterReader, MeterReadError
from controller.model import SITE_PHASES, MeterSample


def register(sub) -> None:
    p = sub.add_parser("meter", help="read the main meter once (or keep reading) and print it")
    p.add_argument("--config", required=True, help="path to evfuse.toml")
    p.add_argument("--watch", action="store_true", help="keep reading at the poll rate; Ctrl-C stops")
    p.set_defaults(func=meter_command)
    p = sub.add_parser("profiles", help="list the built-in meter profiles")
    p.set_defaults(func=profiles_command)


def profiles_command(args) -> int:
    for name in profile_names():
        if name == "custom":
            print(f"{'custom':16} your own register table in [[meter.registers]]")
            continue
        p = load_profile(name)
        print(f"{name:16} {p.description}  [{p.provenance}]")
    return 0


def meter_command(args) -> int:
    try:
        cfg = load_config(args.config)
        reader = MeterReader(cfg.meter, cfg.site.phases)
    except ConfigError as e:
        print(f"{args.config}: " + "\n  ".join(["cannot use this config:", *e.problems]), file=sys.stderr)
        return 1
    except (ProfileError, ValueError) as e:
        print(f"{args.config}: {e}", file=sys.stderr)
        return 1
    return asyncio.run(_watch(reader) if args.watch else _once(reader))


async def _once(reader: MeterReader) -> int:
    try:
        started = time.monotonic()
        sample = await reader.read_sample(tries=3)
        took = sample.t - started
    except MeterReadError as e:
        print(f"meter: {e}", file=sys.stderr)
        return 1
    finally:
        await reader.stop()
    print(f"meter {reader.config.profile} at {reader.where}: read in {took * 1000:.0f} ms")
    print(_table(sample, reader.site_phases))
    return 0


async def _watch(reader: MeterReader) -> int:
    await reader.start()
    print(f"meter {reader.config.profile} at {reader.where}, polling every {reader.poll_interval_s:g} s; "
          "Ctrl-C stops")
    try:
        while True:
            await asyncio.sleep(reader.poll_interval_s)
            sample, age = reader.last_sample, reader.age()
            if sample is None:
                state = reader.fault.detail if reader.fault else "waiting for the first reading"
                print(f"no reading yet: {state}")
                continue
            phases = "  ".join(f"{SITE_PHASES[p]} {sample.current_a[p]:7.2f} A {sample.voltage_v[p]:5.1f} V "
                               f"{sample.power_w[p]:8.0f} W" for p in range(reader.site_phases))
            fault = f"  FAULT {reader.fault.kind.value}: {reader.fault.detail}" if reader.fault else ""
            print(f"{phases}  age {age:5.2f} s{fault}", flush=True)
    finally:
        await reader.stop()


def _table(sample: MeterSample, phases: int) -> str:
    rows = ["phase   current A   voltage V     power W"]
    for p in range(phases):
        rows.append(f"{SITE_PHASES[p]:5} {sample.current_a[p]:11.2f} {sample.voltage_v[p]:11.1f} "
                    f"{sample.power_w[p]:11.0f}")
    rows.append("(current and power: + import from the grid, - export)")
    return "\n".join(rows)
