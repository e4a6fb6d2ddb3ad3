"""Many simultaneous creates can never exceed a limit (real threads, one DB connection each)."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import Sum

from generations.models import Generation
from generations.services.create import generation_create
from storage.models import UsageEntry, UserQuota
from storage.quotas import QuotaExceeded, estimate_bytes

pytestmark = pytest.mark.django_db(transaction=True)
ESTIMATE = estimate_bytes(duration=6, resolution="1080p", fps=25, audio=True)


@pytest.mark.parametrize("override, limit", [
    ({"active_jobs": 10}, "active_jobs"),
    ({"monthly_spend_usd": Decimal("4.80")}, "monthly_spend_usd"),  # exactly 10 jobs at $0.48 (LTX-2.3 t2v, 6 s 1080p)
    ({"storage_bytes": 10 * ESTIMATE}, "storage_bytes"),
])
def test_fifty_simultaneous_creates_with_room_for_ten_accept_exactly_ten(user, task_queue, override, limit):
    UserQuota.objects.create(user=user, **{"active_jobs": 100, **override})
    barrier = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit(index: int) -> None:
        try:
            barrier.wait()
            generation_create(owner=user, model="t2v", input={"prompt": f"race {index}"})
            outcome = "created"
        except QuotaExceeded as exc:
            outcome = exc.limit
        except Exception as exc:  # noqa: BLE001 — any other failure must show in the assertion
            outcome = f"error: {exc!r}"
        finally:
            connections.close_all()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert sorted(set(outcomes)) == sorted({"created", limit}), outcomes
    assert outcomes.count("created") == 10
    assert Generation.objects.count() == 10
    totals = UsageEntry.objects.aggregate(bytes=Sum("bytes"), usd=Sum("usd"), jobs=Sum("jobs"))
    assert (totals["jobs"], totals["usd"], totals["bytes"]) == (10, Decimal("4.80"), 10 * ESTIMATE)
    assert UsageEntry.objects.filter(event="reserve").count() == 10
    assert set(UsageEntry.objects.values_list("job", flat=True)) == set(Generation.objects.values_list("pk", flat=True))
    assert connection.vendor in ("postgresql", "sqlite")
