"""The state directory: what evfuse keeps across restarts (button state, MQTT/web overrides,
the last limits and learned wiring), one small JSON file per concern.

Under systemd it is the unit's `StateDirectory=` ($STATE_DIRECTORY, /var/lib/evfuse); started
by hand it is $XDG_STATE_HOME/evfuse (~/.local/state/evfuse). Files are written atomically
(temp file + rename) so a power cut leaves the old file or the new one, never half of one.
Reading a missing or damaged file gives None: every caller has a safe default.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("evfuse.state")


def state_dir(environ=os.environ) -> Path:
    base = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if base:
        return Path(base)
    if os.geteuid() == 0 and not environ.get("XDG_STATE_HOME"):
        return Path("/var/lib/evfuse")
    xdg = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "evfuse"


def read_json(name: str, environ=os.environ):
    """The parsed content of NAME in the state directory, or None (missing or unreadable)."""
    path = state_dir(environ) / name
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("state file %s unreadable (%s): ignored", path, e, extra={"FAULT": "state-file"})
        return None


def write_json(name: str, data, environ=os.environ) -> bool:
    """Replace NAME in the state directory atomically; False (logged) when it cannot."""
    path = state_dir(environ) / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)
        return True
    except OSError as e:
        log.warning("state file %s not saved (%s): a restart forgets it", path, e,
                    extra={"FAULT": "state-file"})
        return False
