"""Live pages: the job page and the gallery follow their jobs as server-sent events.

Both streams run on the loop the API's and the gateway's streams share
(generations/event_streams.py): an event per change, a coroutine per open page, and one of the
user's stream slots each (STUDIO_MAX_STREAMS_PER_USER; a page refused one falls back to polling the
status URL). The gallery opens one stream for all its unfinished cards, not one per card, since a
browser allows only six connections to a host.
"""
from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from core.requests import AuthenticatedHttpRequest
from core.streaming import event_stream_response
from generations.event_streams import Read, change_events, each
from generations.fair_share import waits_for_a_slot
from generations.models import Generation
from generations.payloads import web_status_payload
from generations.selectors import generation_get_for, generation_list_for
from generations.services.streams import TooManyStreams, stream_slot_release, stream_slot_take
from generations.watch import Reading, marker_of

MAX_CARDS = 100  # more than a gallery page holds


@login_required
@require_GET
def generation_events(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponseBase:
    """The job page's status (`web_status_payload`) at each change, until the job ends."""
    if generation_get_for(request.user, pk) is None:
        raise Http404("No such video.")

    def read(pk: uuid.UUID) -> Reading | None:
        generation = generation_get_for(request.user, pk)
        if generation is None:
            return None
        body = web_status_payload(generation)
        del body["elapsed_seconds"]  # the page counts it; kept, it would make every reading a change
        return Reading(marker_of(generation), body, soon=waits_for_a_slot(generation))

    return _stream(request, [pk], each(read))


@login_required
@require_GET
def card_events(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """The gallery's unfinished cards (`?ids=` their ids, comma-separated; `project=1` when the cards
    name their project): each card's HTML now and at each change of its job, until every one has
    ended. Ids of other users' jobs are ignored like unknown ones; with none left the answer is 204,
    which tells the browser not to reconnect."""
    try:
        ids = [uuid.UUID(part) for part in request.GET.get("ids", "").split(",") if part.strip()]
    except ValueError:
        return HttpResponse("ids: give the cards' generation ids, separated by commas.", status=400,
                            content_type="text/plain")
    if len(ids) > MAX_CARDS:
        return HttpResponse(f"ids: at most {MAX_CARDS} cards per stream.", status=400, content_type="text/plain")
    with_project = request.GET.get("project") == "1"
    # Cards that ended before the page could ask are included: their first event is their final look.
    following = list(generation_list_for(request.user).filter(pk__in=ids).values_list("pk", flat=True))
    if not following:
        return HttpResponse(status=204)

    def read(pks: list[uuid.UUID]) -> dict[uuid.UUID, Reading]:
        return {generation.pk: _card_reading(generation, with_project)
                for generation in generation_list_for(request.user).filter(pk__in=pks)}

    return _stream(request, following, read)


def _card_reading(generation: Generation, with_project: bool) -> Reading:
    html = render_to_string("generations/card.html", {"g": generation, "show_project": with_project})
    body = {"id": str(generation.pk), "status": generation.status,
            "terminal": generation.status in Generation.TERMINAL, "html": html}
    return Reading(marker_of(generation), body, soon=waits_for_a_slot(generation))


def _stream(request: AuthenticatedHttpRequest, pks: list[uuid.UUID], read: Read) -> HttpResponseBase:
    try:
        slot = stream_slot_take(request.user)
    except TooManyStreams as exc:
        refusal = HttpResponse(f"Too many open live pages: {exc}.", status=429, content_type="text/plain")
        refusal["Retry-After"] = str(exc.retry_after)
        return refusal
    events = change_events(pks, read, slot=slot, ended=lambda body: body["terminal"])
    return event_stream_response(request, events, on_close=lambda: stream_slot_release(slot))

