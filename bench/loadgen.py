"""A small closed-loop HTTP load generator: `concurrency` keep-alive connections, each sending the
next GET as soon as the previous answer is read, for `seconds`. Plain asyncio sockets (no client
library), so the generator costs little CPU next to the server it measures.

    python -m bench.loadgen http://127.0.0.1:8000/path [--seconds 5] [--concurrency 32] [--header "K: V"]

Prints one JSON line: requests, seconds, rps, p50_ms, p95_ms, errors (non-2xx or broken connections),
and with --raw every latency (latencies_ms), so that several runs can be combined exactly.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _worker(host: str, port: int, request: bytes, stop_at: float, latencies: list[float], errors: list[int]):
    reader = writer = None
    while time.monotonic() < stop_at:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.monotonic()
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length, close = 0, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            await reader.readexactly(length)
            latencies.append(time.monotonic() - started)
            if not status_line.split(b" ")[1].startswith(b"2"):
                errors.append(1)
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            errors.append(1)
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _run(url: str, seconds: float, concurrency: int, headers: list[str], raw: bool = False) -> dict:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    extra = "".join(f"{header}\r\n" for header in headers)
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}\r\n".encode()
    latencies: list[float] = []
    errors: list[int] = []
    started = time.monotonic()
    stop_at = started + seconds
    await asyncio.gather(*(_worker(parts.hostname, parts.port or 80, request, stop_at, latencies, errors)
                           for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    summary = summarize([latency * 1000 for latency in latencies], elapsed, len(errors))
    if raw:
        summary["latencies_ms"] = [round(latency * 1000, 3) for latency in latencies]
    return summary


def summarize(latencies_ms: list[float], seconds: float, errors: int) -> dict:
    """The figures of one run, or of several combined (their latencies, seconds and errors added up)."""
    ordered = sorted(latencies_ms) or [float("nan")]
    return {"requests": len(latencies_ms), "seconds": round(seconds, 3), "rps": round(len(latencies_ms) / seconds, 1),
            "p50_ms": round(ordered[len(ordered) // 2], 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--raw", action="store_true", help="also print every latency")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.url, args.seconds, args.concurrency, args.header, args.raw))))


if __name__ == "__main__":
    main()
