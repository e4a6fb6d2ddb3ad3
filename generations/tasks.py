"""django-q2 entry points: take ids, call one service, return. Delivery is at least once."""
from __future__ import annotations

from generations.services.ambiguous import ambiguous_submits_resolve
from generations.services.cancel import generation_cancel_upstream
from generations.services.lease import tracker_ensure
from generations.services.provider import provider_probe_if_due
from generations.services.store import generation_store
from generations.services.submit import generation_submit
from generations.services.tracking import tracker_run
from generations.services.uploads import uploads_purge_expired


def generation_submit_task(pk: str) -> None:
    generation_submit(pk)


def generation_store_task(pk: str) -> None:
    generation_store(pk)


def generation_cancel_upstream_task(pk: str) -> None:
    generation_cancel_upstream(pk)


def ambiguous_submits_resolve_task(*pks: str) -> dict[str, str]:
    return ambiguous_submits_resolve(list(pks))


def tracker_run_task(token: str) -> str:
    return tracker_run(token)


def tracker_ensure_task() -> bool:
    return tracker_ensure()


def sweep_task() -> bool:
    """Scheduled every minute: restart tracking if its chain died (everything else is due-time
    driven), probe fal during an automatic pause should no chain run, and delete expired gateway uploads."""
    uploads_purge_expired()
    provider_probe_if_due()
    return tracker_ensure()
