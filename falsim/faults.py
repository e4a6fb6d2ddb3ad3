"""Fault injection: the faults' names and settings, their validation, and the seeded roll.

Faults (``faults`` dict, each a probability 0..1 drawn from ``random.Random(seed)``; a fault
at 0 never fires and draws nothing, so adding one leaves the others' draws as they were).
"Queue call" = submit, status (and status stream), result, cancel, after the Key check; a
queue call meets ``latency``, ``reset``, ``429``, ``5xx`` in that order, then its route's own.
    latency         the call waits ``latency_seconds`` (default 0.5) before being handled
    reset           the request is read, then the connection is dropped with a TCP RST
                    (SO_LINGER 0) and no answer; nothing was done (a submit is not enqueued,
                    a cancel not applied)
    429             the call answers 429 {"detail": "Too many requests"} with ``Retry-After: 1``
    5xx             the call answers 503: submit as submit_5xx, the others as status_5xx
    submit_5xx      submit answers 503 runner_scheduling_failure (X-Fal-Error-Type); not enqueued
    submit_reset_after_accept
                    submit enqueues the request, then resets the connection (RST) instead of
                    answering: the ambiguous case, fast
    submit_timeout  submit enqueues the request, then waits ``fault_delay`` s (default 35)
                    before answering: the ambiguous case, as a client read timeout
    submit_late     submit waits ``fault_delay`` s before it enqueues the request (and answers):
                    a request held in fal's ingress, registered after the client gave up
    status_5xx      a status call on a known request answers 503 runner_disconnected
    result_5xx      a result call on a known request answers 503 runner_disconnected
    result_422      (drawn at submit) the request runs, reports COMPLETED, and its result is
                    a 422 content_policy_violation error
    lost            (drawn at submit) the request vanishes once completed: status, result and
                    cancel answer 404, and no webhook is sent
    download_truncated  a ``GET /files/...`` download announces the full Content-Length,
                    sends the first half of the bytes and closes the connection
    download_slow   a ``GET /files/...`` download is throttled to ``download_rate_bytes`` per
                    second (default 256 KiB/s): N bytes take at least N/rate seconds
    listing_5xx     a request listing call answers 503 (after ``latency``; the queue faults do not
                    apply to fal's platform API)
Some settings are states rather than probabilities:
    locked          "" (default) or the reason of an account lock, e.g. "Exhausted balance",
                    "TOP_UP" or "Admin lock": while set, submits, storage upload initiates, upload
                    tokens and the request listing answer 403 ``{"detail": "User is locked. Reason:
                    <reason>."}`` as fal does; status, result, cancel and files keep answering
    listing_lag_seconds  a request appears in the listing this long after it was sent (default 0)
    retired         [] (default) or the endpoint ids, aliases or ``owner/app`` names to answer as gone,
                    like an app fal has removed: a submit to a retired id, or to any id of a retired
                    app, answers 404 ``{"detail": "Application '<model id>' not found"}``, the answer
                    it gives an id it never served (the shape this simulator uses for unknown apps:
                    fal's exact wording for a removed app was not found in its docs); status, result
                    and cancel calls made under a retired prefix (the app, or the full id used in
                    its place) answer the same 404. Counted in ``stats()["retired_refusals"]``.
                    ``--retired ID`` (repeatable) at start, ``PUT /_sim/faults {"retired": [...]}``
                    or ``set_faults(retired=[...])`` while running (the list replaces the previous one).
Every firing is counted in ``stats()["faults"]`` (name -> count). ``set_faults(faults, **settings)``
and ``PUT /_sim/faults`` (body ``{"faults": {...}, "latency_seconds": S, "download_rate_bytes": N,
"fault_delay": S, "locked": R, "retired": [ID, ...]}``, every key optional; 400 naming the field on bad
input) switch them for the next call: a given ``faults`` replaces every probability (names left out
become 0).

Where each fires: the queue calls' and the listing's in ``falsim/queue_api.py``, the downloads'
in ``falsim/files.py``, ``result_422`` and ``lost`` at submit in ``falsim/engine.py``; ``locked`` and
``retired`` in ``falsim/queue_api.py``.
"""

from __future__ import annotations

import collections
import json
import random
import threading
from typing import Any

from falsim.schema import KNOWN_PREFIXES

FAULT_NAMES = (
    "submit_5xx", "submit_timeout", "submit_late", "status_5xx", "result_5xx", "result_422", "lost", "429",
    "5xx", "reset", "submit_reset_after_accept", "latency", "download_truncated", "download_slow", "listing_5xx",
)
# Settings of the faults (not probabilities), changeable at runtime with the probabilities.
FAULT_SETTINGS = ("latency_seconds", "download_rate_bytes", "fault_delay", "listing_lag_seconds", "locked", "retired")
LOCK_REASON_MAX_CHARS = 200


def checked_faults(faults: Any) -> dict[str, float]:
    """Validate a {fault name: probability} mapping; raises ValueError naming the field."""
    if not isinstance(faults, dict):
        raise ValueError("faults must be an object of fault name -> probability; "
                         f"allowed names: {', '.join(FAULT_NAMES)}")
    checked = {}
    for name, value in faults.items():
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; allowed: {', '.join(FAULT_NAMES)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"fault {name!r} must be a probability from 0 to 1, got {value!r}")
        checked[name] = float(value)
    return checked


def checked_retired(value: Any) -> list[str]:
    """Validate ``retired``: a list of served ids or apps (sorted, without repeats); raises ValueError."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(name, str) for name in value):
        raise ValueError("retired must be a list of endpoint ids or owner/app names to answer as gone "
                         f'(e.g. ["fal-ai/ltx-2/text-to-video/fast"]), got {value!r}')
    for name in value:
        if name not in KNOWN_PREFIXES:
            raise ValueError(f"cannot retire {name!r}: the simulator does not serve it; "
                             f"allowed: {', '.join(sorted(KNOWN_PREFIXES))}")
    return sorted(set(value))


def checked_setting(name: str, value: Any) -> float | int | str | list[str]:
    """Validate one of FAULT_SETTINGS; raises ValueError naming the field and the allowed values."""
    if name not in FAULT_SETTINGS:
        raise ValueError(f"unknown setting {name!r}; allowed: {', '.join(FAULT_SETTINGS)}")
    if name == "retired":
        return checked_retired(value)
    if name == "locked":
        if not isinstance(value, str) or len(value) > LOCK_REASON_MAX_CHARS:
            raise ValueError(f'locked must be "" (not locked) or the lock\'s reason, at most '
                             f"{LOCK_REASON_MAX_CHARS} characters, got {value!r}")
        return value.strip()
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if name == "download_rate_bytes":
        if not (number and float(value).is_integer() and value >= 1):
            raise ValueError(f"download_rate_bytes must be a whole number of bytes per second >= 1, got {value!r}")
        return int(value)
    if not (number and 0.0 <= value < float("inf")):
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


class FaultInjector:
    """One simulator's fault probabilities and settings, and the seeded draws that fire them.

    ``probabilities`` is the live {name: probability} dict (the simulator's ``faults``); the
    same ``random.Random(seed)`` also draws run times, so one seed replays a whole run.
    """

    def __init__(self, faults: dict[str, Any] | None, settings: dict[str, Any], seed: int | None) -> None:
        checked = checked_faults(dict(faults or {}))
        values = {name: checked_setting(name, value) for name, value in settings.items()}
        self.probabilities = {name: float(checked.get(name, 0.0)) for name in FAULT_NAMES}
        self._settings: dict[str, Any] = dict(values)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._fired: collections.Counter[str] = collections.Counter()  # fault name -> times it fired

    def roll(self, name: str) -> bool:
        """Whether fault ``name`` fires this time (counted when it does)."""
        probability = self.probabilities.get(name, 0.0)
        if probability <= 0.0:
            return False
        with self._lock:
            fired = self._rng.random() < probability
            if fired:
                self._fired[name] += 1
            return fired

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._rng.uniform(low, high)

    def setting(self, name: str) -> Any:
        with self._lock:
            return _copied(self._settings[name])

    def update(self, faults: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
        """``FalSimulator.set_faults``: everything is validated before anything changes."""
        checked = checked_faults(faults) if faults is not None else None
        values = {name: checked_setting(name, value) for name, value in settings.items()}
        with self._lock:
            if checked is not None:
                # In place: callers holding ``sim.faults`` keep seeing the live values.
                self.probabilities.update({name: checked.get(name, 0.0) for name in FAULT_NAMES})
            self._settings.update(values)
        return self.snapshot()

    def snapshot(self) -> dict:
        """The fault probabilities and their settings, as ``GET /_sim/faults`` shows them."""
        with self._lock:
            return {"faults": dict(self.probabilities),
                    **{name: _copied(self._settings[name]) for name in FAULT_SETTINGS}}

    def is_retired(self, model_id: str, app: str) -> bool:
        """Whether ``model_id`` (a submit's model id, or a queue call's prefix) of ``app`` answers as gone."""
        with self._lock:
            retired = self._settings["retired"]
            return model_id in retired or app in retired

    def fired(self) -> dict[str, int]:
        with self._lock:
            return {name: self._fired[name] for name in FAULT_NAMES}


def _copied(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def answer_put(injector: FaultInjector, raw: bytes) -> tuple[int, dict]:
    """(HTTP status, body) for ``PUT /_sim/faults`` with body ``raw``; 400 naming the field on bad input."""
    try:
        body = json.loads(raw.decode("utf-8") or "null")
    except (ValueError, UnicodeDecodeError) as exc:
        return 400, {"detail": f"body must be a JSON object: {exc}"}
    if not isinstance(body, dict):
        return 400, {"detail": "body must be a JSON object with 'faults' and/or "
                               + ", ".join(f"'{name}'" for name in FAULT_SETTINGS)}
    allowed = ("faults",) + FAULT_SETTINGS
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        return 400, {"detail": f"unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}"}
    try:
        return 200, injector.update(body.get("faults"), **{k: v for k, v in body.items() if k != "faults"})
    except ValueError as exc:
        return 400, {"detail": str(exc)}
