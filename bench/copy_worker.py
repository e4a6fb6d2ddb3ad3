"""One measured copy, run in its own process so its peak RSS is its own. Prints a JSON line.

    python -m bench.copy_worker baseline|studio URL KEY
Storage comes from the environment (AWS_* → S3). `baseline` = a plain httpx download to a file
plus boto3's default upload_file; `studio` = the studio's download_to_tempfile + store_file.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def _vm(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    mode, url, key = sys.argv[1:4]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    import django

    django.setup()
    import boto3
    import httpx
    from django.conf import settings

    from storage.transfer import download_to_tempfile, store_file

    before = _vm("VmRSS")
    started = time.perf_counter()
    if mode == "baseline":
        with tempfile.NamedTemporaryFile(delete=False) as handle, httpx.stream("GET", url) as response:
            for chunk in response.iter_bytes(1024 * 1024):
                handle.write(chunk)
        client = boto3.client("s3", endpoint_url=settings.AWS_S3_ENDPOINT_URL, region_name=settings.AWS_S3_REGION_NAME,
                              aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
                              aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY)
        client.upload_file(handle.name, settings.AWS_STORAGE_BUCKET_NAME, key)
        os.unlink(handle.name)
    else:
        downloaded = download_to_tempfile(url, max_bytes=4 * 1024**3, allowed_content_types=["video/mp4"])
        store_file(key, downloaded.path, content_type="video/mp4")
        os.unlink(downloaded.path)
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "rss_growth": _vm("VmHWM") - before}))


if __name__ == "__main__":
    main()
