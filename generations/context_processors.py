from django.conf import settings

from moderation.switch import provider_is_paused


def studio(request):
    # The switch is read only by templates that show it (the template engine calls the function).
    return {"fal_uses_simulator": settings.FAL_USES_SIMULATOR, "provider_paused": provider_is_paused}
