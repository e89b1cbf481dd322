"""Times as the services write them: RFC 3339 UTC with milliseconds."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def iso(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_now() -> str:
    return iso(time.time())
