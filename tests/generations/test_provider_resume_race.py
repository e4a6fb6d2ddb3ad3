"""A job that is held while an automatic resume is releasing the held jobs is not left behind.

Found by `make chaos` on PostgreSQL: a create read "paused" just before a resume committed, wrote its
job as HELD just after the resume had listed the held jobs, and that job stayed held for good. Here
the resume is stopped right after it listed them, and the create (or a submit) runs meanwhile.
PostgreSQL only: SQLite runs one writing transaction at a time, so the two cannot interleave there.
"""
from __future__ import annotations

import threading

import pytest
from django.db import connection

from generations.models import Generation
from generations.services import provider_switch
from generations.services.create import generation_create
from generations.services.provider_switch import provider_pause, provider_resume
from generations.services.submit import generation_submit
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status


def pause_automatically() -> None:
    provider_pause(actor=None, reason="paused automatically: fal answered 403: User is locked",
                   cause="balance_exhausted")


def resume_automatically() -> list | None:
    return provider_resume(actor=None, reason="resumed automatically: fal accepted a storage upload initiate",
                           automatic_only=True)


@pytest.fixture
def resume_stopped_after_listing(monkeypatch):
    """Pause automatically; then a resume in another thread, stopped once it has listed the held jobs
    (it holds the switch's row lock meanwhile) until `go` is set."""
    if connection.vendor != "postgresql":
        pytest.skip("needs two interleaved writing transactions: PostgreSQL only")
    pause_automatically()
    listed, go = threading.Event(), threading.Event()
    fair_order = provider_switch.fair_order

    def stopped(rows):
        listed.set()
        go.wait(30)
        return fair_order(rows)

    monkeypatch.setattr(provider_switch, "fair_order", stopped)
    released: list = []

    def resume():
        try:
            released.extend(resume_automatically() or [])
        finally:
            connection.close()

    resumer = threading.Thread(target=resume)
    resumer.start()
    wait_until(listed.is_set, timeout=10)
    yield go, released
    go.set()
    resumer.join(30)


def waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


def in_thread(call) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run():
        try:
            outcome.append(call())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_job_created_while_a_resume_releases_held_jobs_is_not_left_held(resume_stopped_after_listing, user,
                                                                            task_queue):
    go, released = resume_stopped_after_listing
    creator, outcome = in_thread(lambda: generation_create(owner=user, model="t2v",
                                                           input={"prompt": "made while the studio resumes"})[0])
    wait_until(lambda: outcome or waits_on_a_lock(), timeout=10)  # it waits for the resume to finish
    go.set()
    creator.join(30)

    generation = Generation.objects.get()
    assert generation.status == Status.PENDING
    assert released == []  # the resume had nothing to release: the job was never held
    assert "generation_submit_task" in task_queue.names()  # and it is on its way to fal


def test_a_job_submitted_while_a_resume_releases_held_jobs_is_not_left_held(user, task_queue, monkeypatch):
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "pending before the pause"})
    if connection.vendor != "postgresql":
        pytest.skip("needs two interleaved writing transactions: PostgreSQL only")
    pause_automatically()
    # Pending while paused, as a job is whose submit was in flight when the pause came and that fal
    # then answered 503: its next submit is what holds it.
    Generation.objects.filter(pk=generation.pk).update(status=Status.PENDING)
    listed, go = threading.Event(), threading.Event()
    fair_order = provider_switch.fair_order

    def stopped(rows):
        listed.set()
        go.wait(30)
        return fair_order(rows)

    monkeypatch.setattr(provider_switch, "fair_order", stopped)
    resumer, _ = in_thread(resume_automatically)
    wait_until(listed.is_set, timeout=10)
    # The submit task of the pending job runs now: it must not hold the job behind the resume's back.
    monkeypatch.setattr("generations.services.submit.get_fal_client", lambda: pytest.fail("nothing is sent here"))
    submitter, outcome = in_thread(lambda: _submit_until_it_waits_or_holds(generation.pk))
    wait_until(lambda: outcome or waits_on_a_lock(), timeout=10)
    go.set()
    resumer.join(30)
    submitter.join(30)

    assert Generation.objects.get().status != Status.HELD


def _submit_until_it_waits_or_holds(pk) -> str:
    try:
        generation_submit(pk)
    except BaseException as exc:  # noqa: BLE001 - the fal client is refused above: the submit got past the hold
        return f"went on to submit: {type(exc).__name__}"
    return "returned"
