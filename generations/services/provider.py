"""When fal refuses the studio's account: pause, hold, probe, resume (design: "provider outages never
fail jobs").

fal answers 403 `User is locked…` to every billable call of a locked account (an admin lock, or an
exhausted balance) and 401 to an unknown key; status reads usually keep working meanwhile. Neither
says anything about the job that happened to meet it, so no job fails for it:
- `provider_outage(error)` pauses the studio automatically (the moderators' pause switch, with the
  cause recorded, held jobs keep their reservation and are not charged, the staff are emailed);
- `provider_probe_if_due()`, called by the tracking chain and the sweeper, asks fal at most every
  STUDIO_PROVIDER_PROBE_SECONDS with a call that costs nothing and that a lock refuses — a storage
  upload initiate (nothing is uploaded) — and resumes the studio when fal accepts it again.
"""
from __future__ import annotations

import logging

from django.conf import settings

from fal_protocol.client import FalAccountBlocked, FalError
from generations.upstream import get_fal_client
from moderation.services import (provider_pause_automatic, provider_probe_claim, provider_probe_record,
                                 provider_resume_automatic)

log = logging.getLogger(__name__)
PROBE_FILE_NAME = "studio-probe.txt"


def provider_outage(error: FalAccountBlocked) -> None:
    """fal refused the account: pause automatically (idempotent; an existing pause is kept as it is)."""
    if provider_pause_automatic(cause=error.reason, detail=str(error)):
        log.critical("fal refuses the studio's account (%s): submissions paused until it works again: %s",
                     error.reason, error)


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
    provider_resume_automatic(detail="fal accepted a storage upload initiate")
    log.warning("fal accepts the studio's account again: submissions resumed")
    return "resumed"
