from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from generations.selectors import provider_switch


def studio(request: HttpRequest) -> dict[str, Any]:
    # The switch is read only by templates that show it (a lazy object is loaded on first use).
    return {"fal_uses_simulator": settings.FAL_USES_SIMULATOR, "provider_switch": SimpleLazyObject(provider_switch)}
