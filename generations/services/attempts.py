"""Attempt rows: written before an outbound call, completed after it (shared style.md §3.3)."""
from __future__ import annotations

from django.utils import timezone

from generations.fal import FalAmbiguous, FalError, FalRejected, FalUnavailable
from generations.models import Generation, GenerationAttempt

Outcome = GenerationAttempt.Outcome


def attempt_start(generation: Generation, kind: str, *, number: int = 1) -> GenerationAttempt:
    return GenerationAttempt.objects.create(generation=generation, kind=kind, number=number)


def attempt_finish(attempt: GenerationAttempt, *, error: Exception | None = None, http_status: int | None = None,
                   response: dict | None = None) -> None:
    """Record how the call ended: OK when `error` is None, else the error's class."""
    outcome = Outcome.OK
    if isinstance(error, FalRejected):
        outcome = Outcome.REJECTED
    elif isinstance(error, FalUnavailable):
        outcome = Outcome.UNAVAILABLE
    elif isinstance(error, FalAmbiguous):
        outcome = Outcome.AMBIGUOUS
    elif error is not None:
        outcome = Outcome.ERROR
    if isinstance(error, FalError):
        http_status = error.status_code
    GenerationAttempt.objects.filter(pk=attempt.pk).update(
        outcome=outcome, http_status=http_status, error=str(error or "")[:2000], response=response,
        finished_at=timezone.now(),
    )


def attempt_record_failure(generation: Generation, kind: str, error: Exception) -> None:
    """A failed call recorded after the fact (status polls are only recorded when they fail)."""
    attempt_finish(attempt_start(generation, kind), error=error)
