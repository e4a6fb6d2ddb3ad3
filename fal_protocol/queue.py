"""The words of fal's queue protocol that the client and the simulator both use.

A request is `IN_QUEUE`, then `IN_PROGRESS`, then `COMPLETED` (fal has no FAILED status: a failed
request is COMPLETED and its result call answers with the error). `payload_fingerprint` is how a
submitted body is recognised again: the studio keeps it to find an ambiguous submit in fal's
request listing, the simulator counts submits by it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
STATUSES = (IN_QUEUE, IN_PROGRESS, COMPLETED)


def payload_fingerprint(payload: Any) -> str:
    """SHA-256 of the canonical JSON of a submitted body (sorted keys, compact, UTF-8): the same for
    the body the studio sent and for that body as fal's request listing returns it (`json_input`)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
