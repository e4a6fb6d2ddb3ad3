"""Reading the "pause provider" switch (changes go through moderation.services)."""
from __future__ import annotations

from moderation.models import ProviderSwitch


def provider_switch() -> ProviderSwitch:
    return ProviderSwitch.objects.filter(pk=ProviderSwitch.SINGLETON).first() or ProviderSwitch(paused=False)


def provider_is_paused() -> bool:
    """Whether new submissions to fal are held in the studio (one indexed read)."""
    return ProviderSwitch.objects.filter(pk=ProviderSwitch.SINGLETON, paused=True).exists()


def provider_is_paused_automatically() -> bool:
    """Whether the studio paused itself because fal refuses its account (it probes fal meanwhile)."""
    return ProviderSwitch.objects.filter(pk=ProviderSwitch.SINGLETON, paused=True).exclude(cause="").exists()


def provider_is_paused_for_hold() -> bool:
    """Whether a job may be put on hold now, for a caller that holds it in the same transaction.

    A pause seen here is confirmed under the switch's row lock, which a resume keeps until it has
    released every held job: with a resume in flight the caller waits for it and then sees the studio
    resumed, so a job held here is never left behind by a resume that did not see it. When not paused
    nothing is locked (a pause in flight is safe: a job created pending is held at submit).
    """
    if not provider_is_paused():
        return False
    return ProviderSwitch.objects.select_for_update().filter(pk=ProviderSwitch.SINGLETON, paused=True).exists()
