"""Checks every prompt must pass before `generation_create` reserves, stores or sends anything.

Apps above generations add theirs in their `AppConfig.ready` (the moderation app adds its blocklist,
moderation/blocklist.py). A check refuses by raising `ltx.InputError` (naming `prompt`), which every
way in reports like any other bad field; it may record the refusal first (it runs outside the
job's transaction: nothing else was written).
"""
from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User

PromptCheck = Callable[..., None]  # check(prompt: str, *, owner: User) -> None, or raises
_checks: list[PromptCheck] = []


def prompt_check_add(check: PromptCheck) -> None:
    """Run `check(prompt, owner=…)` for every new generation (idempotent)."""
    if check not in _checks:
        _checks.append(check)


def prompt_checks_run(prompt: str, *, owner: User) -> None:
    """Run every registered check on `prompt`; the first refusal propagates."""
    for check in _checks:
        check(prompt, owner=owner)
