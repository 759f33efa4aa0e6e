"""Logging for the service: readable lines on stderr. Structured fields passed as
`extra={"CHARGER_ID": ..., "REASON": ...}` are appended as KEY=value so the same calls read
well in a terminal."""

from __future__ import annotations

import logging
import sys

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k.isupper()}
        if fields:
            line += "  " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def setup_logging(verbose: bool = False, stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("websockets", "ocpp", "pymodbus", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
