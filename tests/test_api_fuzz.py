"""Property-based fuzzing of the REST API from its own OpenAPI schema (schemathesis, in process).

Every operation gets generated requests with a valid API key; no response may be a 5xx or
disagree with the schema (status code, content type, body).
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi import checks as openapi_checks

from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone

from accounts.keys import TooManyApiKeys, api_key_create
from accounts.models import ApiKey
from studio.wsgi import application

EXAMPLES = 30  # per operation; derandomized, so every run tries the same requests
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture
def api_schema(db, user, task_queue, media_root):
    # Like Django's test client: requests must not close the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def auth_header(user):
    """A live key's header, re-made whenever the fuzzer revoked the key (DELETE /api/v1/keys/{id}/
    may well pick its id)."""
    key = None
    header: dict[str, str] = {}

    def current() -> dict[str, str]:
        nonlocal key
        if key is None or ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=False).exists():
            try:
                key, raw = api_key_create(user=user, name="fuzz")
            except TooManyApiKeys:  # the fuzzer's POST /api/v1/keys/ used up STUDIO_MAX_API_KEYS: make room
                ApiKey.objects.filter(user=user).update(revoked_at=timezone.now())
                key, raw = api_key_create(user=user, name="fuzz")
            header["Authorization"] = f"Bearer {raw}"
        return header

    return current


def test_api_conforms_to_its_schema_and_never_fails(api_schema, auth_header, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"api": "100000/min", "create": "100000/min"}}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    statuses: dict[str, set[int]] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(HealthCheck))
        def fuzz(case):
            # Our key must win over any Authorization header generated from the security scheme.
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            response = case.call(headers=auth_header())
            statuses.setdefault(operation.label, set()).add(response.status_code)
            case.validate_response(response, checks=CHECKS)

        fuzz()
    # The fuzzer got past authentication and validation into the real handlers.
    for label in ("GET /api/v1/generations/", "GET /api/v1/projects/", "POST /api/v1/projects/", "GET /api/v1/usage/",
                  "POST /api/v1/keys/"):
        assert statuses[label] & {200, 201}, (label, statuses[label])
    assert statuses["POST /api/v1/generations/"] & {422}, statuses["POST /api/v1/generations/"]
