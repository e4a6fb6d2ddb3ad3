"""Copying a large finished video into storage: throughput vs a plain download + upload, and memory.

A file of `size_mb` (an MP4 header then filler) is served by a local HTTP server and copied into
S3 (moto's server, in its own process) by the studio's code and by a plain baseline, each in a
fresh process. copy_ratio = baseline seconds / studio seconds (≥ 0.5 is the target);
copy_rss_growth_mb = the studio process's peak RSS growth during the copy (< 64 MB is the target).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.report import ROOT, Row

CHUNK = b"\0\0\0\x18ftypisom" + os.urandom(1024 * 1024 - 12)


def run(size_mb: int) -> list[Row]:
    scratch = Path(tempfile.mkdtemp(prefix="studio-copy-"))
    source = scratch / "big.mp4"
    with source.open("wb") as handle:
        for _ in range(size_mb):
            handle.write(CHUNK)
    http_port, s3_port = _free_port(), _free_port()
    venv_bin = Path(sys.executable).parent
    http = subprocess.Popen([sys.executable, "-m", "http.server", str(http_port), "--bind", "127.0.0.1",
                             "--directory", str(scratch)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moto = subprocess.Popen([str(venv_bin / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{s3_port}/")
        _wait(f"http://127.0.0.1:{http_port}/")
        env = {**os.environ, "AWS_STORAGE_BUCKET_NAME": "bench", "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_S3_REGION_NAME": "us-east-1"}
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_S3_ENDPOINT_URL"], aws_access_key_id="bench",
                     aws_secret_access_key="bench",
                     region_name="us-east-1").create_bucket(Bucket="bench")
        url = f"http://127.0.0.1:{http_port}/big.mp4"
        baseline = _measure("baseline", url, "baseline.mp4", env)
        _reset(env)
        studio = _measure("studio", url, "studio.mp4", env)
    finally:
        for process in (http, moto):
            process.terminate()
            process.wait(30)
        source.unlink()
        scratch.rmdir()
    note = f"{size_mb} MB, HTTP → S3 (moto)"
    return [
        Row("copy_ratio", baseline["seconds"] / studio["seconds"], "x", 1.0,
            f"{note}; baseline {baseline['seconds']:.1f} s, studio {studio['seconds']:.1f} s"),
        Row("copy_rss_growth_mb", studio["rss_growth"] / 1e6, "MB", baseline["rss_growth"] / 1e6,
            f"{note}; baseline = plain download + boto3 upload_file"),
    ]


def _measure(mode: str, url: str, key: str, env: dict) -> dict:
    output = subprocess.run([sys.executable, "-m", "bench.copy_worker", mode, url, key], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    print(f"copy {mode}: {result['seconds']:.2f} s, peak RSS growth {result['rss_growth'] / 1e6:.1f} MB")
    return result


def _reset(env: dict) -> None:
    """Drop the baseline's object so moto holds one large object at a time."""
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_S3_ENDPOINT_URL"], aws_access_key_id="bench",
                 aws_secret_access_key="bench",
                 region_name="us-east-1").delete_object(Bucket="bench", Key="baseline.mp4")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")
