"""gunicorn settings for production (`make run-prod`, Procfile.prod; docs/production.md).

gunicorn manages the processes; each runs the studio's ASGI application (studio.asgi) on uvicorn's
event loop (`uvicorn_worker.UvicornWorker`). A long-lived response — a status stream or an event
stream (server-sent events) — then costs a coroutine, and a client that goes away ends it at once.
Every value can be overridden from the environment; gunicorn's own GUNICORN_CMD_ARGS also works.
"""
import multiprocessing
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


# Listen on loopback behind a reverse proxy (TLS, buffering); BIND=0.0.0.0:8000 to listen openly.
bind = os.environ.get("BIND") or f"127.0.0.1:{os.environ.get('PORT') or 8000}"
worker_class = "studio.asgi_worker.StudioWorker"
# 2 × cores + 1 processes, capped.
workers = _int("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8))
# A worker silent this long is restarted. The worker notifies from its event loop, so an open
# stream does not count against it.
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)  # on SIGTERM: finish requests this long
keepalive = _int("GUNICORN_KEEPALIVE", 5)  # seconds; keep it below the proxy's idle timeout
# Recycle a worker after this many requests (0 = never, the default: a recycle ends its open status
# streams after graceful_timeout, and clients must reconnect).
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
accesslog = "-"  # stdout
errorlog = "-"  # stderr
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Trust X-Forwarded-* only from these proxy addresses (gunicorn's default is 127.0.0.1,::1).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Heartbeat files in memory, not on a possibly slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
