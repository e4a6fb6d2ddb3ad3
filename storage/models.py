"""What the studio keeps in its storage: objects under deterministic keys, and probed videos.

`storage` never imports `generations`; generations point here.
"""
from django.conf import settings
from django.db import models


class StoredObject(models.Model):
    """One object in the default storage (filesystem or S3), owned by a user. The key is unique."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stored_objects")
    key = models.CharField(max_length=512, unique=True)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class StoredVideo(models.Model):
    """A stored MP4 described like fal's VideoFile, every number read from the file itself."""

    file = models.OneToOneField(StoredObject, on_delete=models.PROTECT, related_name="video")
    poster = models.OneToOneField(StoredObject, on_delete=models.PROTECT, null=True, blank=True, related_name="poster_of")
    file_name = models.CharField(max_length=200)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fps = models.FloatField()
    duration = models.FloatField()
    num_frames = models.PositiveIntegerField()
    has_audio = models.BooleanField()
    video_codec = models.CharField(max_length=32)
    audio_codec = models.CharField(max_length=32, blank=True)

    @property
    def content_type(self) -> str:
        return self.file.content_type

    @property
    def file_size(self) -> int:
        return self.file.size

    def __str__(self) -> str:
        return f"{self.file_name} {self.width}x{self.height}@{self.fps:g}"
