"""generation_create: validate, price, record and enqueue a new job."""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.text import text_problem
from generations import ltx
from generations.events import generation_event_record
from generations.images import ImageRejected, StartImage, load_start_image
from generations.models import Generation, Project
from generations.prompt_checks import prompt_checks_run
from generations.queue import SUBMIT_TASK, enqueue_on_commit
from generations.selectors import provider_is_paused_for_hold
from generations.services.lease import tracker_ensure
from generations.services.projects import project_default_for
from storage.keys import generation_key
from storage.models import StoredObject
from storage.quotas import estimate_bytes, quota_reserve
from storage.transfer import STORAGE_ERRORS, delete_key, store_bytes

# What a generation's stored `input["image_url"]` says when the start image was uploaded or given as a
# data URI: the bytes live in the studio's storage (Generation.start_image), not in the row.
START_IMAGE_REF = "studio:start-image"

# If the on-commit enqueue is lost (process died right after commit), the tracker picks the
# row up once this much time has passed.
log = logging.getLogger(__name__)
PENDING_REDRIVE_AFTER = timedelta(seconds=10)


class IdempotencyConflict(Exception):
    """The idempotency key was already used by this owner for a different request."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        super().__init__(f"this Idempotency-Key was already used for a different request (generation {generation.pk})")


class OwnerSuspended(Exception):
    """The owner's account is suspended: no new jobs."""

    def __init__(self) -> None:
        super().__init__("this account is suspended and cannot start new generations")


class StorageUnavailable(Exception):
    """The studio's storage refused the start image: nothing was created; the same request may be sent again."""

    RETRY_AFTER_SECONDS = 30

    def __init__(self) -> None:
        super().__init__("the studio's storage is unavailable right now, so the start image could not be kept; "
                         "nothing was created: try again in a little while")


def request_fingerprint(*, model_id: str, input: dict, project: Project | None, webhook_url: str) -> str:
    canonical = json.dumps({"model": model_id, "input": input, "project": str(project.pk) if project else None,
                            "webhook_url": webhook_url}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def generation_create(*, owner: User, model: str, input: Any, project: Project | None = None,
                      idempotency_key: str | None = None, webhook_url: str = "",
                      fal_webhook_url: str = "") -> tuple[Generation, bool]:
    """Create a PENDING generation and enqueue its submit after commit.

    The job's exact price and an upper estimate of its bytes are reserved against the owner's
    quota in the same transaction (`storage.quotas.quota_reserve`), so concurrent creates never
    exceed a limit. Raises `ltx.InputError` (naming every bad field) or `QuotaExceeded` before
    anything is written or sent upstream. With an `idempotency_key` already used by this owner for
    the same request, returns that generation and `created=False`; for a different request, raises
    IdempotencyConflict. Runs its own transaction.

    Moderation comes first: the registered prompt checks run (`prompt_checks`; a prompt on the
    moderation app's blocklist raises its PromptBlocked, an InputError on `prompt`) and a suspended
    owner raises OwnerSuspended, before any reservation, row or upstream call. While the provider is
    paused (`services.provider_switch`) the job is created HELD and nothing is enqueued; resuming the
    provider submits held jobs in fair order.

    Image-to-video: `input["image_url"]` (data URI or http(s) URL, fetched under the public-address
    rule) is checked by decoding (`images.load_start_image`; a refusal is `InputError({"image_url": …})`),
    stored before the transaction as the job's own object `start.<ext>` (removed again if the
    transaction fails; storage refusing it raises StorageUnavailable, with nothing created), linked
    as `Generation.start_image` and counted in the byte reservation. The
    stored input keeps the original URL, or `START_IMAGE_REF` instead of a data URI; submit builds
    what fal gets.

    `webhook_url` gets the studio's integrator webhooks; `fal_webhook_url` (the gateway's
    `?fal_webhook=`) gets fal's webhook body when the job ends. Both must already be checked.
    An `idempotency_key` over IDEMPOTENCY_KEY_MAX_CHARS, or not storable text, is an InputError
    naming `Idempotency-Key`.
    """
    spec = ltx.resolve_model(model)
    data = ltx.validate_input(spec, input)
    _check_idempotency_key(idempotency_key)
    if not owner.is_active:
        raise OwnerSuspended()
    prompt_checks_run(str(data["prompt"]), owner=owner)
    if project is not None and project.owner_id != owner.pk:
        raise ltx.InputError({"project": "no such project"})
    fingerprint = request_fingerprint(model_id=spec.id, input=data, project=project, webhook_url=webhook_url)
    if idempotency_key:
        existing = Generation.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing:
            return _replay(existing, fingerprint), False
    generation_id = uuid.uuid4()
    start_key = ""
    start: StartImage | None = None
    if spec.is_image_to_video and data.get("image_url"):
        try:
            start = load_start_image(str(data["image_url"]))
        except ImageRejected as exc:
            raise ltx.InputError({"image_url": str(exc)}) from None
        # Network I/O before the transaction; undone below if the transaction does not commit.
        start_key = generation_key(owner.pk, generation_id, f"start.{start.extension}")
        try:
            store_bytes(start_key, start.data, content_type=start.content_type)
        except STORAGE_ERRORS as exc:
            log.warning("start image of a new job not stored: %s", exc)
            _forget_start_image(start_key)  # whatever part of it may have been written
            raise StorageUnavailable() from exc
        data = {**data, "image_url": start.source_url or START_IMAGE_REF}
    try:
        with transaction.atomic():
            start_object = None
            if start is not None:
                start_object = StoredObject.objects.create(
                    owner=owner, key=start_key, size=start.size, content_type=start.content_type,
                    sha256=hashlib.sha256(start.data).hexdigest())
            held = provider_is_paused_for_hold()
            generation = Generation.objects.create(
                id=generation_id,
                status=Generation.Status.HELD if held else Generation.Status.PENDING,
                start_image=start_object,
                owner=owner,
                project=project or project_default_for(owner),
                model_id=spec.id,
                input=data,
                cost_usd=ltx.price_usd(spec, data),
                idempotency_key=idempotency_key or None,
                idempotency_fingerprint=fingerprint if idempotency_key else "",
                webhook_url=webhook_url,
                fal_webhook_url=fal_webhook_url,
                next_poll_at=None if held else timezone.now() + PENDING_REDRIVE_AFTER,
            )
            generation_event_record(generation)
            video_bytes = estimate_bytes(duration=int(data["duration"]), resolution=data["resolution"],
                                         fps=int(data["fps"]), audio=data["generate_audio"])
            quota_reserve(user=owner, job=generation.pk, usd=generation.cost_usd,
                          bytes=video_bytes + (start.size if start else 0),
                          note=f"{spec.short_name} {data['duration']} s {data['resolution']}")
            # Re-checked under the quota row lock that `moderation.services.user_suspend` also takes.
            if not get_user_model().objects.filter(pk=owner.pk, is_active=True).exists():
                raise OwnerSuspended()
            if not held:
                enqueue_on_commit(SUBMIT_TASK, str(generation.pk))
                transaction.on_commit(tracker_ensure)
    except IntegrityError:
        _forget_start_image(start_key)
        if not idempotency_key:
            raise
        # A concurrent request with the same key won the race; answer as its replay.
        return _replay(Generation.objects.get(owner=owner, idempotency_key=idempotency_key), fingerprint), False
    except BaseException:
        _forget_start_image(start_key)
        raise
    return generation, True


def _forget_start_image(key: str) -> None:
    if not key:
        return
    try:
        delete_key(key)
    except STORAGE_ERRORS as exc:  # storage is down: the daily reconcile removes what is left
        log.warning("could not remove the start image %s of a job not created: %s", key, exc)


def generation_start_image_value(generation: Generation) -> str:
    """The start image as an `image_url` for a new request: its original URL, or a data URI of the stored bytes."""
    image_url = str(generation.input.get("image_url") or "")
    if image_url != START_IMAGE_REF:
        return image_url
    if generation.start_image is None:
        return ""
    with default_storage.open(generation.start_image.key, "rb") as handle:
        data = handle.read()
    return StartImage(data=data, content_type=generation.start_image.content_type).data_uri()


def _replay(existing: Generation, fingerprint: str) -> Generation:
    if existing.idempotency_fingerprint != fingerprint:
        raise IdempotencyConflict(existing)
    return existing


class NotRetryable(Exception):
    """The generation cannot be run again now; the message says why."""


def generation_rerun(generation: Generation, *, idempotency_key: str | None = None) -> tuple[Generation, bool]:
    """Run a finished generation again as a new job with the same model, input (its start image
    too, however it was given), project and webhook.

    Priced and reserved like any other job (may raise QuotaExceeded, or InputError if the rules
    changed since); `idempotency_key` as for `generation_create`, whose (generation, created) it
    returns. Raises NotRetryable while the generation is still active.
    """
    if generation.status not in Generation.TERMINAL:
        raise NotRetryable("this generation is still running; wait for it or cancel it first")
    data = dict(generation.input)
    if "image_url" in data:
        data["image_url"] = generation_start_image_value(generation)
    return generation_create(owner=generation.owner, model=generation.model_id, input=data,
                             project=generation.project, webhook_url=generation.webhook_url,
                             idempotency_key=idempotency_key)


def generation_retry(generation: Generation) -> Generation:
    """`generation_rerun` of a failed or canceled generation (what "retry" means in the REST API and
    the admin). Raises NotRetryable for a job that is active or succeeded."""
    if generation.status not in (Generation.Status.FAILED, Generation.Status.CANCELED):
        raise NotRetryable(f"only failed or canceled generations can be retried; this one is {generation.status}")
    return generation_rerun(generation)[0]


IDEMPOTENCY_KEY_MAX_CHARS = 128


def _check_idempotency_key(key: str | None) -> None:
    if not key:
        return
    if len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        raise ltx.InputError({"Idempotency-Key": f"at most {IDEMPOTENCY_KEY_MAX_CHARS} characters"})
    if problem := text_problem(key):
        raise ltx.InputError({"Idempotency-Key": problem})
