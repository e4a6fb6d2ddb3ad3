"""Fixtures and helpers for the admin and moderation tests: roles, and generations in any state
with real stored MP4s (imported into tests/admin/conftest.py and tests/moderation/conftest.py)."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from generations.models import Generation, GenerationAttempt
from generations.services.create import generation_create
from generations.transitions import transition
from storage.models import StoredObject, StoredVideo
from tests.videos import make_mp4

Status = Generation.Status


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password="root-password")


@pytest.fixture
def moderator(django_user_model):
    user = django_user_model.objects.create_user(username="mod", password="mod-password", is_staff=True)
    user.groups.add(Group.objects.get(name="moderator"))
    return user


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def moderator_client(client, moderator):
    client.force_login(moderator)
    return client


def pending(owner, prompt: str = "A cowboy at high noon", **input) -> Generation:
    generation, _ = generation_create(owner=owner, model="t2v", input={"prompt": prompt, **input})
    return generation


def running(owner, prompt: str = "A running job") -> Generation:
    generation = pending(owner, prompt)
    transition(generation.pk, from_=[Status.PENDING], to=Status.SUBMITTING)
    transition(generation.pk, from_=[Status.SUBMITTING], to=Status.QUEUED, fal_request_id=f"req-{generation.pk}")
    transition(generation.pk, from_=[Status.QUEUED], to=Status.RUNNING, was_running=True)
    return Generation.objects.get(pk=generation.pk)


def failed(owner, prompt: str = "A failed job") -> Generation:
    generation = pending(owner, prompt)
    transition(generation.pk, from_=[Status.PENDING], to=Status.FAILED, error_code="rejected", error_message="no")
    return Generation.objects.get(pk=generation.pk)


def succeeded(owner, prompt: str = "A finished video", tmp_path=None) -> Generation:
    """A job that went the whole way (pending → … → succeeded, charged) with a real 2 s MP4 and a poster,
    one recorded submit attempt and fal request id."""
    import tempfile
    from pathlib import Path

    from PIL import Image

    generation = pending(owner, prompt)
    pk = generation.pk
    transition(pk, from_=[Status.PENDING], to=Status.SUBMITTING)
    attempt = GenerationAttempt.objects.create(generation=generation, kind=GenerationAttempt.Kind.SUBMIT,
                                               outcome=GenerationAttempt.Outcome.OK, http_status=200)
    GenerationAttempt.objects.filter(pk=attempt.pk).update(finished_at=attempt.started_at + _ms(250))
    transition(pk, from_=[Status.SUBMITTING], to=Status.QUEUED, fal_request_id=f"req-{pk}")
    transition(pk, from_=[Status.QUEUED], to=Status.STORING)
    folder = Path(tmp_path or tempfile.mkdtemp())
    mp4 = make_mp4(folder / f"{pk}.mp4", duration=2)
    poster_path = folder / f"{pk}.jpg"
    Image.new("RGB", (320, 180), (10, 200, 10)).save(poster_path, "JPEG")
    key = f"users/{owner.pk}/generations/{pk}/video.mp4"
    default_storage.save(key, ContentFile(mp4.read_bytes()))
    default_storage.save(key.replace("video.mp4", "poster.jpg"), ContentFile(poster_path.read_bytes()))
    file = StoredObject.objects.create(owner=owner, key=key, size=mp4.stat().st_size, content_type="video/mp4")
    poster = StoredObject.objects.create(owner=owner, key=key.replace("video.mp4", "poster.jpg"),
                                         size=poster_path.stat().st_size, content_type="image/jpeg")
    video = StoredVideo.objects.create(file=file, poster=poster, file_name="ltx-video.mp4", width=320, height=180,
                                       fps=25, duration=2.0, num_frames=50, has_audio=True, video_codec="h264",
                                       audio_codec="aac")
    assert transition(pk, from_=[Status.STORING], to=Status.SUCCEEDED, video=video)
    return Generation.objects.select_related("video__file", "video__poster").get(pk=pk)


def _ms(n: int):
    from datetime import timedelta

    return timedelta(milliseconds=n)


def run_action(client, model_path: str, action: str, pks, reason: str | None = "a reason"):
    """Run an admin action the way the browser does: select, confirm with a reason. Returns the last response."""
    url = f"/admin/{model_path}/"
    first = client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks], "index": 0})
    if reason is None or first.status_code != 200:
        return first
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks], "apply": "yes",
                             "reason": reason}, follow=True)
