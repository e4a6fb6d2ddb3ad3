"""Text the studio can store and send: valid Unicode without NUL characters.

JSON escapes let a client send a lone UTF-16 surrogate (`"\\ud800"`), which Python keeps in a str
but which cannot be encoded as UTF-8: the database, fal and every page showing it would fail on
it later. PostgreSQL also refuses NUL (U+0000) in text and JSON. Every boundary that takes text
from outside (REST, gateway, web, CLI, admin) refuses such text up front with `text_problem`,
naming the field, before anything is stored or sent.
"""
from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored or sent (a sentence to follow the field's name), or None."""
    match = _UNSTORABLE.search(value)
    if match is None:
        return None
    if match.group() == "\x00":
        return "must not contain NUL characters (U+0000)"
    return (f"must be valid Unicode text: it holds a lone surrogate (U+{ord(match.group()):04X}), "
            "which cannot be encoded as UTF-8")


def json_text_problem(value: Any) -> str | None:
    """`text_problem` of the first bad string (a key or a value) anywhere inside a parsed JSON value,
    saying where it is when nested; None when every string is fine. Walks without recursing."""
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return f"{problem} (at {path})" if path else problem
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = text_problem(key) if isinstance(key, str) else None
                if problem:
                    return f"has a field name{' at ' + path if path else ''} that {problem}"
                pending.append((f"{path}.{key}" if path else str(key), child))
        elif isinstance(item, list):
            pending.extend((f"{path}.{index}" if path else str(index), child) for index, child in enumerate(item))
    return None


def text_shown(value: str) -> str:
    """`value` with lone surrogates written as `\\udXXX` escapes, so it can be echoed in a UTF-8 answer."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if _UNSTORABLE.search(value) else value
