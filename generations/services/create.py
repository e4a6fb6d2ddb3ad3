"""generation_create: validate, price, record and enqueue a new job."""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
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
from generations.media_inputs import MEDIA_INPUTS, START_IMAGE, MediaInput
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
START_IMAGE_REF = START_IMAGE.ref

log = logging.getLogger(__name__)


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
    """SHA-256 of a create's canonical JSON: what an Idempotency-Key replay must match."""
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

    `model` is resolved by `ltx.resolve_model` and must be usable (`ltx.endpoint_check_usable`: not
    disabled, retired or gone at fal — else an InputError naming `model`); the job records the
    exact endpoint id and is priced by it (the operator's price override included).

    Media inputs (`media_inputs.MEDIA_INPUTS`: `image_url`, and 2.3's `end_image_url`; data URI or
    http(s) URL, fetched under the public-address rule) are checked by decoding
    (`images.load_start_image`; a refusal is an InputError naming the field), stored before the
    transaction as the job's own objects `start.<ext>` / `end.<ext>` (removed again if the
    transaction fails; storage refusing them raises StorageUnavailable, with nothing created),
    linked as `Generation.start_image` / `end_image` and counted in the byte reservation. The stored
    input keeps the original URL, or the input's `ref` instead of a data URI; submit builds what
    fal gets.

    `webhook_url` gets the studio's integrator webhooks; `fal_webhook_url` (the gateway's
    `?fal_webhook=`) gets fal's webhook body when the job ends. Both must already be checked.
    An `idempotency_key` over IDEMPOTENCY_KEY_MAX_CHARS, or not storable text, is an InputError
    naming `Idempotency-Key`.
    """
    endpoint = ltx.resolve_model(model)
    data = ltx.validate_input(endpoint, input)
    _check_idempotency_key(idempotency_key)
    if not owner.is_active:
        raise OwnerSuspended()
    prompt_checks_run(str(data["prompt"]), owner=owner)
    if project is not None and project.owner_id != owner.pk:
        raise ltx.InputError({"project": "no such project"})
    fingerprint = request_fingerprint(model_id=endpoint.id, input=data, project=project, webhook_url=webhook_url)
    if idempotency_key:
        existing = Generation.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing:
            return _replay(existing, fingerprint), False
    override = ltx.endpoint_check_usable(endpoint)
    generation_id = uuid.uuid4()
    media = _media_loaded(endpoint.media_fields, data)
    stored_keys: list[str] = []
    try:
        # Network I/O before the transaction; undone below if the transaction does not commit.
        for medium, image in media.items():
            key = generation_key(owner.pk, generation_id, f"{medium.stem}.{image.extension}")
            stored_keys.append(key)
            store_bytes(key, image.data, content_type=image.content_type)
            data = {**data, medium.field: image.source_url or medium.ref}
    except STORAGE_ERRORS as exc:
        log.warning("media input of a new job not stored: %s", exc)
        _forget_media(stored_keys)  # whatever part of them may have been written
        raise StorageUnavailable() from exc
    try:
        with transaction.atomic():
            media_objects = {
                medium.attribute: StoredObject.objects.create(
                    owner=owner, key=key, size=image.size, content_type=image.content_type,
                    sha256=hashlib.sha256(image.data).hexdigest())
                for key, (medium, image) in zip(stored_keys, media.items(), strict=True)}
            held = provider_is_paused_for_hold()
            generation = Generation.objects.create(
                id=generation_id,
                status=Generation.Status.HELD if held else Generation.Status.PENDING,
                **media_objects,
                owner=owner,
                project=project or project_default_for(owner),
                model_id=endpoint.id,
                input=data,
                cost_usd=ltx.price_usd(endpoint, data, override),
                idempotency_key=idempotency_key or None,
                idempotency_fingerprint=fingerprint if idempotency_key else "",
                webhook_url=webhook_url,
                fal_webhook_url=fal_webhook_url,
                next_poll_at=None if held else timezone.now(),  # due at once: the tracker sends it
            )
            generation_event_record(generation)
            video_bytes = estimate_bytes(duration=int(data["duration"]), resolution=data["resolution"],
                                         fps=int(data["fps"]), audio=data["generate_audio"])
            quota_reserve(user=owner, job=generation.pk, usd=generation.cost_usd,
                          bytes=video_bytes + sum(image.size for image in media.values()),
                          note=f"{endpoint.id} {data['duration']} s {data['resolution']}")
            # Re-checked under the quota row lock that `moderation.services.user_suspend` also takes.
            if not get_user_model().objects.filter(pk=owner.pk, is_active=True).exists():
                raise OwnerSuspended()
            if not held:
                enqueue_on_commit(SUBMIT_TASK, str(generation.pk))
                transaction.on_commit(tracker_ensure)
    except IntegrityError:
        _forget_media(stored_keys)
        if not idempotency_key:
            raise
        # A concurrent request with the same key won the race; answer as its replay.
        return _replay(Generation.objects.get(owner=owner, idempotency_key=idempotency_key), fingerprint), False
    except BaseException:
        _forget_media(stored_keys)
        raise
    return generation, True


def _media_loaded(fields: tuple[str, ...], data: dict[str, Any]) -> dict[MediaInput, StartImage]:
    """Every media input `data` carries, fetched or decoded and checked (`images.load_start_image`);
    a refusal is an InputError naming its field."""
    loaded: dict[MediaInput, StartImage] = {}
    errors: dict[str, str] = {}
    for medium in MEDIA_INPUTS:
        if medium.field in fields and data.get(medium.field):
            try:
                loaded[medium] = load_start_image(str(data[medium.field]))
            except ImageRejected as exc:
                errors[medium.field] = str(exc)
    if errors:
        raise ltx.InputError(errors)
    return loaded


def _forget_media(keys: list[str]) -> None:
    for key in keys:
        try:
            delete_key(key)
        except STORAGE_ERRORS as exc:  # storage is down: the daily reconcile removes what is left
            log.warning("could not remove the media input %s of a job not created: %s", key, exc)


def generation_media_value(generation: Generation, medium: MediaInput) -> str:
    """A media input of `generation` as a value for a new request: its original URL, or a data URI
    of the stored bytes ("" when it has none)."""
    value = str(generation.input.get(medium.field) or "")
    if value != medium.ref:
        return value
    stored = getattr(generation, medium.attribute)
    if stored is None:
        return ""
    with default_storage.open(stored.key, "rb") as handle:
        data = handle.read()
    return StartImage(data=data, content_type=stored.content_type).data_uri()


def generation_start_image_value(generation: Generation) -> str:
    """The start image as an `image_url` for a new request: its original URL, or a data URI of the stored bytes."""
    return generation_media_value(generation, START_IMAGE)


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
    for medium in MEDIA_INPUTS:
        if medium.field in data:
            data[medium.field] = generation_media_value(generation, medium)
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
