"""Files sent through the gateway's copy of fal's storage upload flow.

A client asks for an upload (`upload_initiate`), PUTs the bytes to the signed upload URL it got
(`upload_receive`), then passes the returned file URL as `image_url`; `upload_image_for` turns
that URL back into the image. LTX-2 takes no other file input, so only start images are accepted,
with the same checks as every other start image. A stored upload counts in its owner's storage
until it expires and `uploads_purge_expired` deletes it.
"""
from __future__ import annotations

import hashlib
import logging
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core import signing
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from generations.images import EXTENSIONS, ImageRejected, StartImage, check_image_bytes
from generations.models import Upload
from generations.services.create import OwnerSuspended
from storage.keys import upload_key
from storage.models import StoredObject
from storage.quotas import quota_free_bytes, quota_store
from storage.transfer import STORAGE_ERRORS, TransferError, delete_key, store_bytes

log = logging.getLogger(__name__)
TOKEN_SALT = "generations.upload"
PURGE_BATCH = 100


class UploadRejected(Exception):
    """The upload request or its bytes are not acceptable; the message says why."""


class UploadAlreadyUsed(Exception):
    """The upload URL was already used (stored, or being stored by another PUT)."""

    def __init__(self) -> None:
        super().__init__("this upload URL was already used; start a new upload for another file")


class UploadNotStored(Exception):
    """Storage failed while taking the file; nothing was kept and the same URL may be used again."""


def upload_initiate(*, owner: User, file_name: str, content_type: str) -> Upload:
    """Record an upload `owner` is about to send. Raises UploadRejected for a type that cannot be an image.

    The bytes decide the real type when they arrive (a browser may call a HEIC file
    `application/octet-stream`)."""
    content_type = (content_type or "").split(";")[0].strip().lower() or "application/octet-stream"
    if not (content_type.startswith("image/") or content_type == "application/octet-stream"):
        raise UploadRejected(f"content_type {content_type!r} cannot be uploaded; LTX-2 takes only start images: "
                             f"{', '.join(EXTENSIONS)}")
    return Upload.objects.create(owner=owner, file_name=_clean_name(file_name), content_type=content_type,
                                 expires_at=timezone.now() + timedelta(seconds=settings.STUDIO_UPLOAD_TTL_SECONDS))


def upload_token(upload: Upload) -> str:
    """The unguessable part of the upload URL: a signed, expiring reference to `upload`."""
    return signing.dumps(str(upload.pk), salt=TOKEN_SALT)


def upload_from_token(token: str) -> Upload | None:
    """The upload a still-valid token refers to, or None."""
    try:
        pk = signing.loads(token, salt=TOKEN_SALT, max_age=settings.STUDIO_UPLOAD_URL_SECONDS)
        return Upload.objects.select_related("owner").filter(pk=uuid.UUID(str(pk))).first()
    except (signing.BadSignature, ValueError):
        return None


def upload_receive(upload: Upload, data: bytes) -> Upload:
    """Store `data` as `upload`'s file and book its bytes against the owner's storage limit.

    One upload URL stores at most one object, however many PUTs arrive at once: the upload is
    claimed in the database first (a compare-and-set of `claimed_key`), then the bytes are stored,
    then the object and its ledger line are recorded in one transaction. A PUT that finds the upload
    claimed or stored raises UploadAlreadyUsed and touches nothing. A store that fails or is refused
    after the claim deletes what it wrote and releases the claim, so the client can PUT again.

    Raises OwnerSuspended (a suspended owner stores nothing), UploadRejected (not a start image
    within the size and pixel limits), UploadAlreadyUsed, QuotaExceeded (the bytes do not fit) and
    UploadNotStored (storage failing; worth retrying). Runs its own transactions.
    """
    if not upload.owner.is_active:
        raise OwnerSuspended()
    if upload.object_id is not None or upload.claimed_key:
        raise UploadAlreadyUsed()
    try:
        image = check_image_bytes(data)
    except ImageRejected as exc:
        raise UploadRejected(str(exc)) from None
    key = upload_key(upload.owner_id, upload.pk, f"file.{image.extension}")
    if not Upload.objects.filter(pk=upload.pk, claimed_key="", object__isnull=True).update(claimed_key=key):
        raise UploadAlreadyUsed()
    try:
        try:
            store_bytes(key, image.data, content_type=image.content_type)
        except (*STORAGE_ERRORS, TransferError) as exc:
            raise UploadNotStored(f"the studio's storage did not take the file ({exc}); try the upload again") from exc
        with transaction.atomic():
            quota_store(user=upload.owner, ref=upload.pk, bytes=image.size, note=f"upload {upload.file_name}")
            # Re-checked under the quota row lock that `moderation.services.user_suspend` also takes.
            if not get_user_model().objects.filter(pk=upload.owner_id, is_active=True).exists():
                raise OwnerSuspended()
            stored = StoredObject.objects.create(owner_id=upload.owner_id, key=key, size=image.size,
                                                 content_type=image.content_type,
                                                 sha256=hashlib.sha256(image.data).hexdigest())
            Upload.objects.filter(pk=upload.pk).update(object=stored, content_type=image.content_type)
    except BaseException:
        # Only this claim's holder writes `key`, and nothing was recorded: remove it, then free the
        # upload. If it cannot be removed the claim stays, so no other PUT can leave a second object;
        # the purge deletes the key when the upload expires.
        if _delete_quietly(key):
            Upload.objects.filter(pk=upload.pk, claimed_key=key, object__isnull=True).update(claimed_key="")
        raise
    upload.claimed_key, upload.object, upload.content_type = key, stored, image.content_type
    return upload


def upload_image_for(owner: User, upload_id: uuid.UUID | str) -> StartImage | None:
    """The stored image of `owner`'s unexpired upload `upload_id`, or None (also for other users' uploads)."""
    upload = (Upload.objects.select_related("object")
              .filter(pk=upload_id, owner=owner, object__isnull=False, expires_at__gt=timezone.now()).first())
    if upload is None:
        return None
    stored = upload.object
    assert stored is not None  # filtered on object__isnull=False
    with default_storage.open(stored.key, "rb") as handle:
        return StartImage(data=handle.read(), content_type=stored.content_type)


def uploads_purge_expired(*, limit: int = PURGE_BATCH) -> int:
    """Delete expired uploads (object first, then rows, with a ledger line freeing the bytes).

    Safe to run twice or concurrently: deleting a missing object is a no-op and the ledger line is
    unique per upload. An upload URL expires (STUDIO_UPLOAD_URL_SECONDS) long before the upload does
    (STUDIO_UPLOAD_TTL_SECONDS), so no PUT is still storing. Returns how many uploads were removed.
    """
    expired = list(Upload.objects.select_related("object").filter(expires_at__lte=timezone.now())[:limit])
    for upload in expired:
        stored = upload.object
        # The claimed key too: a store cut short by a dead process may have left an object there.
        for key in {stored.key if stored else "", upload.claimed_key} - {""}:
            delete_key(key)
        with transaction.atomic():
            if stored is not None:
                quota_free_bytes(job=upload.pk, user_id=upload.owner_id, freed_bytes=stored.size,
                                 note=f"upload {upload.file_name} expired")
                Upload.objects.filter(pk=upload.pk).update(object=None)
                StoredObject.objects.filter(pk=stored.pk).delete()
            Upload.objects.filter(pk=upload.pk).delete()
    return len(expired)


def _delete_quietly(key: str) -> bool:
    try:
        delete_key(key)
    except STORAGE_ERRORS as exc:
        log.warning("could not remove %s after a failed upload; the purge will: %s", key, exc)
        return False
    return True


def _clean_name(file_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", (file_name or "").rsplit("/", 1)[-1]).strip(".-")[:100] or "upload"
