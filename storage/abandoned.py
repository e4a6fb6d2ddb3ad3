"""Half-written uploads left by a store that died: found and removed once nobody can still be writing.

A store killed mid-write (SIGKILL, a lost machine), or an abort sent while S3 itself was down,
leaves bytes that no row owns and no object listing shows as a finished object:
- on S3, an unfinished multipart upload (its parts are stored and billed);
- on the filesystem, the `.<name>.<random>.part` temp file beside the final path (transfer.py).
`abandoned_writes_clear` removes those started longer ago than any store could take. Stores that
are still running are never touched: their writes are younger than the cut-off.
"""
from __future__ import annotations

import logging
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

from django.core.files.storage import FileSystemStorage, default_storage
from django.utils import timezone

from storage.backend import is_filesystem, is_s3

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

log = logging.getLogger(__name__)

# A 1 GB store takes minutes; a write an hour old has no live writer.
ABANDONED_AFTER = timedelta(hours=1)
PARTIAL_FILE = re.compile(r"^\..+\.part$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".part")


def abandoned_writes_clear(older_than: timedelta = ABANDONED_AFTER) -> list[str]:
    """Abort unfinished multipart uploads (S3) or delete partial temp files (filesystem) started
    before now − `older_than`; return what was removed (object keys or paths under MEDIA_ROOT)."""
    cutoff = timezone.now() - older_than
    if is_s3():
        removed = _abort_multipart_uploads(cutoff)
    elif is_filesystem():
        removed = _delete_partial_files(cutoff)
    else:
        removed = []
    if removed:
        log.warning("removed %d abandoned partial write(s): %s", len(removed), removed)
    return removed


def _abort_multipart_uploads(cutoff: datetime) -> list[str]:
    storage = cast("S3Storage", default_storage)
    client = storage.connection.meta.client
    prefix = f"{storage.location}/" if storage.location else ""
    aborted = []
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=storage.bucket_name, Prefix=prefix):
        for upload in page.get("Uploads", []):
            if upload["Initiated"] <= cutoff:
                client.abort_multipart_upload(Bucket=storage.bucket_name, Key=upload["Key"],
                                              UploadId=upload["UploadId"])
                aborted.append(upload["Key"])
    return aborted


def _delete_partial_files(cutoff: datetime) -> list[str]:
    root = Path(cast(FileSystemStorage, default_storage).location)
    if not root.is_dir():
        return []
    deleted = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if PARTIAL_FILE.match(name) and path.stat().st_mtime <= cutoff.timestamp():
                path.unlink(missing_ok=True)
                deleted.append(str(path.relative_to(root)))
    return deleted
