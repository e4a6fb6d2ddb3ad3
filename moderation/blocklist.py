"""The prompt blocklist, checked by `generation_create` before anything is reserved or sent.

Prompts and word terms are compared folded (`moderation.folding`: look-alike letters, accents,
invisible characters and `_` cannot hide a word); patterns run on RE2 (`moderation.patterns`) over
the folded prompt, so none can make a create hang.

Terms are compiled once per process and recompiled only when the table changed: every check costs
one small aggregate query (the table's version stamp), so edits in the admin apply at once in every
web and worker process without a shared cache.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Protocol

from django.contrib.auth.models import User
from django.db.models import Count, Max

from generations.ltx import InputError
from moderation.audit import audit_record
from moderation.folding import Folded, fold
from moderation.models import AuditEntry, BlockedTerm
from moderation.patterns import CompiledPattern, PatternError, pattern_compile

logger = logging.getLogger(__name__)

REJECTION = "This prompt contains a blocked term ({match!r}) and was not accepted. Please rephrase it."


class PromptBlocked(InputError):
    """A prompt matched the blocklist. An InputError on `prompt`, so every caller reports it as one."""

    def __init__(self, *, term: BlockedTerm, match: str) -> None:
        self.term, self.match = term, match
        super().__init__({"prompt": REJECTION.format(match=match)})


class _Rule(Protocol):
    def find(self, prompt: Folded) -> tuple[int, int] | None: ...


class _Words:
    """A word or phrase: its folded words in order, each whole, with whitespace or at least one
    invisible character between two of them ("two", a zero width space, "words" is the phrase;
    "twowords" is not)."""

    def __init__(self, words: list[str]) -> None:
        self.regex = re.compile(r"(?<!\w)" + r"\s*".join(f"({re.escape(word)})" for word in words) + r"(?!\w)")
        self.joints = range(1, len(words))

    def find(self, prompt: Folded) -> tuple[int, int] | None:
        pos = 0
        while found := self.regex.search(prompt.text, pos):
            if all(found.end(i) < found.start(i + 1) or found.end(i) in prompt.seams for i in self.joints):
                return found.span()
            pos = found.start() + 1
        return None


class _Pattern:
    """A regular expression (RE2, any case) searched in the folded prompt."""

    def __init__(self, regex: CompiledPattern) -> None:
        self.regex = regex

    def find(self, prompt: Folded) -> tuple[int, int] | None:
        found = self.regex.search(prompt.text)
        return found.span() if found else None


@dataclass(frozen=True)
class _Compiled:
    stamp: tuple
    rules: tuple[tuple[int, _Rule], ...]


_lock = threading.Lock()
_compiled: _Compiled | None = None


def _compile(term: BlockedTerm) -> _Rule | None:
    if term.kind == BlockedTerm.Kind.PATTERN:
        try:
            return _Pattern(pattern_compile(term.term))
        except PatternError as exc:  # validated on save; a row from before RE2 must not break every create
            logger.warning("blocked term %s (pattern %r) is skipped: RE2 cannot compile it: %s",
                           term.pk, term.term, exc)
            return None
    words = fold(term.term).text.split()
    return _Words(words) if words else None


def _rules() -> tuple[tuple[int, _Rule], ...]:
    global _compiled
    stamp_row = BlockedTerm.objects.filter(is_active=True).aggregate(n=Count("id"), at=Max("updated_at"))
    stamp = (stamp_row["n"], stamp_row["at"])
    current = _compiled
    if current is not None and current.stamp == stamp:
        return current.rules
    with _lock:
        terms = BlockedTerm.objects.filter(is_active=True).order_by("id")
        rules = tuple((term.pk, rule) for term in terms if (rule := _compile(term)) is not None)
        _compiled = _Compiled(stamp=stamp, rules=rules)
        return rules


def blocklist_invalidate() -> None:
    """Forget the compiled terms of this process (the next check recompiles)."""
    global _compiled
    _compiled = None


def blocklist_match(prompt: str) -> tuple[int, str] | None:
    """(term id, matched text as written in `prompt`) of the first active term found, or None."""
    rules = _rules()
    if not rules:
        return None
    folded = fold(prompt)
    for pk, rule in rules:
        span = rule.find(folded)
        if span is not None:
            return pk, folded.written(*span)
    return None


def prompt_check(prompt: str, *, owner: User) -> None:
    """Raise PromptBlocked when `prompt` matches an active blocked term, and audit the refusal.

    The audit entry (actor: the owner) is written at once, outside any job transaction: nothing
    else was written, reserved or sent.
    """
    hit = blocklist_match(prompt)
    if hit is None:
        return
    term = BlockedTerm.objects.filter(pk=hit[0]).first() or BlockedTerm(pk=hit[0], term=hit[1])
    audit_record(actor=owner, action=AuditEntry.Action.PROMPT_BLOCKED, target_type="user", target_id=owner.pk,
                 reason=f"prompt matched blocked term {term}",
                 after={"term_id": hit[0], "match": hit[1], "prompt": prompt[:500]})
    raise PromptBlocked(term=term, match=hit[1])
