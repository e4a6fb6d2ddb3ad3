"""Writing the audit log: one row per moderation or operations action, in the action's transaction."""
from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder

from moderation.models import AuditEntry

SYSTEM = "system"


def _plain(data: dict[str, Any] | None) -> dict[str, Any]:
    """`data` as JSON-safe values (datetimes, decimals and UUIDs become strings)."""
    return json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder))


def audit_record(*, actor: User | None, action: str, target_type: str, target_id: Any, reason: str = "",
                 before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> AuditEntry:
    """Append one audit entry. `actor=None` means the studio itself ("system").

    Call inside the transaction of the action it describes, so the entry exists exactly when the
    action happened. Entries are never changed or deleted (the admin offers no way to).
    """
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_name=actor.get_username() if actor is not None else SYSTEM,
        action=action, target_type=target_type, target_id=str(target_id), reason=reason,
        before=_plain(before), after=_plain(after))
