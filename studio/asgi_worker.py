"""The gunicorn worker that runs the studio's ASGI application on uvicorn (gunicorn.conf.py)."""
from uvicorn_worker import UvicornWorker


class StudioWorker(UvicornWorker):
    """uvicorn's gunicorn worker without the ASGI lifespan protocol, which Django does not speak
    (uvicorn would otherwise probe for it and log that it is unsupported at every start)."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "lifespan": "off"}
