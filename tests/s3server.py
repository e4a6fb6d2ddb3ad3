"""Test helper: an S3 server for tests (moto in process, or the one `AWS_S3_ENDPOINT_URL` names).

Usage (typically from a session fixture and a per-test fixture):

    with s3_server() as endpoint_url:             # starts ThreadedMotoServer on 127.0.0.1:<free port>,
        target = create_bucket(endpoint_url)      # or reuses $AWS_S3_ENDPOINT_URL without stopping it
        endpoint_url, bucket, access_key, secret, region = target
        settings.STORAGES = storages_setting(target)   # default storage -> S3Storage on that bucket
        ...
        delete_bucket(target)                      # objects, unfinished multipart uploads, the bucket

Credentials come from $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY when an external endpoint is used
(moto accepts anything, so "testing" otherwise). Buckets get unique names, so tests never share state.
"""
from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import boto3
from botocore.config import Config

REGION = "us-east-1"


class S3Target(NamedTuple):
    endpoint_url: str
    bucket: str
    access_key: str
    secret: str
    region: str


@contextmanager
def s3_server() -> Iterator[str]:
    """Yield an endpoint URL; a moto server started here is stopped on exit."""
    external = os.environ.get("AWS_S3_ENDPOINT_URL")
    if external:
        yield external.rstrip("/")
        return
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def create_bucket(endpoint_url: str, bucket: str | None = None) -> S3Target:
    external = bool(os.environ.get("AWS_S3_ENDPOINT_URL"))
    target = S3Target(
        endpoint_url=endpoint_url,
        bucket=bucket or f"test-{uuid.uuid4().hex[:20]}",
        access_key=(os.environ.get("AWS_ACCESS_KEY_ID") if external else None) or "testing",
        secret=(os.environ.get("AWS_SECRET_ACCESS_KEY") if external else None) or "testing",
        region=REGION,
    )
    s3_client(target).create_bucket(Bucket=target.bucket)
    return target


def delete_bucket(target: S3Target) -> None:
    client = s3_client(target)
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=target.bucket):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=target.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=target.bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=target.bucket)


def s3_client(target: S3Target) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=target.endpoint_url,
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret,
        region_name=target.region,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def storages_setting(target: S3Target, **options: Any) -> dict[str, dict[str, Any]]:
    """A `settings.STORAGES` value whose default storage is S3Storage on `target` (extra OPTIONS win)."""
    return {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "endpoint_url": target.endpoint_url,
                "bucket_name": target.bucket,
                "access_key": target.access_key,
                "secret_key": target.secret,
                "region_name": target.region,
                "addressing_style": "path",
                "signature_version": "s3v4",
                "file_overwrite": True,
                **options,
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
