"""Blocked-term regular expressions run on RE2, whose matching time is linear in the prompt: no
pattern a moderator saves can make a create hang (Python's `re` backtracks, and `^(a+)+$` takes time
doubling with each character). RE2 has no backreferences or lookarounds; such patterns are refused."""
from __future__ import annotations

from typing import TypeAlias

import re2

CompiledPattern: TypeAlias = re2._Regexp


class PatternError(ValueError):
    """RE2 cannot compile this pattern; the message is RE2's reason."""


def pattern_compile(pattern: str) -> CompiledPattern:
    """Compile a blocked-term pattern with RE2, ignoring case, or raise PatternError."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the reason goes to the moderator (or the warning log), not to stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "not accepted"
        raise PatternError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from None
