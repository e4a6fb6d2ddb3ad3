"""Unfinished S3 multipart uploads: found and aborted once nobody can still be writing them.

boto3 aborts a multipart upload whose part fails, but a worker killed mid-upload (or an abort sent
while S3 itself was down) leaves its parts behind: invisible to object listings, yet stored and
billed. `multipart_abort_abandoned` aborts every unfinished upload under the storage's location
that started longer ago than any store could take. Nothing happens on other storage backends.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.core.files.storage import default_storage
from django.utils import timezone

from storage.backend import is_s3

log = logging.getLogger(__name__)

# A 1 GB store takes minutes; an upload an hour old has no live writer.
ABANDONED_AFTER = timedelta(hours=1)


def multipart_abort_abandoned(older_than: timedelta = ABANDONED_AFTER) -> list[str]:
    """Abort unfinished multipart uploads started before now − `older_than`; return their keys."""
    storage = default_storage
    if not is_s3(storage):
        return []
    client = storage.connection.meta.client
    prefix = f"{storage.location}/" if storage.location else ""
    cutoff = timezone.now() - older_than
    aborted = []
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=storage.bucket_name, Prefix=prefix):
        for upload in page.get("Uploads", []):
            if upload["Initiated"] <= cutoff:
                client.abort_multipart_upload(Bucket=storage.bucket_name, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted.append(upload["Key"])
    if aborted:
        log.warning("aborted %d abandoned multipart upload(s): %s", len(aborted), aborted)
    return aborted
