"""Projects and generations: the database row is the truth about every job."""
from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Project(models.Model):
    DEFAULT_NAME = "Inbox"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="project_unique_name_per_owner")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def new_webhook_token() -> str:
    return secrets.token_urlsafe(24)


class Generation(models.Model):
    """One text/image-to-video job. `status` is ours; `fal_status` is fal's raw word, for display."""

    class Status(models.TextChoices):
        PENDING = "pending"
        HELD = "held"
        SUBMITTING = "submitting"
        QUEUED = "queued"
        RUNNING = "running"
        STORING = "storing"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    ACTIVE = frozenset({Status.PENDING, Status.HELD, Status.SUBMITTING, Status.QUEUED, Status.RUNNING, Status.STORING})
    TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})
    # Which moves are legal; `transitions.transition` refuses anything else.
    TRANSITIONS: dict[str, set[str]] = {
        Status.PENDING: {Status.SUBMITTING, Status.HELD, Status.FAILED, Status.CANCELED},
        Status.HELD: {Status.PENDING, Status.FAILED, Status.CANCELED},
        # HELD: fal refused the account mid-submit (generations/services/provider.py).
        Status.SUBMITTING: {Status.PENDING, Status.HELD, Status.QUEUED, Status.RUNNING, Status.STORING, Status.FAILED,
                            Status.CANCELED},
        Status.QUEUED: {Status.RUNNING, Status.STORING, Status.FAILED, Status.CANCELED},
        Status.RUNNING: {Status.QUEUED, Status.STORING, Status.FAILED, Status.CANCELED},
        Status.STORING: {Status.SUCCEEDED, Status.FAILED, Status.CANCELED},
        Status.SUCCEEDED: set(),
        Status.FAILED: {Status.PENDING},
        Status.CANCELED: set(),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="generations")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="generations")
    model_id = models.CharField(max_length=200)
    input = models.JSONField()
    cost_usd = models.DecimalField(max_digits=10, decimal_places=4)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    fal_status = models.CharField(max_length=16, blank=True)
    fal_request_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    fal_status_url = models.URLField(max_length=500, blank=True)
    fal_response_url = models.URLField(max_length=500, blank=True)
    fal_cancel_url = models.URLField(max_length=500, blank=True)
    queue_position = models.IntegerField(null=True, blank=True)
    logs = models.JSONField(default=list, blank=True)
    result = models.JSONField(null=True, blank=True)
    was_running = models.BooleanField(default=False)  # fal reported IN_PROGRESS at least once (billing)
    inference_seconds = models.FloatField(null=True, blank=True)  # fal's metrics.inference_time, once completed

    submit_attempts = models.PositiveSmallIntegerField(default=0)
    # When someone must next look at this row: the tracker polls, re-drives or resolves it then.
    next_poll_at = models.DateTimeField(null=True, blank=True)
    # A running submit or store task's claim on the row, renewed by its heartbeat while it works
    # (generations/services/row_lease.py): a dead task's claim lapses within seconds.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    webhook_token = models.CharField(max_length=64, unique=True, default=new_webhook_token, editable=False)
    # NULL, not "", when none was given: the unique constraint below skips NULLs.
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001 (see above)
    # SHA-256 of the create request's canonical body: a replayed key with another body is a conflict.
    idempotency_fingerprint = models.CharField(max_length=64, blank=True)
    webhook_url = models.URLField(max_length=1000, blank=True, help_text="per-job webhook given at create")
    # The gateway's `?fal_webhook=`: gets fal's webhook body, signed like fal's, when the job ends.
    fal_webhook_url = models.URLField(max_length=1000, blank=True)

    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    is_hidden = models.BooleanField(default=False)
    # Moderation (generations/services/visibility.py, changed by the staff's actions): why and when
    # it was hidden, and whether it waits for a moderator's review (flagged by staff or by reports).
    hidden_reason = models.TextField(blank=True)
    hidden_at = models.DateTimeField(null=True, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True, db_index=True)
    flag_reason = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    video = models.OneToOneField("storage.StoredVideo", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="generation")
    # Image-to-video: the user's start image, kept as the studio's own object (counted in the quota).
    start_image = models.OneToOneField("storage.StoredObject", on_delete=models.SET_NULL, null=True, blank=True,
                                       related_name="start_image_of")
    end_image = models.OneToOneField("storage.StoredObject", on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="end_image_of")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)  # when we saw fal's COMPLETED
    finished_at = models.DateTimeField(null=True, blank=True)  # when the row became terminal

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "idempotency_key"], name="generation_idempotency",
                                    condition=Q(idempotency_key__isnull=False)),
        ]
        indexes = [
            models.Index(fields=["next_poll_at"], name="generation_due",
                         condition=Q(status__in=["pending", "submitting", "queued", "running", "storing"])),
            models.Index(fields=["owner", "-created_at"], name="generation_owner_recent"),
        ]
        permissions = [
            ("moderate_generation", "Can hide, unhide, flag and review generations"),
            ("operate_generation", "Can cancel and retry any user's generations"),
            ("refund_generation", "Can refund a generation's spend"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def prompt(self) -> str:
        return str(self.input.get("prompt", ""))


class GenerationAttempt(models.Model):
    """One outbound call to fal about a generation, written before the call and completed after it.

    Status polls are recorded only when they fail (a job in flight is polled every second or so).
    """

    class Kind(models.TextChoices):
        SUBMIT = "submit"
        STATUS = "status"
        RESULT = "result"
        CANCEL = "cancel"
        DOWNLOAD = "download"
        UPLOAD = "upload"  # the start image handed to fal: data URI inline, or uploaded to fal's storage

    class Outcome(models.TextChoices):
        SENT = "sent"  # written before the call; still "sent" afterwards means we died mid-call
        OK = "ok"
        REJECTED = "rejected"
        UNAVAILABLE = "unavailable"
        AMBIGUOUS = "ambiguous"
        ERROR = "error"

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="attempts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    number = models.PositiveSmallIntegerField(default=1)  # for submits: Generation.submit_attempts at the claim
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SENT)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    # What fal answered, when it matters for recovery (a submit's request id and URLs).
    response = models.JSONField(null=True, blank=True)
    # A submit's fingerprint, to find it in fal's request listing if its answer is lost
    # (generations/services/ambiguous.py): the endpoint it went to and a SHA-256 of the exact payload;
    # `started_at` is when it was sent.
    endpoint = models.CharField(max_length=200, blank=True)
    payload_sha256 = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.number}: {self.outcome}"


class GenerationEvent(models.Model):
    """One line of a generation's status history, written in the same transaction as the change
    (`events.generation_status_changed`) or the creation."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=16, choices=Generation.Status.choices)
    error_code = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.status} at {self.at:%Y-%m-%d %H:%M:%S}"


class TrackerLease(models.Model):
    """The single row that says which tracking chain owns polling right now (see generations/tracking.py)."""

    name = models.CharField(max_length=32, primary_key=True)
    token = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} lease until {self.expires_at:%H:%M:%S}" if self.expires_at else f"{self.name} lease (free)"


class Upload(models.Model):
    """A file sent through the gateway's copy of fal's storage upload flow (initiate, then PUT).

    Its `file_url` can then be given as an `image_url`. The object counts in its owner's storage
    until it expires (STUDIO_UPLOAD_TTL_SECONDS) and the sweeper deletes it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    file_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    # Set when the PUT has stored the bytes; until then the upload URL may still be used.
    object = models.OneToOneField("storage.StoredObject", on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="upload")
    # The PUT's claim (compare-and-set from empty): the key it is writing. One claim per upload, so one
    # URL stores at most one object; a failed store empties it again, and the purge deletes the key.
    claimed_key = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.file_name} ({self.id})"


class StreamSlot(models.Model):
    """One open gateway status stream, counted against its user's STUDIO_MAX_STREAMS_PER_USER.

    The stream renews `expires_at` while it runs and deletes the row when it ends; the row of a
    stream whose process died expires on its own, so a slot can never be lost for good.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="stream_slot_user_expiry")]

    def __str__(self) -> str:
        return f"stream of user {self.user_id} until {self.expires_at:%H:%M:%S}"


class ProviderSwitch(models.Model):
    """The single row (pk 1) saying whether new submissions to fal are paused, by whom and why
    (generations/services/provider_switch.py).

    A moderator's pause has no `cause`. The studio pauses itself when fal refuses its account
    (`cause` says how) and resumes by itself once a probe finds that fal accepts it again.
    """

    class Cause(models.TextChoices):
        ACCOUNT_LOCKED = "account_locked", "fal locked the account"
        BALANCE_EXHAUSTED = "balance_exhausted", "the fal account's balance is exhausted"
        BAD_KEY = "bad_key", "fal does not know the key (FAL_KEY)"

    SINGLETON = 1
    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON)
    paused = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    cause = models.CharField(max_length=32, choices=Cause.choices, blank=True,
                             help_text="set when the studio paused itself; empty for a moderator's pause")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    changed_at = models.DateTimeField(null=True, blank=True)
    # The last time the studio asked fal whether the account works again, and what it learnt.
    probed_at = models.DateTimeField(null=True, blank=True)
    probe_result = models.TextField(blank=True)

    class Meta:
        verbose_name = "provider switch"
        permissions = [("pause_provider", "Can pause and resume submissions to fal")]

    def __str__(self) -> str:
        return "provider paused" if self.paused else "provider running"

    @property
    def is_automatic(self) -> bool:
        return self.paused and bool(self.cause)


class EndpointOverride(models.Model):
    """The operator's word on one endpoint of the catalog (`fal_protocol.catalog` declares them all).

    An endpoint without a row is enabled, available and priced as declared. `unavailable_since` is
    set by the studio when fal answers a submit as if the endpoint were gone (404/410); clearing it
    in the admin offers the endpoint again.
    """

    endpoint_id = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True, help_text="Untick to refuse new jobs for this endpoint.")
    retired = models.BooleanField(default=False, help_text="Retired: new jobs are refused, naming the replacement.")
    replacement = models.CharField(max_length=200, blank=True,
                                   help_text="The endpoint id users are told to use instead.")
    price_per_second = models.JSONField(default=dict, blank=True,
                                        help_text='USD per second by resolution, e.g. {"1080p": "0.05"}; '
                                                  "resolutions left out keep the catalog's price.")
    unavailable_since = models.DateTimeField(null=True, blank=True)
    unavailable_detail = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["endpoint_id"]

    def __str__(self) -> str:
        return self.endpoint_id


class SchemaMismatch(models.Model):
    """fal refused a field the catalog holds valid (schema drift): one row per endpoint and field."""

    endpoint_id = models.CharField(max_length=200)
    field = models.CharField(max_length=100)
    message = models.TextField()
    value = models.JSONField(null=True, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)
    count = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-last_seen"]
        verbose_name_plural = "schema mismatches"
        constraints = [models.UniqueConstraint(fields=["endpoint_id", "field"], name="schema_mismatch_unique_field")]

    def __str__(self) -> str:
        return f"{self.endpoint_id}: {self.field}"
