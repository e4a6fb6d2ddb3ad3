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
    poster = models.OneToOneField(StoredObject, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="poster_of")
    file_name = models.CharField(max_length=200)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fps = models.FloatField()
    duration = models.FloatField()
    num_frames = models.PositiveIntegerField()
    has_audio = models.BooleanField()
    video_codec = models.CharField(max_length=32)
    audio_codec = models.CharField(max_length=32, blank=True)

    def __str__(self) -> str:
        return f"{self.file_name} {self.width}x{self.height}@{self.fps:g}"

    @property
    def content_type(self) -> str:
        return self.file.content_type

    @property
    def file_size(self) -> int:
        return self.file.size


class UserQuota(models.Model):
    """A user's limits; an empty field means the default from settings. The row is also the lock
    that serialises one user's reservations (select_for_update)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    storage_bytes = models.BigIntegerField(null=True, blank=True, help_text="empty: STUDIO_DEFAULT_STORAGE_BYTES")
    monthly_spend_usd = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True,
                                            help_text="empty: STUDIO_DEFAULT_MONTHLY_SPEND_USD")
    active_jobs = models.PositiveIntegerField(null=True, blank=True, help_text="empty: STUDIO_DEFAULT_ACTIVE_JOBS")

    def __str__(self) -> str:
        return f"quota of {self.user}"


class UsageEntry(models.Model):
    """One append-only line of a user's usage ledger. Current usage is the sum of the lines.

    `bytes` and `jobs` are summed over all time; `usd` over the month it is booked to (the month
    the job was created, UTC). Lifecycle events of a job are unique, so settling twice is impossible.
    """

    class Event(models.TextChoices):
        RESERVE = "reserve"  # job accepted: its price, an upper estimate of its bytes, one active job
        SETTLE = "settle"  # job succeeded: bytes corrected to the real size, active job ends
        RELEASE = "release"  # job ended without output: what it reserved is given back (spend kept if fal ran it)
        DELETE = "delete"  # stored files deleted: their bytes freed
        STORE = "store"  # a file kept outside any job (a gateway upload): its bytes; `job` is its id
        REFUND = "refund"  # an admin gave back spend
        ADJUST = "adjust"  # an admin's or the reconciler's correction

    LIFECYCLE = (Event.RESERVE, Event.SETTLE, Event.RELEASE, Event.DELETE, Event.STORE)
    # Who may see ledger lines and the spend summed from them, wherever they are shown (superusers
    # have it; the moderator role does not).
    VIEW_PERMISSION = "storage.view_usageentry"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_entries")
    event = models.CharField(max_length=16, choices=Event.choices)
    job = models.UUIDField(null=True, blank=True, db_index=True)  # the generation, when there is one
    bytes = models.BigIntegerField(default=0)
    usd = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    jobs = models.SmallIntegerField(default=0)
    month = models.DateField(help_text="first day of the month the spend is booked to")
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "event"], name="usage_one_lifecycle_event_per_job",
                                    condition=models.Q(event__in=["reserve", "settle", "release", "delete", "store"])),
        ]
        indexes = [models.Index(fields=["user", "month"], name="usage_user_month")]

    def __str__(self) -> str:
        return f"{self.event} {self.job}: {self.bytes} B, ${self.usd}, {self.jobs} jobs"
