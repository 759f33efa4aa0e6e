"""The running controller: meter sample -> safety core -> commands to every charger.

    controller = Controller(config)
    await controller.start()      # chargers at fallback first; OCPP listens; meter polls
    ...                           # every valid meter sample runs one control cycle
    await controller.stop()       # planned stop: every charger keeps its limit under a short
                                  # lease (core.json records it for the next start), links closed

One control cycle (`_cycle`), on every meter sample and on a ticker when the meter is silent:
  1. snapshot every charger's reading (no I/O),
  2. decide() — the pure core: fallback when the meter is stale, sharing, fast-path cuts,
     ramps, pauses (controller/core/decide.py),
  3. log what changed and why, and fault episodes when they start and end,
  4. send every changed limit at once, each charger in its own task with its own timeout,
     so a slow or dead charger never holds up the others or the next sample.
The OCPP lease renewals and Modbus keep-alives run inside the drivers, beside this loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass

from controller import corestate
from controller import gc_policy
from controller import statedir
from controller.chargers.base import ChargerDriver
from controller.chargers.modbus.driver import ModbusCharger, ModbusSettings, modbus_chargers
from controller.chargers.ocpp import CentralSystem
from controller.chargers.ocpp.driver import OcppCharger
from controller.config import Config
from controller.core import resume, switch
from controller.core.causes import Cause
from controller.core.decide import Decision, decide, initial_state, remap_state
from controller.core.draw import ATTRIBUTION_SLACK_S
from controller.core.phases import phases_in_use
from controller.core.site import SiteModel
from controller.core.wiring import conclude, remapped
from controller.learned_wiring import LearnedWiring
from controller.loads import load_drivers, relink as relink_loads, switch_reason
from controller.loads.base import SwitchDriver
from controller.meter.reader import MeterReader
from controller.model import ChargerReading, MeterSample
from controller.overrides import SITE, OverrideError, Overrides, pause_reason  # noqa: F401 (OverrideError: callers')
from controller.reload import ReloadPlan, plan

log = logging.getLogger("evfuse.runtime")

COMMAND_TIMEOUT_S = 10.0  # one charger's apply(); the next decision does not wait for it
STOP_TIMEOUT_S = 8.0  # leaving every charger (short lease or fallback) on shutdown, all together
RECENT_EVENTS = 12
SAVE_AFTER_CHANGE_S = 1.0  # core.json follows a limit change within this ...
SAVE_EVERY_S = 15.0  # ... and leases renewed without one at least this often
LEARNED_FILE = "loads.json"  # learned draw of switchable loads that measure nothing


@dataclass(frozen=True)
class Event:
    t: float  # wall clock, for display
    text: str


@dataclass(frozen=True)
class FaultStart:
    """A fault episode as it began, for readers beside the loop (the web page's plot marks)."""
    t: float  # wall clock
    key: str  # "meter", "overload:<constraint>", "offline:<id>", "compliance:<id>", "command:<id>"
    text: str


class Controller:
    def __init__(self, config: Config, clock=time.monotonic):
        self.config = config  # as the file says; the core runs on effective_config
        self.clock = clock
        self._overrides = Overrides.load(config)
        self.cap_site = None  # e.g. the button's slow mode: SiteModel -> SiteModel, kept on rebuilds
        self.learned = LearnedWiring(config)  # wiring the meter showed, kept in the state directory
        self._evidence = None  # the core's wiring evidence last looked at
        self.site = SiteModel.from_config(self.effective_config)
        self.site = remapped(self.site, self.learned.detected())
        # What the last process left the chargers holding (core.json): a planned restart resumes it.
        self.state = initial_state(self.site, corestate.load(config, clock(), time.time()), clock())
        self.central, self.drivers = build_drivers(config)
        self._quiet = self._keep_quiet()
        self._saved: dict | None = None  # core.json as last written
        self._saved_at = -1e9
        self._save_due = False
        self.meter = MeterReader(config.meter, config.site.phases, on_sample=self._on_sample)
        self.ocpp_port: int | None = None
        self.decision: Decision | None = None
        self.readings: list[ChargerReading] = []
        self.cycles = 0  # completed control cycles: the systemd watchdog feeds on this
        self.started_at = clock()
        self.user_pause: str | None = None  # "paused by button": every charger at 0
        self.events: collections.deque[Event] = collections.deque(maxlen=RECENT_EVENTS)
        self._last_sample: MeterSample | None = None
        self._last_cycle_at = -1e9
        self._sending: dict[str, asyncio.Task] = {}
        self._ticker: asyncio.Task | None = None
        self._faults: dict[str, str] = {}  # active fault key -> description
        # Every fault start, newest last; fault_count says how many there were in all, so a
        # reader polling once a second finds those it has not seen even when several came.
        self.fault_starts: collections.deque[FaultStart] = collections.deque(maxlen=64)
        self.fault_count = 0
        self._overloaded: set[str] = set()  # constraints with an overload fault open
        self._net_open: dict[str, tuple[str, ...]] = {}  # net fault key -> loads it had cut
        self.observers: list = []  # called after every cycle, e.g. MqttBridge.changed: no I/O there
        # What a switchable load that measures nothing drew when it last switched on, as the
        # meter showed it (W, by id): kept across restarts, shown in status.
        saved = statedir.read_json(LEARNED_FILE)
        self.learned_w: dict[str, float] = {k: float(v) for k, v in (saved or {}).items()
                                            if isinstance(v, (int, float)) and not isinstance(v, bool)}

    # ------------------------------------------------------------------ life cycle

    async def start(self, ocpp_host: str | None = None, ocpp_port: int | None = None) -> None:
        self._cycle()  # no sample yet: every charger at fallback before anything else
        if self.central is not None:
            self.ocpp_port = await self.central.start(ocpp_host, ocpp_port)
        for driver in self.drivers:
            await driver.start()
        await self.meter.start()
        self._ticker = asyncio.create_task(self._tick_forever(), name="control ticker")
        gc_policy.settle()  # what exists now lives as long as the process (controller/gc_policy.py)
        loads = f", {len(self.config.loads)} switchable load(s)" if self.config.loads else ""
        self._note(f"started: {len(self.config.chargers)} charger(s){loads}, fuse {self.config.site.fuse_a:g} A, "
                   f"meter {self.meter.where}")

    async def stop(self) -> None:
        """A planned stop (SIGTERM): every charger keeps its limit under a short lease it enforces
        itself (OCPP: the dynamic profile re-sent valid ocpp.stop_lease_s; Modbus: its own
        watchdog), or is left at its fallback where nothing would bound it; bounded in time.
        Then core.json records what each holds until when, and everything closes. A next
        process resumes from it; if none comes, every charger falls back by itself."""
        if self._ticker is not None:
            self._ticker.cancel()
        await self.meter.stop()
        for task in self._sending.values():
            task.cancel()
        stop_lease = min(self.config.ocpp.stop_lease_s, self.config.ocpp.lease_s)
        leaving = {asyncio.ensure_future(d.leave(self.site.fallback_a(spec), stop_lease)): d
                   for d, spec in zip(self.drivers, self.site.chargers)}
        done, pending = await asyncio.wait(leaving, timeout=STOP_TIMEOUT_S) if leaving else ((), ())
        for task in pending:
            task.cancel()
        if pending:
            log.warning("%s did not confirm their state before shutdown; they fall back by themselves "
                        "when their lease or watchdog runs out (a load without one stays as it is)",
                        ", ".join(_who(leaving[t]) for t in pending), extra={"FAULT": "shutdown-timeout"})
        self._save_state(planned=True)
        if self.central is not None:
            await self.central.stop()
        loads = ("; a Shelly that is on stays on under its shortened lease, relays and pins are off"
                 if self.config.loads else "")
        log.info(f"stopped: chargers keep their limits at most {stop_lease:g} s (OCPP) or until their "
                 f"watchdog (Modbus), then fall back by themselves unless evfuse starts again{loads}",
                 extra={"STATE": "stopped"})

    async def retune(self, config: Config) -> ReloadPlan:
        """Apply a reloaded config part by part (controller/reload.py): the new site, the
        drivers of added and relinked chargers and the core memory of every kept one (by id)
        are swapped in at once and decided on; only then are removed drivers retired and new
        ones started, and the meter or OCPP server restarted if their settings changed.
        Chargers the change does not concern keep their link and their limit."""
        change = plan(self.config, config)
        drivers = {d.id: d for d in self.drivers}
        fallback = {spec.id: self.site.fallback_a(spec) for spec in self.site.chargers}
        retiring = [drivers.pop(i) for i in change.removed + change.relinked]
        new_central = None
        if self.central is None and any(c.protocol == "ocpp" for c in config.chargers):
            self.central = new_central = CentralSystem(config)
            drivers.update((i, d) for i, d in self.central.drivers.items())
        elif self.central is not None:
            for i in change.removed + change.relinked:
                if i in self.central.drivers:
                    self.central.remove(i)
        fresh = []
        modbus = ModbusSettings.of(config)
        for c in config.chargers:
            if c.id in drivers:
                drivers[c.id].config = c  # new sharing keys; the link stays
            elif c.protocol == "ocpp":
                drivers[c.id] = self.central.add(c)
            else:
                drivers[c.id] = ModbusCharger(c, modbus)
            if c.id in change.added or c.id in change.relinked:
                fresh.append(drivers[c.id])
        for i in change.removed + change.relinked:
            if (task := self._sending.pop(i, None)) is not None:
                task.cancel()
        for i in change.removed:
            for key in (f"offline:{i}", f"compliance:{i}", f"command:{i}"):
                self._faults.pop(key, None)
        self.config = config
        for cid in self.learned.refit(config):
            self._note(f"{cid}: phases changed in the config: the wiring learned for it is cleared",
                       CHARGER_ID=cid, STATE="wiring-cleared")
        for why in self._overrides.refit(config):
            self._note(f"override dropped by the reload: {why}", level=logging.WARNING, FAULT="override")
        loads, gone, new_loads = relink_loads(config, [d for d in self.drivers if isinstance(d, SwitchDriver)])
        retiring += gone
        fresh += new_loads
        for d in gone:  # a load removed or reconnecting: nothing more goes to its old driver
            if (task := self._sending.pop(d.id, None)) is not None:
                task.cancel()
            if all(x.id != d.id for x in config.loads):
                for key in (f"offline:{d.id}", f"compliance:{d.id}", f"command:{d.id}"):
                    self._faults.pop(key, None)
        self.drivers = [drivers[c.id] for c in config.chargers] + loads
        old_site = self.site
        self._rebuild()
        self.state = remap_state(old_site, self.site, self.state)
        relinked = [d.id for d in new_loads if d.id in {x.id for x in gone}]
        what = [f"{w} load(s) {', '.join(ids)}" for w, ids in (
            ("added", [d.id for d in new_loads if d.id not in relinked]),
            ("removed", [d.id for d in gone if d.id not in relinked]), ("reconnecting", relinked)) if ids]
        described = change.describe() if change.describe() != "limits and tuning only" or not what else ""
        self._note(f"config reloaded: {'; '.join(filter(None, [described] + what))}", STATE="reloaded")
        self._cycle()
        await self._swap_parts(change, retiring, fallback, fresh, new_central)
        return change

    async def _swap_parts(self, change: ReloadPlan, retiring, fallback, fresh, new_central) -> None:
        """The I/O of a reload, after the core already runs on the new site."""
        closing = [CentralSystem.retire(d, fallback[d.id]) if isinstance(d, OcppCharger)
                   else d.close(fallback[d.id]) for d in retiring]
        if closing:
            done, pending = await asyncio.wait([asyncio.ensure_future(c) for c in closing],
                                               timeout=STOP_TIMEOUT_S)
            for task in pending:
                task.cancel()
        central = self.central
        if central is not None and not central.drivers:
            self.central = None
            await central.stop()
        elif new_central is not None:
            self.ocpp_port = await new_central.start()
        elif central is not None and change.ocpp_listener:
            self.ocpp_port = await central.restart(self.config)
        elif central is not None and change.ocpp_links:
            central.retune(self.config)
        for driver in fresh:
            await driver.start()
        if change.meter:
            await self.meter.stop()
            self.meter = MeterReader(self.config.meter, self.config.site.phases, on_sample=self._on_sample)
            await self.meter.start()

    def set_user_pause(self, reason: str | None) -> None:
        """Pause (reason) or resume (None) all charging, e.g. from the button."""
        self.user_pause = reason
        self._note(f"all charging {'paused: ' + reason if reason else 'resumed'}")
        self._cycle()

    # ------------------------------------------------------------------ overrides (MQTT, web)

    @property
    def pause_reason(self) -> str | None:
        """Why all charging is held: the button's pause, else an override's, else None.
        Each is released where it was set (the button, or MQTT / the web page)."""
        source = self._overrides.pause_source()
        return self.user_pause or (pause_reason(source) if source else None)

    @property
    def effective_config(self) -> Config:
        """The config file with the overrides in place: what the core runs on."""
        return self._overrides.apply(self.config)

    @property
    def overrides(self) -> dict:
        """{target: {key: value}}, e.g. {"garage": {"weight": 2.0}, "site": {"pause": True}}."""
        return self._overrides.as_dict()

    def set_override(self, target: str, key: str, value, source: str) -> None:
        """Override one key of the config file at run time (value None clears it): a
        charger's mode, priority, weight or max_a, or ("site", "pause", bool). Raises
        OverrideError and changes nothing when the target, key or value is not allowed.
        Kept in the state directory; applies from the next decision, no reconnect."""
        if not self._overrides.set(self.config, target, key, value, source):
            return
        shown = "cleared" if value is None else f"= {value}"
        fields = {"OVERRIDE": f"{key}={'' if value is None else value}", "SOURCE": source}
        if target == SITE:  # the pause: logged like the button's
            held = self.pause_reason  # the button's pause may still hold
            what = (f"paused: {pause_reason(source)}" if value else
                    f"{'resumed' if held is None else 'still ' + held} (pause from {source} released)")
            self._note(f"all charging {what}", STATE="paused" if held else "resumed", **fields)
        else:
            who = {"LOAD_ID": target} if any(x.id == target for x in self.config.loads) else {"CHARGER_ID": target}
            self._note(f"{target}: {key} {shown} (override from {source})", **who, **fields)
        self.rebuild_site()

    def clear_overrides(self, source: str) -> None:
        """Back to the config file for every key (and no override pause)."""
        if self._overrides.clear():
            self._note(f"every override cleared (from {source})", OVERRIDE="cleared", SOURCE=source)
            self.rebuild_site()

    def rebuild_site(self) -> None:
        """Re-derive the core's site from config + overrides (+ cap_site) and decide at once.
        The chargers and their order stay the same, so the core's memory stays valid."""
        self._rebuild()
        self._cycle()

    def _rebuild(self) -> None:
        site = remapped(SiteModel.from_config(self.effective_config), self.learned.detected())
        self.site = self.cap_site(site) if self.cap_site else site

    # ------------------------------------------------------------------ the control loop

    def _on_sample(self, sample: MeterSample) -> None:
        self._last_sample = sample
        self._cycle()

    async def _tick_forever(self) -> None:
        """Runs the cycle when no sample has for a poll interval: notices a silent meter
        (stale -> fallback) and lets ramps and delays progress. Keeps core.json current."""
        while True:
            period = min(self.meter.poll_interval_s, 0.5)  # of the meter now: a reload may change it
            await asyncio.sleep(period)
            if self.clock() - self._last_cycle_at >= period:
                self._cycle()
            self._save_if_due()

    # ------------------------------------------------------------------ core.json (a restart resumes it)

    def _keep_quiet(self) -> list[ChargerDriver]:
        """Drivers of resumed chargers stay quiet until the first valid sample (see
        controller/core/resume.py): returns them."""
        quiet = []
        for driver, mem in zip(self.drivers, self.state.loads):
            if resume.carried(mem):
                driver.stay_quiet(mem.resume.until)
                quiet.append(driver)
        return quiet

    def _release_quiet(self, decision: Decision) -> None:
        if decision.fallback is None:  # a valid sample (or the user's hold) decided
            for driver in self._quiet:
                driver.stay_quiet(None)
            self._quiet = []

    def _save_state(self, planned: bool) -> None:
        data = corestate.snapshot(self.site, self.state.loads, self.drivers, self.config, planned,
                                  self.clock(), time.time())
        self._write_state(data)

    def _write_state(self, data: dict) -> None:
        if corestate.save(data):
            self._saved = data
        self._saved_at = self.clock()
        self._save_due = False

    def _save_if_due(self) -> None:
        """Written within SAVE_AFTER_CHANGE_S of a limit change, else every SAVE_EVERY_S when
        a lease moved on: a crash leaves the next process a count of what every charger holds."""
        since = self.clock() - self._saved_at
        if not (self._save_due and since >= SAVE_AFTER_CHANGE_S or since >= SAVE_EVERY_S):
            return
        data = corestate.snapshot(self.site, self.state.loads, self.drivers, self.config, False,
                                  self.clock(), time.time())
        if {**data, "saved_at": None} != {**(self._saved or {}), "saved_at": None}:
            self._write_state(data)
        else:  # nothing new: the SD card is spared
            self._saved_at, self._save_due = self.clock(), False

    def _cycle(self) -> None:
        now = self.clock()
        self.readings = [driver.reading(now) for driver in self.drivers]
        previous = self.decision
        decision = decide(self.site, self.state, self._last_sample, self.readings, now,
                          hold=self.pause_reason)
        self.state, self.decision = decision.state, decision
        self._report(previous, decision)
        self._use_phases(decision)
        self._learn_wiring(decision)
        for driver, charger, reading in zip(self.drivers, decision.chargers, self.readings):
            if charger.changed:
                self._send(driver, charger.limit_a, reading.online)
                self._save_due = True
        for i in decision.ask_reports:  # the meter put their draw in doubt (core/ask.py)
            self.drivers[i].ask_report()
        if self._quiet:
            self._release_quiet(decision)
        self._learn_switches(now)
        self._last_cycle_at = now
        self.cycles += 1
        for observer in self.observers:
            observer()

    def _learn_wiring(self, decision: Decision) -> None:
        """The core's wiring evidence (controller/core/wiring.py), looked at when it changed: say
        each conclusion once, and run on a wiring the meter shows strongly."""
        evidence = decision.state.wiring
        if evidence is self._evidence:
            return
        self._evidence = evidence
        remap, lines = self.learned.update(self.config, conclude(self.site, evidence), decision.state.flips)
        for level, text, fields in lines:
            self._note(text, level=level, **fields)
        if remap:
            old = self.site
            self._rebuild()
            self.state = remap_state(old, self.site, self.state)

    def _use_phases(self, decision: Decision) -> None:
        """Tell drivers that convert amps to watts how many phases the car is known to use
        (core/phases.py; None: not known, a W limit assumes the fewest)."""
        state = decision.state
        counts = phases_in_use(self.site, state.active, state.wiring)
        for driver, n in zip(self.drivers, counts):
            use = getattr(driver, "use_phases", None)
            if use is not None:
                use(n)

    def _learn_switches(self, now: float) -> None:
        """A switchable load that reports no power of its own: once its switch-on had time to
        show on the meter, what the core credited to it is its draw (household learning)."""
        settle = self.site.control.response_s + ATTRIBUTION_SLACK_S
        for spec, reading, mem in zip(self.site.chargers, self.readings, self.state.loads):
            if spec.kind != "switch" or reading.power_w is not None or reading.draw_lines_a is not None:
                continue
            if mem.limit_a <= 0 or not settle <= now - mem.changed_at < settle + 1.0:
                continue
            watts = round(sum(mem.seen[p] for p in spec.phase_idx) * self.site.voltage_v)
            if watts > 0 and self.learned_w.get(spec.id) != watts:
                self.learned_w[spec.id] = watts
                statedir.write_json(LEARNED_FILE, self.learned_w)
                self._note(f"load {spec.id}: draws {watts} W when on (learned from the meter; "
                           f"configured {spec.power_w:g} W)", LOAD_ID=spec.id, LEARNED_W=watts)

    def _send(self, driver: ChargerDriver, limit_a: float, online: bool) -> None:
        """Replace whatever is still being sent to this charger with the new limit. An offline
        driver keeps the limit and applies it when the charger connects."""
        old = self._sending.get(driver.id)
        if old is not None and not old.done():
            old.cancel()
        self._sending[driver.id] = asyncio.get_running_loop().create_task(
            self._apply(driver, limit_a, online), name=f"limit {driver.id}")

    async def _apply(self, driver: ChargerDriver, limit_a: float, online: bool) -> None:
        try:
            ok = await asyncio.wait_for(driver.apply(limit_a), COMMAND_TIMEOUT_S)
        except asyncio.TimeoutError:
            ok = False
        except Exception:  # a driver bug must not take the control loop down
            log.exception("%s: sending %s failed", _who(driver), _what(driver, limit_a),
                          extra={**_id_field(driver), "LIMIT_A": limit_a})
            ok = False
        if online or ok:  # an offline charger's silence is already its own fault
            if isinstance(driver, SwitchDriver):
                text = f"load {driver.id} did not switch {'on' if limit_a > 0 else 'off'} (link lost or refused)"
            else:
                text = f"charger {driver.id} did not confirm {limit_a:.1f} A (link lost or refused)"
            self._fault(f"command:{driver.id}", None if ok else text, **_id_field(driver), LIMIT_A=limit_a)

    # ------------------------------------------------------------------ what an installer sees

    def _report(self, previous: Decision | None, decision: Decision) -> None:
        before = {c.id: c.limit_a for c in previous.chargers} if previous else {}  # by id: a reload reorders
        for spec, charger in zip(self.site.chargers, decision.chargers):
            if not charger.changed:
                continue
            old = before.get(charger.id)
            was = "?" if old is None else f"{old:.1f}"
            if spec.kind == "switch":
                self._note_switch(spec, charger, old, decision.state.loads[spec.index],
                                  self.readings[spec.index] if spec.index < len(self.readings) else None)
                continue
            self._note(f"{charger.id}: {was} -> {charger.limit_a:.1f} A ({charger.reason})",
                       CHARGER_ID=charger.id, LIMIT_A=charger.limit_a, OLD_LIMIT_A=old,
                       REASON=charger.reason, CAUSE=charger.cause.value)
        lost = decision.fallback is Cause.METER_LOST and self._last_sample is not None
        why = decision.chargers[0].reason if lost and decision.chargers else "meter lost"
        loads_off = ", every switchable load off" if self.config.loads else ""
        self._fault("meter", lost and f"meter lost: every charger at fallback{loads_off} ({why})",
                    level=logging.ERROR)
        for name in set(decision.overloads) | self._overloaded:
            excess = decision.overloads.get(name)
            self._fault(f"overload:{name}", excess and f"overload on {name}: {excess:.1f} A over the limit",
                        level=logging.WARNING, CONSTRAINT=name, EXCESS_A=round(excess or 0.0, 2))
        self._overloaded = set(decision.overloads)
        self._report_net(decision)
        for spec, reading, driver in zip(self.site.chargers, self.readings, self.drivers):
            if spec.kind == "switch":
                # Not reachable once its driver tried and says why (not while it is still starting).
                why = "" if reading.online else getattr(driver, "fault", "")
                self._fault(f"offline:{spec.id}", why and f"load {spec.id} not reachable: {why}",
                            level=logging.WARNING, LOAD_ID=spec.id)
                self._fault(f"compliance:{spec.id}", None if reading.compliant else
                            f"load {spec.id} draws more than its power_w: counted at what it draws, switched off",
                            level=logging.WARNING, LOAD_ID=spec.id)
                limit = decision.chargers[spec.index].limit_a
                if f"command:{spec.id}" in self._faults and reading.online and reading.acked_a is not None \
                        and (reading.acked_a > 0) == (limit > 0):  # its driver got it through since
                    self._fault(f"command:{spec.id}", None, LOAD_ID=spec.id)
                continue
            self._fault(f"offline:{spec.id}", None if reading.online else f"charger {spec.id} not connected",
                        level=logging.WARNING, CHARGER_ID=spec.id)
            self._fault(f"compliance:{spec.id}", None if reading.compliant else
                        f"charger {spec.id} draws above its limit: counted as fixed load, paused",
                        level=logging.WARNING, CHARGER_ID=spec.id)

    def _report_net(self, decision: Decision) -> None:
        """Invariant 2's net (controller/core/net.py): one fault per phase while an overload the
        model cannot explain stands, naming the loads it cut; one more line when it cuts more."""
        now = {f"net:{f.constraint}": f for f in decision.net}
        for key in set(now) | set(self._net_open):
            f = now.get(key)
            fields = dict(CONSTRAINT=f.constraint, EXCESS_A=round(f.excess_a, 2), CUT=",".join(f.cut)) if f else {}
            if f is not None and key in self._faults and self._net_open.get(key) != f.cut:
                self._faults[key] = f.text()  # same episode, more cut: say so once
                self._note(f.text(), level=logging.ERROR, FAULT=key, FAULT_STATE="updated", **fields)
            else:
                self._fault(key, f and f.text(), level=logging.ERROR, **fields)
        self._net_open = {key: f.cut for key, f in now.items()}

    def _note_switch(self, spec, decision, old: float | None, mem, reading: ChargerReading | None) -> None:
        """A switchable load switched: on or off, and why (LOAD_ID= in the journal). Its first
        command after a start says whether it keeps the state its device was found in."""
        on = decision.limit_a > 0
        first = switch.starting(mem)
        if not first and old is not None and (old > 0) == on:
            return  # the same state sent again (after a reconnect): nothing an installer needs
        why = switch_reason(decision)
        state = "on" if on else "off"
        found = first and reading is not None and reading.acked_a is not None and (reading.acked_a > 0) == on
        what = f"{'kept on' if on else 'stays off'} (found {state} at the start; {why})" if found \
            else f"switched {state} ({why})"
        self._note(f"load {spec.id}: {what}", LOAD_ID=spec.id, SWITCHED=state, LIMIT_A=decision.limit_a,
                   REASON=why, CAUSE=decision.cause.value)

    def _fault(self, key: str, text: str | None, level: int = logging.WARNING, **fields) -> None:
        """Log a fault once when it starts and once when it ends."""
        active = self._faults.get(key)
        if text and active is None:
            self._faults[key] = text
            self.fault_count += 1
            self.fault_starts.append(FaultStart(time.time(), key, text))
            self._note(text, level=level, FAULT=key, FAULT_STATE="started", **fields)
        elif not text and active is not None:
            del self._faults[key]
            self._note(f"ended: {active}", FAULT=key, FAULT_STATE="ended", **fields)

    def _note(self, text: str, level: int = logging.INFO, **fields) -> None:
        self.events.append(Event(time.time(), text))
        log.log(level, text, extra={k: v for k, v in fields.items() if v is not None})

    @property
    def faults(self) -> list[str]:
        return list(self._faults.values())


def _id_field(driver: ChargerDriver) -> dict:
    """The journal field naming a driver: LOAD_ID= for a switchable load, else CHARGER_ID=."""
    return {"LOAD_ID": driver.id} if isinstance(driver, SwitchDriver) else {"CHARGER_ID": driver.id}


def _who(driver: ChargerDriver) -> str:
    return f"load {driver.id}" if isinstance(driver, SwitchDriver) else f"charger {driver.id}"


def _what(driver: ChargerDriver, limit_a: float) -> str:
    """A command in the words of its load: a switch is switched, a charger gets amps."""
    if isinstance(driver, SwitchDriver):
        return f"switch {'on' if limit_a > 0 else 'off'}"
    return f"{limit_a:.1f} A"


def build_drivers(config: Config) -> tuple[CentralSystem | None, list[ChargerDriver]]:
    """The OCPP central system (or None) and one driver per [[charger]], in config order, then
    one per [[load]] (the core's order: SiteModel.from_config)."""
    central = CentralSystem(config) if any(c.protocol == "ocpp" for c in config.chargers) else None
    modbus = {d.id: d for d in modbus_chargers(config)}
    drivers = [central.drivers[c.id] if c.protocol == "ocpp" else modbus[c.id] for c in config.chargers]
    return central, drivers + load_drivers(config)


def retunable(old: Config, new: Config) -> bool:
    """True when `new` changes nothing but limits and tuning: no link is made or dropped
    (Controller.retune applies any valid config; this says whether it touches a link)."""
    return plan(old, new).in_place
