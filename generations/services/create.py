"""generation_create: validate, price, record and enqueue a new job."""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from generations import ltx
from generations.models import Generation, Project
from generations.queue import enqueue_on_commit
from generations.services.lease import tracker_ensure
from generations.services.projects import project_default_for
from storage.quotas import estimate_bytes, quota_reserve

# If the on-commit enqueue is lost (process died right after commit), the tracker picks the
# row up once this much time has passed.
PENDING_REDRIVE_AFTER = timedelta(seconds=10)


class IdempotencyConflict(Exception):
    """The idempotency key was already used by this owner for a different request."""

    def __init__(self, generation: Generation):
        self.generation = generation
        super().__init__(f"this Idempotency-Key was already used for a different request (generation {generation.pk})")


def request_fingerprint(*, model_id: str, input: dict, project: Project | None, webhook_url: str) -> str:
    canonical = json.dumps({"model": model_id, "input": input, "project": str(project.pk) if project else None,
                            "webhook_url": webhook_url}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def generation_create(*, owner: AbstractBaseUser, model: str, input: Any, project: Project | None = None,
                      idempotency_key: str | None = None, webhook_url: str = "") -> tuple[Generation, bool]:
    """Create a PENDING generation and enqueue its submit after commit.

    The job's exact price and an upper estimate of its bytes are reserved against the owner's
    quota in the same transaction (`storage.quotas.quota_reserve`), so concurrent creates never
    exceed a limit. Raises `ltx.InputError` (naming every bad field) or `QuotaExceeded` before
    anything is written or sent upstream. With an `idempotency_key` already used by this owner for
    the same request, returns that generation and `created=False`; for a different request, raises
    IdempotencyConflict. Runs its own transaction.
    """
    spec = ltx.resolve_model(model)
    data = ltx.validate_input(spec, input)
    if project is not None and project.owner_id != owner.pk:
        raise ltx.InputError({"project": "no such project"})
    fingerprint = request_fingerprint(model_id=spec.id, input=data, project=project, webhook_url=webhook_url)
    if idempotency_key:
        existing = Generation.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing:
            return _replay(existing, fingerprint), False
    try:
        with transaction.atomic():
            generation = Generation.objects.create(
                owner=owner,
                project=project or project_default_for(owner),
                model_id=spec.id,
                input=data,
                cost_usd=ltx.price_usd(spec, data),
                idempotency_key=idempotency_key or None,
                idempotency_fingerprint=fingerprint if idempotency_key else "",
                webhook_url=webhook_url,
                next_poll_at=timezone.now() + PENDING_REDRIVE_AFTER,
            )
            quota_reserve(user=owner, job=generation.pk, usd=generation.cost_usd, bytes=estimate_bytes(
                duration=int(data["duration"]), resolution=data["resolution"], fps=int(data["fps"]),
                audio=data["generate_audio"]), note=f"{spec.short_name} {data['duration']} s {data['resolution']}")
            enqueue_on_commit("generations.tasks.generation_submit_task", str(generation.pk))
            transaction.on_commit(tracker_ensure)
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent request with the same key won the race; answer as its replay.
        return _replay(Generation.objects.get(owner=owner, idempotency_key=idempotency_key), fingerprint), False
    return generation, True


def _replay(existing: Generation, fingerprint: str) -> Generation:
    if existing.idempotency_fingerprint != fingerprint:
        raise IdempotencyConflict(existing)
    return existing


def generation_retry(generation: Generation) -> Generation:
    """Run a failed or canceled generation again as a new job with the same model, input and project.

    The new job is priced and reserved like any other (may raise QuotaExceeded or InputError if
    the rules changed since). Raises NotRetryable for a job that is active or succeeded.
    """
    if generation.status not in (Generation.Status.FAILED, Generation.Status.CANCELED):
        raise NotRetryable(f"only failed or canceled generations can be retried; this one is {generation.status}")
    new, _ = generation_create(owner=generation.owner, model=generation.model_id, input=generation.input,
                               project=generation.project, webhook_url=generation.webhook_url)
    return new


class NotRetryable(Exception):
    pass
