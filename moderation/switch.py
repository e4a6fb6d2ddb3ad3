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
