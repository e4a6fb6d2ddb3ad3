"""Attempt rows: written before an outbound call and completed after it, or (calls safe to repeat)
written once it ended."""
from __future__ import annotations

from django.utils import timezone

from fal_protocol.client import FalAmbiguous, FalError, FalRejected, FalUnavailable
from generations.models import Generation, GenerationAttempt

Outcome = GenerationAttempt.Outcome


def attempt_start(generation: Generation, kind: str, *, number: int = 1, endpoint: str = "",
                  payload_sha256: str = "") -> GenerationAttempt:
    """Record a call about to be made (a submit also records its fingerprint: endpoint and payload hash)."""
    return GenerationAttempt.objects.create(generation=generation, kind=kind, number=number, endpoint=endpoint,
                                            payload_sha256=payload_sha256)


def attempt_finish(attempt: GenerationAttempt, *, error: Exception | None = None, http_status: int | None = None,
                   response: dict | None = None, outcome: str | None = None) -> None:
    """Record how the call ended: `outcome` when given, else OK when `error` is None, else the error's class."""
    GenerationAttempt.objects.filter(pk=attempt.pk).update(
        **_ended(error=error, http_status=http_status, response=response, outcome=outcome))


def attempt_record(generation: Generation, kind: str, *, error: Exception | None = None,
                   http_status: int | None = None, response: dict | None = None, outcome: str | None = None) -> None:
    """Record a call after it ended, in one write (as `attempt_finish` would): for calls that are safe
    to repeat, whose start need not be known should the process die during them."""
    GenerationAttempt.objects.create(
        generation=generation, kind=kind,
        **_ended(error=error, http_status=http_status, response=response, outcome=outcome))


def _ended(*, error: Exception | None, http_status: int | None, response: dict | None,
           outcome: str | None) -> dict:
    if isinstance(error, FalError):
        http_status = error.status_code
    return dict(outcome=outcome or _outcome_of(error), http_status=http_status, error=str(error or "")[:2000],
                response=response, finished_at=timezone.now())


def _outcome_of(error: Exception | None) -> str:
    if error is None:
        return Outcome.OK
    if isinstance(error, FalRejected):
        return Outcome.REJECTED
    if isinstance(error, FalUnavailable):
        return Outcome.UNAVAILABLE
    if isinstance(error, FalAmbiguous):
        return Outcome.AMBIGUOUS
    return Outcome.ERROR


def attempt_record_failure(generation: Generation, kind: str, error: Exception) -> None:
    """A failed call recorded after the fact (status polls are only recorded when they fail)."""
    attempt_record(generation, kind, error=error)
