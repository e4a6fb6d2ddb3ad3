"""The gateway's routes (README, "The fal-compatible gateway"): thin views over the studio's services, in fal's shapes.

Every request is a studio generation owned by the caller; other users' ids answer 404 exactly like
ids that never existed. Errors are fal-style JSON: `{"detail": …}` (422 bodies carry fal's list of
`{loc, msg, type}`), never a 429 for quotas (fal's clients retry 429), and a 409 only for an upload
URL that was already used.
"""
from __future__ import annotations

import functools
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from core.jsonbody import JSONTooDeep, json_loads_bounded
from core.netguard import UnsafeURL, check_webhook_url
from core.streaming import event_stream_response
from core.text import text_problem
from core.throttle import user_rate_take
from gateway.auth import VIA_PROXY, GatewayAuthError, gateway_caller
from gateway.errors import fal_error, validation_error
from generations import ltx, status_reads
from generations.event_streams import change_events, each
from generations.fair_share import waits_for_a_slot
from generations.media_inputs import MEDIA_INPUTS
from generations.media_links import absolute_url, url_base
from generations.models import Generation, StreamSlot
from generations.payloads import app_of, result_response, status_body, submit_body
from generations.selectors import generation_get_for
from generations.services.cancel import NotCancelable, generation_cancel
from generations.services.create import OwnerSuspended, StorageUnavailable, generation_create
from generations.services.streams import TooManyStreams, stream_slot_release, stream_slot_take
from generations.services.uploads import (
    UploadAlreadyUsed,
    UploadNotStored,
    UploadRejected,
    upload_from_token,
    upload_image_for,
    upload_initiate,
    upload_receive,
    upload_token,
)
from generations.status_reads import StatusRow
from generations.watch import Reading, marker_of
from storage.quotas import QuotaExceeded
from webhooks.signing_keys import studio_jwks

REQUEST_ID_HEADER = "x-fal-request-id"
TRUE_WORDS = ("1", "true", "yes", "on")
FILE_PATH = re.compile(r"^/fal/files/(?P<id>[0-9a-f-]{36})/")
UPLOAD_RETRY_SECONDS = 5


def gateway_view(*methods: str, allow_session: bool = False, authenticate: bool = True,
                 reads_request: bool = False) -> Callable:
    """CSRF-exempt (keys are not cookies), method-checked, authenticated view; passes `user` (and with
    `reads_request`, `row`: the caller's generation `request_id` as the status endpoints read it, or
    None, loaded in the key check's query), and adds `x-fal-request-id` to the answers of
    the routes about one request."""

    def decorate(view: Callable) -> Callable:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                response = fal_error(405, f"{request.method} is not allowed here; use {' or '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            if authenticate:
                sessions = allow_session or request.META.get(VIA_PROXY, False)
                try:
                    caller = gateway_caller(request, allow_session=sessions,
                                            request_id=kwargs["request_id"] if reads_request else None)
                except GatewayAuthError as exc:
                    return exc.response()
                kwargs["user"] = caller.user
                if reads_request:
                    kwargs["row"] = caller.row
            response = view(request, *args, **kwargs)
            if "request_id" in kwargs:  # every answer about one request names it, as fal's do
                response.setdefault(REQUEST_ID_HEADER, kwargs["request_id"])
            return response

        return wrapper

    return decorate


# --- queue ---------------------------------------------------------------------------------------

@gateway_view("POST")
def submit(request: HttpRequest, model_id: str, user: User) -> HttpResponse:
    # The REST API's per-user create rate (STUDIO_API_CREATE_RATE). A 429 is right here: it is a
    # rate, not a quota, and fal's clients retry it after Retry-After.
    wait = user_rate_take("create", user.pk)
    if wait:
        return _throttled(wait, "Too many submits")
    try:
        endpoint = ltx.resolve_model(model_id.strip("/"))
    except ltx.InputError:
        return fal_error(404, f"Application {model_id!r} is not served by this studio; it serves "
                              f"{', '.join(ltx.model_names())}.")
    try:
        data = json_loads_bounded(request.body or b"{}")
    except JSONTooDeep as exc:
        return validation_error({"body": f"is not accepted: {exc}"}, where="body")
    except ValueError:
        return validation_error({"body": "must be a JSON object with the LTX-2 fields"}, where="body")
    webhook = request.GET.get("fal_webhook", "").strip()
    if webhook:
        try:
            check_webhook_url(webhook)
        except UnsafeURL as exc:
            return validation_error({"fal_webhook": str(exc)}, where="query")
    try:
        if isinstance(data, dict):
            data = _with_uploaded_media(request, user, data)
        generation, _ = generation_create(owner=user, model=endpoint.id, input=data, fal_webhook_url=webhook)
    except ltx.InputError as exc:
        return validation_error(exc.errors)
    except QuotaExceeded as exc:
        return fal_error(403, str(exc), error_type="quota_exceeded", quota=exc.as_dict())
    except OwnerSuspended:
        return fal_error(403, "This studio account is suspended.", error_type="account_suspended")
    except StorageUnavailable as exc:  # nothing was created: sending the same request again is safe
        response = fal_error(503, str(exc), error_type="storage_unavailable")
        response["Retry-After"] = str(exc.RETRY_AFTER_SECONDS)
        return response
    response = JsonResponse(submit_body(generation, app=app_of(model_id), base=url_base(request)))
    response[REQUEST_ID_HEADER] = str(generation.pk)
    return response


def _throttled(wait: float, what: str) -> JsonResponse:
    """fal's 429 for a caller over a rate, with Retry-After."""
    seconds = math.ceil(wait or 1)
    response = fal_error(429, f"{what}; try again in {seconds} s.", error_type="rate_limited")
    response["Retry-After"] = str(seconds)
    return response


def _with_uploaded_media(request: HttpRequest, user: User, data: dict[str, Any]) -> dict[str, Any]:
    """A media input (`image_url`, `end_image_url`) naming one of the gateway's own upload file URLs
    becomes that image's bytes."""
    for medium in MEDIA_INPUTS:
        value = data.get(medium.field)
        if not isinstance(value, str):
            continue
        try:
            parts = urlsplit(value.strip())
        except ValueError:  # e.g. an unclosed IPv6 bracket: validate_input and the fetch name the problem
            continue
        match = FILE_PATH.match(parts.path)
        if not match or parts.netloc not in _own_hosts(request):
            continue
        image = upload_image_for(user, match["id"])
        if image is None:
            raise ltx.InputError({medium.field: "no such upload: it has expired, was never completed, or is not yours"})
        data = {**data, medium.field: image.data_uri()}
    return data


def _own_hosts(request: HttpRequest) -> set[str]:
    hosts = {request.get_host()}
    if settings.STUDIO_BASE_URL:
        hosts.add(urlsplit(settings.STUDIO_BASE_URL).netloc)
    return hosts


def _own_request(user: User, request_id: str) -> Generation | None:
    return generation_get_for(user, request_id)


def _not_found(request_id: str) -> JsonResponse:
    return fal_error(404, f"Request {request_id!r} not found.", status="NOT_FOUND")


def _wants_logs(request: HttpRequest) -> bool:
    return request.GET.get("logs", "").strip().lower() in TRUE_WORDS


@gateway_view("GET", reads_request=True)
def status(request: HttpRequest, app: str, request_id: str, user: User, row: StatusRow | None) -> HttpResponse:
    if row is None:
        return _not_found(request_id)
    code, body = status_reads.gateway_status(row, app=app_of(app), base=url_base(request), logs=_wants_logs(request))
    return HttpResponse(body, status=code, content_type="application/json")


@gateway_view("GET")
def status_stream(request: HttpRequest, app: str, request_id: str, user: User) -> HttpResponseBase:
    """Server-sent events until COMPLETED. An open stream costs a coroutine of the web process, not a
    thread, but the database still reads for it, so each takes one of the user's
    STUDIO_MAX_STREAMS_PER_USER slots (429 with Retry-After when none is free)."""
    generation = _own_request(user, request_id)
    if generation is None:
        return _not_found(request_id)
    try:
        slot = stream_slot_take(user)
    except TooManyStreams as exc:
        response = fal_error(429, f"Too many open status streams: {exc}.", error_type="too_many_streams")
        response["Retry-After"] = str(exc.retry_after)
        return response
    events = _status_events(generation.pk, user.pk, app=app_of(app), base=url_base(request), logs=_wants_logs(request),
                            slot=slot)
    return event_stream_response(request, events, on_close=lambda: stream_slot_release(slot))


def _status_events(pk: uuid.UUID, owner_id: int, *, app: str, base: str, logs: bool,
                   slot: StreamSlot) -> AsyncIterator[str]:
    """fal's status object as events (generations/event_streams.py), ending only after COMPLETED:
    fal's JS client resolves with the last event it saw.

    Each event's `logs` holds only the entries this stream has not sent yet: fal's JS client
    appends every streamed event's logs to what it already has (polling answers carry them all)."""

    def read(pk: uuid.UUID) -> Reading | None:
        generation = Generation.objects.filter(pk=pk, owner_id=owner_id).first()
        if generation is None:
            return None
        return Reading(marker_of(generation), status_body(generation, app=app, base=base, logs=logs),
                       soon=waits_for_a_slot(generation))

    sent_logs: set[str] = set()

    def new_logs_only(body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("logs"):
            return body
        keyed = [(json.dumps(entry, sort_keys=True), entry) for entry in body["logs"]]
        fresh = [entry for key, entry in keyed if key not in sent_logs]
        sent_logs.update(key for key, _ in keyed)
        return {**body, "logs": fresh}

    return change_events([pk], each(read), slot=slot, ended=lambda body: body["status"] == "COMPLETED",
                         shown=new_logs_only)


@gateway_view("GET", reads_request=True)
def result(request: HttpRequest, app: str, request_id: str, user: User, row: StatusRow | None) -> HttpResponse:
    if row is None:
        return _not_found(request_id)
    status_code, body = result_response(row.generation(), request)
    return JsonResponse(body, status=status_code)


@gateway_view("PUT")
def cancel(request: HttpRequest, app: str, request_id: str, user: User) -> HttpResponse:
    generation = _own_request(user, request_id)
    if generation is None:
        return JsonResponse({"status": "NOT_FOUND"}, status=404)
    try:
        generation_cancel(generation)
    except NotCancelable:
        return JsonResponse({"status": "ALREADY_COMPLETED"}, status=400)
    return JsonResponse({"status": "CANCELLATION_REQUESTED"}, status=202)


def jwks(request: HttpRequest) -> HttpResponse:
    """The public keys that verify the gateway's webhooks (public, like fal's)."""
    response = JsonResponse(studio_jwks())
    response["Cache-Control"] = "public, max-age=3600"
    return response


# --- storage upload ------------------------------------------------------------------------------

@gateway_view("POST")
def upload_start(request: HttpRequest, user: User) -> HttpResponse:
    wait = user_rate_take("upload", user.pk)
    if wait:
        return _throttled(wait, "Too many uploads")
    try:
        body = json_loads_bounded(request.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return validation_error({"body": "must be a JSON object with content_type and file_name"})
    fields = {name: str(body.get(name) or "") for name in ("file_name", "content_type")}
    bad_text = {name: problem for name, value in fields.items() if (problem := text_problem(value))}
    if bad_text:
        return validation_error(bad_text)
    try:
        upload = upload_initiate(owner=user, **fields)
    except UploadRejected as exc:
        return validation_error({"content_type": str(exc)})
    return JsonResponse({
        "upload_url": absolute_url(f"/fal/storage/upload/put/{upload_token(upload)}", request),
        "file_url": absolute_url(f"/fal/files/{upload.pk}/{upload.file_name}", request),
    })


@gateway_view("POST")
def upload_start_multipart(request: HttpRequest, user: User) -> HttpResponse:
    return fal_error(413, f"Multipart uploads are not accepted: start images are at most "
                          f"{settings.STUDIO_MAX_IMAGE_BYTES:,} bytes, so a single upload always suffices.")


@gateway_view("PUT", authenticate=False)
def upload_put(request: HttpRequest, token: str) -> HttpResponse:
    """The signed upload URL: no Authorization (fal's JS client sends none here), the token is the
    credential. It stores one file: any other PUT to it is 409."""
    upload = upload_from_token(token)
    if upload is None:
        return fal_error(403, "This upload URL is invalid or has expired; start a new upload.")
    wait = user_rate_take("upload", upload.owner_id)
    if wait:
        return _throttled(wait, "Too many uploads")
    limit = settings.STUDIO_MAX_IMAGE_BYTES
    too_large = fal_error(413, f"The file is larger than {limit:,} bytes, the most a start image may be.")
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        return too_large
    # The stream itself, not request.body (which stops at Django's in-memory limit); one byte past
    # the limit, so a body without a Content-Length cannot get round it.
    data = request.read(limit + 1)
    if len(data) > limit:
        return too_large
    try:
        upload_receive(upload, data)
    except UploadRejected as exc:
        return validation_error({"file": str(exc)})
    except QuotaExceeded as exc:
        return fal_error(403, str(exc), error_type="quota_exceeded", quota=exc.as_dict())
    except OwnerSuspended:
        return fal_error(403, "This studio account is suspended.", error_type="account_suspended")
    except UploadAlreadyUsed:
        return fal_error(409, "This upload URL was already used; start a new upload for another file.",
                         error_type="upload_already_used")
    except UploadNotStored as exc:
        response = fal_error(503, f"The file was not stored: {exc}.", error_type="storage_unavailable")
        response["Retry-After"] = str(UPLOAD_RETRY_SECONDS)
        return response
    return JsonResponse({"file_url": absolute_url(f"/fal/files/{upload.pk}/{upload.file_name}", request)})


@gateway_view("GET", "HEAD")
def upload_file(request: HttpRequest, upload_id: uuid.UUID, file_name: str, user: User) -> HttpResponse:
    """An uploaded file, for its owner only."""
    image = upload_image_for(user, upload_id)
    if image is None:
        return fal_error(404, "No such file.")
    return HttpResponse(image.data, content_type=image.content_type)
