"""JSON from outside, parsed only when it nests no deeper than MAX_JSON_DEPTH levels.

Python's parser recurses once per level, and so does everything that later walks the value
(serialising it for a fingerprint or a JSON column, repr() in an error message): `[` × 100,000
raises RecursionError far from the request. `json_loads_bounded` measures the nesting on the raw
text first, without parsing or recursing, and refuses deeper documents before the parser sees them,
so every value that passes is safe to walk. The REST API's parser, its JSON-in-form fields and the
gateway all load request JSON through it.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 32

_OPEN_CLOSE = bytes.maketrans(b"[]{}", b"()()")
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_EMPTY_PAIR = re.compile(rb"\(\)")


class JSONTooDeep(ValueError):
    """The document nests arrays and objects deeper than the limit."""

    def __init__(self, limit: int = MAX_JSON_DEPTH) -> None:
        self.limit = limit
        super().__init__(f"arrays and objects are nested more than {limit} levels deep")


def json_loads_bounded(document: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, **options: Any) -> Any:
    """`json.loads(document, **options)`, refusing a document nested deeper than `max_depth` with
    JSONTooDeep before parsing it. Every refusal is a ValueError (JSONTooDeep, json's
    JSONDecodeError, UnicodeDecodeError for bytes that are not text)."""
    if isinstance(document, bytes):
        encoding = json.detect_encoding(document)
        text = document.decode(encoding, "surrogatepass")
        utf8 = document if encoding == "utf-8" else text.encode("utf-8", "surrogatepass")
    else:
        text, utf8 = document, document.encode("utf-8", "surrogatepass")
    if nesting_exceeds(utf8, max_depth):
        raise JSONTooDeep(max_depth)
    return json.loads(text, **options)


def nesting_exceeds(document: bytes, limit: int) -> bool:
    """Whether a UTF-8 JSON document nests arrays/objects deeper than `limit`, in a few linear passes
    of C code (no recursion, no Python loop per character).

    Exact for valid JSON. For invalid JSON it may overestimate, which only turns a parse error into
    a depth error."""
    if document.count(b"[") + document.count(b"{") <= limit:
        return False
    # Escaped backslashes, then escaped quotes, so that every quote left delimits a string; then only
    # brackets (as parentheses) and quotes remain, and the parts inside strings are dropped.
    skeleton = document.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_OPEN_CLOSE, _NOT_STRUCTURE)
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    # Each pass removes the innermost pairs, so valid JSON of depth d empties in exactly d passes.
    depth = 0
    while skeleton:
        skeleton, removed = _EMPTY_PAIR.subn(b"", skeleton)
        if not removed:
            break
        depth += 1
        if depth > limit:
            return True
    # Unclosed brackets (invalid JSON) can still make the parser recurse before it fails.
    return depth + skeleton.count(b"(") > limit
