"""Compare what the ledger says with what is stored, and report drift (nothing is changed)."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.files.storage import default_storage
from django.db.models import Sum

from storage.backend import is_filesystem
from storage.models import StoredObject, UsageEntry

log = logging.getLogger(__name__)
Event = UsageEntry.Event


@dataclass
class Drift:
    # user id -> (ledger bytes, stored bytes + open reservations)
    bytes_by_user: dict[int, tuple[int, int]] = field(default_factory=dict)
    missing_objects: list[str] = field(default_factory=list)  # rows whose object is gone
    orphaned_objects: list[str] = field(default_factory=list)  # objects under users/ with no row

    @property
    def clean(self) -> bool:
        return not (self.bytes_by_user or self.missing_objects or self.orphaned_objects)


def storage_reconcile() -> Drift:
    """Ledger bytes per user must equal stored bytes plus the reservations of unfinished jobs;
    every StoredObject must exist, and every object under `users/` must have a row, once its job
    has ended (a store in progress writes the objects first)."""
    drift = Drift()
    open_jobs = (UsageEntry.objects.filter(event=Event.RESERVE)
                 .exclude(job__in=UsageEntry.objects.filter(event__in=[Event.SETTLE, Event.RELEASE]).values("job")))
    reserved = dict(open_jobs.values_list("user").annotate(total=Sum("bytes")))
    # An unfinished image-to-video job's reservation already includes its stored start image.
    open_ids = {str(job) for job in open_jobs.values_list("job", flat=True)}
    for owner, key, size in StoredObject.objects.filter(key__contains="/start.").values_list("owner", "key", "size"):
        if _job_of(key) in open_ids:
            reserved[owner] = (reserved.get(owner) or 0) - size
    stored = dict(StoredObject.objects.values_list("owner").annotate(total=Sum("size")))
    ledger = dict(UsageEntry.objects.values_list("user").annotate(total=Sum("bytes")))
    for user_id in set(reserved) | set(stored) | set(ledger):
        expected = (stored.get(user_id) or 0) + (reserved.get(user_id) or 0)
        if (ledger.get(user_id) or 0) != expected:
            drift.bytes_by_user[user_id] = (ledger.get(user_id) or 0, expected)
    keys = set(StoredObject.objects.values_list("key", flat=True))
    present = set(_list_objects("users"))
    drift.missing_objects = sorted(keys - present)
    # A job still being stored writes its objects before their rows: not orphans while it is open.
    drift.orphaned_objects = sorted(key for key in present - keys if _job_of(key) not in open_ids)
    if not drift.clean:
        log.warning("storage drift: %s", drift)
    return drift


def _job_of(key: str) -> str:
    """The generation id in `users/<uid>/generations/<id>/<name>`, or ""."""
    parts = key.split("/")
    return parts[3] if len(parts) == 5 and parts[2] == "generations" else ""


def _list_objects(prefix: str) -> Iterator[str]:
    """Every key under `prefix` (recursive; works for the filesystem and S3 backends)."""
    if is_filesystem() and not default_storage.exists(prefix):
        return
    folders, files = default_storage.listdir(prefix)
    for name in files:
        yield f"{prefix}/{name}"
    for folder in folders:
        yield from _list_objects(f"{prefix}/{folder}")
