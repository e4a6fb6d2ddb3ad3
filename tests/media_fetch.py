"""Fetching studio media in tests the way a browser does, whatever the storage backend."""
from __future__ import annotations

import httpx


def fetch(client, url: str, **headers):
    """GET `url` through the Django test client; on S3 follow the redirect to the presigned URL.

    Returns (status, headers, body)."""
    response = client.get(url, headers=headers)
    if response.status_code == 302 and response["Location"].startswith("http"):
        upstream = httpx.get(response["Location"], headers=headers)
        return upstream.status_code, upstream.headers, upstream.content
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, response.headers, body
