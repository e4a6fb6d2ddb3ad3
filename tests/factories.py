"""Test data, built the way the studio builds it (factory_boy).

Users come from the user manager (`create_user`, `create_superuser`), API keys from
`accounts.keys.api_key_create` (the factory returns the raw key too: it is shown only once), and a
fresh generation from `generation_create`: validated, priced, its quota reserved, `pending`.

Generations in later states come two ways. `GenerationFactory(status=..., **columns)` writes the
given columns straight onto the new row (and `with_video=True` gives it a StoredVideo first): for
tests that read a job in some state and do not care how it got there. `RunningGenerationFactory`,
`FailedGenerationFactory` and `SucceededGenerationFactory` walk the state machine instead
(`generations.transitions.transition`, which settles the quota and records the status history), the
last one with a real 2 s MP4 and a poster in storage: for tests of what acts on a job.
"""
from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import factory
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Model
from factory.django import DjangoModelFactory
from PIL import Image

from accounts.keys import api_key_create
from accounts.models import ApiKey
from generations.models import Generation, GenerationAttempt, Project
from generations.services.create import generation_create
from generations.transitions import transition
from storage.models import StoredObject, StoredVideo
from tests.videos import make_mp4

Status = Generation.Status


# --- users --------------------------------------------------------------------------------------

class UserFactory(DjangoModelFactory):
    """A user made by `create_user` (the password hashed as at sign-up; None: no usable password)."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    password = "x"

    @classmethod
    def _create(cls, model_class: type[Model], *args: Any, **kwargs: Any) -> User:
        return User.objects.create_user(*args, **kwargs)


class StaffFactory(UserFactory):
    """A staff user with no group: can sign in to the admin, may do nothing there."""

    is_staff = True


class ModeratorFactory(StaffFactory):
    """A staff user in the `moderator` group (the permissions its data migration grants)."""

    class Meta:
        skip_postgeneration_save = True  # the group is added through the m2m table; the user row is final

    @factory.post_generation
    def moderator_group(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            self.groups.add(Group.objects.get(name="moderator"))


class SuperuserFactory(UserFactory):
    """A superuser made by `create_superuser`."""

    @classmethod
    def _create(cls, model_class: type[Model], *args: Any, **kwargs: Any) -> User:
        return User.objects.create_superuser(*args, **kwargs)


# --- API keys and projects ----------------------------------------------------------------------

class ApiKeyFactory(factory.Factory):
    """`(ApiKey, raw key)` from `api_key_create`, as the user would receive it."""

    class Meta:
        model = ApiKey

    user = factory.SubFactory(UserFactory)
    name = "tests"

    @classmethod
    def _create(cls, model_class: type[Model], *, user: User, name: str) -> tuple[ApiKey, str]:
        return api_key_create(user=user, name=name)


class ProjectFactory(DjangoModelFactory):
    class Meta:
        model = Project

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Project {n}")


# --- stored objects and videos ------------------------------------------------------------------

class StoredObjectFactory(DjangoModelFactory):
    """An object's row (its bytes are not written: see `GenerationFactory(stored_files=True)`)."""

    class Meta:
        model = StoredObject

    owner = factory.SubFactory(UserFactory)
    key = factory.Sequence(lambda n: f"test/object-{n}")
    size = 2048
    content_type = "video/mp4"


class StoredVideoFactory(DjangoModelFactory):
    """A 1920x1080 6 s video with audio, its file (2048 bytes) and poster (100 bytes) objects."""

    class Meta:
        model = StoredVideo

    class Params:
        owner = factory.SubFactory(UserFactory)
        key = factory.Sequence(lambda n: f"test/video-{n}.mp4")
        poster_key = factory.LazyAttribute(lambda video: video.key.removesuffix(".mp4") + ".jpg")

    file = factory.SubFactory(StoredObjectFactory, owner=factory.SelfAttribute("..owner"),
                              key=factory.SelfAttribute("..key"), size=2048, content_type="video/mp4")
    poster = factory.SubFactory(StoredObjectFactory, owner=factory.SelfAttribute("..owner"),
                                key=factory.SelfAttribute("..poster_key"), size=100, content_type="image/jpeg")
    file_name = "ltx-video.mp4"
    width = 1920
    height = 1080
    fps = 25
    duration = 6.0
    num_frames = 150
    has_audio = True
    video_codec = "h264"


# --- generations --------------------------------------------------------------------------------

def _jpeg(size: tuple[int, int] = (64, 36)) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


class GenerationFactory(factory.Factory):
    """A generation from `generation_create` (text-to-video unless `model` says otherwise), then any
    other keyword (`status`, `logs`, `finished_at`, ...) written straight onto its row.

    `with_video=True` first stores a StoredVideo row for it under `test/<id>.mp4` and `.jpg`
    (`video_fields` override the video's columns) and sets `video`; `stored_files=True` also writes
    stand-in bytes at those keys (2 KiB of zeros and a small JPEG poster) so pages can serve them.
    """

    class Meta:
        model = Generation

    owner = factory.SubFactory(UserFactory)
    model = "t2v"
    prompt = "A cowboy at high noon"
    input = factory.Dict({})
    project = None

    @classmethod
    def _create(cls, model_class: type[Model], *, owner: User, model: str, prompt: str, input: dict[str, Any],
                project: Project | None, with_video: bool = False, stored_files: bool = False,
                video_fields: dict[str, Any] | None = None, **columns: Any) -> Generation:
        generation, created = generation_create(owner=owner, model=model, input={"prompt": prompt, **input},
                                                project=project)
        assert created
        if with_video:
            key = f"test/{generation.pk}.mp4"
            if stored_files:
                default_storage.save(key, ContentFile(b"\x00" * 2048))
                default_storage.save(f"test/{generation.pk}.jpg", ContentFile(_jpeg()))
            columns["video"] = StoredVideoFactory(owner=owner, key=key, **(video_fields or {}))
        if not columns:
            return generation
        Generation.objects.filter(pk=generation.pk).update(**columns)
        return Generation.objects.get(pk=generation.pk)


class RunningGenerationFactory(GenerationFactory):
    """Moved pending → submitting → queued (fal request `req-<id>`) → running."""

    prompt = "A running job"

    @classmethod
    def _create(cls, model_class: type[Model], **kwargs: Any) -> Generation:
        pk = super()._create(model_class, **kwargs).pk
        transition(pk, from_=[Status.PENDING], to=Status.SUBMITTING)
        transition(pk, from_=[Status.SUBMITTING], to=Status.QUEUED, fal_request_id=f"req-{pk}")
        transition(pk, from_=[Status.QUEUED], to=Status.RUNNING, was_running=True)
        return Generation.objects.get(pk=pk)


class FailedGenerationFactory(GenerationFactory):
    """Moved pending → failed (`rejected`): released, never charged."""

    prompt = "A failed job"

    @classmethod
    def _create(cls, model_class: type[Model], **kwargs: Any) -> Generation:
        pk = super()._create(model_class, **kwargs).pk
        transition(pk, from_=[Status.PENDING], to=Status.FAILED, error_code="rejected", error_message="no")
        return Generation.objects.get(pk=pk)


class SucceededGenerationFactory(GenerationFactory):
    """A job that went the whole way (pending → … → succeeded, charged) with a real 2 s MP4 and a
    poster in storage, one recorded submit attempt and a fal request id. `tmp_path`: where the files
    are made before they are stored (a fresh temporary folder by default)."""

    prompt = "A finished video"
    tmp_path = None

    @classmethod
    def _create(cls, model_class: type[Model], *, tmp_path: Path | None, **kwargs: Any) -> Generation:
        generation = super()._create(model_class, **kwargs)
        owner, pk = generation.owner, generation.pk
        transition(pk, from_=[Status.PENDING], to=Status.SUBMITTING)
        attempt = GenerationAttempt.objects.create(generation=generation, kind=GenerationAttempt.Kind.SUBMIT,
                                                   outcome=GenerationAttempt.Outcome.OK, http_status=200)
        GenerationAttempt.objects.filter(pk=attempt.pk).update(
            finished_at=attempt.started_at + timedelta(milliseconds=250))
        transition(pk, from_=[Status.SUBMITTING], to=Status.QUEUED, fal_request_id=f"req-{pk}")
        transition(pk, from_=[Status.QUEUED], to=Status.STORING)
        folder = Path(tmp_path or tempfile.mkdtemp())
        mp4 = make_mp4(folder / f"{pk}.mp4", duration=2)
        poster_path = folder / f"{pk}.jpg"
        Image.new("RGB", (320, 180), (10, 200, 10)).save(poster_path, "JPEG")
        key = f"users/{owner.pk}/generations/{pk}/video.mp4"
        default_storage.save(key, ContentFile(mp4.read_bytes()))
        default_storage.save(key.replace("video.mp4", "poster.jpg"), ContentFile(poster_path.read_bytes()))
        video = StoredVideoFactory(
            owner=owner, key=key, poster_key=key.replace("video.mp4", "poster.jpg"), file__size=mp4.stat().st_size,
            poster__size=poster_path.stat().st_size, width=320, height=180, duration=2.0, num_frames=50,
            audio_codec="aac")
        assert transition(pk, from_=[Status.STORING], to=Status.SUCCEEDED, video=video)
        return Generation.objects.select_related("video__file", "video__poster").get(pk=pk)
