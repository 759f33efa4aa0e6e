"""`evfuse run --config FILE`: the service systemd starts.

SIGTERM / SIGINT: a planned stop. Every charger keeps its limit under a short lease it enforces
itself (or its fallback where nothing would bound it), core.json in the state directory records
it for the next start to resume (controller/runtime.py `stop`), connections close, exit 0.
SIGHUP: the config is read again; a valid one applies at once, part by part (Controller.retune:
only added, removed or relinked chargers, a changed meter or OCPP server are touched; every
other charger keeps its link and its limit); an invalid one is refused with the reason and
the service keeps running on the old one.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys

from controller.config import ConfigError, load_config
from controller.logs import setup_logging
from controller.mqtt import MqttBridge
from controller.notify import Notifier, install_block_hook
from controller.runtime import Controller
from controller.status import StatusServer, serving_path
from hardware import Panel

log = logging.getLogger("evfuse.run")


def register(sub) -> None:
    p = sub.add_parser("run", help="run the controller (the systemd service)")
    p.add_argument("--config", default="/etc/evfuse/evfuse.toml", help="config file")
    p.add_argument("--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    setup_logging(args.verbose)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        for line in e.problems:
            log.error("%s", line, extra={"FAULT": "config"})
        return 1
    for line in config.warnings:
        log.warning("%s", line, extra={"FAULT": "config-warning"})
    return asyncio.run(serve(args.config, config))


async def serve(path: str, config) -> int:
    """Run until SIGTERM/SIGINT. Around the controller: sd_notify and the systemd watchdog
    (controller/notify.py), the status socket (controller/status.py), the LED and button
    (hardware/), MQTT (controller/mqtt/) and the web page (controller/web/). A reload retunes
    the controller in place."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reload = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    install_block_hook(loop)
    controller = Controller(config)
    panel = Panel.create(config.hardware)
    panel.apply(controller)

    def current() -> Controller:
        return controller

    notifier = Notifier(current, lambda: panel.slow)
    status = StatusServer(serving_path(), current, lambda: panel.slow)
    try:
        await controller.start()
    except OSError as e:  # e.g. the OCPP port is taken
        log.error("cannot start: %s", e, extra={"FAULT": "start"})
        await panel.close()
        await controller.stop()
        return 1
    panel.start(current)
    await status.start()
    bridge = await _start_mqtt(controller, current, lambda: panel.slow)
    web = await _follow_web(None, controller.config, current, lambda: panel.slow)
    notifier.ready()
    while not stop.is_set():
        stopping = asyncio.ensure_future(stop.wait())
        reloading = asyncio.ensure_future(reload.wait())
        await asyncio.wait([stopping, reloading], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        reloading.cancel()
        if reload.is_set() and not stop.is_set():
            reload.clear()
            old = await _reload(path, controller)
            if old is not None and old.hardware != controller.config.hardware:  # the panel anew
                await panel.close()
                panel = Panel.create(controller.config.hardware)
                panel.apply(controller)
                panel.start(current)
            if old is not None and old.mqtt != controller.config.mqtt:  # the MQTT part anew
                await _stop_mqtt(controller, bridge)
                bridge = await _start_mqtt(controller, current, lambda: panel.slow)
            if old is not None:  # the web page restarts only when [web] or the certificate changed
                web = await _follow_web(web, controller.config, current, lambda: panel.slow)
    await notifier.stopping()
    if web is not None:
        await web.stop()
    await _stop_mqtt(controller, bridge)
    await status.stop()
    await panel.close()
    await controller.stop()
    return 0


async def _reload(path: str, controller: Controller):
    """Apply the file again; the previous config when it did, else None."""
    try:
        config = load_config(path)
    except ConfigError as e:
        log.error("config reload refused, still running on the previous config: %s",
                  "; ".join(e.problems), extra={"FAULT": "config"})
        return None
    for line in config.warnings:
        log.warning("%s", line, extra={"FAULT": "config-warning"})
    old = controller.config
    await controller.retune(config)
    return old


async def _start_mqtt(controller: Controller, current, slow) -> MqttBridge | None:
    if controller.config.mqtt is None:
        return None
    bridge = MqttBridge(controller.config.mqtt, current, slow)
    controller.observers.append(bridge.changed)
    await bridge.start()
    return bridge


async def _stop_mqtt(controller: Controller, bridge: MqttBridge | None) -> None:
    if bridge is not None:
        controller.observers.remove(bridge.changed)
        await bridge.stop()


async def _follow_web(web, config, current, slow):
    """The web page as [web] now says: started, restarted with new settings, or stopped. Like
    the status socket it is a convenience: a port it cannot have is logged, never fatal."""
    if config.web is None:
        if web is not None:
            await web.stop()
        return None
    from controller.web.server import WebServer  # aiohttp is imported only when it is used

    try:
        if web is None:
            web = WebServer(current, config.web, config.ocpp, slow)
            await web.start()
        else:
            await web.reconfigure(config.web, config.ocpp)
    except (OSError, ssl.SSLError) as e:
        log.error("web page unavailable on %s: %s", config.web.listen, e, extra={"FAULT": "web"})
        if web is not None:
            await web.stop()
        return None
    return web
