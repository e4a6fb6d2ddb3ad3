"""The bodies of the answers clients poll, REST retrieve and the gateway's status, remembered per row.

A client asks about a job far more often than the job changes, and turning the row into JSON
(converting its columns, building the payload, encoding it) cost about a fifth of such a request.
An answer is a function of the row as the database returned it and of the URL base and options
the request names, nothing else. So each process remembers the last ANSWERS_REMEMBERED bodies it
built, keyed by exactly those: the database is still read on every request, a changed row is a
new key, and a remembered answer is never stale. Answers that carry signed media links, which
expire, are built afresh every time.
"""
from __future__ import annotations

import functools
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest
from rest_framework.renderers import JSONRenderer

from generations.payloads import generation_payload, status_body
from generations.selectors import StatusRow

# Per process and per kind of answer. A job's row and body are a few kB (logs are capped at 100
# entries), so this is a few MB, and it covers the jobs one process's pollers ask about at once.
ANSWERS_REMEMBERED = 1024


def rest_body(row: StatusRow, request: HttpRequest) -> bytes:
    """REST retrieve's body for `row`: GenerationSerializer's shape as DRF's JSONRenderer writes it."""
    if row.has_video:  # its media links are signed and expire
        return JSONRenderer().render(generation_payload(row.generation(), request))
    return _rest_body(row)


@functools.lru_cache(maxsize=ANSWERS_REMEMBERED)
def _rest_body(row: StatusRow) -> bytes:
    return JSONRenderer().render(generation_payload(row.generation()))


@functools.lru_cache(maxsize=ANSWERS_REMEMBERED)
def gateway_status(row: StatusRow, *, app: str, base: str, logs: bool) -> tuple[int, bytes]:
    """The gateway's status answer for `row`: 202 while fal's status is not COMPLETED, else 200, and
    fal's status object as JsonResponse writes it."""
    body = status_body(row.generation(), app=app, base=base, logs=logs)
    return 200 if body["status"] == "COMPLETED" else 202, json.dumps(body, cls=DjangoJSONEncoder).encode()
