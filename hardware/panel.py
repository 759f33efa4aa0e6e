"""The Pi's front panel: status LED and one button, around a running Controller.

Button:
  short press      pause all charging / resume (controller.set_user_pause); kept in
                   $STATE_DIRECTORY/button.json, so a restart or power cut keeps it paused
  long press (3 s) slow mode on / off: every charger capped at control.fallback_a (at least its
                   min_a), still under full load management; also kept across restarts.
                   Switchable loads ([[load]]: boilers, heat pumps) are left as they are: they
                   run all or nothing, so a cap has no meaning for them (a boiler capped below
                   its whole current could never run); their mode, priority and min_on_s /
                   min_off_s apply as without slow mode. The short press pauses them too.

gpiozero runs button callbacks on its own threads; they only hand the press to the event
loop (call_soon_threadsafe), where the Controller lives. With no [hardware] section nothing
is touched; without GPIO (not a Pi, no permission) one log line and the service runs on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

from controller.core.site import SiteModel
from controller.status import snapshot
from controller.statedir import state_dir
from controller.tasks import cancel_and_wait
from hardware.led import StatusLed, pattern_for

log = logging.getLogger("evfuse.hardware")

PAUSE_REASON = "paused by button"
HOLD_S = 3.0
REFRESH_S = 0.25  # how often the LED pattern is re-derived from the controller


def state_file(environ=os.environ) -> Path:
    return state_dir(environ) / "button.json"


def capped(site: SiteModel) -> SiteModel:
    """Slow mode: max_a of every charger down to the fallback current (never below min_a).
    A switchable load (kind "switch") keeps its spec: it is on at its whole current or off."""
    fb = site.control.fallback_a
    return replace(site, chargers=tuple(c if c.kind == "switch" else replace(c, max_a=max(c.min_a, min(c.max_a, fb)))
                                        for c in site.chargers))


class Panel:
    def __init__(self, led=None, button=None, path: Path | None = None):
        """led / button: gpiozero LED and Button, or None when absent."""
        self.led = StatusLed(led) if led is not None else None
        self.button = button
        self.path = path or state_file()
        self.paused = False
        self.slow = False
        self._controller = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._held = False
        if button is not None:
            self.paused, self.slow = self._load()

    @classmethod
    def create(cls, hw_config, environ=os.environ) -> "Panel":
        """Devices for a [hardware] section (None = no GPIO at all)."""
        if hw_config is None:
            return cls()
        # lgpio (Pi 5 / Bookworm) writes notification files into its working directory;
        # under ProtectSystem=strict only the runtime directory is writable.
        runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
        if runtime:
            os.environ.setdefault("LG_WD", runtime)
        try:
            from gpiozero import LED, Button

            led = LED(hw_config.led_pin) if hw_config.led_pin is not None else None
            button = (Button(hw_config.button_pin, hold_time=HOLD_S)
                      if hw_config.button_pin is not None else None)
        except Exception as e:  # no GPIO here: BadPinFactory, permissions, not a Pi
            log.warning("no GPIO (%s): status LED and button disabled", e,
                        extra={"FAULT": "gpio"})
            return cls()
        return cls(led, button, state_file(environ))

    # ------------------------------------------------------------------ persistence

    def _load(self) -> tuple[bool, bool]:
        try:
            data = json.loads(self.path.read_text())
            return bool(data.get("paused")), bool(data.get("slow"))
        except FileNotFoundError:
            return False, False
        except (OSError, ValueError) as e:
            log.warning("button state %s unreadable (%s): starting unpaused", self.path, e)
            return False, False

    def _save(self) -> None:
        try:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"paused": self.paused, "slow": self.slow}))
            os.replace(tmp, self.path)
        except OSError as e:
            log.warning("button state not saved to %s (%s): a restart forgets it", self.path, e,
                        extra={"FAULT": "state-file"})

    # ------------------------------------------------------------------ wiring

    def apply(self, controller) -> None:
        """Bring a (new or reloaded) controller in line with the button state. Before
        controller.start() this sets the pause directly, so the first cycle already holds."""
        self._controller = controller
        if self.paused and controller.user_pause is None:
            if controller.decision is None:
                controller.user_pause = PAUSE_REASON
                log.warning("all charging paused by the button before the restart; press it to resume",
                            extra={"STATE": "paused"})
            else:
                controller.set_user_pause(PAUSE_REASON)
        if self.slow:  # kept by the controller when overrides or a reload rebuild its site
            controller.cap_site = capped
            controller.site = capped(SiteModel.from_config(controller.effective_config))

    def start(self, get_controller) -> None:
        self._get = get_controller
        self._loop = asyncio.get_running_loop()
        if self.button is not None:
            self.button.when_held = self._on_held
            self.button.when_released = self._on_released
        if self.led is not None:
            self._task = self._loop.create_task(self._refresh(), name="status led")

    def _on_held(self) -> None:  # gpiozero thread
        self._held = True
        self._loop.call_soon_threadsafe(self.long_press)

    def _on_released(self) -> None:  # gpiozero thread; also after a hold
        if self._held:
            self._held = False
            return
        self._loop.call_soon_threadsafe(self.short_press)

    def short_press(self) -> None:
        self.paused = not self.paused
        self._save()
        self._get().set_user_pause(PAUSE_REASON if self.paused else None)

    def long_press(self) -> None:
        self.slow = not self.slow
        self._save()
        controller = self._get()
        site = controller.site
        controller.cap_site = capped if self.slow else None
        controller.rebuild_site()
        loads = " (switchable loads as they are)" if self.slow and any(c.kind == "switch" for c in site.chargers) else ""
        log.warning("slow mode %s by the button: every charger at most %s%s", "on" if self.slow else "off",
                    f"{site.control.fallback_a:g} A (or its min_a)" if self.slow else "its max_a", loads,
                    extra={"STATE": "slow-mode" if self.slow else "normal"})

    async def _refresh(self) -> None:
        while True:
            try:
                self.led.show(pattern_for(snapshot(self._get(), self.slow)))
            except Exception:  # the LED is a convenience; never let it take the loop down
                log.exception("status LED update failed")
            await asyncio.sleep(REFRESH_S)

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self.led is not None:
            self.led.close()
        if self.button is not None:
            self.button.close()
