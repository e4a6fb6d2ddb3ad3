"""The audit after a chaos run: nothing lost, nothing doubled, nothing orphaned, no quota drift, every
deliberate outage ridden out, and no job much slower for the kills.

`audit(sim, ids, facts)` returns the figures to print and the list of problems (empty when all is well):
- every job is terminal (none stuck), every failure carries an explicit reason, and each planned job
  became exactly one job (a refused create left nothing behind);
- upstream submits per job, from the simulator's own requests (each job has its own prompt): never
  more than one, exactly one for every job that produced a video, no upstream request that belongs
  to no job, and no job failed as `submit_unknown` whose request fal did receive — with fal keeping
  payloads (STUDIO_FAL_STORE_IO) every ambiguous submit it received must be found in its listing.
  With payloads off only the send time can match, so that count is a figure, not a problem;
- stored objects: one video and one poster per succeeded job, plus each image-to-video job's start
  image, and nothing else (no orphaned and no missing objects); each object's bytes match its row's
  size and sha256, and each video's bytes are exactly the file fal (the simulator) served;
- the ledger: per user, spend equals the price of the jobs fal bills (generations/billing.py), bytes
  equal the stored bytes, no job is still counted active; per job, one reservation and one settlement
  (or release, for a job that keeps no bytes);
- the provider lock: the studio paused itself, every job it held was released, none failed for it,
  and the studio is not paused at the end;
- the storage outage: no job failed for it; the PostgreSQL restart: no job failed for it;
- gateway jobs: fal's client saw each end as the studio did, and downloaded the stored video;
- the kill goal: a job's studio overhead (its time from create to end, minus fal's own time for its
  request) stays within OVERHEAD_GOAL_SECONDS (`--overhead-goal`) for every job whose lifetime missed
  every outage window.
Recovery times per outage and the overhead percentiles are figures.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from django.core.files.storage import default_storage
from django.db.models import Sum

from generations.billing import fal_billed, stored_bytes
from generations.models import Generation, GenerationAttempt, GenerationEvent
from generations.selectors import provider_switch
from moderation.models import AuditEntry
from storage.models import StoredObject, StoredVideo, UsageEntry
from storage.reconcile import storage_reconcile

if TYPE_CHECKING:
    import uuid
    from datetime import datetime

    from falsim.simulator import FalSimulator

Figures = dict[str, Any]  # what the report prints, by name
Requests = dict[str, list[dict[str, Any]]]  # prompt -> the simulator's records of its requests
Events = dict["uuid.UUID", list[tuple[str, float]]]  # job -> (status, epoch s) in order

Status = Generation.Status
TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELED}
Event = UsageEntry.Event
Kind = GenerationAttempt.Kind
Outcome = GenerationAttempt.Outcome
OVERHEAD_GOAL_SECONDS = 60.0
# What a failure caused by our own storage or database would say (they must never fail a job).
STORAGE_ERROR_MARKERS = ("Errno 1]", "Operation not permitted", "Permission denied", "Errno 13]",
                         "Could not connect to the endpoint", "Connection was closed before")
DATABASE_ERROR_MARKERS = ("OperationalError", "InterfaceError", "terminating connection",
                          "server closed the connection", "database is locked")


@dataclass
class RunFacts:
    """What the run knows that the database does not."""

    kinds: dict[str, str]  # prompt -> job kind (chaos/jobs.py), for every planned job
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)  # outage -> (start, end), epoch s
    store_io: bool = True
    gateway: dict[str, dict] = field(default_factory=dict)  # prompt -> the gateway client's last event
    created_at: dict[str, float] = field(default_factory=dict)  # prompt -> when it was created (epoch s)
    overhead_goal: float = OVERHEAD_GOAL_SECONDS  # 0: report the overheads without judging them


def audit(sim: FalSimulator, ids: list[uuid.UUID], facts: RunFacts) -> tuple[Figures, list[str]]:
    jobs = list(Generation.objects.filter(pk__in=ids).select_related("video__file", "video__poster", "start_image"))
    problems: list[str] = []
    figures: Figures = {"jobs": len(jobs),
                        "jobs_by_kind": dict(Counter(facts.kinds.get(job.prompt, "?") for job in jobs))}
    requests = _requests_by_prompt(sim)
    events = _events_by_job(jobs)
    _check_states(jobs, facts, figures, problems)
    _check_submits(sim, jobs, requests, facts, figures, problems)
    _check_objects(jobs, figures, problems)
    _check_ledger(jobs, figures, problems)
    _check_images(sim, jobs, facts, figures)
    _check_gateway(jobs, facts, figures, problems)
    recovery: dict[str, Any] = {}
    _check_lock(jobs, events, requests, facts, recovery, problems, refusals=sim.stats()["locked_refusals"])
    _check_storage_outage(jobs, events, facts, recovery, problems)
    _check_pg_restart(jobs, requests, facts, recovery, problems)
    figures["recovery"] = recovery
    _check_overhead(jobs, requests, facts, figures, problems)
    return figures, problems


def _requests_by_prompt(sim: FalSimulator) -> Requests:
    found: Requests = defaultdict(list)
    for request in sim.requests():
        found[str((request["input"] or {}).get("prompt", ""))].append(request)
    return found


def _events_by_job(jobs: list[Generation]) -> Events:
    found: Events = defaultdict(list)
    for pk, status, at in (GenerationEvent.objects.filter(generation__in=[job.pk for job in jobs])
                           .order_by("at", "id").values_list("generation", "status", "at")):
        found[pk].append((status, at.timestamp()))
    return found


def _check_states(jobs: list[Generation], facts: RunFacts, figures: Figures, problems: list[str]) -> None:
    figures["by_state"] = dict(Counter(job.status for job in jobs))
    figures["failures_by_reason"] = dict(Counter(job.error_code for job in jobs if job.status == Status.FAILED))
    stuck = [job for job in jobs if job.status not in TERMINAL]
    if stuck:
        problems.append(f"{len(stuck)} job(s) not terminal, e.g. {stuck[0].pk} {stuck[0].status}")
    unexplained = [job for job in jobs if job.status == Status.FAILED and not job.error_code]
    if unexplained:
        problems.append(f"{len(unexplained)} failed job(s) without a reason, e.g. {unexplained[0].pk}")
    per_prompt = Counter(job.prompt for job in jobs)
    doubled = [prompt for prompt, count in per_prompt.items() if count > 1]
    if doubled:
        problems.append(f"{len(doubled)} planned job(s) became more than one job (a refused create left one "
                        f"behind?), e.g. {doubled[0]!r}")
    missing = [prompt for prompt in facts.kinds if prompt not in per_prompt]
    figures["jobs_never_created"] = len(missing)
    if missing:
        problems.append(f"{len(missing)} planned job(s) were never created, e.g. {missing[0]!r}")


def _check_submits(sim: FalSimulator, jobs: list[Generation], requests: Requests, facts: RunFacts, figures: Figures,
                   problems: list[str]) -> None:
    submits = {job.pk: len(requests.get(job.prompt, [])) for job in jobs}
    figures["upstream_submits_per_job"] = dict(sorted(Counter(submits.values()).items()))
    figures["upstream_requests"] = len(sim.requests())
    doubled = [pk for pk, count in submits.items() if count > 1]
    if doubled:
        problems.append(f"{len(doubled)} job(s) submitted more than once, e.g. {doubled[0]}")
    unsent = [job.pk for job in jobs if job.status == Status.SUCCEEDED and submits[job.pk] != 1]
    if unsent:
        problems.append(f"{len(unsent)} succeeded job(s) without exactly one upstream submit")
    if sum(submits.values()) != figures["upstream_requests"]:
        problems.append(f"the simulator has {figures['upstream_requests']} requests but the jobs account for "
                        f"{sum(submits.values())}")
    # Submits whose answer never came (a timeout or reset after fal accepted, a worker killed mid-POST)
    # and what fal's request listing made of them (generations/services/ambiguous.py).
    attempts = GenerationAttempt.objects.filter(generation__in=[job.pk for job in jobs], kind=Kind.SUBMIT)
    unknown = [job for job in jobs if job.error_code == "submit_unknown"]
    received = [job for job in unknown if submits[job.pk] >= 1]
    figures["ambiguous_submits"] = {
        "answer_lost": attempts.filter(outcome=Outcome.AMBIGUOUS).count(),
        "cut_by_a_kill": attempts.filter(outcome=Outcome.SENT).count(),
        "found_in_listing": attempts.filter(response__lookup="found").count(),
        "absent_and_resent": attempts.filter(response__lookup="absent").count(),
        "unresolved_submit_unknown": len(unknown),
        "unresolved_but_received_by_fal": len(received),
    }
    figures["submit_unknown_received_by_fal"] = len(received)
    if received and facts.store_io:
        problems.append(f"{len(received)} job(s) failed as submit_unknown although fal received their request "
                        f"(and kept its payload for the listing to match), e.g. {received[0].pk}")


def _check_objects(jobs: list[Generation], figures: Figures, problems: list[str]) -> None:
    succeeded = [job for job in jobs if job.status == Status.SUCCEEDED]
    start_images = sum(1 for job in jobs if job.start_image_id)
    figures["stored_videos"] = StoredVideo.objects.count()
    figures["stored_objects"] = StoredObject.objects.count()
    figures["stored_start_images"] = start_images
    expected = 2 * len(succeeded) + start_images
    if figures["stored_videos"] != len(succeeded) or figures["stored_objects"] != expected:
        problems.append(f"{len(succeeded)} succeeded jobs and {start_images} start images but "
                        f"{figures['stored_videos']} videos and {figures['stored_objects']} objects "
                        f"(expected one video and one poster each, plus the start images: {expected})")
    if any(job.video is None for job in succeeded):
        problems.append("a succeeded job has no video")
    mismatched = 0
    with httpx.Client(timeout=30) as client:
        for job in succeeded:
            if job.video is None:
                continue
            for stored in (job.video.file, job.video.poster):
                mismatched += not _stored_matches(stored)
            assert job.result is not None  # a succeeded job keeps fal's result
            upstream = client.get(job.result["video"]["url"])
            if upstream.status_code != 200 or hashlib.sha256(upstream.content).hexdigest() != job.video.file.sha256:
                mismatched += 1
        for job in jobs:
            if job.start_image is not None:
                mismatched += not _stored_matches(job.start_image)
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


def _stored_matches(stored: StoredObject | None) -> bool:
    """Whether the object's bytes in storage are what its row says (False for a missing object)."""
    if stored is None:
        return False
    with default_storage.open(stored.key, "rb") as handle:
        data = handle.read()
    return len(data) == stored.size and hashlib.sha256(data).hexdigest() == stored.sha256


def _cents(value: Decimal | None) -> Decimal:
    """A ledger sum at the ledger's precision (SQLite sums decimals as floats: 1e-16 is zero)."""
    return Decimal(str(value or 0)).quantize(Decimal("0.0001"))


def _check_ledger(jobs: list[Generation], figures: Figures, problems: list[str]) -> None:
    by_user: dict[int, list] = {}
    for job in jobs:
        by_user.setdefault(job.owner_id, []).append(job)
    drifted = 0
    for user_id, owned in by_user.items():
        ledger = UsageEntry.objects.filter(user_id=user_id).aggregate(usd=Sum("usd"), bytes=Sum("bytes"),
                                                                      jobs=Sum("jobs"))
        spend = sum((job.cost_usd for job in owned if fal_billed(job)), Decimal(0))
        stored = StoredObject.objects.filter(owner_id=user_id).aggregate(total=Sum("size"))["total"] or 0
        if _cents(ledger["usd"]) != spend or (ledger["bytes"] or 0) != stored or (ledger["jobs"] or 0) != 0:
            drifted += 1
            problems.append(f"user {user_id}: ledger ${ledger['usd']} / {ledger['bytes']} B / {ledger['jobs']} active, "
                            f"recomputed ${spend} / {stored} B / 0 active")
    lines = Counter(UsageEntry.objects.filter(job__in=[job.pk for job in jobs]).values_list("job", "event"))
    for job in jobs:
        # Settled when the job keeps bytes (a video, or a failed image-to-video job's start image), else released.
        ending = Event.SETTLE if stored_bytes(job) else Event.RELEASE
        if lines[(job.pk, Event.RESERVE)] != 1 or lines[(job.pk, ending)] != 1 or \
                lines[(job.pk, Event.SETTLE)] + lines[(job.pk, Event.RELEASE)] != 1:
            drifted += 1
            own_lines = [e for (j, e) in lines.elements() if j == job.pk]
            problems.append(f"job {job.pk} ({job.status}): ledger lines {own_lines}")
    figures["ledger_spend_usd"] = str(_cents(UsageEntry.objects.filter(job__in=[job.pk for job in jobs]).aggregate(
        usd=Sum("usd"))["usd"]))
    figures["ledger_drift"] = drifted


def _check_images(sim: FalSimulator, jobs: list[Generation], facts: RunFacts, figures: Figures) -> None:
    """How start images reached fal: the studio's record of each upload step, and what fal saw."""
    uploads = GenerationAttempt.objects.filter(generation__in=[job.pk for job in jobs], kind=Kind.UPLOAD,
                                               outcome=Outcome.OK)
    stats = sim.stats()
    figures["start_images_to_fal"] = {
        "studio": dict(Counter((response or {}).get("method")
                               for response in uploads.values_list("response", flat=True))),
        "fal_saw": {"data_uri": stats["image_data_uri"], "fal_storage": stats["image_uploaded"]},
    }


def _check_gateway(jobs: list[Generation], facts: RunFacts, figures: Figures, problems: list[str]) -> None:
    gateway_jobs = [job for job in jobs if facts.kinds.get(job.prompt) == "gateway"]
    planned = [prompt for prompt, kind in facts.kinds.items() if kind == "gateway"]
    if not planned:
        return
    outcomes: Counter[str] = Counter()
    disagreements = []
    for job in gateway_jobs:
        event = facts.gateway.get(job.prompt)
        if event is None or event["event"] != "done":
            outcomes["no_final_answer"] += 1
            disagreements.append(f"{job.pk}: the client got no final answer ({(event or {}).get('event')})")
            continue
        if event["request_id"] != str(job.pk):
            disagreements.append(f"{job.pk}: the client followed request {event['request_id']}")
        if event["error"] is None:
            outcomes["completed_ok"] += 1
            if job.status != Status.SUCCEEDED:
                disagreements.append(f"{job.pk}: the client saw success, the studio {job.status}")
            elif job.video is None or event.get("video_sha256") != job.video.file.sha256:
                disagreements.append(f"{job.pk}: the client's download differs from the stored video")
        else:
            outcomes["completed_with_error"] += 1
            if job.status == Status.SUCCEEDED:
                disagreements.append(f"{job.pk}: the client saw {event['error_type']}, the studio succeeded")
    status_errors = Counter(error for event in facts.gateway.values() for error in event.get("status_errors", []))
    submit_retries = sum(len(event.get("submit_errors", [])) for event in facts.gateway.values())
    figures["gateway"] = {"jobs": len(gateway_jobs), **dict(outcomes), "submit_retries": submit_retries,
                          "status_call_errors": dict(status_errors)}
    if disagreements:
        problems.append(f"{len(disagreements)} gateway job(s) seen differently by fal's client: {disagreements[:3]}")


def _window(facts: RunFacts, name: str) -> tuple[float, float] | None:
    return facts.windows.get(name)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _check_lock(jobs: list[Generation], events: Events, requests: Requests, facts: RunFacts, recovery: dict[str, Any],
                problems: list[str], *, refusals: int) -> None:
    window = _window(facts, "provider_lock")
    switch = provider_switch()
    if switch.paused:
        problems.append(f"the studio is still paused at the end ({switch.reason})")
    if window is None:
        return
    start, end = window
    held = [job for job in jobs if any(status == Status.HELD for status, _ in events[job.pk])]
    not_released = [job for job in held if not _released(events[job.pk])]
    failed_for_it = [job for job in jobs if job.status == Status.FAILED and "locked" in job.error_message.lower()]
    pauses = list(AuditEntry.objects.filter(action=AuditEntry.Action.PROVIDER_PAUSE, created_at__gte=_dt(start))
                  .order_by("created_at").values_list("created_at", flat=True))
    resumes = list(AuditEntry.objects.filter(action=AuditEntry.Action.PROVIDER_RESUME, created_at__gte=_dt(end))
                   .order_by("created_at").values_list("created_at", flat=True))
    submitted_after = [request["submitted_at"] for found in requests.values() for request in found
                       if request["submitted_at"] >= end]
    released_after = [at for at in (_release_time(events[job.pk]) for job in held) if at is not None and at >= end]
    created_inside = sum(1 for at in facts.created_at.values() if start <= at <= end)
    recovery["provider_lock"] = {
        "jobs_created_while_locked": created_inside,
        "calls_fal_refused": refusals,
        "held_jobs": len(held),
        "released_jobs": len(held) - len(not_released),
        "failed_for_it": len(failed_for_it),
        "paused_after_lock_s": _seconds(pauses[0].timestamp() - start) if pauses else None,
        "resumed_after_unlock_s": _seconds(resumes[0].timestamp() - end) if resumes else None,
        "first_submit_accepted_after_unlock_s": _seconds(min(submitted_after) - end) if submitted_after else None,
        "last_held_job_released_after_unlock_s": _seconds(max(released_after) - end) if released_after else None,
    }
    if not pauses and refusals:
        problems.append(f"fal refused {refusals} call(s) while the account was locked, but the studio never paused")
    if pauses and not resumes:
        problems.append("the studio paused for the lock but never resumed by itself")
    if not_released:
        problems.append(f"{len(not_released)} held job(s) were never released, e.g. {not_released[0].pk}")
    if failed_for_it:
        problems.append(f"{len(failed_for_it)} job(s) failed because fal locked the account, e.g. "
                        f"{failed_for_it[0].pk}: {failed_for_it[0].error_message}")


def _release_time(history: list[tuple[str, float]]) -> float | None:
    """When a job that was held went back to pending (to be submitted) after its last hold, or None."""
    last_held = max(index for index, (status, _) in enumerate(history) if status == Status.HELD)
    return next((at for status, at in history[last_held + 1:] if status == Status.PENDING), None)


def _released(history: list[tuple[str, float]]) -> bool:
    return _release_time(history) is not None


def _dt(epoch: float) -> datetime:
    from datetime import datetime

    return datetime.fromtimestamp(epoch, tz=UTC)


def _storing_spans(history: list[tuple[str, float]]) -> list[tuple[float, float | None]]:
    spans = []
    for index, (status, at) in enumerate(history):
        if status == Status.STORING:
            spans.append((at, history[index + 1][1] if index + 1 < len(history) else None))
    return spans


def _check_storage_outage(jobs: list[Generation], events: Events, facts: RunFacts, recovery: dict[str, Any],
                          problems: list[str]) -> None:
    window = _window(facts, "storage_outage")
    if window is None:
        return
    start, end = window
    caught = []  # (job, when it left STORING)
    for job in jobs:
        for entered, left in _storing_spans(events[job.pk]):
            if entered <= end and (left is None or left >= start):
                caught.append((job, left))
                break
    refused = GenerationAttempt.objects.filter(generation__in=[job.pk for job in jobs], kind=Kind.DOWNLOAD,
                                               outcome=Outcome.UNAVAILABLE).count()
    failed_for_it = [job for job, _ in caught if job.status == Status.FAILED
                     and _mentions(job, STORAGE_ERROR_MARKERS)]
    cleared = [left for _, left in caught if left is not None and left >= end]
    recovery["storage_outage"] = {
        "jobs_storing_during_it": len(caught),
        "their_states": dict(Counter(job.status for job, _ in caught)),
        "store_attempts_refused": refused,
        "failed_for_it": len(failed_for_it),
        "storing_backlog_half_cleared_after_restore_s": _seconds(sorted(cleared)[len(cleared) // 2] - end)
        if cleared else None,
        "storing_backlog_cleared_after_restore_s": _seconds(max(cleared) - end) if cleared else None,
    }
    if failed_for_it:
        problems.append(f"{len(failed_for_it)} job(s) failed because our storage refused writes, e.g. "
                        f"{failed_for_it[0].pk}: {failed_for_it[0].error_message}")


def _mentions(job: Generation, markers: tuple[str, ...]) -> bool:
    """Whether the failure, or the last call the job made before it, names one of `markers`."""
    last = job.attempts.order_by("-id").values_list("error", flat=True).first() or ""
    return any(marker in text for text in (job.error_message, last) for marker in markers)


def _check_pg_restart(jobs: list[Generation], requests: Requests, facts: RunFacts, recovery: dict[str, Any],
                      problems: list[str]) -> None:
    window = _window(facts, "pg_restart")
    if window is None:
        return
    _, end = window
    finished_after = [job.finished_at.timestamp() for job in jobs
                      if job.finished_at and job.finished_at.timestamp() >= end]
    submitted_after = [request["submitted_at"] for found in requests.values() for request in found
                       if request["submitted_at"] >= end]
    failed_for_it = [job for job in jobs if job.status == Status.FAILED
                     and any(marker in job.error_message for marker in DATABASE_ERROR_MARKERS)]
    recovery["pg_restart"] = {
        "first_job_finished_after_restart_s": _seconds(min(finished_after) - end) if finished_after else None,
        "first_submit_accepted_after_restart_s": _seconds(min(submitted_after) - end) if submitted_after else None,
        "failed_for_it": len(failed_for_it),
    }
    if failed_for_it:
        problems.append(f"{len(failed_for_it)} job(s) failed because PostgreSQL restarted, e.g. "
                        f"{failed_for_it[0].pk}: {failed_for_it[0].error_message}")


def studio_overhead(job: Generation, fal_requests: list[dict]) -> float | None:
    """Seconds the job took beyond fal's own time for its request (submit accepted → completed), or
    None for a job that has not ended."""
    if job.finished_at is None:
        return None
    total = job.finished_at.timestamp() - job.created_at.timestamp()
    fal = sum(request["completed_at"] - request["submitted_at"] for request in fal_requests if request["completed_at"])
    return total - fal


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"jobs": 0}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)

    return {"jobs": len(ordered), "p50": at(0.5), "p95": at(0.95), "max": round(ordered[-1], 1)}


def _check_overhead(jobs: list[Generation], requests: Requests, facts: RunFacts, figures: Figures,
                    problems: list[str]) -> None:
    windows = list(facts.windows.values())
    unaffected, affected = [], []
    too_slow = []
    for job in jobs:
        overhead = studio_overhead(job, requests.get(job.prompt, []))
        if overhead is None or job.finished_at is None:  # (overhead is None for a job that has not ended)
            continue
        born, ended = job.created_at.timestamp(), job.finished_at.timestamp()
        if any(born <= end and ended >= start for start, end in windows):
            affected.append(overhead)
            continue
        unaffected.append(overhead)
        if facts.overhead_goal and overhead > facts.overhead_goal:
            too_slow.append((round(overhead, 1), str(job.pk), facts.kinds.get(job.prompt), job.status, job.error_code))
    figures["studio_overhead_s"] = {"all": _percentiles(unaffected + affected),
                                    "outside_outage_windows": _percentiles(unaffected),
                                    "overlapping_an_outage": _percentiles(affected),
                                    "goal_s": facts.overhead_goal or None}
    if too_slow:
        too_slow.sort(reverse=True)
        problems.append(f"{len(too_slow)} job(s) outside the outage windows took more than {facts.overhead_goal:g} s "
                        f"beyond fal's own time, worst {too_slow[:3]}")
