"""Logging for the service.

Under systemd (JOURNAL_STREAM names our stderr, or INVOCATION_ID is set) records go to the
journal through systemd.journal.JournalHandler, and the UPPER_CASE fields passed as
`extra={"CHARGER_ID": ..., "REASON": ...}` become journal fields, so an installer can ask
`journalctl -u evfuse CHARGER_ID=garage` or `journalctl -u evfuse FAULT=meter`.
Elsewhere: readable lines on stderr with the same fields appended as KEY=value.

Both go through a rate limit: a fault that flaps many times a second must not flood the
journal (or wear the SD card). Each message kind (per logger: the FAULT, else the charger,
else the message template) may log BURST records per WINDOW_S; the rest are counted, and the
count rides along with the next record of that kind after the window.
"""

from __future__ import annotations

import logging
import os
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

BURST = 20  # a ramp (a step every 5 s) logs 12 a minute per charger: not limited
WINDOW_S = 60.0


def fields_of(record: logging.LogRecord) -> dict:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k.isupper()}


class FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = fields_of(record)
        if fields:
            line += "  " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


class RateLimit(logging.Filter):
    """At most `burst` records per kind per `window_s`; then one summary of what was dropped
    rides along with the next record of that kind."""

    def __init__(self, burst: int = BURST, window_s: float = WINDOW_S, clock=time.monotonic):
        super().__init__()
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._windows: dict[tuple, list] = {}  # kind -> [window start, passed, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        fault = getattr(record, "FAULT", None)
        charger = getattr(record, "CHARGER_ID", None)
        # per connector; a load counts like a charger of its own
        charger = (charger, getattr(record, "CONNECTOR", None)) if charger else getattr(record, "LOAD_ID", None)
        kind = (record.name, "fault", fault) if fault else (
            (record.name, "charger", charger) if charger else (record.name, record.msg))
        now = self.clock()
        w = self._windows.get(kind)
        if w is None or now - w[0] >= self.window_s:
            dropped = w[2] if w else 0
            w = self._windows[kind] = [now, 0, 0]
            if dropped:
                record.SUPPRESSED = dropped
                record.msg = f"{record.msg} [{dropped} similar message(s) suppressed]"
        if w[1] >= self.burst:
            w[2] += 1
            return False
        w[1] += 1
        if len(self._windows) > 1000:  # message kinds are few; never let this grow unbounded
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < self.window_s}
        return True


class ConnectorFields(logging.Filter):
    """A connector's records name it "twin/2"; the journal gets CHARGER_ID=twin CONNECTOR=2, so
    `journalctl CHARGER_ID=twin` finds the whole charger. (Charger ids never hold "/".)"""

    def filter(self, record: logging.LogRecord) -> bool:
        charger = getattr(record, "CHARGER_ID", None)
        if isinstance(charger, str) and "/" in charger:
            station, _, connector = charger.rpartition("/")
            if connector.isdigit():
                record.CHARGER_ID, record.CONNECTOR = station, int(connector)
        return True


def under_systemd(environ=os.environ, stream=None) -> bool:
    """True when stderr is connected to the journal (systemd sets JOURNAL_STREAM to its
    device:inode) or we were started as a unit (INVOCATION_ID)."""
    if environ.get("INVOCATION_ID"):
        return True
    expected = environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def journal_handler(sender=None) -> logging.Handler:
    """A JournalHandler that sends only journal-valid fields: MESSAGE, PRIORITY, its own code
    location fields and our UPPER_CASE extras (None values dropped). `sender` replaces
    systemd.journal.send, for tests."""
    from systemd import journal

    send = sender or journal.send

    def clean_send(message, /, **fields):  # fields hold the record's own "message" too
        send(message, **{k: v for k, v in fields.items()
                         if k.isupper() and v is not None and k != "EXCEPTION_INFO"})

    handler = journal.JournalHandler(sender_function=clean_send, SYSLOG_IDENTIFIER="evfuse")
    handler.addFilter(ConnectorFields())
    handler.setFormatter(logging.Formatter("%(message)s"))  # fields travel as fields
    return handler


def setup_logging(verbose: bool = False, stream=None, journal: bool | None = None) -> None:
    use_journal = under_systemd(stream=stream) if journal is None else journal
    if use_journal:
        handler = journal_handler()
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RateLimit())
    handler.addFilter(ConnectorFields())  # the journal handler has its own already: no harm
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("websockets", "ocpp", "pymodbus", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
