"""The per-user lock for counted things a user holds (API keys, open status streams)."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction


def user_row_lock(user_id: int) -> None:
    """Lock user `user_id`'s row until the caller's transaction ends, so that one user's count-then-add
    steps run one after the other (two at once cannot both take the last place). Call inside
    `transaction.atomic()`."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("user_row_lock must run inside transaction.atomic()")
    list(get_user_model().objects.select_for_update().filter(pk=user_id).values_list("pk"))
