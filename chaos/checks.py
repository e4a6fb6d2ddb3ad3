"""The audit after a chaos run: nothing lost, nothing doubled, nothing orphaned, no quota drift.

`audit(sim, ids)` returns the figures to print and the list of problems (empty when all is well):
- every job is terminal (none stuck), and every failure carries an explicit reason;
- upstream submits per job, from the simulator's own counters: never more than one, exactly one for
  every job that produced a video, and no upstream request that belongs to no job;
- stored objects: one video and one poster per succeeded job and nothing else (no orphaned and no
  missing objects); each object's bytes match its row's size and sha256, and each video's bytes are
  exactly the file fal (the simulator) served;
- the ledger: per user, spend equals the price of the succeeded jobs, bytes equal the stored bytes,
  no job is still counted active; per job, one reservation and one settlement (or release).
"""
from __future__ import annotations

import hashlib
from collections import Counter
from decimal import Decimal

import httpx
from django.core.files.storage import default_storage
from django.db.models import Sum

from generations.models import Generation
from storage.models import StoredObject, StoredVideo, UsageEntry
from storage.reconcile import storage_reconcile

Status = Generation.Status
TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELED}
Event = UsageEntry.Event


def audit(sim, ids: list) -> tuple[dict, list[str]]:
    jobs = list(Generation.objects.filter(pk__in=ids).select_related("video__file", "video__poster"))
    problems: list[str] = []
    figures: dict = {"jobs": len(jobs)}
    _check_states(jobs, figures, problems)
    _check_submits(sim, jobs, figures, problems)
    _check_objects(jobs, figures, problems)
    _check_ledger(jobs, figures, problems)
    return figures, problems


def _check_states(jobs, figures, problems) -> None:
    figures["by_state"] = dict(Counter(job.status for job in jobs))
    figures["failures_by_reason"] = dict(Counter(job.error_code for job in jobs if job.status == Status.FAILED))
    stuck = [job for job in jobs if job.status not in TERMINAL]
    if stuck:
        problems.append(f"{len(stuck)} job(s) not terminal, e.g. {stuck[0].pk} {stuck[0].status}")
    unexplained = [job for job in jobs if job.status == Status.FAILED and not job.error_code]
    if unexplained:
        problems.append(f"{len(unexplained)} failed job(s) without a reason, e.g. {unexplained[0].pk}")


def _check_submits(sim, jobs, figures, problems) -> None:
    submits = {job.pk: sim.submits_for(job.input) for job in jobs}
    figures["upstream_submits_per_job"] = dict(sorted(Counter(submits.values()).items()))
    figures["upstream_requests"] = len(sim.requests())
    # Ambiguous submits fal did receive but nobody could attach (no webhook came): paid, not kept.
    figures["submit_unknown_received_by_fal"] = sum(
        1 for job in jobs if job.error_code == "submit_unknown" and submits[job.pk] == 1)
    doubled = [pk for pk, count in submits.items() if count > 1]
    if doubled:
        problems.append(f"{len(doubled)} job(s) submitted more than once, e.g. {doubled[0]}")
    unsent = [job.pk for job in jobs if job.status == Status.SUCCEEDED and submits[job.pk] != 1]
    if unsent:
        problems.append(f"{len(unsent)} succeeded job(s) without exactly one upstream submit")
    if sum(submits.values()) != figures["upstream_requests"]:
        problems.append(f"the simulator has {figures['upstream_requests']} requests but the jobs account for "
                        f"{sum(submits.values())}")


def _check_objects(jobs, figures, problems) -> None:
    succeeded = [job for job in jobs if job.status == Status.SUCCEEDED]
    figures["stored_videos"] = StoredVideo.objects.count()
    figures["stored_objects"] = StoredObject.objects.count()
    if figures["stored_videos"] != len(succeeded) or figures["stored_objects"] != 2 * len(succeeded):
        problems.append(f"{len(succeeded)} succeeded jobs but {figures['stored_videos']} videos and "
                        f"{figures['stored_objects']} objects (expected one video and one poster each)")
    if any(job.video is None for job in succeeded):
        problems.append("a succeeded job has no video")
    mismatched = 0
    with httpx.Client(timeout=30) as client:
        for job in succeeded:
            if job.video is None:
                continue
            for stored in (job.video.file, job.video.poster):
                with default_storage.open(stored.key, "rb") as handle:
                    data = handle.read()
                if len(data) != stored.size or hashlib.sha256(data).hexdigest() != stored.sha256:
                    mismatched += 1
            upstream = client.get(job.result["video"]["url"])
            if upstream.status_code != 200 or hashlib.sha256(upstream.content).hexdigest() != job.video.file.sha256:
                mismatched += 1
    figures["objects_checksum_mismatches"] = mismatched
    if mismatched:
        problems.append(f"{mismatched} stored object(s) differ from their row or from fal's file")
    drift = storage_reconcile()
    figures["orphaned_objects"] = len(drift.orphaned_objects)
    figures["missing_objects"] = len(drift.missing_objects)
    if drift.orphaned_objects or drift.missing_objects:
        problems.append(f"orphaned objects {drift.orphaned_objects[:3]}, missing objects {drift.missing_objects[:3]}")
    if drift.bytes_by_user:
        problems.append(f"ledger bytes differ from stored bytes: {drift.bytes_by_user}")


def _cents(value) -> Decimal:
    """A ledger sum at the ledger's precision (SQLite sums decimals as floats: 1e-16 is zero)."""
    return Decimal(str(value or 0)).quantize(Decimal("0.0001"))


def _check_ledger(jobs, figures, problems) -> None:
    by_user: dict[int, list] = {}
    for job in jobs:
        by_user.setdefault(job.owner_id, []).append(job)
    drifted = 0
    for user_id, owned in by_user.items():
        ledger = UsageEntry.objects.filter(user_id=user_id).aggregate(usd=Sum("usd"), bytes=Sum("bytes"), jobs=Sum("jobs"))
        spend = sum((job.cost_usd for job in owned if job.status == Status.SUCCEEDED), Decimal(0))
        stored = StoredObject.objects.filter(owner_id=user_id).aggregate(total=Sum("size"))["total"] or 0
        if _cents(ledger["usd"]) != spend or (ledger["bytes"] or 0) != stored or (ledger["jobs"] or 0) != 0:
            drifted += 1
            problems.append(f"user {user_id}: ledger ${ledger['usd']} / {ledger['bytes']} B / {ledger['jobs']} active, "
                            f"recomputed ${spend} / {stored} B / 0 active")
    lines = Counter(UsageEntry.objects.filter(job__in=[job.pk for job in jobs]).values_list("job", "event"))
    for job in jobs:
        ending = Event.SETTLE if job.status == Status.SUCCEEDED else Event.RELEASE
        if lines[(job.pk, Event.RESERVE)] != 1 or lines[(job.pk, ending)] != 1:
            drifted += 1
            problems.append(f"job {job.pk} ({job.status}): ledger lines {[e for (j, e) in lines.elements() if j == job.pk]}")
    figures["ledger_spend_usd"] = str(_cents(UsageEntry.objects.filter(job__in=[job.pk for job in jobs]).aggregate(
        usd=Sum("usd"))["usd"]))
    figures["ledger_drift"] = drifted
