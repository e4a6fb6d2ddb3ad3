"""fal's request listing, `GET /v1/models/requests/by-endpoint` on fal's platform API, over the
simulator's own requests (no Django; answered by falsim/queue_api.py).

What fal documents (its platform API reference): `endpoint_id` (required), `limit` 1–100 (default
50), `cursor` (base64 of the page number, e.g. `Mg==` for page 2), `start` / `end` (ISO 8601 date or
date-time; default the last 24 hours; `end` exclusive), `status` = success | error | user_error,
`request_id`, `expand=payloads` (adds `json_input` / `json_output`), `sort_by` = ended_at | duration;
answer `{"items": [...], "next_cursor": ..., "has_more": ...}`.

Where fal's behaviour is not documented the simulator chooses, and says so here: requests still
queued or running are listed with `ended_at` and `status_code` null; a request sent with
`X-Fal-Store-IO: 0` is listed without payloads (fal keeps none for it); a request becomes visible
`lag` seconds after it was sent (fal records requests asynchronously, and its listing has lagged for
hours in incidents).
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

STATUSES = ("success", "error", "user_error")
SORTS = ("ended_at", "duration")
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_LOOK_BACK = timedelta(hours=24)


class QueryError(ValueError):
    """A bad query parameter: `field` and `message` become fal's 422 detail item."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def listing_answer(records: list[dict], query: dict[str, list[str]], *, now: float, lag: float) -> tuple[int, dict]:
    """(HTTP status, body) for a listing query over `records` (dicts with `request_id`, `endpoint_id`,
    `sent_at`, `started_at`, `ended_at` as epoch seconds or None, `status_code`, `json_input`,
    `json_output`, `store_io`)."""
    try:
        wanted = _parse(query, now)
    except QueryError as exc:
        return 422, {"detail": [{"loc": ["query", exc.field], "msg": str(exc), "type": "value_error"}]}
    visible = [
        record for record in records
        if record["endpoint_id"] == wanted["endpoint_id"]
        and record["sent_at"] <= now - lag
        and wanted["start"] <= record["sent_at"] < wanted["end"]
        and (wanted["request_id"] is None or record["request_id"] == wanted["request_id"])
        and (wanted["status"] is None or _status_class(record["status_code"]) == wanted["status"])
    ]
    visible.sort(key=_sort_key(wanted["sort_by"]), reverse=True)
    limit, page = wanted["limit"], wanted["page"]
    chunk = visible[(page - 1) * limit:page * limit]
    has_more = len(visible) > page * limit
    return 200, {
        "items": [_item(record, wanted["payloads"]) for record in chunk],
        "next_cursor": base64.b64encode(str(page + 1).encode()).decode() if has_more else None,
        "has_more": has_more,
    }


def _parse(query: dict[str, list[str]], now: float) -> dict:
    def one(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    endpoint_id = one("endpoint_id")
    if not endpoint_id:
        raise QueryError("endpoint_id", "Field required")
    limit = _int(one("limit"), "limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"Input should be between 1 and {MAX_LIMIT}")
    page = 1
    if cursor := one("cursor"):
        try:
            page = int(base64.b64decode(cursor, validate=True).decode())
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise QueryError("cursor", "Invalid cursor") from None
        if page < 1:
            raise QueryError("cursor", "Invalid cursor")
    end = _moment(end_text, "end") if (end_text := one("end")) else now + 1.0
    start = (_moment(start_text, "start") if (start_text := one("start"))
             else now - DEFAULT_LOOK_BACK.total_seconds())
    status = one("status")
    if status is not None and status not in STATUSES:
        raise QueryError("status", f"Input should be {', '.join(repr(s) for s in STATUSES)}")
    sort_by = one("sort_by") or "ended_at"
    if sort_by not in SORTS:
        raise QueryError("sort_by", f"Input should be {', '.join(repr(s) for s in SORTS)}")
    return {"endpoint_id": endpoint_id, "limit": limit, "page": page, "start": start, "end": end,
            "status": status, "request_id": one("request_id"), "sort_by": sort_by,
            "payloads": "payloads" in ",".join(query.get("expand", []))}


def _int(value: str | None, field: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise QueryError(field, "Input should be a valid integer") from None


def _moment(value: str, field: str) -> float:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(field, "Input should be an ISO 8601 date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _status_class(code: int | None) -> str | None:
    if code is None:
        return None
    if code < 400:
        return "success"
    return "user_error" if code < 500 else "error"


def _sort_key(sort_by: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    if sort_by == "duration":
        return lambda record: ((record["ended_at"] or float("inf")) - record["sent_at"], record["sent_at"])
    # Newest first; requests still in flight (no ended_at yet) before every finished one.
    return lambda record: (record["ended_at"] is None, record["ended_at"] or 0.0, record["sent_at"])


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _item(record: dict, payloads: bool) -> dict:
    ended = record["ended_at"]
    item = {
        "request_id": record["request_id"],
        "endpoint_id": record["endpoint_id"],
        "sent_at": _iso(record["sent_at"]),
        "started_at": _iso(record["started_at"]),
        "ended_at": _iso(ended),
        "status_code": record["status_code"],
        "duration": round(ended - record["sent_at"], 3) if ended is not None else None,
    }
    if payloads:
        kept = record["store_io"]
        item["json_input"] = record["json_input"] if kept else None
        item["json_output"] = record["json_output"] if kept and ended is not None else None
    return item
