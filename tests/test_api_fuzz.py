"""Property-based fuzzing of the REST API from its own OpenAPI schema (schemathesis, in process).

Every operation gets generated requests with a valid API key; no response may be a 5xx or
disagree with the schema (status code, content type, body).
"""
from __future__ import annotations

import base64
import io
import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi import checks as openapi_checks

from accounts.keys import TooManyApiKeys, api_key_create
from accounts.models import ApiKey
from generations.models import Generation, Upload
from generations.services.create import generation_create
from storage.models import StoredObject, UsageEntry
from studio.wsgi import application
from tests.factories import SuperuserFactory
from tests.images import quadrants
from webhooks.models import WebhookEndpoint

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
        _fuzz(operation, auth_header, statuses)
    # The fuzzer got past authentication and validation into the real handlers.
    for label in ("GET /api/v1/generations/", "GET /api/v1/projects/", "POST /api/v1/projects/", "GET /api/v1/usage/",
                  "POST /api/v1/keys/", "GET /api/v1/models/"):
        assert statuses[label] & {200, 201}, (label, statuses[label])
    for label in ("POST /api/v1/generations/", "POST /api/v1/price/"):
        assert statuses[label] & {422}, (label, statuses[label])

def test_the_catalog_and_every_models_price_conform_to_the_schema(api_schema, auth_header):
    """The fuzzer seldom gets a price (it sends a `source` that is nobody's generation): here each endpoint's
    example input from the catalog is priced, and every answer is checked against the schema."""
    models_case = api_schema["/api/v1/models/"]["GET"].Case()
    response = models_case.call(headers=auth_header())
    assert response.status_code == 200
    models_case.validate_response(response, checks=CHECKS)
    price = api_schema["/api/v1/price/"]["POST"]
    for model in response.json():
        for name in (model["id"], *model["aliases"], *([model["short_name"]] if model["short_name"] else [])):
            case = price.Case(body={"model": name, "input": model["price"]["example"]["input"]},
                              media_type="application/json")
            answer = case.call(headers=auth_header())
            assert answer.status_code == 200, answer.text
            assert answer.json()["cost_usd"] == model["price"]["example"]["cost_usd"]
            case.validate_response(answer, checks=CHECKS)


def _fuzz(operation, auth_header, statuses: dict[str, set[int]]) -> None:
    """Runs the fuzzer's cases for one operation, recording each status code under its label."""

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

# --- explicit hostile inputs, on the REST API and the gateway ------------------------------------
#
# The gateway is not in the OpenAPI schema, so the fuzzer above never reaches it; these are the
# inputs that used to give 500s (or commit a job that then broke every page showing it), sent to
# both. Each input is valid but for its hostile part, and must be refused with a clean 4xx that
# leaves nothing behind.

def _png_data_uri() -> str:
    buffer = io.BytesIO()
    quadrants((32, 18)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


IMAGE = _png_data_uri()
LTX_FIELDS = ("prompt", "duration", "resolution", "aspect_ratio", "fps", "generate_audio", "image_url")
# name: (image-to-video?, LTX-2 input as JSON text; its escapes decode only in the server's parser)
HOSTILE_INPUTS = {
    "prompt_lone_surrogate": (False, r'{"prompt": "a\ud800b"}'),
    "prompt_low_surrogate": (False, r'{"prompt": "\udfff"}'),
    "prompt_nul": (False, r'{"prompt": "a\u0000b"}'),
    "image_url_lone_surrogate": (True, r'{"prompt": "x", "image_url": "https://example.com/\ud800.png"}'),
    "image_url_nul": (True, r'{"prompt": "x", "image_url": "data:image/png;base64,\u0000"}'),
    "field_name_surrogate": (False, r'{"prompt": "x", "\ud800": 1}'),
    "image_url_idna_full_width": (True, '{"prompt": "x", "image_url": "http://\\uff11\\uff12\\uff17.0.0.1/x.png"}'),
    "image_url_idna_empty_label": (True, '{"prompt": "x", "image_url": "http://xn--/x.png"}'),
    "image_url_unclosed_ipv6": (True, '{"prompt": "x", "image_url": "http://[::1/x.png"}'),
    "deep_list": (False, "[" * 100_000),
    "deep_object": (False, '{"a":' * 5_000 + "1" + "}" * 5_000),
    "deep_in_a_field": (False, '{"prompt": "x", "duration": ' + "[" * 40 + "]" * 40 + "}"),
    **{f"{field}_null": (True, json.dumps({"prompt": "x", "image_url": IMAGE, field: None})) for field in LTX_FIELDS},
}
DEEP = ("deep_list", "deep_object", "deep_in_a_field")
SMALL_BODY_LIMIT = {"DATA_UPLOAD_MAX_MEMORY_SIZE": 10_000}
T2V, I2V = "/fal/fal-ai/ltx-2/text-to-video", "/fal/fal-ai/ltx-2/image-to-video"


def _proxy(path: str) -> dict[str, str]:
    return {"HTTP_X_FAL_TARGET_URL": f"https://queue.fal.run{path.removeprefix('/fal')}"}


def _hostile_requests() -> list:
    """(method, path, body, headers, settings, expected status) for every hostile request."""
    cases = []
    for name, (image, text) in HOSTILE_INPUTS.items():
        rest = '{"model": "' + ("i2v" if image else "t2v") + '", "input": ' + text + "}"
        route = I2V if image else T2V
        cases += [
            pytest.param("POST", "/api/v1/generations/", rest, {}, {}, 400 if name in DEEP else 422, id=f"rest-{name}"),
            pytest.param("POST", route, text, {}, {}, 422, id=f"gateway-{name}"),
            pytest.param("POST", "/fal/proxy", text, _proxy(route), {}, 422, id=f"proxy-{name}"),
        ]
    big = '{"prompt": "' + "x" * 20_000 + '"}'
    cases += [
        pytest.param("POST", "/api/v1/generations/", '{"model": "t2v", "input": ' + big + "}", {}, SMALL_BODY_LIMIT,
                     413, id="rest-oversize"),
        pytest.param("POST", "/api/v1/projects/", '{"name": "' + "y" * 20_000 + '"}', {}, SMALL_BODY_LIMIT, 413,
                     id="rest-projects-oversize"),
        pytest.param("POST", T2V, big, {}, SMALL_BODY_LIMIT, 413, id="gateway-oversize"),
        pytest.param("POST", "/fal/proxy", big, _proxy(T2V), SMALL_BODY_LIMIT, 413, id="proxy-oversize"),
        pytest.param("POST", "/api/v1/generations/", '{"model": "t2v", "input": {"prompt": "x"}}',
                     {"HTTP_IDEMPOTENCY_KEY": "k\x00"}, {}, 422, id="rest-idempotency-key-nul"),
        pytest.param("POST", "/api/v1/generations/", '{"model": "t2v", "input": {"prompt": "x"}, '
                     '"webhook_url": "http://\\uff11\\uff12\\uff17.0.0.1/hook"}', {}, {}, 422,
                     id="rest-webhook-url-idna"),
        pytest.param("POST", "/api/v1/webhooks/", '{"url": "http://xn--/hook"}', {}, {}, 422, id="rest-webhook-idna"),
        pytest.param("POST", "/api/v1/webhooks/", '{"url": "https://example.com/hook", "events": ["\\ud800"]}', {}, {},
                     422, id="rest-webhook-event-surrogate"),
        pytest.param("POST", T2V + "?fal_webhook=http://%EF%BC%91%EF%BC%92%EF%BC%97.0.0.1/", '{"prompt": "x"}', {}, {},
                     422, id="gateway-fal-webhook-idna"),
        pytest.param("POST", T2V + "?fal_webhook=http://a%00b/", '{"prompt": "x"}', {}, {}, 422,
                     id="gateway-fal-webhook-nul"),
        pytest.param("POST", "/fal/storage/upload/initiate", '{"content_type": "image/\\ud800", "file_name": "a.png"}',
                     {}, {}, 422, id="gateway-upload-content-type-surrogate"),
        pytest.param("POST", "/fal/storage/upload/initiate", '{"content_type": "image/png", "file_name": "a\\u0000"}',
                     {}, {}, 422, id="gateway-upload-file-name-nul"),
    ]
    for path in ("/api/v1/generations/", "/api/v1/projects/", "/api/v1/webhook-deliveries/"):
        for forged in ("cD14", "A"):  # base64 of "p=x" (a position that is not a date); not base64 at all
            cases.append(pytest.param("GET", f"{path}?cursor={forged}", "", {}, {}, 400,
                                      id=f"rest-cursor-{forged}-{path}"))
    return cases


@pytest.mark.parametrize("method, path, body, headers, overrides, status", _hostile_requests())
def test_hostile_input_is_a_clean_4xx_that_leaves_nothing_behind(django_user_model, task_queue, filesystem_backend,
                                                                 settings, method, path, body, headers, overrides,
                                                                 status):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = []
    user = django_user_model.objects.create_user("alice")  # no password: hashing one costs more than the test
    existing, _ = generation_create(owner=user, model="t2v", input={"prompt": "a job from before"})
    task_queue.calls.clear()
    before = (Generation.objects.count(), UsageEntry.objects.count(), StoredObject.objects.count())
    for name, value in overrides.items():
        setattr(settings, name, value)
    client = Client(HTTP_AUTHORIZATION=f"Key {api_key_create(user=user, name='hostile')[1]}")
    if method == "GET":
        response = client.get(path, **headers)
    else:
        response = client.post(path, body.encode(), content_type="application/json", **headers)

    assert response.status_code == status, response.content[:300]
    if path.startswith("/api/"):
        assert set(response.json()) == {"code", "message", "details"}
    else:
        assert response.json()["detail"]
    assert (Generation.objects.count(), UsageEntry.objects.count(), StoredObject.objects.count()) == before
    assert not Upload.objects.exists() and not WebhookEndpoint.objects.exists() and task_queue.calls == []
    assert filesystem_backend.keys() == []
    # Everything that shows the user's work still answers.
    web = Client()
    web.force_login(user)
    for page in ("/api/v1/generations/", f"/api/v1/generations/{existing.pk}/", "/", f"/generations/{existing.pk}/"):
        assert web.get(page).status_code == 200, page
    web.force_login(SuperuserFactory(username="root", email="root@example.com", password=None))
    assert web.get(f"/admin/generations/generation/{existing.pk}/change/").status_code == 200
