"""Deleting a finished generation with its stored files, freeing its bytes."""
from __future__ import annotations

from django.db import transaction

from generations.billing import stored_bytes
from generations.media_inputs import MEDIA_ATTRIBUTES, stored_media
from generations.models import Generation
from storage.models import StoredObject
from storage.quotas import quota_free_bytes
from storage.services import video_delete
from storage.transfer import delete_key


class StillActive(Exception):
    """Only finished generations can be deleted; cancel an active one first."""


def generation_delete(generation: Generation) -> None:
    """Delete `generation`, its video and poster, its media inputs (start and end image), and free
    their bytes in the owner's ledger.

    The objects go first and the rows after, so a crash in between leaves a row whose objects are
    gone, and running this again finishes the job (deleting a missing object is fine). Idempotent.
    Raises StillActive for an active generation.
    """
    fresh = (Generation.objects.select_related("video__file", "video__poster", *MEDIA_ATTRIBUTES)
             .filter(pk=generation.pk).first())
    if fresh is None:
        return
    generation = fresh
    if generation.status not in Generation.TERMINAL:
        raise StillActive("cancel the generation before deleting it")
    freed = stored_bytes(generation)
    with transaction.atomic():
        if generation.video is not None:  # loaded by select_related, like the start image
            Generation.objects.filter(pk=generation.pk).update(video=None)
            video_delete(generation.video)
        for media, stored in stored_media(generation):
            delete_key(stored.key)
            Generation.objects.filter(pk=generation.pk).update(**{media.attribute: None})
            StoredObject.objects.filter(pk=stored.pk).delete()
        quota_free_bytes(job=generation.pk, user_id=generation.owner_id, freed_bytes=freed,
                         note=f"deleted {generation.model_id} video")
        generation.delete()
