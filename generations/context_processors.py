from django.conf import settings


def studio(request):
    return {"fal_uses_simulator": settings.FAL_USES_SIMULATOR}
