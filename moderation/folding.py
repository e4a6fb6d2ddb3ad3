"""How the blocklist reads text: a prompt and a blocked word are compared after folding, so that a
word spelled with look-alike letters, accents or invisible characters folds to the plain word.

Folding, character by character:

- NFKD (full-width, ligature and other compatibility forms decompose to their plain letters);
- format characters (category Cf: zero width space and joiners, soft hyphen, word joiner, bidi
  controls ...) and combining marks (Mn, Me: accents) are dropped;
- connector punctuation (Pc: `_`, `‿`, ...) becomes a space, so it separates words;
- ASCII is only lower-cased. Any other letter is mapped with the confusables skeleton of Unicode
  UTS #39 (ICU's, via PyICU): one whose skeleton is an ASCII letter becomes that letter (Cyrillic `о`
  is `o`), looking at the lower-case form first and then at the capital (Cyrillic `н` looks like a
  small capital H: it is `h`, like `Н`), so the result does not depend on case; otherwise it becomes
  its case-folded skeleton.

ASCII is left out of the skeleton on purpose: UTS #39 equates `m` with `rn`, `I` with `l` and `0`
with `O`, which would block `pom` for `porn` and break `KILL` for `kill`. The result keeps, for each
folded character, the position of the character it came from, so a match is reported as written.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import icu

_SPOOF_CHECKER = icu.SpoofChecker()  # its skeleton lookups are thread-safe once configured
_DROPPED = frozenset({"Cf", "Mn", "Me"})
_MARKS = frozenset({"Mn", "Me"})


def _skeleton(text: str) -> str:
    return _SPOOF_CHECKER.getSkeleton(0, text)  # the type argument is ignored since ICU 58


def _ascii_by_skeleton() -> dict[str, str]:
    """Skeleton → the ASCII letter (else character) it stands for, preferring a lower-case letter:
    `l` for the skeleton shared by `l`, `I`, `1` and `|`; `o` for the one of `O` and `0`; `m` for `rn`."""
    def rank(ch: str) -> tuple[bool, bool]:
        return not ch.islower(), not ch.isalpha()

    table: dict[str, str] = {}
    for ch in map(chr, range(0x21, 0x7F)):
        key = _skeleton(ch)
        if key not in table or rank(ch) < rank(table[key]):
            table[key] = ch
    return {key: ch.lower() for key, ch in table.items()}


_ASCII_BY_SKELETON = _ascii_by_skeleton()


def _as_ascii(skeleton: str) -> str | None:
    if skeleton in _ASCII_BY_SKELETON:
        return _ASCII_BY_SKELETON[skeleton]
    if skeleton.isascii():  # several prototypes, e.g. `ae` for `æ`
        return "".join(_ASCII_BY_SKELETON.get(ch, ch) for ch in skeleton).lower()
    return None


def _bare(text: str) -> str:
    """NFKD, without format characters and marks (a skeleton may carry marks: `η` → `n̩`)."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if unicodedata.category(ch) not in _DROPPED)


def _fold_letter(ch: str) -> str:
    """One non-ASCII character that is neither dropped nor connector punctuation (a `_` in the
    result, from a look-alike of it, is a space too)."""
    for form in (ch.casefold(), ch.upper()):
        ascii_form = _as_ascii(_bare(_skeleton(form)))
        if ascii_form is not None:
            return ascii_form.replace("_", " ")
    rest = _bare(_skeleton(ch.casefold()).casefold())
    return "".join(" " if unicodedata.category(part) == "Pc" else part for part in rest)


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    if ch.isascii():
        return " " if ch == "_" else ch.lower()
    out = []
    for part in unicodedata.normalize("NFKD", ch):
        if part.isascii():
            out.append(" " if part == "_" else part.lower())
            continue
        category = unicodedata.category(part)
        if category in _DROPPED:
            continue
        out.append(" " if category == "Pc" else _fold_letter(part))
    return "".join(out)


@dataclass(frozen=True)
class Folded:
    """`source` folded to `text`. `origin[i]` is the index in `source` of the character that
    `text[i]` came from; `seams` holds the positions in `text` where a format character was dropped."""

    source: str
    text: str
    origin: Sequence[int]
    seams: frozenset[int]

    def written(self, start: int, end: int) -> str:
        """The part of `source` that `text[start:end]` came from, with the marks on its last letter."""
        if start >= end:
            return ""
        first, last = self.origin[start], self.origin[end - 1] + 1
        while last < len(self.source) and unicodedata.category(self.source[last]) in _MARKS:
            last += 1
        return self.source[first:last]


def fold(text: str) -> Folded:
    """Fold `text` for the blocklist (see the module docstring)."""
    if text.isascii():
        folded = text.lower().replace("_", " ")
        return Folded(source=text, text=folded, origin=range(len(folded)), seams=frozenset())
    parts: list[str] = []
    origin: list[int] = []
    seams: set[int] = set()
    for index, ch in enumerate(text):
        piece = _fold_char(ch)
        if piece:
            parts.append(piece)
            origin.extend([index] * len(piece))
        elif unicodedata.category(ch) == "Cf":
            seams.add(len(origin))
    return Folded(source=text, text="".join(parts), origin=origin, seams=frozenset(seams))
