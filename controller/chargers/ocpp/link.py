"""Link: one websocket session with one charger, for either OCPP version.

Two tasks per session:
- the receive loop routes every frame. Malformed frames get the proper CALLERROR, responses
  nobody waits for are dropped, and a per-connection budget throttles a flooding charger so
  it cannot starve the control loop or other chargers;
- the maintainer initialises the charger after it booted (or straight away if it was already
  booted and just reconnected), then keeps the dynamic profile at the wanted limit: at once
  on change, and renewed at half the lease otherwise. Requests to the charger are only ever
  sent from this task, never from a handler (the ocpp package would deadlock).

Only the ocpp package's public API is used: `ChargePoint(id, connection, ...)`,
`route_message(frame)` and `call(...)`. What we add around it (our own CALLERRORs, the 1.6
error-code spellings, counting refused frames, dropping late answers) is done on the frames
themselves, in the receive loop and in the Wire every frame the ChargePoint sends passes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, MessageType, unpack
from websockets.exceptions import ConnectionClosed

from controller.chargers.ocpp.profiles import V201, ProfileForm, Rate, base_profile, dynamic_profile
from controller.chargers.ocpp.station import Item, Station
from controller.core.site import watts_per_amp
from controller.tasks import cancel_and_wait

log = logging.getLogger("controller.chargers.ocpp")

# A charger that reconnects without rebooting sends no BootNotification. We initialise at
# its first request of any kind, or after this long if it says nothing at all.
BOOT_WAIT_S = 5.0
RETRY_S = 5.0  # after a failed initialisation or renewal
ASK_ANSWER_S = 2.0  # a TriggerMessage not answered by then: the charger is not asked again
# OCPP-J 1.6 spells these two error codes differently from 2.0.1.
V16_ERROR_CODES = {"FormatViolation": "FormationViolation",
                   "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}
# Frame budget per connection: a real charger sends a few frames a second at most.
FRAME_RATE = 50.0
FRAME_BURST = 100.0


class Wire:
    """The connection as the ocpp ChargePoint sees it: each frame it sends goes through
    `outgoing` first (which may rewrite it), then to the websocket."""

    def __init__(self, connection, outgoing):
        self.connection = connection
        self.outgoing = outgoing

    async def send(self, message: str) -> None:
        await self.connection.send(self.outgoing(message))

    async def recv(self) -> str:
        return await self.connection.recv()


def _number_phases(site_phases: int, grid: str) -> int:
    """OCPP's numberPhases for a car on this many site phases: on an IT grid a 1-phase car sits
    between two of them."""
    return 1 if grid == "IT" and site_phases == 2 else site_phases


class Link:
    def __init__(self, station: Station, connection, cp_class):
        self.driver = station  # the charge point: its connectors, its notes, its profile form
        self.connection = connection
        self.wire = Wire(connection, self._outgoing)
        self.cp = cp_class(station, self.wire)  # CentralCP16 / CentralCP201: handlers and requests
        self.version = self.cp.version
        self._answering: Call | None = None  # the charger's request being handled
        self._answer_refused = False
        self._ready = False
        self._refused_all = False  # every profile form refused: log that once, not every retry
        self._unit = "A"
        # item key -> (limit, rate) the charger accepted in this session: a new rate (a car seen
        # to use fewer phases on a watt charger) is a new value to send
        self._sent: dict[str, tuple[float, Rate]] = {}
        self._installed: set[int] = set()
        self._wake = asyncio.Event()
        self._rebooted = asyncio.Event()
        self._spoke = asyncio.Event()
        self._maintainer: asyncio.Task | None = None
        self._asks: set[int] = set()  # connectors to ask for a fresh report (TriggerMessage)
        self._trigger_refused = ""  # why the charger will not be asked again this session
        self._tokens = FRAME_BURST
        self._refilled = time.monotonic()
        self._throttled = False
        self.bad_frames = 0
        self.dropped_responses = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def ready(self) -> bool:
        """Initialised: base and dynamic profile accepted, limits are being kept."""
        return self._ready

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = value
        if not value:
            self.driver.release_waiters()

    async def run(self) -> None:
        """Serve the connection until it closes."""
        self.driver.attached(self)
        self._maintainer = asyncio.create_task(self._maintain(), name=f"ocpp-{self.driver.id}")
        try:
            async for frame in self.connection:
                try:
                    await self._route(frame)
                except ConnectionClosed:
                    raise
                except Exception:  # a bug of ours: keep serving this charger and the others
                    log.exception("%s: frame handling failed", self.driver.id,
                                  extra={"CHARGER_ID": self.driver.id, "FAULT": "internal"})
                await self._spend_budget()
        except ConnectionClosed:
            pass
        finally:
            await self.stop_maintaining()
            self.driver.detached(self)

    async def stop_maintaining(self) -> None:
        self.ready = False
        task, self._maintainer = self._maintainer, None
        if task is not asyncio.current_task():
            await cancel_and_wait(task)

    def ask_meter_values(self, connector: int) -> bool:
        """Ask for TriggerMessage MeterValues (connector 0: the whole charger); the maintainer
        sends it after any limit change it has to send, and the answer comes as an ordinary
        MeterValues. False when it cannot be asked now (not ready, or not this session)."""
        if not self._ready or self._trigger_refused:
            return False
        self._asks.add(connector)
        self._wake.set()
        return True

    async def _send_asks(self) -> None:
        """The asked TriggerMessages, one at a time, each given ASK_ANSWER_S: a cut that comes
        meanwhile waits at most that long, and a charger that does not answer in time (or does
        not implement it) is not asked again this session."""
        while self._asks and not self._trigger_refused and not self._wake.is_set():
            connector = min(self._asks)
            self._asks.discard(connector)
            try:
                status = await asyncio.wait_for(self.cp.trigger_meter_values(connector), ASK_ANSWER_S)
            except asyncio.TimeoutError:
                status = "no answer"
            if status == "Accepted":
                continue
            if status != "Rejected":  # Rejected (no transaction there just now) may pass
                self._trigger_refused = status
                self._asks.clear()
            if "trigger" not in self.driver.notes:
                self.driver.notes["trigger"] = f"TriggerMessage MeterValues refused: {status}"
                self.driver.event(logging.INFO, f"asking for a fresh meter report refused ({status})"
                                  + ("" if status == "Rejected" else ": its periodic reports only"),
                                  REASON="trigger-refused")

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ receiving

    async def _route(self, frame) -> None:
        try:
            raw = json.loads(frame)
        except (ValueError, TypeError):
            return await self._reject_frame("-1", "not valid JSON")
        if not isinstance(raw, list) or len(raw) < 3 or not isinstance(raw[1], str):
            unique_id = raw[1] if isinstance(raw, list) and len(raw) > 1 and isinstance(raw[1], str) else "-1"
            return await self._reject_frame(unique_id, "not an OCPP-J message")
        if raw[0] not in (MessageType.Call, MessageType.CallResult, MessageType.CallError):
            return await self._reject_frame(raw[1], f"message type {raw[0]!r}", type_unknown=True)
        try:
            msg = unpack(frame)
        except OCPPError:
            return await self._reject_frame(raw[1], "malformed message")
        if isinstance(msg, Call):
            await self._answer(msg, frame)
        elif msg.unique_id == self.cp.awaited:
            self.cp.awaited = None
            await self.cp.route_message(frame)  # call() is waiting for it
        else:  # a late answer to a timed-out request, or junk: nobody waits for it
            self.dropped_responses += 1
            self.driver.notes["dropped_responses"] = str(self.dropped_responses)

    async def _answer(self, msg: Call, frame) -> None:
        if not isinstance(msg.action, str) or not isinstance(msg.payload, dict):
            return await self._reject_frame(msg.unique_id, "malformed CALL")
        self._answering, self._answer_refused = msg, False
        try:
            await self.cp.route_message(frame)  # the handler's answer, or its CALLERROR, goes out
        finally:
            self._answering = None
        if self._answer_refused:
            return
        self._spoke.set()
        if msg.action == "BootNotification":
            self._rebooted.set()
            self._wake.set()

    def _outgoing(self, message: str) -> str:
        """Every frame the ChargePoint sends: note our requests, and look at its CALLERRORs
        (count the charger's refused requests, and spell the codes as 1.6 does)."""
        try:
            frame = json.loads(message)
        except ValueError:
            return message
        if frame[0] == MessageType.Call:
            self.cp.awaited = frame[1]  # call() sends one request at a time
            return message
        answering = self._answering
        if frame[0] != MessageType.CallError or answering is None or frame[1] != answering.unique_id:
            return message
        self._answer_refused = True
        if frame[2] == "InternalError":  # a bug of ours; the ocpp package logs it
            return message
        self._count_bad(f"{answering.action}: {frame[2]}")
        if self.version != V201:  # the ocpp package uses 2.0.1 spellings for both
            frame[2] = V16_ERROR_CODES.get(frame[2], frame[2])
        return json.dumps(frame)

    async def _reject_frame(self, unique_id: str, why: str, type_unknown: bool = False) -> None:
        self._count_bad(why)
        if self.version == V201:
            code = "MessageTypeNotSupported" if type_unknown else "RpcFrameworkError"
        else:
            code = "FormationViolation"
        await self.wire.send(json.dumps([MessageType.CallError, unique_id, code, why, {}]))

    def _count_bad(self, why: str) -> None:
        self.bad_frames += 1
        self.driver.notes["bad_frames"] = str(self.bad_frames)
        if self.bad_frames == 1:  # the first one per connection; the count is in status
            self.driver.event(logging.WARNING, f"bad frame: {why}", FAULT="bad-frame", REASON=why)

    async def _spend_budget(self) -> None:
        now = time.monotonic()
        self._tokens = min(FRAME_BURST, self._tokens + (now - self._refilled) * FRAME_RATE)
        self._refilled = now
        self._tokens -= 1
        if self._tokens < 0:
            if not self._throttled:
                self._throttled = True
                self.driver.notes["flood"] = "throttled"
                self.driver.event(logging.WARNING, "frame flood: throttled", FAULT="flood")
            await asyncio.sleep(-self._tokens / FRAME_RATE)
        else:
            await asyncio.sleep(0)  # let the control loop and other chargers run

    # ------------------------------------------------------------------ maintaining

    async def _maintain(self) -> None:
        try:
            await asyncio.wait_for(self._spoke.wait(), BOOT_WAIT_S)
        except asyncio.TimeoutError:
            pass  # a silent charger: initialise anyway
        # Resumed after a restart: nothing is sent before the meter shows the room, unless it
        # rebooted (it may have lost the profiles the last process gave it).
        waits = [asyncio.ensure_future(self.driver.quiet()), asyncio.ensure_future(self._rebooted.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        last_error = None
        while not self.driver.closed:
            self._rebooted.clear()
            try:
                if await self._initialise():
                    await self._keep_limit()
                else:  # a firmware update or reboot may change its mind
                    await self._sleep_or_reboot(max(RETRY_S, self.driver.settings.ocpp.lease_s / 2))
            except ConnectionClosed:
                return  # the receive loop ends the session
            except Exception as error:  # timeouts, odd replies: start over, never crash
                self.ready = False
                if repr(error) != last_error:  # a charger that never answers: log once
                    last_error = repr(error)
                    self.driver.event(logging.WARNING, f"session error, initialising again: {error!r}",
                                      FAULT="init")
                await self._sleep_or_reboot(RETRY_S)

    async def _sleep_or_reboot(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._rebooted.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _initialise(self) -> bool:
        self.ready = False
        self._wake.clear()  # the profiles sent below carry the wanted limit anyway
        self._sent = {}
        d = self.driver
        caps = await self.cp.read_config()
        d.notes.update(caps.notes, unit=caps.unit)
        d.notes.update(await self.cp.configure_meter_values(d.settings.ocpp.meter_interval_s))
        self._unit = caps.unit
        forms = d.forms(self.version, caps.max_stack_level)
        self._installed: set[int] = set()  # ids of profiles it accepted during this initialisation
        for form in forms:
            ok, detail = await self._send_base(form)
            d.fallback_protected = ok
            if ok:
                ok, detail = await self._send_dynamic(form, renew=True)
            if ok:
                await self._clear_leftovers(form)
                if d.form != form:
                    d.form = form
                    d.event(logging.INFO if form == forms[0] else logging.WARNING,
                            f"profiles accepted as {d.describe_form()}", REASON="profile-form")
                d.notes.pop("profile_error", None)
                self._refused_all = False
                self.ready = True
                d.event(logging.INFO, "initialised", REASON="init", UNIT=caps.unit)
                return True
            if not self._refused_all:
                d.event(logging.WARNING, f"profile form {form.describe()} refused: {detail}",
                        REASON="profile-rejected")
        d.notes["profile_error"] = "every profile form was refused"
        if not self._refused_all:
            self._refused_all = True
            d.event(logging.ERROR, "charger refuses every charging profile: not controllable",
                    FAULT="profiles-rejected")
        return False

    async def _clear_leftovers(self, form: ProfileForm) -> None:
        """A form refused half-way (a twin taking profiles on some connectors only) leaves
        profiles behind that would hold its cars below their limits: clear them by id. They
        only ever limit, so a charger that refuses to clear them is merely noted."""
        keep = {i for item in self.driver.items(form, self.version) for i in item.ids}
        left = []
        for profile_id in sorted(self._installed - keep):
            try:
                cleared = await self.cp.clear_profile(profile_id)
            except asyncio.TimeoutError:  # not worth a new initialisation: they only limit
                cleared = False
            if not cleared:
                left.append(str(profile_id))
        if left:
            self.driver.notes["stale_profiles"] = ", ".join(left)
        else:
            self.driver.notes.pop("stale_profiles", None)

    def _rate(self, item: Item) -> Rate:
        """Amps to the charger's unit for one profile. A watt limit is converted with the phases
        its car is known to use (controller/core/phases.py `phases_in_use`; for a profile shared
        by several connectors, the fewest of theirs), and for one connector says so in
        numberPhases. Until they are known it assumes the fewest, one (two lines on an IT grid:
        one current through both), and sends no numberPhases (which could switch a 3-phase car
        to one phase): a 1-phase car on a 3-phase watt charger then takes its limit, not three
        times it. The fallback profile is converted the same way."""
        settings = self.driver.settings
        if self._unit != "W":
            return Rate(self._unit, watts_per_amp(settings.voltage_v, item.phases, settings.grid))
        known = [c.phases_in_use for c in item.loads or self.driver.loads()]  # (the station cap: all of them)
        n = min(known) if known and None not in known else None  # type: ignore[type-var]
        if n is None:
            fewest = 2 if settings.grid == "IT" and item.phases >= 2 else 1
            return Rate("W", watts_per_amp(settings.voltage_v, fewest, settings.grid))
        return Rate("W", watts_per_amp(settings.voltage_v, n, settings.grid),
                    _number_phases(n, settings.grid) if len(item.loads) == 1 else None)

    async def _send_base(self, form: ProfileForm) -> tuple[bool, str]:
        """The never-expiring fallback profiles of `form`. The station cap beside per-connector
        profiles is optional: a charger may refuse it and still be kept safely."""
        d = self.driver
        d.cap_held = False
        for item in d.items(form, self.version):
            base = base_profile(self.version, item.form, self._rate(item), item.fallback_a,
                                d.offset.charger_now(d.clock.wall()), profile_id=item.ids[0])
            ok, detail = await self.cp.set_profile(item.form.target, base)
            if ok:
                self._installed.add(item.ids[0])
            if not ok and item.required:
                return False, detail
            if item.key == "cap" and not item.required:
                d.cap_held = ok
        return True, ""

    async def send_dynamic(self, form: ProfileForm, lease_s: float) -> tuple[bool, str]:
        """Every leased profile once more at the wanted limits, valid lease_s (a planned stop
        shortens the lease)."""
        return await self._send_dynamic(form, renew=True, lease_s=lease_s)

    async def _send_dynamic(self, form: ProfileForm, renew: bool,
                            lease_s: float | None = None) -> tuple[bool, str]:
        """The leased profiles of `form` at the wanted limits: all of them on renew, else those
        whose limit changed. Each connector's apply() is answered once its profile is in."""
        d = self.driver
        wanted = {id(c): c.wanted_limit() for c in d.loads()}  # (limit, generation) now
        lease = d.settings.ocpp.lease_s if lease_s is None else lease_s
        refusal = ""
        answered: dict[int, bool] = {}
        try:
            for item in d.items(form, self.version):
                if item.key == "cap" and not item.required and not d.cap_held:
                    continue  # refused at initialisation: asked again at the next one
                sent = renew or self._sent.get(item.key) != (item.limit_a, self._rate(item))
                ok = True
                now = d.clock.monotonic()  # before the send: the charger's validTo counts from then
                if sent:
                    ok, detail = await self._send(item, lease)
                    refusal = refusal or ("" if ok else detail)
                for c in item.loads:
                    limit, gen = wanted[id(c)]
                    c.limit_sent(gen, limit, ok, now + lease if sent else c.lease_until)
                    answered[id(c)] = ok
        except BaseException:
            for c in d.loads():  # release the apply() waiters of what was not sent
                if id(c) not in answered:
                    c.limit_sent(wanted[id(c)][1], wanted[id(c)][0], False, None)
            raise
        return all(answered.get(id(c), False) for c in d.loads()), refusal

    async def _send(self, item: Item, lease: float) -> tuple[bool, str]:
        d = self.driver
        profile = dynamic_profile(self.version, item.form, self._rate(item), item.limit_a,
                                  d.offset.charger_now(d.clock.wall()), lease, item.age_s,
                                  profile_id=item.ids[1])
        ok, detail = await self.cp.set_profile(item.form.target, profile)
        if ok:
            self._sent[item.key] = (item.limit_a, self._rate(item))
            self._installed.add(item.ids[1])
        else:
            self._sent.pop(item.key, None)
            if not item.required:  # the station cap beside per-connector profiles
                d.notes["station_cap"] = f"refused: {detail}"
        return ok, detail

    async def _keep_limit(self) -> None:
        """Until the charger reboots: send on change, renew at half the lease."""
        d = self.driver
        lease = d.settings.ocpp.lease_s
        next_renewal = d.clock.monotonic() + lease / 2
        last_refusal = None
        while not self._rebooted.is_set():
            wait = max(0.0, next_renewal - d.clock.monotonic())
            renew = False
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                renew = True
            self._wake.clear()
            if self._rebooted.is_set() or d.closed:
                return
            try:
                ok, detail = await self._send_dynamic(d.form, renew=renew)
            except asyncio.TimeoutError:
                ok, detail = False, "no answer"
            if renew or not ok:
                next_renewal = d.clock.monotonic() + (lease / 2 if ok else min(RETRY_S, lease / 4))
            if (None if ok else detail) != last_refusal:
                last_refusal = None if ok else detail
                d.event(logging.INFO if ok else logging.WARNING,
                        "dynamic profile accepted again" if ok else f"dynamic profile refused: {detail}",
                        REASON="renewal")
            await self._send_asks()
