"""generation_create: validate, price, record and enqueue a new job."""
from __future__ import annotations

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


def generation_create(*, owner: AbstractBaseUser, model: str, input: Any, project: Project | None = None,
                      idempotency_key: str | None = None) -> tuple[Generation, bool]:
    """Create a PENDING generation and enqueue its submit after commit.

    The job's exact price and an upper estimate of its bytes are reserved against the owner's
    quota in the same transaction (`storage.quotas.quota_reserve`), so concurrent creates never
    exceed a limit. Raises `ltx.InputError` (naming every bad field) or `QuotaExceeded` before
    anything is written or sent upstream. With an `idempotency_key` already used by this owner,
    returns that generation instead and `created=False`. Runs its own transaction.
    """
    spec = ltx.resolve_model(model)
    data = ltx.validate_input(spec, input)
    if project is not None and project.owner_id != owner.pk:
        raise ltx.InputError({"project": "no such project"})
    if idempotency_key:
        existing = Generation.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing:
            return existing, False
    try:
        with transaction.atomic():
            generation = Generation.objects.create(
                owner=owner,
                project=project or project_default_for(owner),
                model_id=spec.id,
                input=data,
                cost_usd=ltx.price_usd(spec, data),
                idempotency_key=idempotency_key or None,
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
        # A concurrent request with the same key won the race; return its row.
        return Generation.objects.get(owner=owner, idempotency_key=idempotency_key), False
    return generation, True
