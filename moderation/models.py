"""Moderation and operations: the audit log, the prompt blocklist, user reports, suspensions and
the "pause provider" switch. Business logic lives in moderation/services.py."""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from core.text import text_problem
from moderation.folding import fold
from moderation.patterns import PatternError, pattern_compile


class AuditEntry(models.Model):
    """One moderation or operations action: who, when, what, why, before → after. Append-only.

    `actor` is empty for the studio's own actions (auto-hide after reports), shown as "system".
    """

    class Action(models.TextChoices):
        HIDE = "hide"
        UNHIDE = "unhide"
        FLAG = "flag"
        REVIEW = "review"
        REFUND = "refund"
        CANCEL = "cancel"
        RETRY = "retry"
        DELETE = "delete"
        REPORT = "report"
        AUTO_HIDE = "auto_hide"
        PROMPT_BLOCKED = "prompt_blocked"
        SUSPEND = "suspend"
        REINSTATE = "reinstate"
        QUOTA_CHANGE = "quota_change"
        BLOCKLIST_CHANGE = "blocklist_change"
        PROVIDER_PAUSE = "provider_pause"
        PROVIDER_RESUME = "provider_resume"
        # The catalog (generations/services/catalog.py): an operator's override of an endpoint, the
        # studio marking one gone at fal, an operator clearing that, an operator dismissing schema drift.
        ENDPOINT_OVERRIDE = "endpoint_override"
        ENDPOINT_UNAVAILABLE = "endpoint_unavailable"
        ENDPOINT_AVAILABLE = "endpoint_available"
        SCHEMA_MISMATCH_DISMISS = "schema_mismatch_dismiss"

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    actor_name = models.CharField(max_length=150, help_text="the actor's username when it acted, or 'system'")
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    target_type = models.CharField(max_length=32, help_text="generation, user, blocked_term, provider, endpoint, "
                                                                  "schema_mismatch")
    target_id = models.CharField(max_length=64, db_index=True)
    reason = models.TextField(blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} {self.target_type} {self.target_id}"


class BlockedTerm(models.Model):
    """A word/phrase (whole words, any case, look-alikes folded: `moderation.folding`) or a regular
    expression (RE2 syntax, matched in the folded prompt) refused in prompts at create time."""

    class Kind(models.TextChoices):
        WORD = "word", "word or phrase"
        PATTERN = "pattern", "regular expression"

    term = models.CharField(max_length=300)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.WORD)
    is_active = models.BooleanField(default=True)
    note = models.CharField(max_length=300, blank=True, help_text="why it is blocked (staff only)")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["term"]
        constraints = [models.UniqueConstraint(fields=["term", "kind"], name="blocked_term_unique")]

    def __str__(self) -> str:
        return self.term if self.kind == self.Kind.WORD else f"/{self.term}/"

    def clean(self) -> None:
        unstorable = {name: problem for name in ("term", "note")
                      if (problem := text_problem(getattr(self, name) or ""))}
        if unstorable:
            raise ValidationError(unstorable)
        self.term = (self.term or "").strip()
        if not self.term:
            raise ValidationError({"term": "must not be blank"})
        if self.kind == self.Kind.PATTERN:
            try:
                pattern_compile(self.term)
            except PatternError as exc:
                raise ValidationError({"term": "not a valid regular expression (RE2 syntax: no backreferences or "
                                               f"lookarounds): {exc}"}) from None
        elif not fold(self.term).text.split():
            raise ValidationError({"term": "has nothing left to match without its invisible characters and accents"})


class VideoReport(models.Model):
    """A user's report of a generation. One per (generation, reporter), so counts are of distinct users."""

    generation = models.ForeignKey("generations.Generation", on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="video_reports")
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["generation", "reporter"], name="report_once_per_user")]

    def __str__(self) -> str:
        return f"report of {self.generation_id} by {self.reporter_id}"


class Suspension(models.Model):
    """One suspension of a user, open until lifted (the login block itself is `user.is_active`)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="suspensions")
    reason = models.TextField()
    suspended_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                     related_name="+")
    suspended_at = models.DateTimeField(auto_now_add=True)
    lifted_reason = models.TextField(blank=True)
    lifted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="+")
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-suspended_at"]
        permissions = [("suspend_user", "Can suspend and reinstate users")]

    def __str__(self) -> str:
        return f"suspension of {self.user_id} at {self.suspended_at:%Y-%m-%d %H:%M}"
