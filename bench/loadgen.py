"""A small closed-loop HTTP load generator: `concurrency` keep-alive connections, each sending the
next GET as soon as the previous answer is read. Plain asyncio sockets (no client library), so the
generator costs little CPU next to the server it measures.

    python -m bench.loadgen URL [URL …] [--seconds 5] [--turn-seconds 1] [--warmup-seconds 1]
                            [--concurrency 32] [--header "K: V"]

Several URLs (on one server) are measured in turns over the same connections: first a warm-up turn
each, then URL 1 for a turn, URL 2, …, URL 1 again, until each had `--seconds`. A connection stays
with the server process that accepted it, so how a multi-process server happened to share the
connections out weighs on every URL alike, and so does a load on the machine that drifts over
seconds. A request counts for the turn it started in.

Prints one JSON object: for each URL its requests, seconds, rps, p50_ms, p95_ms and errors (non-2xx
answers or broken connections). Every URL is sent the same headers.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Schedule:
    """Which URL is measured when: a warm-up turn each, then `turns` rounds of one turn each."""

    start: float
    targets: int
    turn_seconds: float
    warmup_seconds: float
    turns: int

    @property
    def end(self) -> float:
        return self.start + self.targets * (self.warmup_seconds + self.turns * self.turn_seconds)

    def slot(self, now: float) -> tuple[int, bool] | None:
        """(URL index, whether this is measured) at `now`; None once the run is over."""
        elapsed = now - self.start
        warmup = self.targets * self.warmup_seconds
        if elapsed < warmup:
            return int(elapsed // self.warmup_seconds), False
        if now >= self.end:
            return None
        return int((elapsed - warmup) // self.turn_seconds) % self.targets, True


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def _worker(host: str, port: int, requests: list[bytes], schedule: Schedule, tallies: list[Tally]) -> None:
    reader = writer = None
    while (slot := schedule.slot(time.monotonic())) is not None:
        target, measured = slot
        tally = tallies[target] if measured else Tally()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None  # opened with the writer
            started = time.monotonic()
            writer.write(requests[target])
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
            tally.latencies.append(time.monotonic() - started)
            if not status_line.split(b" ")[1].startswith(b"2"):
                tally.errors += 1
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            tally.errors += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _run(urls: list[str], seconds: float, concurrency: int, headers: list[str], *, turn_seconds: float = 1.0,
               warmup_seconds: float = 0.0) -> dict[str, dict]:
    parts = [urlsplit(url) for url in urls]
    if len({(part.hostname, part.port) for part in parts}) != 1:
        raise SystemExit("loadgen: every URL must be on the same server")
    extra = "".join(f"{header}\r\n" for header in headers)
    requests = [f"GET {part.path}{f'?{part.query}' if part.query else ''} HTTP/1.1\r\nHost: {part.netloc}\r\n"
                f"{extra}\r\n".encode() for part in parts]
    schedule = Schedule(start=time.monotonic(), targets=len(urls), turn_seconds=turn_seconds,
                        warmup_seconds=warmup_seconds, turns=max(1, round(seconds / turn_seconds)))
    tallies = [Tally() for _ in urls]
    host = parts[0].hostname
    if not host:
        raise SystemExit("loadgen: the URLs need a host")
    await asyncio.gather(*(_worker(host, parts[0].port or 80, requests, schedule, tallies)
                           for _ in range(concurrency)))
    return {url: _summary(tally, schedule.turns * turn_seconds) for url, tally in zip(urls, tallies, strict=True)}


def _summary(tally: Tally, seconds: float) -> dict:
    ordered = sorted(latency * 1000 for latency in tally.latencies) or [float("nan")]
    return {"requests": len(tally.latencies), "seconds": round(seconds, 3),
            "rps": round(len(tally.latencies) / seconds, 1),
            "p50_ms": round(ordered[len(ordered) // 2], 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "errors": tally.errors}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("urls", nargs="+", metavar="url")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per URL")
    parser.add_argument("--turn-seconds", type=float, default=1.0)
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="per URL, before the measured turns")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.urls, args.seconds, args.concurrency, args.header,
                                      turn_seconds=args.turn_seconds, warmup_seconds=args.warmup_seconds))))


if __name__ == "__main__":
    main()
