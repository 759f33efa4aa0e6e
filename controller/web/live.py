"""Once a second, beside the control loop: one status snapshot goes into the history and out to
every page that listens (server-sent events).

The snapshot is taken and encoded once per second whatever the number of pages, and every
page gets it through its own small queue: a slow phone drops its oldest updates, it never
makes the sampler (or the control loop, which shares the event loop) wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from controller.status import snapshot
from controller.web.history import History, Mark, encode

log = logging.getLogger("evfuse.web")

QUEUE_DEPTH = 4  # updates a client may lag behind before its oldest are dropped


def mark_kind(fault_key: str) -> str:
    """The plot mark for a fault episode that began (runtime fault keys, not their words)."""
    if fault_key.startswith("overload:"):
        return "cut"
    if fault_key == "meter":
        return "fallback"
    return "fault"


class Hub:
    """The pages listening for updates."""

    def __init__(self, max_clients: int):
        self.max_clients = max_clients
        self.clients: set[asyncio.Queue] = set()
        self.latest: bytes | None = None

    def subscribe(self) -> asyncio.Queue | None:
        if len(self.clients) >= self.max_clients:
            return None
        q: asyncio.Queue = asyncio.Queue(QUEUE_DEPTH)
        self.clients.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.clients.discard(q)

    def publish(self, payload: bytes | None) -> None:
        """payload None tells every client to end (the server stops)."""
        if payload is not None:
            self.latest = payload
        for q in self.clients:
            if q.full():
                q.get_nowait()
            q.put_nowait(payload)


class Sampler:
    def __init__(self, get_controller, history: History, hub: Hub, get_slow_mode=lambda: False,
                 clock=time.monotonic):
        self.get_controller = get_controller
        self.get_slow_mode = get_slow_mode
        self.history, self.hub, self.clock = history, hub, clock
        self._controller = None  # the one whose fault starts were read (a reload replaces it)
        self._faults_seen = 0
        self._paused: str | None = None
        self._failing = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="web sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            # Wake just after each whole second, so a second is never sampled twice or skipped
            # because of timer jitter.
            await asyncio.sleep(1.0 - self.clock() % 1.0 + 0.005)
            try:
                self.sample()
                self._failing = False
            except Exception:  # the page is a convenience: never let it end, never spam
                if not self._failing:
                    log.exception("web page: taking a sample failed (logged once until it works)")
                self._failing = True

    def sample(self) -> dict:
        controller = self.get_controller()
        snap = snapshot(controller, self.get_slow_mode())
        marks = self._new_marks(controller, snap)
        ok = snap["meter"]["state"] == "ok"
        phases = [(p["phase"], p["load_a"] if ok else None) for p in snap["phases"]]
        chargers = [(c["id"], c["limit_a"], max(c["draw_a"]) if c["draw_a"] and c["connected"] else None)
                    for c in snap["chargers"]]
        self.history.record(int(self.clock()), phases, chargers)
        if self.hub.clients:
            sample = {"t": self.history.end_wall(),
                      "phases": [encode(a) for _, a in phases],
                      "chargers": {cid: [encode(limit), encode(draw)] for cid, limit, draw in chargers}}
            update = {"status": snap, "sample": sample, "marks": [m.as_dict() for m in marks]}
            self.hub.publish(json.dumps(update, separators=(",", ":")).encode())
        else:
            self.hub.latest = None  # stale by the time someone connects
        return snap

    def _new_marks(self, controller, snap: dict) -> list[Mark]:
        marks = []
        if controller is not self._controller:
            self._controller, self._faults_seen = controller, 0
        new = controller.fault_count - self._faults_seen
        if new > 0:
            for start in list(controller.fault_starts)[-new:]:
                marks.append(self.history.mark(mark_kind(start.key), start.text, start.t))
        self._faults_seen = controller.fault_count
        if snap["paused"] != self._paused:
            if snap["paused"]:
                marks.append(self.history.mark("pause", f"all charging paused: {snap['paused']}"))
            elif self._paused is not None:
                marks.append(self.history.mark("resume", "all charging resumed"))
            self._paused = snap["paused"]
        return marks
