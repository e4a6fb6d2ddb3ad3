"""Client for fal's queue protocol (https://fal.ai/docs/inference-api/queue).

submit → status (202 while IN_QUEUE / IN_PROGRESS, 200 when COMPLETED) → result → cancel. Status,
result and cancel use the URLs that submit returned. fal has no FAILED status: a failed request is
COMPLETED and its result call answers with the error (e.g. 422), which this client raises.

A submission is not idempotent: fal may run and bill the same input twice. Errors are therefore
classified in one place:
- `FalRejected`: fal answered and refused (4xx other than 429). Terminal; never retry.
- `FalUnavailable`: certainly not processed (connect failure, 429, 503) or, for read-only calls, any
  transient failure. Safe to retry, after `retry_after` seconds when fal said so.
- `FalAmbiguous`: the submit body may have reached fal (timeout after sending, dropped connection,
  500/502/504). Must not be resubmitted blindly.
- `FalAccountBlocked`: fal refused the account, not the call: 403 `User is locked…` (an admin lock or an
  exhausted balance) or 401 (the key is not known). Nothing about the job is wrong; every job waits
  until the account works again. `reason` is `account_locked`, `balance_exhausted` or `bad_key`.
There is no retry loop here: retry policy belongs to the services and the database state.
This module knows nothing of Django.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from fal_protocol.queue import COMPLETED, STATUSES


class FalError(Exception):
    """Base of the fal client errors. `status_code` is None when no HTTP answer came back."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None,
                 error_type: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.error_type = error_type
        self.retry_after = retry_after


class FalRejected(FalError):
    """fal refused the call; repeating it will not help."""


class FalNotFound(FalRejected):
    """fal does not know the request (404): lost upstream or expired."""


class FalUnavailable(FalError):
    """Not processed this time; safe to retry later."""


class FalAmbiguous(FalError):
    """A submit that fal may or may not have accepted."""


class FalAccountBlocked(FalError):
    """fal refuses the studio's account (locked, out of balance, or an unknown key): an outage of the
    provider, not a property of the call. `reason`: `account_locked`, `balance_exhausted` or `bad_key`."""

    def __init__(self, message: str, *, reason: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


ACCOUNT_LOCKED = "account_locked"
BALANCE_EXHAUSTED = "balance_exhausted"
BAD_KEY = "bad_key"
# fal's lock message names why: "User is locked. Reason: Exhausted balance…", "…Reason: TOP_UP.",
# "…Reason: Admin lock…" (the first two mean the account ran out of money).
_BALANCE_WORDS = ("exhausted balance", "top_up", "top up", "balance")


@dataclass(frozen=True)
class FalSubmission:
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str
    queue_position: int | None = None


@dataclass(frozen=True)
class FalRequestRecord:
    """One item of fal's request listing (`GET {api}/v1/models/requests/by-endpoint`)."""

    request_id: str
    endpoint_id: str
    sent_at: datetime | None
    ended_at: datetime | None
    status_code: int | None
    # The submitted body, when fal kept it (it keeps none for requests sent with X-Fal-Store-IO: 0).
    json_input: Any = None


@dataclass(frozen=True)
class FalRequestPage:
    items: list[FalRequestRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class FalStatus:
    status: str
    queue_position: int | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    error_type: str = ""
    inference_time: float | None = None

    @property
    def is_completed(self) -> bool:
        return self.status == COMPLETED


class FalQueueClient:
    """One httpx client per instance: Key auth, explicit timeouts, no redirects, injectable transport."""

    def __init__(self, *, base_url: str, key: str, connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, max_connections: int = 100, rest_url: str = "",
                 api_url: str = "", store_io: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.rest_url = (rest_url or "https://rest.fal.ai").rstrip("/")
        self.api_url = (api_url or "https://api.fal.ai").rstrip("/")
        # Sent with every submit: bill exactly the endpoint asked for (no fallback to an "equivalent"
        # one), and keep the users' prompts and images out of fal's 30-day payload store unless told.
        self.submit_headers = {"x-fal-disable-fallbacks": "true", "X-Fal-Store-IO": "1" if store_io else "0"}
        self._http = httpx.Client(
            headers={"Authorization": f"Key {key}", "User-Agent": "ltx-studio"},
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def close(self) -> None:
        self._http.close()

    def submit(self, model_id: str, payload: dict[str, Any], *, webhook_url: str | None = None) -> FalSubmission:
        url = f"{self.base_url}/{model_id}"
        if webhook_url:
            url += f"?fal_webhook={quote(webhook_url, safe='')}"
        response = self._send("POST", url, json=payload, headers=self.submit_headers, ambiguous_after_send=True)
        body = _json(response)
        try:
            return FalSubmission(
                request_id=str(body["request_id"]),
                status_url=str(body["status_url"]),
                response_url=str(body["response_url"]),
                cancel_url=str(body["cancel_url"]),
                queue_position=_int_or_none(body.get("queue_position")),
            )
        except (KeyError, TypeError):
            # fal answered 2xx but we cannot read the request id: it may be running. Never resubmit.
            raise FalAmbiguous(f"submit answered {response.status_code} without a request id",
                               status_code=response.status_code, detail=body) from None

    def submission_for(self, model_id: str, request_id: str) -> FalSubmission:
        """The request's URLs as fal's submit answer gives them (only `owner/app` of the model id
        before `/requests/`), for a request whose answer we never read but whose id fal has since
        told us in a verified webhook."""
        app = "/".join(model_id.strip("/").split("/")[:2])
        base = f"{self.base_url}/{app}/requests/{quote(request_id, safe='')}"
        return FalSubmission(request_id=request_id, status_url=f"{base}/status", response_url=base,
                             cancel_url=f"{base}/cancel")

    def status(self, status_url: str, *, logs: bool = True) -> FalStatus:
        response = self._send("GET", status_url, params={"logs": "1" if logs else "0"})
        body = _json(response)
        status = status_from(body)
        if status is None:
            raise FalUnavailable(f"unexpected status body: {str(body)[:200]}", status_code=response.status_code)
        return status

    def result(self, response_url: str) -> dict[str, Any]:
        """The model output of a COMPLETED request; a failed request raises FalRejected with fal's detail."""
        body = _json(self._send("GET", response_url))
        if not isinstance(body, dict):
            raise FalRejected("result is not a JSON object", detail=body)
        return body

    def cancel(self, cancel_url: str) -> str:
        """Ask fal to cancel; returns fal's word (CANCELLATION_REQUESTED, ALREADY_COMPLETED, NOT_FOUND)."""
        try:
            response = self._send("PUT", cancel_url)
        except FalRejected as exc:
            # 400 ALREADY_COMPLETED and 404 NOT_FOUND are answers, not failures, for a cancel.
            if exc.status_code in (400, 404) and isinstance(exc.detail, dict) and "status" in exc.detail:
                return str(exc.detail["status"])
            raise
        body = _json(response)
        return str(body.get("status", "")) if isinstance(body, dict) else ""

    def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        """Put `data` into fal's storage (upload flow: initiate, then PUT to the signed URL); returns its file URL.

        Nothing is submitted, so every failure is safe to retry: FalUnavailable, or FalRejected when fal refused.
        """
        upload_url, file_url = self.upload_initiate(file_name, content_type)
        try:
            request = self._http.build_request("PUT", upload_url, content=data, headers={"Content-Type": content_type})
            del request.headers["Authorization"]  # the signed upload URL is the credential; never send the key
            put = self._http.send(request)
        except httpx.TransportError as exc:
            raise FalUnavailable(f"PUT upload: no complete answer ({type(exc).__name__})") from exc
        if not put.is_success:
            error = _classify(put, ambiguous_after_send=False)
            if isinstance(error, FalAmbiguous):  # an upload is never ambiguous: nothing runs
                error = FalUnavailable(str(error), status_code=error.status_code, detail=error.detail)
            raise error
        return file_url

    def list_requests(self, endpoint_id: str, *, start: datetime, end: datetime | None = None,
                      cursor: str | None = None, limit: int = 100, request_id: str | None = None) -> FalRequestPage:
        """One page of the account's requests to `endpoint_id` sent in [start, end) (only `request_id`,
        when given), with their payloads where fal kept them (fal's platform API; `api_url`).
        Read-only: every failure is FalUnavailable, FalRejected or FalAccountBlocked, never ambiguous."""
        params: dict[str, Any] = {"endpoint_id": endpoint_id, "limit": limit, "expand": "payloads",
                                  "start": _iso(start)}
        if end is not None:
            params["end"] = _iso(end)
        if request_id is not None:
            params["request_id"] = request_id
        if cursor:
            params["cursor"] = cursor
        body = _json(self._send("GET", f"{self.api_url}/v1/models/requests/by-endpoint", params=params))
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise FalUnavailable(f"request listing answered without items: {str(body)[:200]}")
        records = [record for item in items if (record := _request_record(item)) is not None]
        next_cursor = body.get("next_cursor") if body.get("has_more") else None
        return FalRequestPage(records, str(next_cursor) if next_cursor else None)

    def upload_initiate(self, file_name: str, content_type: str) -> tuple[str, str]:
        """Step one of fal's storage upload: (signed upload URL, file URL). Costs nothing and uploads
        nothing, but fal refuses it for a locked account: the studio's probe of its account."""
        response = self._send("POST", f"{self.rest_url}/storage/upload/initiate",
                              params={"storage_type": "fal-cdn-v3"},
                              json={"file_name": file_name, "content_type": content_type})
        body = _json(response)
        upload_url = body.get("upload_url") if isinstance(body, dict) else None
        file_url = body.get("file_url") if isinstance(body, dict) else None
        if not isinstance(upload_url, str) or not isinstance(file_url, str):
            raise FalUnavailable(f"upload initiate answered without upload_url/file_url: {str(body)[:200]}",
                                 status_code=response.status_code)
        return upload_url, file_url

    def _send(self, method: str, url: str, *, ambiguous_after_send: bool = False, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise FalUnavailable(f"{method} {url}: could not connect ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            error_class = FalAmbiguous if ambiguous_after_send else FalUnavailable
            raise error_class(f"{method} {url}: no complete answer ({type(exc).__name__})") from exc
        if response.is_success:
            return response
        raise _classify(response, ambiguous_after_send=ambiguous_after_send)


def status_from(body: Any) -> FalStatus | None:
    """fal's status object (a status answer, or one event of the status stream), or None when
    `body` is not one."""
    status = body.get("status") if isinstance(body, dict) else None
    if status not in STATUSES:
        return None
    metrics = body.get("metrics") or {}
    return FalStatus(
        status=status,
        queue_position=_int_or_none(body.get("queue_position")),
        logs=[entry for entry in (body.get("logs") or []) if isinstance(entry, dict)],
        error=str(body.get("error") or ""),
        error_type=str(body.get("error_type") or ""),
        inference_time=metrics.get("inference_time") if isinstance(metrics, dict) else None,
    )


def _classify(response: httpx.Response, *, ambiguous_after_send: bool) -> FalError:
    code = response.status_code
    body = _json(response, default=response.text[:500])
    detail = body.get("detail", body) if isinstance(body, dict) and "detail" in body else body
    error_type = response.headers.get("x-fal-error-type", "") or (
        body.get("error_type", "") if isinstance(body, dict) else "")
    kwargs: dict[str, Any] = {"status_code": code, "detail": detail if detail is not None else body,
                              "error_type": str(error_type)}
    message = f"fal answered {code}: {describe_detail(detail)}"
    blocked = account_block_reason(code, detail)
    if blocked:
        return FalAccountBlocked(message, reason=blocked, **kwargs)
    if code == 429 or code == 503:
        return FalUnavailable(message, retry_after=_retry_after(response), **kwargs)
    if code == 504 and response.headers.get("x-fal-request-timeout-type") == "user":
        return FalRejected(message, **kwargs)  # our own start timeout expired; fal will not run it
    if code >= 500:
        return (FalAmbiguous if ambiguous_after_send else FalUnavailable)(message, retry_after=_retry_after(response),
                                                                          **kwargs)
    if code == 404:
        return FalNotFound(message, **kwargs)
    return FalRejected(message, **kwargs)


def account_block_reason(code: int, detail: Any) -> str:
    """Why fal refuses the whole account, from a 401/403 answer, or "" when it refused just this call.

    401 is an unknown key ("No user found for Key ID and Secret"); 403 with a detail starting
    "User is locked" is a locked account. Other 403s (a content policy, say) concern the call.
    """
    text = describe_detail(detail).strip().lower()
    if code == 401:
        return BAD_KEY
    if code == 403 and text.startswith("user is locked"):
        reason = text.partition("reason:")[2]
        return BALANCE_EXHAUSTED if any(word in reason for word in _BALANCE_WORDS) else ACCOUNT_LOCKED
    return ""


def describe_detail(detail: Any) -> str:
    """fal's `detail` as one readable line: a string, or `field: msg` items of a 422 list."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc", []) if p != "body"]
                parts.append(f"{'.'.join(loc) or 'input'}: {item.get('msg', '')}".strip())
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)[:500]


def _json(response: httpx.Response, default: Any = None) -> Any:
    try:
        return response.json()
    except ValueError:
        return default if default is not None else {}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _datetime_or_none(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _request_record(item: Any) -> FalRequestRecord | None:
    if not isinstance(item, dict) or not item.get("request_id"):
        return None
    return FalRequestRecord(
        request_id=str(item["request_id"]), endpoint_id=str(item.get("endpoint_id") or ""),
        sent_at=_datetime_or_none(item.get("sent_at")), ended_at=_datetime_or_none(item.get("ended_at")),
        status_code=_int_or_none(item.get("status_code")), json_input=item.get("json_input"))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
