"""Object keys: deterministic per user and generation, so a rerun overwrites the same object.

Generation ids are random UUIDs, which makes every key unguessable.
"""
from __future__ import annotations

import re
import uuid

_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def generation_key(owner_id: int, generation_id: uuid.UUID | str, name: str) -> str:
    """`users/<owner>/generations/<generation>/<name>`; `name` is a plain file name (no slashes, no dots first)."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe object name {name!r}")
    return f"users/{int(owner_id)}/generations/{uuid.UUID(str(generation_id))}/{name}"


def upload_key(owner_id: int, upload_id: uuid.UUID | str, name: str) -> str:
    """`users/<owner>/uploads/<upload>/<name>`, for files sent through the gateway's upload flow."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe object name {name!r}")
    return f"users/{int(owner_id)}/uploads/{uuid.UUID(str(upload_id))}/{name}"
