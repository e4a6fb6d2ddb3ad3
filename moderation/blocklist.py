"""The prompt blocklist, checked by `generation_create` before anything is reserved or sent.

Terms are compiled once per process and recompiled only when the table changed: every check costs
one small aggregate query (the table's version stamp), so edits in the admin apply at once in every
web and worker process without a shared cache. Patterns run on RE2 (`moderation.patterns`), so none
can make a create hang.
"""
from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Max

from generations.ltx import InputError
from moderation.audit import audit_record
from moderation.models import AuditEntry, BlockedTerm
from moderation.patterns import CompiledPattern, PatternError, pattern_compile

logger = logging.getLogger(__name__)

REJECTION = "This prompt contains a blocked term ({match!r}) and was not accepted. Please rephrase it."


class PromptBlocked(InputError):
    """A prompt matched the blocklist. An InputError on `prompt`, so every caller reports it as one."""

    def __init__(self, *, term: BlockedTerm, match: str):
        self.term, self.match = term, match
        super().__init__({"prompt": REJECTION.format(match=match)})


@dataclass(frozen=True)
class _Compiled:
    stamp: tuple
    rules: tuple[tuple[int, re.Pattern | CompiledPattern], ...]


_lock = threading.Lock()
_compiled: _Compiled | None = None


def normalise(text: str) -> str:
    """What terms are matched against: NFKC (full-width and ligature look-alikes folded), any case."""
    return unicodedata.normalize("NFKC", text).casefold()


def _compile(term: BlockedTerm) -> re.Pattern | CompiledPattern | None:
    if term.kind == BlockedTerm.Kind.PATTERN:
        try:
            return pattern_compile(term.term)
        except PatternError as exc:  # validated on save; a row from before RE2 must not break every create
            logger.warning("blocked term %s (pattern %r) is skipped: RE2 cannot compile it: %s",
                           term.pk, term.term, exc)
            return None
    words = r"\s+".join(re.escape(normalise(part)) for part in term.term.split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE) if words else None


def _rules() -> tuple[tuple[int, re.Pattern | CompiledPattern], ...]:
    global _compiled
    stamp_row = BlockedTerm.objects.filter(is_active=True).aggregate(n=Count("id"), at=Max("updated_at"))
    stamp = (stamp_row["n"], stamp_row["at"])
    current = _compiled
    if current is not None and current.stamp == stamp:
        return current.rules
    with _lock:
        terms = BlockedTerm.objects.filter(is_active=True).order_by("id")
        rules = tuple((term.pk, pattern) for term in terms if (pattern := _compile(term)) is not None)
        _compiled = _Compiled(stamp=stamp, rules=rules)
        return rules


def blocklist_invalidate() -> None:
    """Forget the compiled terms of this process (the next check recompiles)."""
    global _compiled
    _compiled = None


def blocklist_match(prompt: str) -> tuple[int, str] | None:
    """(term id, matched text) of the first active term found in `prompt`, or None."""
    text = normalise(prompt)
    for pk, pattern in _rules():
        found = pattern.search(text)
        if found:
            return pk, found.group(0)
    return None


def prompt_check(prompt: str, *, owner: AbstractBaseUser) -> None:
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
