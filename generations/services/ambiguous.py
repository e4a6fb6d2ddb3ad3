"""Ambiguous submits: ask fal whether it has the request, instead of waiting and failing.

A submit whose answer never came back — a read timeout or a reset after the body was sent, or a
worker killed mid-POST — may or may not have reached fal. Sending it again risks paying twice;
failing it risks paying for a video nobody keeps. fal lists an account's requests per endpoint
(`GET {FAL_API_URL}/v1/models/requests/by-endpoint`), and each submit's attempt row carries what
to look for: the endpoint, when it was sent (`started_at`, written just before the POST) and a
SHA-256 of the exact payload (`fal_protocol.queue.payload_fingerprint`).

`ambiguous_submits_resolve(pks)` reads the listing once per endpoint for all the given SUBMITTING
jobs and judges each whose current attempt is ambiguous (or was left `sent` by a dead worker):

- **found**: exactly one listed request fits, and it fits no other job being judged → adopt its
  request id and track it as if the submit had answered (`submit.generation_attach_request`). A
  request fits when fal sent it within the attempt's window (send time − SKEW … end + SKEW +
  LATE_ARRIVAL: fal may register a request after its POST gave up), the
  studio does not already know its id, and — when fal kept its payload (STUDIO_FAL_STORE_IO on) —
  the payload hashes equal. Without payloads (the default: the studio tells fal not to keep them)
  only the send time tells requests apart, so two ambiguous submits to one endpoint close together
  are never adopted, rather than risk giving one user another user's video.
- **absent**: the listing is demonstrably current — it shows a request the studio sent after this
  attempt ended, still queued or running (fal's listing has lagged for hours in incidents, and
  fal does not document whether it lists requests before they finish: a later request seen in flight
  proves both) — and nothing fits → resubmit, at most once per job. Such a later request is looked
  up by its id (one small read), so the proof costs the same however many requests fal lists.
- otherwise (the listing is unavailable, lagging, or more than one request fits): look again a
  little later; after STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS the job fails as `submit_unknown` and its
  reservation is released, as before — but only once a read of the listing has been judged: while
  the listing cannot be read at all, the job waits up to twice the grace (`expiry_after`).

Only the judged attempts' send windows are read from the listing (a busy account sends thousands of
requests a minute; MAX_PAGES bounds a read). A request outside every window fits none of them, so
no other job's claim on it matters either.

Every verdict is a compare-and-set on the row, so running this twice, or beside a late webhook
that attaches the request, changes nothing twice.
"""
from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from fal_protocol.client import FalAccountBlocked, FalError, FalRequestPage, FalRequestRecord
from fal_protocol.queue import payload_fingerprint
from generations.models import Generation, GenerationAttempt
from generations.queue import SUBMIT_TASK, enqueue_on_commit
from generations.services.provider import provider_outage
from generations.services.submit import generation_attach_request
from generations.transitions import transition, update_while
from generations.upstream import get_fal_client

log = logging.getLogger(__name__)
Status = Generation.Status
Outcome = GenerationAttempt.Outcome
# Allowance for the clocks of the studio and fal and for the network, around an attempt's window.
SKEW = timedelta(seconds=2)
# fal may register a request well after the POST that carried it gave up: one held in fal's ingress
# while the client's read timeout passed (the 10,000-job bench saw up to 70 s). A listed request sent
# this long after an attempt ended may still be that attempt's, and only a listing current past it
# proves the attempt absent.
LATE_ARRIVAL = timedelta(minutes=2)
# Our unresolved submits sent this long before the oldest judged window still count as claimants.
LOOK_BACK = timedelta(minutes=2)
MAX_PAGES = 100  # 10,000 requests in the judged windows; a busier read is judged "unavailable", not guessed at
PAGE_SIZE = 100  # fal's largest page
FIRST_LOOK = timedelta(seconds=2)
MAX_RECHECK = timedelta(seconds=30)
UNREAD_EXTRA = timedelta(seconds=60)  # see expiry_after
VERDICT_KEY = "lookup"  # in the submit attempt's `response`: what the listing said about it


def recheck_after(age: timedelta) -> timedelta:
    """How long to wait before looking again at an attempt this old: soon at first, then sparingly."""
    return min(MAX_RECHECK, max(FIRST_LOOK, age / 2))


@dataclass
class _Case:
    generation: Generation
    attempt: GenerationAttempt
    start: datetime
    end: datetime
    candidates: list[FalRequestRecord]


def ambiguous_submits_resolve(pks: list[uuid.UUID | str]) -> dict[str, str]:
    """Judge the SUBMITTING jobs `pks` whose submit outcome is unknown; returns {job id: verdict}
    ("found", "absent", "waiting", "expired", or "skipped" for a job that is not such a case)."""
    verdicts: dict[str, str] = {}
    by_endpoint: dict[str, list[_Case]] = defaultdict(list)
    for pk in pks:
        case = _case_for(pk)
        if case is None:
            verdicts[str(pk)] = "skipped"
        else:
            by_endpoint[case.attempt.endpoint].append(case)
    for endpoint, cases in by_endpoint.items():
        since = min(case.start for case in cases)
        latest_end = max(case.end for case in cases)
        listing = _read_listing(endpoint, since, latest_end)
        if listing is None:
            for case in cases:
                verdicts[str(case.generation.pk)] = _wait_or_expire(case, looked=False)
            continue
        known = _known_ids([record.request_id for record in listing])
        judged = {case.attempt.pk for case in cases}
        unresolved = cases + [case for case in _open_cases(endpoint, since) if case.attempt.pk not in judged]
        for case in unresolved:
            case.candidates = [record for record in listing if _fits(record, case, known)]
        # How many of our unresolved submits — judged now or not, ambiguous, in flight or given up —
        # each listed request could belong to: only a request that one alone can claim is adopted.
        claims = Counter(record.request_id for case in unresolved for record in case.candidates)
        current_since = _current_since(listing, known)
        if current_since is None or current_since <= latest_end:
            current_since = _probe_current(endpoint, latest_end) or current_since
        for case in cases:
            verdicts[str(case.generation.pk)] = _judge(case, claims, current_since)
    return verdicts


UNSETTLED = (Outcome.AMBIGUOUS, Outcome.SENT)


def _case_for(pk: uuid.UUID | str) -> _Case | None:
    generation = Generation.objects.filter(pk=pk, status=Status.SUBMITTING).first()
    if generation is None:
        return None
    attempt = (GenerationAttempt.objects.filter(generation=generation, kind=GenerationAttempt.Kind.SUBMIT,
                                                number=generation.submit_attempts).order_by("-id").first())
    if attempt is None or attempt.outcome not in UNSETTLED or not attempt.endpoint:
        return None
    return _case(generation, attempt)


def _open_cases(endpoint: str, since: datetime) -> list[_Case]:
    """Every submit of ours to `endpoint` that may have reached fal, sent since `since` (minus a
    window), whose outcome is unknown: ambiguous, still in flight (its request may already be listed
    while its answer is on the way), or given up — the job failed as `submit_unknown`, or was sent again
    after an "absent" verdict. A request that fal did receive for one of those stays theirs: adopted by
    another job it would hand one user another's video (found by make chaos, without payloads)."""
    attempts = (GenerationAttempt.objects.select_related("generation")
                .filter(kind=GenerationAttempt.Kind.SUBMIT, endpoint=endpoint, outcome__in=UNSETTLED,
                        started_at__gte=since - LOOK_BACK - LATE_ARRIVAL))
    return [_case(attempt.generation, attempt) for attempt in attempts]


def _case(generation: Generation, attempt: GenerationAttempt) -> _Case:
    # A POST cut short by a dead worker ended, at the latest, when its timeouts would have ended it.
    end = attempt.finished_at or attempt.started_at + timedelta(
        seconds=settings.FAL_CONNECT_TIMEOUT + settings.FAL_READ_TIMEOUT)
    return _Case(generation, attempt, attempt.started_at - SKEW, end + SKEW + LATE_ARRIVAL, [])


def _known_ids(request_ids: list[str]) -> set[str]:
    """The ids among `request_ids` that belong to a job of ours: recorded on the job, or in an attempt
    whose answer was read but not yet applied (a worker that died right after fal accepted)."""
    known = {request_id for request_id in Generation.objects.filter(fal_request_id__in=request_ids)
             .values_list("fal_request_id", flat=True) if request_id is not None}
    answered = GenerationAttempt.objects.filter(kind=GenerationAttempt.Kind.SUBMIT, outcome=Outcome.OK,
                                                response__request_id__in=request_ids)
    return known | {str(response["request_id"]) for response in answered.values_list("response", flat=True)
                    if response is not None}


def _read_listing(endpoint: str, start: datetime, end: datetime) -> list[FalRequestRecord] | None:
    """Every listed request to `endpoint` sent in [start, end), or None when fal cannot tell us now."""
    records: list[FalRequestRecord] = []
    cursor = None
    for _ in range(MAX_PAGES):
        page = _listing_page(endpoint, start=start, end=end, cursor=cursor, limit=PAGE_SIZE)
        if page is None:
            return None
        records += page.items
        cursor = page.next_cursor
        if cursor is None:
            return records
    log.warning("fal's request listing for %s has more than %d pages from %s to %s: not judged",
                endpoint, MAX_PAGES, start, end)
    return None


def _fits(record: FalRequestRecord, case: _Case, known: set[str]) -> bool:
    if record.request_id in known or record.sent_at is None or not case.start <= record.sent_at <= case.end:
        return False
    if record.json_input is None:
        return True  # fal kept no payload: only the send time can tell
    return payload_fingerprint(record.json_input) == case.attempt.payload_sha256


def _current_since(listing: list[FalRequestRecord], known: set[str]) -> datetime | None:
    """The latest send time of a request of ours that the listing shows still in flight, or None:
    the listing is known to be complete for requests sent before it."""
    in_flight = [record.sent_at for record in listing
                 if record.request_id in known and record.ended_at is None and record.sent_at is not None]
    return max(in_flight, default=None)


def _probe_current(endpoint: str, after: datetime) -> datetime | None:
    """The send time fal lists for the first request of ours to `endpoint` sent after `after` that we
    know to be at fal still, when the listing shows it in flight (looked up by its id); else None."""
    later = (GenerationAttempt.objects.filter(kind=GenerationAttempt.Kind.SUBMIT, endpoint=endpoint,
                                              outcome=Outcome.OK, started_at__gt=after,
                                              generation__status__in=(Status.QUEUED, Status.RUNNING))
             .exclude(generation__fal_request_id__isnull=True)
             .order_by("started_at").values_list("generation__fal_request_id", "started_at").first())
    if later is None:
        return None
    request_id, sent = later
    page = _listing_page(endpoint, start=sent - LOOK_BACK, request_id=request_id, limit=1)
    listed = next((record for record in page.items if record.request_id == request_id), None) if page else None
    return listed.sent_at if listed is not None and listed.ended_at is None else None


def _listing_page(endpoint: str, **query: Any) -> FalRequestPage | None:
    """One page of fal's listing for `endpoint` (`FalQueueClient.list_requests`' query), or None when
    fal cannot tell us now (a refused account pauses the studio, as any refused call does)."""
    try:
        return get_fal_client().list_requests(endpoint, **query)
    except FalAccountBlocked as exc:
        provider_outage(exc)
        return None
    except FalError as exc:
        log.info("fal's request listing for %s is unavailable: %s", endpoint, exc)
        return None


def _judge(case: _Case, claims: Counter, current_since: datetime | None) -> str:
    if len(case.candidates) == 1 and claims[case.candidates[0].request_id] == 1:
        return _adopt(case, case.candidates[0])
    if not case.candidates and current_since is not None and current_since > case.end:
        return _resubmit_once(case)
    return _wait_or_expire(case, looked=True)


def _adopt(case: _Case, record: FalRequestRecord) -> str:
    _record_verdict(case, {VERDICT_KEY: "found", "request_id": record.request_id})
    log.warning("ambiguous submit of %s found in fal's request listing: request %s adopted",
                case.generation.pk, record.request_id)
    generation_attach_request(case.generation, record.request_id)
    return "found"


def _resubmit_once(case: _Case) -> str:
    earlier = GenerationAttempt.objects.filter(generation=case.generation, kind=GenerationAttempt.Kind.SUBMIT,
                                               response__lookup="absent").exclude(pk=case.attempt.pk)
    if earlier.exists():
        return _wait_or_expire(case, looked=True)  # resubmitted once already: never a second time
    _record_verdict(case, {VERDICT_KEY: "absent"})
    if transition(case.generation.pk, from_=[Status.SUBMITTING], to=Status.PENDING, next_poll_at=timezone.now()):
        log.warning("ambiguous submit of %s is not in fal's current request listing: submitted again",
                    case.generation.pk)
        enqueue_on_commit(SUBMIT_TASK, str(case.generation.pk))
    return "absent"


def expiry_after(*, looked: bool) -> timedelta:
    """How old an unresolved submit may get before it fails as `submit_unknown`: the grace, once fal's
    listing was read and did not show it; when the listing could not be read at all, twice that (at
    least a minute more), so a few failed reads at the wrong moment never fail a job fal may be running."""
    grace = timedelta(seconds=settings.STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS)
    return grace if looked else max(2 * grace, grace + UNREAD_EXTRA)


def _wait_or_expire(case: _Case, *, looked: bool) -> str:
    now = timezone.now()
    age = now - case.attempt.started_at
    if age > expiry_after(looked=looked):
        transition(case.generation.pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="submit_unknown",
                   error_message="fal did not confirm the submission and its request listing never showed it; "
                                 "it was not sent again to avoid paying twice")
        return "expired"
    update_while(case.generation.pk, [Status.SUBMITTING], next_poll_at=now + recheck_after(age))
    return "waiting"


def _record_verdict(case: _Case, verdict: dict) -> None:
    GenerationAttempt.objects.filter(pk=case.attempt.pk).update(response={**(case.attempt.response or {}), **verdict})
