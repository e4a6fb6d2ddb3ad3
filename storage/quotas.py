"""Per-user quotas kept as an append-only ledger.

`quota_reserve` is the only way a job is admitted: inside one transaction it locks the user's
quota row, sums the ledger and appends the reservation, so simultaneous submits can never
exceed a limit. Every later change is another ledger line, at most one of each lifecycle event
per job, so repeated settlement is a no-op.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from storage.models import UsageEntry, UserQuota

Event = UsageEntry.Event
# Upper bound of the bytes a generation can take: duration × a bitrate ceiling per resolution
# (×1.5 at 50 fps) + audio, plus the poster. Reserved up front, settled to the real size.
VIDEO_BITRATE_CEILING_BPS = {"1080p": 20_000_000, "1440p": 36_000_000, "2160p": 80_000_000}
AUDIO_BITRATE_CEILING_BPS = 512_000
POSTER_ALLOWANCE_BYTES = 1_000_000


def estimate_bytes(*, duration: int, resolution: str, fps: int, audio: bool) -> int:
    """The documented upper estimate of one video's stored bytes (video + poster)."""
    bits_per_second = VIDEO_BITRATE_CEILING_BPS[resolution] * (1.5 if fps >= 50 else 1.0)
    if audio:
        bits_per_second += AUDIO_BITRATE_CEILING_BPS
    return int(duration * bits_per_second / 8) + POSTER_ALLOWANCE_BYTES


@dataclass(frozen=True)
class Limits:
    storage_bytes: int
    monthly_spend_usd: Decimal
    active_jobs: int


@dataclass(frozen=True)
class Usage:
    bytes: int
    spend_usd: Decimal
    active_jobs: int
    limits: Limits
    month: date


class QuotaExceeded(Exception):
    """A job would exceed `limit`. The message names the limit, the usage, and what frees room."""

    def __init__(self, *, limit: str, used: int | Decimal, allowed: int | Decimal, requested: int | Decimal,
                 hint: str) -> None:
        self.limit, self.used, self.allowed, self.requested, self.hint = limit, used, allowed, requested, hint
        super().__init__(f"{LIMIT_LABELS[limit]} limit reached: using {_show(limit, used)} of {_show(limit, allowed)}, "
                         f"this job needs {_show(limit, requested)} more. {hint}")

    def as_dict(self) -> dict:
        return {"limit": self.limit, "used": _plain(self.used), "allowed": _plain(self.allowed),
                "requested": _plain(self.requested), "hint": self.hint}


LIMIT_LABELS = {"storage_bytes": "Storage", "monthly_spend_usd": "Monthly spend", "active_jobs": "Active jobs"}


def month_of(moment: datetime | None = None) -> date:
    moment = moment or timezone.now()
    return moment.astimezone(UTC).date().replace(day=1)


def limits_for(user: User) -> Limits:
    quota = UserQuota.objects.filter(user=user).first()
    return Limits(
        storage_bytes=_pick(quota.storage_bytes if quota else None, settings.STUDIO_DEFAULT_STORAGE_BYTES),
        monthly_spend_usd=Decimal(str(_pick(quota.monthly_spend_usd if quota else None,
                                            settings.STUDIO_DEFAULT_MONTHLY_SPEND_USD))),
        active_jobs=_pick(quota.active_jobs if quota else None, settings.STUDIO_DEFAULT_ACTIVE_JOBS),
    )


def usage_for(user: User, *, month: date | None = None) -> Usage:
    """Usage recomputed from the ledger: bytes and active jobs over all time, spend in `month`."""
    month = month or month_of()
    totals = UsageEntry.objects.filter(user=user).aggregate(bytes=Sum("bytes"), jobs=Sum("jobs"))
    spend = UsageEntry.objects.filter(user=user, month=month).aggregate(usd=Sum("usd"))["usd"]
    return Usage(bytes=totals["bytes"] or 0, spend_usd=(spend or Decimal(0)).quantize(Decimal("0.0001")),
                 active_jobs=totals["jobs"] or 0, limits=limits_for(user), month=month)


def quota_reserve(*, user: User, job: uuid.UUID, usd: Decimal, bytes: int, note: str = "") -> UsageEntry:
    """Admit one job: check every limit and append its reservation, atomically per user.

    Must run inside the caller's `transaction.atomic()` together with creating the job, so the
    job and its reservation exist together or not at all. Raises QuotaExceeded (nothing written).
    """
    usage = _locked_usage(user, "quota_reserve")
    limits = usage.limits
    if usage.active_jobs + 1 > limits.active_jobs:
        raise QuotaExceeded(limit="active_jobs", used=usage.active_jobs, allowed=limits.active_jobs, requested=1,
                            hint="Wait for a running job to finish or cancel one.")
    if usage.spend_usd + usd > limits.monthly_spend_usd:
        raise QuotaExceeded(limit="monthly_spend_usd", used=usage.spend_usd, allowed=limits.monthly_spend_usd,
                            requested=usd,
                            hint="Choose a shorter, faster or lower-resolution video, or wait for next month.")
    _check_storage(usage, bytes)
    return UsageEntry.objects.create(user=user, event=Event.RESERVE, job=job, usd=usd, bytes=bytes, jobs=1,
                                     month=month_of(), note=note)


def quota_store(*, user: User, ref: uuid.UUID, bytes: int, note: str = "") -> UsageEntry:
    """Book `bytes` of a file kept outside any job (a gateway upload; `ref` is its id) against the
    storage limit, atomically per user like `quota_reserve`. Must run inside the caller's
    `transaction.atomic()` with creating the file's row. Raises QuotaExceeded (nothing written)."""
    _check_storage(_locked_usage(user, "quota_store"), bytes)
    return UsageEntry.objects.create(user=user, event=Event.STORE, job=ref, bytes=bytes, month=month_of(), note=note)


def _locked_usage(user: User, caller: str) -> Usage:
    """`user`'s usage, read under their quota row's lock: one user's admissions queue up here."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"{caller} must run inside transaction.atomic()")
    UserQuota.objects.get_or_create(user=user)
    UserQuota.objects.select_for_update().get(user=user)
    return usage_for(user)


def _check_storage(usage: Usage, bytes: int) -> None:
    if usage.bytes + bytes > usage.limits.storage_bytes:
        raise QuotaExceeded(limit="storage_bytes", used=usage.bytes, allowed=usage.limits.storage_bytes,
                            requested=bytes, hint="Delete videos you no longer need.")


def quota_settle(*, job: uuid.UUID, stored_bytes: int, charge: bool, note: str = "") -> UsageEntry | None:
    """End a job's reservation: bytes become `stored_bytes`, the active job ends, the reserved
    spend is kept when `charge` else given back. Idempotent (one settle or release per job);
    returns None when the job was already settled or never reserved."""
    reservation = UsageEntry.objects.filter(job=job, event=Event.RESERVE).first()
    if reservation is None:
        return None
    event = Event.SETTLE if stored_bytes else Event.RELEASE
    if UsageEntry.objects.filter(job=job, event__in=[Event.SETTLE, Event.RELEASE]).exists():
        return None
    return _append_once(user_id=reservation.user_id, event=event, job=job, month=reservation.month, note=note,
                        bytes=stored_bytes - reservation.bytes, jobs=-1,
                        usd=Decimal(0) if charge else -reservation.usd)


def quota_free_bytes(*, job: uuid.UUID, user_id: int, freed_bytes: int, note: str = "") -> UsageEntry | None:
    """Record that a job's stored files were deleted. Idempotent per job."""
    if not freed_bytes:
        return None
    return _append_once(user_id=user_id, event=Event.DELETE, job=job, month=month_of(), note=note,
                        bytes=-freed_bytes, jobs=0, usd=Decimal(0))


def quota_refund(*, job: uuid.UUID, note: str) -> UsageEntry | None:
    """Give back the spend a finished job still holds (an admin's refund; bytes unchanged).

    The refund line is booked to the job's month and cancels exactly the job's net spend, so a
    second refund finds nothing left and returns None (as does a job that was never charged).
    The caller must serialise refunds of one job (lock its row) and pass the admin's reason as `note`.
    """
    reservation = UsageEntry.objects.filter(job=job, event=Event.RESERVE).first()
    if reservation is None:
        return None
    net = UsageEntry.objects.filter(job=job).aggregate(usd=Sum("usd"))["usd"] or Decimal(0)
    if net <= 0:
        return None
    return UsageEntry.objects.create(user_id=reservation.user_id, event=Event.REFUND, job=job, month=reservation.month,
                                     usd=-net, bytes=0, jobs=0, note=note[:300])


def _append_once(**fields: Any) -> UsageEntry | None:
    try:
        with transaction.atomic():
            return UsageEntry.objects.create(**fields)
    except IntegrityError:
        return None  # this lifecycle event is already in the ledger


T = TypeVar("T")


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


def _plain(value: int | Decimal) -> int | str:
    return str(value) if isinstance(value, Decimal) else value


def _show(limit: str, value: int | Decimal) -> str:
    if limit == "storage_bytes":
        return f"{int(value) / 1_000_000:,.1f} MB"
    if limit == "monthly_spend_usd":
        return f"${Decimal(value):.2f}"
    return str(value)
