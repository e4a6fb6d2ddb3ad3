"""The storage reconcile runs while jobs are stored: a store in progress writes its objects before
their rows, which is not drift until its job has ended without them."""
from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from generations.models import Generation
from generations.transitions import transition
from storage.keys import generation_key
from storage.reconcile import storage_reconcile
from tests.generations.test_pipeline import create

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status


def test_objects_of_a_job_still_storing_are_not_orphans_until_it_ends_without_them(user, storage_backend):
    # given: a job whose store has written its video but not yet its rows
    generation = create(user)
    Generation.objects.filter(pk=generation.pk).update(status=Status.STORING)
    key = generation_key(user.pk, generation.pk, "video.mp4")
    default_storage.save(key, ContentFile(b"\0" * 1024))

    # then: nothing has drifted while the job is open
    assert storage_reconcile().clean

    # when: the job ends without the object's row (its store failed)
    assert transition(generation.pk, from_=[Status.STORING], to=Status.FAILED, error_code="download_failed")

    # then: the object is reported as an orphan
    drift = storage_reconcile()
    assert drift.orphaned_objects == [key] and not drift.missing_objects and not drift.bytes_by_user
