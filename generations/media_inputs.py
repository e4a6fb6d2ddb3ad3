"""The media a generation's input carries (start image, end image): which input field, which
`Generation` link holds the studio's stored copy, and what the stored input says instead of a data URI.

The bytes of every media input live in the studio's storage as the job's own object; a stored
input keeps the original http(s) URL, or the input's `ref` when the user uploaded the file or sent
a data URI (rows stay small; submit builds what fal gets from the stored object).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from generations.models import Generation
from storage.models import StoredObject


@dataclass(frozen=True)
class MediaInput:
    field: str      # the input field: "image_url"
    attribute: str  # the Generation link to its StoredObject: "start_image"
    ref: str        # what the stored input says when the bytes came as an upload or data URI
    stem: str       # the stored object's file name, before its extension: "start"


START_IMAGE = MediaInput("image_url", "start_image", "studio:start-image", "start")
END_IMAGE = MediaInput("end_image_url", "end_image", "studio:end-image", "end")
MEDIA_INPUTS = (START_IMAGE, END_IMAGE)
# For select_related(): every link that holds a media input.
MEDIA_ATTRIBUTES = tuple(media.attribute for media in MEDIA_INPUTS)


def stored_media(generation: Generation) -> Iterator[tuple[MediaInput, StoredObject]]:
    """The media inputs `generation` keeps in storage, with their objects (a NULL link reads as None
    without a query)."""
    for media in MEDIA_INPUTS:
        stored = getattr(generation, media.attribute)
        if stored is not None:
            yield media, stored
