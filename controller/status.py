"""`evfuse status [--json]`: what the running service sees, over a unix socket.

The service serves one JSON snapshot per connection on status.sock in its runtime directory
(systemd's RUNTIME_DIRECTORY; started by hand: /run/evfuse where it may make it, else a
per-user one, see runtime_dirs(); EVFUSE_STATUS_SOCKET or --socket override it). The snapshot is built inside the event loop, so it is one consistent moment.
The same snapshot feeds the sd_notify STATUS= line and the status LED.

JSON fields (version 1):
  uptime_s, cycles, paused (why all charging is paused, or null), slow_mode (bool),
  meter: where, state ("ok" | "lost" | "no sample yet"), sample_age_s, fault, rejections,
         mode_fault (a meter setting that changes what its readings mean, or null)
  site: phases, fuse_a, limit_a
  phases[]: phase, load_a (meter), household_a, headroom_a, limit_a
  chargers[]: id ("twin/2" for a connector), charger (its charger's id), connector (its id, or
              null for a charger without connector tables), protocol, connected, state, car, limit_a,
              acknowledged_a, draw_a (per line or null), reason, compliant, fallback_protected, device
              (what the driver found out about the device: limit_unit, failsafe, watchdog,
              clock_offset_s, profile (the OCPP profile form it takes), station_cap,
              unknown_connectors, where known), mode (with any override)
  loads[]: id, driver, connected, state ("on" | "off" | "offline" | "fault" | "unknown"), limit_a,
           on_a, power_w (configured), measured_w (its own, or null), learned_w (the meter's step
           when it switched, for a load that measures nothing, or null), reason, cause, mode,
           priority, min_on_s, min_off_s, fallback_protected, lease
  overloads: {constraint: excess A}, faults[], events[]: {t, text}
  overrides: {target: {key: value}} set over MQTT or the web page ("site": {"pause": true})
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import tempfile
import time
from datetime import datetime

from controller.core.causes import Cause
from controller.loads import switch_reason
from controller.model import SITE_PHASES, CarState

log = logging.getLogger("evfuse.status")

VERSION = 1
# What a driver found out about the device itself (firmware variants), shown under its line.
DEVICE_NOTES = ("limit_unit", "failsafe", "watchdog", "clock_offset_s",
                # OCPP: the profile form it takes (a twin: per connector + station cap, or the cap
                # alone), and connectors it reports that the config does not have
                "profile", "station_cap", "unknown_connectors", "stale_profiles")
SOCKET_NAME = "status.sock"
CLIENT_TIMEOUT_S = 5.0


SYSTEM_RUNTIME_DIR = "/run/evfuse"


def runtime_dirs(environ=os.environ) -> list[str]:
    """Where the status socket may live, in the order the service tries them and `evfuse
    status` looks: systemd's RUNTIME_DIRECTORY; else /run/evfuse (made when allowed, e.g.
    `evfuse run` started by hand as root), then a per-user one ($XDG_RUNTIME_DIR/evfuse, or
    /tmp/evfuse-UID without it)."""
    systemd = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if systemd:
        return [systemd]
    xdg = environ.get("XDG_RUNTIME_DIR", "")
    own = os.path.join(xdg, "evfuse") if xdg else os.path.join(tempfile.gettempdir(), f"evfuse-{os.geteuid()}")
    return [SYSTEM_RUNTIME_DIR, own]


def socket_path(explicit: str | None = None, environ=os.environ) -> str:
    """The socket `evfuse status` asks: the first of runtime_dirs() that has one."""
    if explicit:
        return explicit
    if environ.get("EVFUSE_STATUS_SOCKET"):
        return environ["EVFUSE_STATUS_SOCKET"]
    candidates = [os.path.join(d, SOCKET_NAME) for d in runtime_dirs(environ)]
    return next((c for c in candidates if os.path.exists(c)), candidates[0])


def serving_path(environ=os.environ) -> str:
    """The socket the service serves on: in the first of runtime_dirs() it may use, made if
    missing. A per-user directory must be ours (no one else may plant a socket for us)."""
    if environ.get("EVFUSE_STATUS_SOCKET"):
        return environ["EVFUSE_STATUS_SOCKET"]
    dirs = runtime_dirs(environ)
    for i, d in enumerate(dirs):
        per_user = i > 0
        try:
            os.makedirs(d, mode=0o700 if per_user else 0o755, exist_ok=True)
            if per_user and os.stat(d).st_uid != os.geteuid():
                continue
        except OSError:
            continue
        if os.access(d, os.W_OK | os.X_OK):
            return os.path.join(d, SOCKET_NAME)
    return os.path.join(dirs[0], SOCKET_NAME)  # StatusServer.start says why it cannot serve


# ---------------------------------------------------------------------- the snapshot

def charger_state(online: bool, car: CarState, limit_a: float, cause: Cause | None, fallback: bool) -> str:
    """One word an installer understands; the reason says the rest."""
    if not online:
        return "offline"
    if car is CarState.FAULT:
        return "fault"
    if car is CarState.NO_CAR:
        return "no car"
    if limit_a <= 0:
        return "paused"
    if fallback:
        return "fallback"
    if cause is Cause.OVERLOAD_CUT:
        return "overload cut"
    if cause in (Cause.SHARE, Cause.RAMPING, Cause.STARTING, Cause.RAMP_HOLD, Cause.WAIT_FOLLOW,
                 Cause.WAIT_TURN):
        return "limited"
    return "charging" if car is CarState.CHARGING else "ready"


def snapshot(controller, slow_mode: bool = False) -> dict:
    now = time.monotonic()
    site, decision, meter = controller.site, controller.decision, controller.meter
    age = meter.age(now)
    sample = meter.last_sample
    meter_state = "no sample yet" if age is None else "lost" if age > site.stale_after_s else "ok"
    phases = []
    for p in range(site.phases):
        phases.append({
            "phase": SITE_PHASES[p],
            "load_a": round(sample.current_a[p], 2) if sample else None,
            "household_a": round(decision.household_a[p], 2) if decision else None,
            "headroom_a": round(decision.headroom_a[p], 2) if decision else None,
            "limit_a": site.limit_a,
        })
    chargers, loads = [], []
    for i, driver in enumerate(controller.drivers):
        if i < len(site.chargers) and site.chargers[i].kind == "switch":
            loads.append(load_entry(controller, i, driver))
            continue
        st = driver.status()
        reading = controller.readings[i] if i < len(controller.readings) else None
        planned = decision.chargers[i] if decision else None
        limit = planned.limit_a if planned else None
        reason = planned.reason if planned else ""
        cause = planned.cause if planned else None
        online = reading.online if reading else st.connected
        car = reading.car if reading else CarState.UNKNOWN
        draw = reading.draw_lines_a if reading else None
        spec = site.chargers[i] if i < len(site.chargers) else None
        chargers.append({
            "id": driver.id, "protocol": st.protocol, "connected": st.connected,
            # a connector of a charger with several: the charger's id and its connector id
            "charger": (spec.charger_id or spec.id) if spec else driver.id,
            "connector": spec.connector or None if spec else None,
            "state": charger_state(online, car, limit or 0.0, cause,
                                   bool(decision and decision.fallback)),
            "car": car.value, "limit_a": limit, "acknowledged_a": st.limit_a,
            "draw_a": [round(x, 2) for x in draw] if draw is not None else None,
            "reason": reason, "cause": cause.value if cause else None, "compliant": st.compliant,
            "fallback_protected": st.fallback_protected,
            "device": {k: st.notes[k] for k in DEVICE_NOTES if k in st.notes},
            "mode": site.chargers[i].mode if i < len(site.chargers) else None,  # overrides included
        })
    return {
        "version": VERSION,
        "uptime_s": round(now - controller.started_at, 1),
        "cycles": controller.cycles,
        "paused": controller.pause_reason,
        "slow_mode": slow_mode,
        "meter": {
            "where": meter.where, "state": meter_state,
            "sample_age_s": None if age is None else round(age, 2),
            "fault": meter.fault.kind.value if meter.fault else None,
            "rejections": {k.value: n for k, n in meter.rejections.items()},
            "mode_fault": meter.mode_fault,
        },
        "site": {"phases": site.phases, "fuse_a": site.fuse_a, "limit_a": site.limit_a},
        "phases": phases,
        "chargers": chargers,
        "loads": loads,
        "overloads": {k: round(v, 2) for k, v in (decision.overloads if decision else {}).items()},
        "faults": controller.faults,
        "events": [{"t": e.t, "text": e.text} for e in controller.events],
        "overrides": controller.overrides,
        "wiring": controller.learned.status(controller.config) if hasattr(controller, "learned") else {},
    }


def load_entry(controller, i: int, driver) -> dict:
    """One switchable load: switched on or off, its draw (measured, else what the meter showed
    when it switched: learned), why."""
    st, spec, decision = driver.status(), controller.site.chargers[i], controller.decision
    reading = controller.readings[i] if i < len(controller.readings) else None
    planned = decision.chargers[i] if decision else None
    online = reading.online if reading else st.connected
    on = st.notes.get("switched")
    state = "offline" if not online else "fault" if reading and reading.car is CarState.FAULT else on or "unknown"
    learned = getattr(controller, "learned_w", {}).get(spec.id)
    return {
        "id": spec.id, "driver": st.protocol, "connected": st.connected, "state": state,
        "limit_a": planned.limit_a if planned else None, "on_a": spec.max_a, "power_w": spec.power_w,
        "measured_w": reading.power_w if reading else None,
        "learned_w": None if learned is None else round(learned),
        "reason": switch_reason(planned) if planned else "", "cause": planned.cause.value if planned else None,
        "mode": spec.mode, "priority": spec.priority, "min_on_s": spec.min_on_s, "min_off_s": spec.min_off_s,
        "fallback_protected": st.fallback_protected, "lease": st.notes.get("lease", ""),
    }


def summary_line(snap: dict) -> str:
    """One line for systemctl status (sd_notify STATUS=)."""
    meter = f"meter {snap['meter']['state']}"
    loads = " ".join(f"{p['phase']} {p['load_a']:.1f}/{snap['site']['fuse_a']:g}"
                     for p in snap["phases"] if p["load_a"] is not None)
    counts: dict[str, int] = {}
    for c in snap["chargers"]:
        counts[c["state"]] = counts.get(c["state"], 0) + 1
    chargers = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no chargers"
    on = sum(1 for x in snap.get("loads", ()) if x["state"] == "on")
    if snap.get("loads"):
        chargers += f"; loads {on}/{len(snap['loads'])} on"
    parts = [meter + (f" ({loads} A)" if loads else ""), chargers]
    if snap["paused"]:
        parts.insert(0, snap["paused"].upper())
    if snap["faults"]:
        parts.append(f"{len(snap['faults'])} fault(s)")
    return "; ".join(parts)


# ---------------------------------------------------------------------- the server

class StatusServer:
    """Serves snapshot(get_controller()) to every connection. The controller is fetched per
    request because a config reload may replace it."""

    def __init__(self, path: str, get_controller, get_slow_mode=lambda: False):
        self.path = path
        self.get_controller = get_controller
        self.get_slow_mode = get_slow_mode
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> bool:
        """False (and one log line) when the socket cannot be made: status is a convenience,
        never a reason not to control the chargers."""
        if _answers(self.path):
            log.warning("status socket %s belongs to another running evfuse: not taking it over",
                        self.path, extra={"FAULT": "status-socket"})
            return False
        try:
            if os.path.exists(self.path):  # left behind by a killed process
                os.unlink(self.path)
            self._server = await asyncio.start_unix_server(self._serve, path=self.path)
            os.chmod(self.path, 0o660)  # the evfuse group (and root) may ask
        except OSError as e:
            log.warning("status socket %s unavailable (%s): `evfuse status` will not work",
                        self.path, e, extra={"FAULT": "status-socket"})
            return False
        log.info("status on %s", self.path)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            snap = snapshot(self.get_controller(), self.get_slow_mode())
            writer.write(json.dumps(snap).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), CLIENT_TIMEOUT_S)
        except Exception as e:  # a broken client or a snapshot bug must not hurt the service
            log.warning("status request failed: %s", e)
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


# ---------------------------------------------------------------------- the command

def register(sub) -> None:
    p = sub.add_parser("status", help="show what the running service sees")
    p.add_argument("--json", action="store_true", help="machine-readable snapshot")
    p.add_argument("--socket", help="status socket (default $EVFUSE_STATUS_SOCKET, else "
                                    "$RUNTIME_DIRECTORY/status.sock, else /run/evfuse/status.sock, else "
                                    "$XDG_RUNTIME_DIR/evfuse/status.sock)")
    p.set_defaults(func=status_command)


class NotRunning(Exception):
    pass


def fetch(path: str, timeout: float = CLIENT_TIMEOUT_S) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise NotRunning(f"evfuse is not running (no status socket at {path}: {e.strerror}).\n"
                             "Check: systemctl status evfuse; journalctl -u evfuse -n 50") from None
        except PermissionError:
            raise NotRunning(f"no permission to read {path}: run `sudo evfuse status`, or add "
                             "yourself to the evfuse group (sudo adduser $USER evfuse, log in again)"
                             ) from None
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def status_command(args) -> int:
    path = socket_path(args.socket)
    try:
        snap = fetch(path)
    except NotRunning as e:
        print(e, file=sys.stderr)
        return 3  # LSB "program is not running"
    except (OSError, ValueError) as e:
        print(f"evfuse status: no answer from {path}: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(snap, indent=2))
    else:
        print(render(snap))
    return 0


def _a(x) -> str:
    return "-" if x is None else f"{x:.1f}"


def render(snap: dict) -> str:
    up = int(snap["uptime_s"])
    m = snap["meter"]
    age = "" if m["sample_age_s"] is None else f", last sample {m['sample_age_s']:.1f} s ago"
    lines = [f"evfuse: up {up // 3600} h {up % 3600 // 60:02d} min, {summary_line(snap)}",
             f"meter:  {m['state']} ({m['where']}{age})"
             + (f", fault: {m['fault']}" if m["fault"] else "")]
    if m.get("mode_fault"):
        lines.append(f"METER SETTING: {m['mode_fault']}")
    if snap["paused"]:
        where = "press the button again" if "button" in snap["paused"] else "resume it there"
        lines.append(f"PAUSED: {snap['paused']} ({where} to resume)")
    if snap["slow_mode"]:
        loads = ", switchable loads as they are" if snap.get("loads") else ""
        lines.append(f"SLOW MODE: every charger capped at the fallback current{loads} (long press to undo)")
    lines += ["", f"phase  load A  household A  headroom A  limit A (fuse {snap['site']['fuse_a']:g})"]
    for p in snap["phases"]:
        lines.append(f"{p['phase']:<5}  {_a(p['load_a']):>6}  {_a(p['household_a']):>11}  "
                     f"{_a(p['headroom_a']):>10}  {p['limit_a']:>7.1f}")
    lines += ["", f"{'charger':<12} {'protocol':<10} {'link':<5} {'state':<12} {'limit A':>7}  "
                  f"{'draw A':<15} reason"]
    for c in snap["chargers"]:
        draw = "/".join(f"{x:.1f}" for x in c["draw_a"]) if c["draw_a"] else "-"
        flags = "" if c["compliant"] else "  NOT FOLLOWING ITS LIMIT"
        lines.append(f"{c['id']:<12} {c['protocol']:<10} {'up' if c['connected'] else 'down':<5} "
                     f"{c['state']:<12} {_a(c['limit_a']):>7}  {draw:<15} {c['reason']}{flags}")
        device = c.get("device") or {}
        if device:
            lines.append(" " * 13 + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in device.items()))
    if snap.get("loads"):
        lines += ["", f"{'load':<12} {'driver':<12} {'link':<5} {'state':<8} {'draw W':>7}  {'lease':<6} reason"]
        for x in snap["loads"]:
            if x["measured_w"] is not None:
                draw = f"{x['measured_w']:.0f}"
            elif x["learned_w"] is not None:
                draw = f"{x['learned_w']:.0f}*"  # learned from the meter's step at switching
            else:
                draw = f"({x['power_w']:.0f})"  # as configured
            lines.append(f"{x['id']:<12} {x['driver']:<12} {'up' if x['connected'] else 'down':<5} "
                         f"{x['state']:<8} {draw:>7}  {'yes' if x['fallback_protected'] else 'NONE':<6} "
                         f"{x['reason']}")
        lines.append(" " * 13 + "draw: measured; * learned from the meter at switching; (configured power_w)")
    overrides = snap.get("overrides") or {}
    lines += ["", "overrides (MQTT / web page, over the config file): " + ("none" if not overrides else "")]
    lines += [f"  {target}.{key} = {json.dumps(value)}"
              for target, keys in sorted(overrides.items()) for key, value in sorted(keys.items())]
    wiring = snap.get("wiring") or {}
    if wiring.get("chargers") or wiring.get("clamps"):
        lines += ["", "wiring as measured (configured -> detected):"]
        lines += [f"  {cid}: \"{w['configured']}\" -> \"{w['detected']}\" ({w['strength']}, "
                  f"{w['samples']} changes, score {w['score']})" for cid, w in sorted(wiring["chargers"].items())]
        lines += [f"  clamp on phase {c['phase']} reads backwards ({c['strength']}): {c['fix']}"
                  for c in wiring.get("clamps", [])]
    lines += ["", "faults: " + ("none" if not snap["faults"] else "")]
    lines += [f"  {f}" for f in snap["faults"]]
    if snap["events"]:
        lines += ["", "recent:"]
        lines += [f"  {datetime.fromtimestamp(e['t']).strftime('%H:%M:%S')}  {e['text']}"
                  for e in snap["events"][-6:]]
    return "\n".join(lines)
