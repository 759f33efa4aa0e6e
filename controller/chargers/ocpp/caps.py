"""What a charger told us about its smart-charging abilities, in version-neutral form,
plus the helpers both versions use to talk to it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ocpp.exceptions import OCPPError
from websockets.exceptions import ConnectionClosed

# Current per phase is what the allocator needs; the rest is for status and compliance.
MEASURANDS = "Current.Import,Current.Offered,Power.Active.Import,Energy.Active.Import.Register"
CALL_TIMEOUT_S = 10.0
# The ocpp package logs every frame at INFO: keep that out of the journal unless someone
# lowers this logger's level on purpose to debug a charger.
WIRE_LOG = logging.getLogger("controller.chargers.ocpp.wire")
WIRE_LOG.setLevel(logging.WARNING)


class _NotOurFault(logging.Filter):
    """The package logs a traceback for every request a charger gets wrong (schema, unknown
    action); the link counts those and logs the first one itself. Our own handler bugs still
    come through with their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], OCPPError))


WIRE_LOG.addFilter(_NotOurFault())


@dataclass(frozen=True)
class ChargerCaps:
    unit: str = "A"  # "A" | "W": the unit its schedules must use
    max_stack_level: int | None = None  # None = not reported
    notes: dict[str, str] = field(default_factory=dict)


def pick_unit(allowed: str | None) -> str:
    """"Current", "A", "Current,Power", "A,W" -> A (preferred: no voltage assumption);
    only-power chargers -> W. Unknown -> A, the OCPP default."""
    parts = {p.strip().lower() for p in (allowed or "").split(",")}
    if parts & {"current", "a"} or not parts & {"power", "w"}:
        return "A"
    return "W"


def to_int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


async def request(cp, payload, validate: bool = True) -> tuple[object | None, str]:
    """Send one request; (result, "") or (None, why) for a CALLERROR or invalid reply.
    `cp.awaited` is the unique id of the request in flight, set by the link as it goes out.
    Timeouts and a closed connection propagate: they are link problems, not refusals.

    validate=False skips the JSON-schema checks, which the ocpp package runs in a thread
    pool: only for requests built by tested pure code on the hot path (SetChargingProfile).
    """
    try:
        return await cp.call(payload, suppress=False, skip_schema_validation=not validate), ""
    except (TimeoutError, ConnectionClosed):
        raise
    except OCPPError as error:
        return None, f"CALLERROR {error.code}"
    except Exception as error:  # unknown CALLERROR code, reply of the wrong shape
        return None, f"bad reply: {type(error).__name__}"
    finally:
        cp.awaited = None  # answered or given up: a later answer is nobody's
