"""studio/jsonbody.py: request JSON is parsed only when it nests no deeper than the limit."""
from __future__ import annotations

import json

import pytest

from core.jsonbody import MAX_JSON_DEPTH, JSONTooDeep, json_loads_bounded, nesting_exceeds


def nested(depth: int, kind: str = "list") -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * (depth - 1) + "{}" + "}" * (depth - 1))


@pytest.mark.parametrize("kind", ["list", "object"])
def test_documents_up_to_the_limit_parse_and_one_level_more_is_refused(kind):
    assert json_loads_bounded(nested(MAX_JSON_DEPTH, kind)) == json.loads(nested(MAX_JSON_DEPTH, kind))
    with pytest.raises(JSONTooDeep, match=f"more than {MAX_JSON_DEPTH} levels deep"):
        json_loads_bounded(nested(MAX_JSON_DEPTH + 1, kind))


@pytest.mark.parametrize("document", [
    b"[" * 100_000,                                  # unclosed: the parser itself would recurse
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"model": "t2v", "input": ' + b"[" * 40 + b"]" * 40 + b"}",
])
def test_hostile_nesting_is_refused_before_parsing(document, monkeypatch):
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("parsed a document that was too deep"))
    with pytest.raises(JSONTooDeep):
        json_loads_bounded(document)


@pytest.mark.parametrize("document", [
    '{"prompt": "' + "[{" * 500 + '"}',              # brackets in strings do not nest
    '{"prompt": "\\"' + "[" * 100 + '"}',            # nor after an escaped quote
    '["\\\\", ' + "[" * 20 + "]" * 20 + "]",          # an escaped backslash ends before the closing quote
    '[' + "[]," * 10_000 + "[]]",                    # wide, not deep
])
def test_brackets_that_do_not_nest_are_not_counted(document):
    assert json_loads_bounded(document) == json.loads(document)


def test_invalid_json_and_bytes_that_are_not_text_are_value_errors():
    for document in (b"{", b'{"a": }', b"\xff\xfe\xfa", "[1,]"):
        with pytest.raises(ValueError):
            json_loads_bounded(document)


def test_bytes_in_any_json_encoding_are_read():
    document = '{"prompt": "é 🤠", "x": [[1]]}'
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "utf-32"):
        assert json_loads_bounded(document.encode(encoding)) == {"prompt": "é 🤠", "x": [[1]]}


def test_unclosed_brackets_count_toward_the_depth():
    assert nesting_exceeds(b"[" * 33, 32)
    assert not nesting_exceeds(b"[" * 32, 32)
    assert nesting_exceeds(b"[]" * 5 + b"[" * 30 + b"[[[]]]", 32)
