"""`Prefer: wait=N` (RFC 7240, as Replicate's API uses it): answer when the job is terminal or N
seconds have passed, whichever is first, instead of at once."""
from __future__ import annotations

import re

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

MAX_WAIT_SECONDS = 60
_WAIT = re.compile(r"^\s*wait(?:\s*=\s*(?P<seconds>[^\s;,]*))?\s*$", re.IGNORECASE)


def preferred_wait(request: Request) -> int | None:
    """The seconds a `Prefer: wait` or `Prefer: wait=N` header asks for (`wait` alone: the most,
    MAX_WAIT_SECONDS), or None without one. Other preferences in the header are ignored, as RFC 7240
    allows; a wait that is not a whole number from 1 to MAX_WAIT_SECONDS is a validation error
    naming the header."""
    for preference in request.headers.get("Prefer", "").split(","):
        match = _WAIT.match(preference.split(";")[0])
        if match is None:
            continue
        raw = match.group("seconds")
        if raw is None:
            return MAX_WAIT_SECONDS
        if raw.isdigit() and 1 <= int(raw) <= MAX_WAIT_SECONDS:
            return int(raw)
        problem = f"wait=N needs a whole number of seconds from 1 to {MAX_WAIT_SECONDS}, not {raw!r}."
        raise ValidationError({"Prefer": [problem]})
    return None
