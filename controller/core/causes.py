"""Why a load has the limit it has: causes are data, rendered to words only at the edge.

Behaviour never depends on the words: the core and the runtime test a cause's kind
(`stops`, `idle`, `fallback`), never a prefix of its text.
"""

from __future__ import annotations

import enum
from functools import cached_property


class Cause(enum.Enum):
    # Running, limited by something.
    SHARE = "share"                  # its share of a constraint's headroom (detail: the constraint)
    MAX = "max"                      # at its max_a
    MODE_CAP = "mode-cap"            # capped by its solar/excess mode (detail: the mode's words)
    DRAWS_LESS = "draws-less"        # its car draws less: limit lowered toward it (detail: the draw)
    STARTING = "starting"            # starting at min_a, then ramp
    RAMP_HOLD = "ramp-hold"          # increase waits for headroom to hold ramp_up_delay_s
    RAMPING = "ramping"              # increasing step by step
    WAIT_FOLLOW = "wait-follow"      # increase waits until loads on its phases followed a change
    WAIT_TURN = "wait-turn"          # increase waits its turn so the meter can tell changes apart (core/turns.py)
    OVERLOAD_CUT = "overload-cut"    # fast path: cut at once (detail: constraint and excess)
    # Stopped by the allocator (a pause of a car that wanted current: counted, restart delay).
    SHED = "shed"                    # no room for min_a
    OVERLOAD_PAUSE = "overload-pause"  # an overload outlived overload_pause_s
    NET = "net"                      # an overload the model cannot explain: cut by the net
    SURPLUS = "surplus"              # solar mode without enough surplus
    START_ALONE = "start-alone"      # held at 0 from its own fallback to start alone (core/turns.py)
    # Stopped, waiting to restart after an allocator stop.
    RESTART_DELAY = "restart-delay"  # restart_delay_s runs
    RESTART_WAIT = "restart-wait"    # delay over: waits for room for min_a to hold
    # Nothing to give, whatever the headroom (not a pause).
    NO_CAR = "no-car"
    CAR_FAULT = "car-fault"
    MODE_OFF = "mode-off"
    SEQUENTIAL = "sequential"        # its charger powers one connector at a time: another charges
    TAKES_NOTHING = "takes-nothing"  # its car takes nothing (full, or its own timer): 0 until offered again
    # The controller cannot or may not steer.
    NO_SAMPLE = "no-sample"          # no meter sample yet: fallback
    METER_LOST = "meter-lost"        # meter stale: min(limit, fallback)
    USER_HOLD = "user-hold"          # paused by the user (button, MQTT, web)
    LINK_DOWN = "link-down"          # nothing can be sent; counted at what it holds
    NON_COMPLIANT = "non-compliant"  # draws above its limit: fixed load, told 0
    RESUMED = "resumed"              # after a planned restart: keeps its limit until a sample shows the room

    # Members are singletons compared by identity: hash them by identity too (C-level), not
    # by name as Enum does in Python: causes are set and dict members in per-load loops.
    __hash__ = object.__hash__

    # Kinds are cached on the member at first use (an attribute read after that): per-load
    # loops ask them of every load on every sample.
    @cached_property
    def stops(self) -> bool:
        """A zero the allocator chose for a car that wanted current: restart rules apply."""
        return self in _STOPS

    @cached_property
    def waits(self) -> bool:
        """Stopped earlier by the allocator, waiting to restart."""
        return self in (Cause.RESTART_DELAY, Cause.RESTART_WAIT)

    @cached_property
    def idle(self) -> bool:
        """Zero because there is nothing to charge, not a pause."""
        return self in (Cause.NO_CAR, Cause.CAR_FAULT, Cause.MODE_OFF, Cause.TAKES_NOTHING)

    @cached_property
    def fallback(self) -> bool:
        return self in (Cause.NO_SAMPLE, Cause.METER_LOST)


_STOPS = frozenset({Cause.SHED, Cause.OVERLOAD_PAUSE, Cause.NET, Cause.SURPLUS, Cause.START_ALONE})


_WORDS = {
    Cause.SHARE: "{} headroom",
    Cause.MAX: "max_a",
    Cause.MODE_CAP: "{}",
    Cause.DRAWS_LESS: "its car draws {}: limit lowered toward it, offered more once it draws up to it",
    Cause.STARTING: "starting at min_a, then ramp",
    Cause.RAMP_HOLD: "ramp-up hold: waiting for the headroom to hold",
    Cause.RAMPING: "ramping up",
    Cause.WAIT_FOLLOW: "increase waits until the cut loads on {} follow",
    Cause.WAIT_TURN: "waits its turn, so the meter can tell where each car draws: {}",
    Cause.OVERLOAD_CUT: "overload cut: {}",
    Cause.SHED: "shed: no room for min_a ({})",
    Cause.OVERLOAD_PAUSE: "overload on {}: paused",
    Cause.NET: "overload the model cannot explain on {}: cut",
    Cause.SURPLUS: "{}",
    Cause.START_ALONE: "paused to start on its own later, so the meter shows where its car draws",
    Cause.RESTART_DELAY: "restart delay {}",
    Cause.RESTART_WAIT: "{}",
    Cause.NO_CAR: "no car",
    Cause.CAR_FAULT: "charger reports a fault",
    Cause.MODE_OFF: "mode off",
    Cause.SEQUENTIAL: "waits: {} charges (one at a time)",
    Cause.TAKES_NOTHING: "its car takes nothing: 0 A, offered current again in {}",
    Cause.NO_SAMPLE: "no meter sample yet: fallback",
    Cause.METER_LOST: "meter lost {}: fallback",
    Cause.USER_HOLD: "{}",
    Cause.LINK_DOWN: "link down: {}",
    Cause.NON_COMPLIANT: "non-compliant: draws above its limit, counted as fixed load; paused",
    Cause.RESUMED: "resumed after a restart: keeps its limit until a meter sample shows the room",
}


def words(cause: Cause, detail: str = "") -> str:
    """The reason in an installer's words (logs, status, the demo, MQTT)."""
    text = _WORDS[cause]
    return text.format(detail) if "{}" in text else text
