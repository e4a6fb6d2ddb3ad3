"""The fal queue client against recorded protocol fixtures (httpx.MockTransport; no network)."""
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from fal_protocol.client import (
    FalAccountBlocked,
    FalAmbiguous,
    FalNotFound,
    FalQueueClient,
    FalRejected,
    FalStatus,
    FalUnavailable,
)
from fal_protocol.queue import payload_fingerprint

FIXTURES = Path(__file__).parent.parent / "fixtures" / "fal"
REQUEST_ID = "764cabcf-b745-4b3e-ae38-1200304cf45b"
BASE = f"https://queue.fal.run/fal-ai/ltx-2/requests/{REQUEST_ID}"


def fixture(name: str):
    return json.loads((FIXTURES / f"{name}.json").read_text())


class Upstream:
    """A scripted fal: answers each call with the next (status, body, headers) and records requests."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = (answer + ({},))[:3]
        return httpx.Response(status, json=body, headers=headers)

    def client(self) -> FalQueueClient:
        return FalQueueClient(base_url="https://queue.fal.run", key="secret-key", transport=httpx.MockTransport(self))


def test_submit_posts_the_input_to_the_full_model_id_with_key_auth():
    upstream = Upstream((200, fixture("submit_ok")))
    submission = upstream.client().submit("fal-ai/ltx-2/text-to-video", {"prompt": "a cowboy"})
    (request,) = upstream.requests
    assert (request.method, str(request.url)) == ("POST", "https://queue.fal.run/fal-ai/ltx-2/text-to-video")
    assert request.headers["authorization"] == "Key secret-key"
    assert json.loads(request.content) == {"prompt": "a cowboy"}
    assert submission.request_id == REQUEST_ID
    assert submission.status_url == f"{BASE}/status"
    assert submission.response_url == BASE
    assert submission.cancel_url == f"{BASE}/cancel"
    assert submission.queue_position == 3


def test_submit_with_webhook_url_encodes_it_as_fal_webhook():
    upstream = Upstream((200, fixture("submit_ok")))
    upstream.client().submit("fal-ai/ltx-2/text-to-video", {"prompt": "x"}, webhook_url="https://studio.example.com/hook/a?b=1")
    assert upstream.requests[0].url.params["fal_webhook"] == "https://studio.example.com/hook/a?b=1"
    assert "fal_webhook=https%3A%2F%2Fstudio.example.com%2Fhook%2Fa%3Fb%3D1" in str(upstream.requests[0].url)


@pytest.mark.parametrize("name, code, expected", [
    ("status_in_queue", 202, FalStatus("IN_QUEUE", queue_position=2)),
    ("status_in_progress", 202, FalStatus("IN_PROGRESS", logs=fixture("status_in_progress")["logs"])),
    ("status_completed", 200, FalStatus("COMPLETED", inference_time=41.7)),
    ("status_completed_error", 200,
     FalStatus("COMPLETED", error="Invalid status code: 422", error_type="validation_error")),
])
def test_status_parses_every_fal_status(name, code, expected):
    upstream = Upstream((code, fixture(name)))
    assert upstream.client().status(f"{BASE}/status") == expected
    (request,) = upstream.requests
    assert (request.method, str(request.url)) == ("GET", f"{BASE}/status?logs=1")


def test_status_with_an_unknown_status_word_is_retryable_not_trusted():
    upstream = Upstream((200, {"status": "WEIRD"}))
    with pytest.raises(FalUnavailable):
        upstream.client().status(f"{BASE}/status")


def test_result_returns_the_model_output():
    upstream = Upstream((200, fixture("result_ok"), {"x-fal-request-id": REQUEST_ID}))
    assert upstream.client().result(BASE) == fixture("result_ok")
    assert str(upstream.requests[0].url) == BASE


@pytest.mark.parametrize("name, error_type, text", [
    ("error_422", "", "prompt: Prompt must be at most 2500 characters"),
    ("error_content_policy", "", "prompt: The content could not be processed"),
])
def test_result_of_a_failed_request_raises_rejected_with_fals_detail(name, error_type, text):
    upstream = Upstream((422, fixture(name)))
    with pytest.raises(FalRejected) as info:
        upstream.client().result(BASE)
    assert info.value.status_code == 422
    assert info.value.detail == fixture(name)["detail"]
    assert text in str(info.value)


def test_result_404_is_not_found():
    upstream = Upstream((404, {"detail": "Request not found"}))
    with pytest.raises(FalNotFound):
        upstream.client().result(BASE)


@pytest.mark.parametrize("answer, error_class, retry_after", [
    ((429, {"detail": "Too many requests"}, {"retry-after": "7"}), FalUnavailable, 7.0),
    ((503, fixture("error_503"), {"x-fal-error-type": "runner_scheduling_failure"}), FalUnavailable, None),
    ((500, {"detail": "boom"}), FalAmbiguous, None),
    ((502, {"detail": "bad gateway"}), FalAmbiguous, None),
    ((504, {"detail": "gateway timeout"}), FalAmbiguous, None),
    ((504, fixture("error_504_user_timeout"), {"x-fal-request-timeout-type": "user"}), FalRejected, None),
    ((422, fixture("error_422")), FalRejected, None),
    ((403, {"detail": "Forbidden: not your request"}), FalRejected, None),
    (httpx.ConnectError("refused"), FalUnavailable, None),
    (httpx.ConnectTimeout("slow connect"), FalUnavailable, None),
    (httpx.ReadTimeout("no answer"), FalAmbiguous, None),
    (httpx.RemoteProtocolError("peer closed"), FalAmbiguous, None),
])
def test_submit_errors_are_classified(answer, error_class, retry_after):
    upstream = Upstream(answer)
    with pytest.raises(error_class) as info:
        upstream.client().submit("fal-ai/ltx-2/text-to-video", {"prompt": "x"})
    assert type(info.value) is error_class or isinstance(info.value, error_class)
    assert info.value.retry_after == retry_after
    assert len(upstream.requests) == 1  # the client never retries on its own


def test_submit_2xx_without_request_id_is_ambiguous():
    upstream = Upstream((200, {"status": "IN_QUEUE"}))
    with pytest.raises(FalAmbiguous):
        upstream.client().submit("fal-ai/ltx-2/text-to-video", {"prompt": "x"})


@pytest.mark.parametrize("answer", [
    (500, {"detail": "boom"}), (504, {"detail": "t"}), httpx.ReadTimeout("t"), httpx.RemoteProtocolError("x"),
])
def test_read_calls_treat_transient_failures_as_retryable(answer):
    upstream = Upstream(answer)
    with pytest.raises(FalUnavailable):
        upstream.client().status(f"{BASE}/status")


def test_error_type_comes_from_the_header_or_the_body():
    upstream = Upstream((503, fixture("error_503")),
                        (503, {"detail": "x"}, {"x-fal-error-type": "runner_disconnected"}))
    client = upstream.client()
    with pytest.raises(FalUnavailable) as first:
        client.status(f"{BASE}/status")
    with pytest.raises(FalUnavailable) as second:
        client.status(f"{BASE}/status")
    assert (first.value.error_type, second.value.error_type) == ("runner_scheduling_failure", "runner_disconnected")


@pytest.mark.parametrize("answer, word", [
    ((202, fixture("cancel_requested")), "CANCELLATION_REQUESTED"),
    ((200, fixture("cancel_requested")), "CANCELLATION_REQUESTED"),
    ((400, fixture("cancel_already_completed")), "ALREADY_COMPLETED"),
    ((404, fixture("cancel_not_found")), "NOT_FOUND"),
])
def test_cancel_returns_fals_word(answer, word):
    upstream = Upstream(answer)
    assert upstream.client().cancel(f"{BASE}/cancel") == word
    (request,) = upstream.requests
    assert (request.method, str(request.url)) == ("PUT", f"{BASE}/cancel")


def test_cancel_transient_failure_raises_for_a_retry():
    upstream = Upstream((503, fixture("error_503")))
    with pytest.raises(FalUnavailable):
        upstream.client().cancel(f"{BASE}/cancel")


def test_every_submit_opts_out_of_fallbacks_and_payload_storage():
    upstream = Upstream((200, fixture("submit_ok")), (200, fixture("submit_ok")))
    upstream.client().submit("fal-ai/ltx-2/text-to-video", {"prompt": "x"})
    kept = FalQueueClient(base_url="https://queue.fal.run", key="k", transport=httpx.MockTransport(upstream),
                          store_io=True)
    kept.submit("fal-ai/ltx-2/text-to-video", {"prompt": "x"})
    headers = [(r.headers["x-fal-disable-fallbacks"], r.headers["x-fal-store-io"]) for r in upstream.requests]
    assert headers == [("true", "0"), ("true", "1")]


@pytest.mark.parametrize("code, name, reason", [
    (403, "error_403_locked_balance", "balance_exhausted"),
    (403, "error_403_locked_top_up", "balance_exhausted"),
    (403, "error_403_locked_admin", "account_locked"),
    (401, "error_401_bad_key", "bad_key"),
])
def test_a_refused_account_is_told_apart_from_a_refused_call(code, name, reason):
    """fal's 403 `User is locked…` (fal-ai/fal issues #1112, #1163, #1168) and 401 for an unknown key
    (#1068) concern every call of the account, on submit and on reads alike."""
    for call in (lambda client: client.submit("fal-ai/ltx-2/text-to-video", {"prompt": "x"}),
                 lambda client: client.status(f"{BASE}/status"), lambda client: client.result(BASE),
                 lambda client: client.upload_initiate("a.png", "image/png")):
        with pytest.raises(FalAccountBlocked) as info:
            call(Upstream((code, fixture(name))).client())
        assert (info.value.reason, info.value.status_code) == (reason, code)


def test_the_request_listing_is_read_with_payloads_and_parsed():
    upstream = Upstream((200, fixture("requests_by_endpoint")))
    client = FalQueueClient(base_url="https://queue.fal.run", key="k", api_url="https://api.fal.ai",
                            transport=httpx.MockTransport(upstream))
    page = client.list_requests("fal-ai/ltx-2/text-to-video", start=datetime(2026, 12, 6, 9, 58, tzinfo=UTC))
    (request,) = upstream.requests
    assert str(request.url).startswith("https://api.fal.ai/v1/models/requests/by-endpoint?")
    assert dict(request.url.params) == {"endpoint_id": "fal-ai/ltx-2/text-to-video", "limit": "100",
                                        "expand": "payloads", "start": "2026-12-06T09:58:00Z"}
    done, running = page.items
    assert (done.request_id, done.status_code, done.json_input) == (REQUEST_ID, 200, {"prompt": "a cowboy"})
    assert done.sent_at == datetime(2026, 12, 6, 10, 0, 0, 123000, tzinfo=UTC)
    assert (running.ended_at, running.status_code, running.json_input) == (None, None, None)
    assert page.next_cursor == "Mg=="
    assert payload_fingerprint(done.json_input) == payload_fingerprint({"prompt": "a cowboy"})


def test_the_listing_is_read_for_a_window_or_for_one_request():
    upstream = Upstream((200, fixture("requests_by_endpoint")), (200, fixture("requests_by_endpoint")))
    client = FalQueueClient(base_url="https://queue.fal.run", key="k", api_url="https://api.fal.ai",
                            transport=httpx.MockTransport(upstream))
    start, end = datetime(2026, 12, 6, 9, 58, tzinfo=UTC), datetime(2026, 12, 6, 9, 59, 30, tzinfo=UTC)
    client.list_requests("x/y", start=start, end=end, limit=50)
    client.list_requests("x/y", start=start, request_id=REQUEST_ID, limit=1)
    window, one = (dict(request.url.params) for request in upstream.requests)
    assert (window["start"], window["end"], window["limit"], "request_id" in window) == (
        "2026-12-06T09:58:00Z", "2026-12-06T09:59:30Z", "50", False)
    assert (one["request_id"], one["limit"], "end" in one) == (REQUEST_ID, "1", False)


def test_a_listing_without_items_is_unavailable_not_empty():
    with pytest.raises(FalUnavailable):
        Upstream((200, {"detail": "maintenance"})).client().list_requests("x/y", start=datetime.now(UTC))
