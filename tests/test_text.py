"""studio/text.py: the one check of text the studio can store and send."""
from __future__ import annotations

import pytest

from core.text import json_text_problem, text_problem, text_shown


@pytest.mark.parametrize("value, expected", [
    ("a cowboy at noon ✓ 🤠", None),
    ("", None),
    ("a\x00b", "must not contain NUL characters (U+0000)"),
    ("a\ud800b", "must be valid Unicode text: it holds a lone surrogate (U+D800), which cannot be encoded as UTF-8"),
    ("\udcff", "must be valid Unicode text: it holds a lone surrogate (U+DCFF), which cannot be encoded as UTF-8"),
])
def test_text_problem_names_nul_and_lone_surrogates(value, expected):
    assert text_problem(value) == expected


@pytest.mark.parametrize("value, expected", [
    ({"a": ["fine", {"b": 1, "c": None}]}, None),
    ("a\x00", "must not contain NUL characters (U+0000)"),
    ({"a": ["ok", {"b": "x\x00"}]}, "must not contain NUL characters (U+0000) (at a.1.b)"),
    ({"a": {"\ud800": 1}}, ("has a field name at a that must be valid Unicode text: it holds a lone surrogate "
                            "(U+D800), which cannot be encoded as UTF-8")),
    ({"\x00": 1}, "has a field name that must not contain NUL characters (U+0000)"),
])
def test_json_text_problem_finds_bad_keys_and_values_and_says_where(value, expected):
    assert json_text_problem(value) == expected


def test_json_text_problem_walks_any_depth_without_recursing():
    deep: list = ["a\x00"]
    for _ in range(100_000):
        deep = [deep]
    problem = json_text_problem(deep)
    assert problem is not None and problem.startswith("must not contain NUL characters (U+0000) (at 0.0.0.")


def test_text_shown_escapes_lone_surrogates_only():
    assert text_shown("é \ud800 \x00") == "é \\ud800 \x00"
    assert text_shown("é \ud800").encode("utf-8") == "é \\ud800".encode()
    assert text_shown("plain") == "plain"
