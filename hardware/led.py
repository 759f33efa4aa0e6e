"""The status LED: one pattern per state, readable from across the room.

    steady on     charging normally (or idle, nothing wrong)
    slow blink    limited by load: some charger gets less than it could (1 s on, 1 s off)
    fast blink    overload cut in progress (5 flashes a second)
    double blink  meter lost or another fault (two flashes, pause)
    short blip    all charging paused by the button (a flash every 3 s)
    off           the service is not running

Patterns are lists of on/off ticks of TICK_S played by gpiozero's `source` thread, so the
LED keeps its rhythm whatever the event loop is doing; the loop only picks the pattern.
"""

from __future__ import annotations

from itertools import cycle

TICK_S = 0.1

PATTERNS: dict[str, list[int] | None] = {
    "steady": None,  # LED.on()
    "off": None,  # LED.off()
    "slow": [1] * 10 + [0] * 10,
    "fast": [1, 0],
    "double": [1, 1, 0, 0, 1, 1] + [0] * 10,
    "paused": [1] + [0] * 29,
}


def pattern_for(snap: dict) -> str:
    """The pattern for a status snapshot (controller/status.py); the most urgent state wins."""
    if snap["overloads"] or any(c["state"] == "overload cut" for c in snap["chargers"]):
        return "fast"
    if snap["meter"]["state"] != "ok" or snap["faults"]:
        return "double"
    if snap["paused"]:
        return "paused"
    if snap["slow_mode"] or any(c["state"] == "limited" or c.get("cause") == "shed"
                                for c in snap["chargers"]):
        return "slow"
    return "steady"


class StatusLed:
    def __init__(self, led):  # a gpiozero LED
        self.led = led
        self.led.source_delay = TICK_S
        self.pattern = "off"
        self.led.off()

    def show(self, pattern: str) -> None:
        if pattern == self.pattern:
            return
        self.led.source = None  # stop the previous rhythm before setting the pin
        ticks = PATTERNS[pattern]
        if ticks is not None:
            self.led.source = cycle(ticks)
        elif pattern == "steady":
            self.led.on()
        else:
            self.led.off()
        self.pattern = pattern

    def close(self) -> None:
        self.show("off")
        self.led.close()
