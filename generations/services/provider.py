"""When fal refuses the studio's account: pause, hold, probe, resume (design: "provider outages never
fail jobs").

fal answers 403 `User is locked…` to every billable call of a locked account (an admin lock, or an
exhausted balance) and 401 to an unknown key; status reads usually keep working meanwhile. Neither
says anything about the job that happened to meet it, so no job fails for it:
- `provider_outage(error)` pauses the studio automatically (provider_switch.py, with the cause
  recorded; held jobs keep their reservation and are not charged) and emails the superusers;
- `provider_probe_if_due()`, called by the tracking chain and the sweeper, asks fal at most every
  STUDIO_PROVIDER_PROBE_SECONDS with a call that costs nothing and that a lock refuses — a storage
  upload initiate (nothing is uploaded) — and resumes the studio when fal accepts it again.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction

from fal_protocol.client import FalAccountBlocked, FalError
from generations.models import ProviderSwitch
from generations.services.provider_switch import (
    provider_pause,
    provider_probe_claim,
    provider_probe_record,
    provider_resume,
)
from generations.upstream import get_fal_client

log = logging.getLogger(__name__)
PROBE_FILE_NAME = "studio-probe.txt"


def provider_outage(error: FalAccountBlocked) -> None:
    """fal refused the account: pause automatically (idempotent; an existing pause is kept as it is)."""
    cause = ProviderSwitch.Cause(error.reason)
    reason = f"paused automatically: {cause.label} ({str(error)[:500]})"
    if provider_pause(actor=None, reason=reason, cause=cause) is None:
        return
    log.critical("fal refuses the studio's account (%s): submissions paused until it works again: %s", cause, error)
    transaction.on_commit(lambda: provider_alert_staff(
        subject=f"Video generation paused: {cause.label}",
        body=f"The studio paused submissions to fal by itself: {reason}.\n\nNew and pending jobs are held, "
             f"not failed and not charged. The studio asks fal every {settings.STUDIO_PROVIDER_PROBE_SECONDS:g} s "
             "whether the account works again and then resumes by itself; a superuser can also resume on the "
             "operations dashboard (/admin/dashboard/)."))


def provider_probe_if_due() -> str | None:
    """Probe fal once STUDIO_PROVIDER_PROBE_SECONDS have passed since the last probe of an automatic
    pause (one caller wins the claim); returns what happened — "resumed", "still refused",
    "unavailable" — or None when no probe was due."""
    if not provider_probe_claim(every_seconds=settings.STUDIO_PROVIDER_PROBE_SECONDS):
        return None
    try:
        get_fal_client().upload_initiate(PROBE_FILE_NAME, "text/plain")
    except FalAccountBlocked as exc:
        provider_probe_record(result=f"still refused: {exc}", cause=exc.reason)
        return "still refused"
    except FalError as exc:
        provider_probe_record(result=f"fal did not answer the probe: {exc}")
        return "unavailable"
    detail = "fal accepted a storage upload initiate"
    released = provider_resume(actor=None, reason=f"resumed automatically: {detail}", automatic_only=True)
    if released is not None:
        log.warning("fal accepts the studio's account again: submissions resumed")
        transaction.on_commit(lambda: provider_alert_staff(
            subject="Video generation resumed",
            body=f"fal accepts the studio's account again ({detail}); {len(released)} held job(s) were submitted "
                 "in fair order."))
    return "resumed"


def provider_alert_staff(*, subject: str, body: str) -> int:
    """Email every active superuser that has an address (the people who can resume by hand); returns
    how many were written to. Never raises: an alert that cannot be sent is logged."""
    recipients = list(get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
                      .values_list("email", flat=True))
    if not recipients:
        return 0
    try:
        send_mail(f"[LTX Studio] {subject}", body, None, recipients)
    except Exception:  # the mail server is not our outage to report: log and carry on
        log.exception("could not email the staff: %s", subject)
        return 0
    return len(recipients)
