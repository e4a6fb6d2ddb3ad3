"""Reads that users see, scoped to their owner in one place."""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db.models import QuerySet

from fal_protocol import catalog
from fal_protocol.catalog import Endpoint
from generations import ltx
from generations.models import EndpointOverride, Generation, ProviderSwitch, SchemaMismatch


def generation_list_for(user: User, *, project: uuid.UUID | None = None,
                        statuses: Sequence[str] | None = None, model: str | None = None,
                        created_after: datetime | None = None,
                        created_before: datetime | None = None) -> QuerySet[Generation]:
    """The user's generations, newest first, narrowed by whichever filters are given: a project, any
    of `statuses`, an exact model id, and a creation time window (`created_after` inclusive,
    `created_before` exclusive)."""
    generations = (Generation.objects.filter(owner=user)
                   .select_related("project", "video", "video__file", "video__poster")
                   .order_by("-created_at"))
    if project is not None:
        generations = generations.filter(project_id=project)
    if statuses:
        generations = generations.filter(status__in=statuses)
    if model:
        generations = generations.filter(model_id=model)
    if created_after is not None:
        generations = generations.filter(created_at__gte=created_after)
    if created_before is not None:
        generations = generations.filter(created_at__lt=created_before)
    return generations


def generation_get_for(user: User, pk: uuid.UUID | str) -> Generation | None:
    """The user's generation `pk`, or None (also for other users' ids and malformed ids).

    One query: every field, and the stored video with its file (other relations load on access)."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    return Generation.objects.select_related("video__file").filter(pk=pk, owner=user).first()


def generation_viewable_for(user: User, pk: uuid.UUID | str) -> Generation | None:
    """A generation `user` may look at (and so report): their own, or any for staff. None otherwise."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    generations = Generation.objects.filter(pk=pk)
    if not user.is_staff:
        generations = generations.filter(owner=user)
    return generations.first()


def generation_playable_for(user: User, pk: uuid.UUID | str) -> Generation | None:
    """A generation with a stored video that `user` may play or download: their own unless a
    moderator hid it; staff may play any (moderation needs it). None otherwise."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    generations = Generation.objects.select_related("video__file", "video__poster").filter(pk=pk, video__isnull=False)
    if not user.is_staff:
        generations = generations.filter(owner=user, is_hidden=False)
    return generations.first()


def generation_linkable(pk: uuid.UUID | str) -> Generation | None:
    """A generation whose signed media links still work: it has a video and is not hidden."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    return (Generation.objects.select_related("video__file", "video__poster")
            .filter(pk=pk, video__isnull=False, is_hidden=False).first())


# --- the provider switch (generations/services/provider_switch.py changes it) -----------------------

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


# --- the catalog as the operator sees it (generations/services/catalog.py changes it) ---------------

@dataclass(frozen=True)
class EndpointState:
    """One catalog endpoint with the operator's override (None: as declared) and what follows from it."""

    endpoint: Endpoint
    override: EndpointOverride | None
    # Why new jobs may not use it ("" when they may): `ltx.endpoint_refusal`.
    refusal: str
    # The short names (t2v, …) that mean this endpoint under STUDIO_LTX_VERSION.
    short_names: tuple[str, ...]
    # USD per second by resolution, the operator's prices applied.
    rates: dict[str, Decimal]

    @property
    def usable(self) -> bool:
        return not self.refusal

    @property
    def enabled(self) -> bool:
        """The operator offers it: neither disabled nor retired."""
        return self.override is None or (self.override.enabled and not self.override.retired)

    @property
    def retired(self) -> bool:
        return self.override is not None and self.override.retired

    @property
    def available(self) -> bool:
        """fal has not answered a submit to it as gone (404/410)."""
        return not self.gone

    @property
    def replacement(self) -> str | None:
        return (self.override.replacement or None) if self.override is not None else None

    @property
    def short_name(self) -> str | None:
        """The short name that means it under STUDIO_LTX_VERSION (t2v, …), if any."""
        return self.short_names[0] if self.short_names else None

    @property
    def overridden_resolutions(self) -> list[str]:
        """The resolutions whose price the operator set (replacing the catalog's)."""
        chosen = self.override.price_per_second if self.override is not None else {}
        return [resolution for resolution in self.rates if resolution in chosen]

    @property
    def gone(self) -> bool:
        """fal answered a submit for it as if it no longer existed (until an operator clears it)."""
        return self.override is not None and self.override.unavailable_since is not None

    @property
    def state(self) -> str:
        """One word: "unavailable" (gone at fal), "retired", "disabled" or "usable" (in that order)."""
        if self.override is None:
            return "usable"
        if self.gone:
            return "unavailable"
        if self.override.retired:
            return "retired"
        return "usable" if self.override.enabled else "disabled"


def short_names_meaning(endpoint: Endpoint) -> tuple[str, ...]:
    """The short names that mean `endpoint` under STUDIO_LTX_VERSION (none for another version's)."""
    version = ltx.version()
    return tuple(name for name in catalog.SHORT_NAMES if catalog.endpoint_for(name, version=version) == endpoint)


def endpoint_states(endpoints: Iterable[Endpoint] = catalog.ENDPOINTS) -> list[EndpointState]:
    """`endpoints` (default: the whole catalog, in its order), each with its override (one query for all)."""
    endpoints = list(endpoints)
    overrides = {override.endpoint_id: override for override in
                 EndpointOverride.objects.filter(endpoint_id__in=[endpoint.id for endpoint in endpoints])}
    return [endpoint_state(endpoint, overrides.get(endpoint.id)) for endpoint in endpoints]


def endpoint_state(endpoint: Endpoint, override: EndpointOverride | None) -> EndpointState:
    """`endpoint` with `override` applied (no query)."""
    return EndpointState(endpoint=endpoint, override=override, refusal=ltx.endpoint_refusal(endpoint, override),
                         short_names=short_names_meaning(endpoint), rates=ltx.rates(endpoint, override))


def endpoint_overrides_stale() -> list[EndpointOverride]:
    """Override rows for endpoint ids the catalog no longer declares (they change nothing)."""
    return list(EndpointOverride.objects.exclude(endpoint_id__in=list(catalog.BY_ID)))


def schema_mismatches(limit: int | None = None) -> list[SchemaMismatch]:
    """fal's refusals of fields the catalog holds valid, most recently seen first."""
    rows = SchemaMismatch.objects.order_by("-last_seen", "endpoint_id", "field")
    return list(rows[:limit] if limit is not None else rows)
