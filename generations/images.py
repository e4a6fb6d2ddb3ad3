"""Start images for image-to-video: the one place an uploaded image is checked and encoded.

An upload is accepted only when it is small enough and Pillow really decodes it as PNG, JPEG,
WebP, AVIF or HEIF (pillow-heif) (the file name and the browser's content type are not trusted). The result is a
`data:` URI that goes into the LTX-2 input's `image_url`.
"""
from __future__ import annotations

import base64
import io

import pillow_heif
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError, features

pillow_heif.register_heif_opener()  # HEIF/HEIC photos (phones) open like any other image

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "AVIF": "image/avif",
                   "HEIF": "image/heif"}
# for <input type=file accept=…>; browsers label HEIC photos by extension or as image/heic
ACCEPT_ATTRIBUTE = ",".join([*ALLOWED_FORMATS.values(), "image/heic", ".heic", ".heif"])
PREVIEW_MAX_SIDE = 480


class ImageRejected(Exception):
    """The upload is not an acceptable start image; the message says why, for the user."""


class ImageTooLarge(ImageRejected):
    """The image is over the size limit."""


def image_to_data_uri(uploaded_file: UploadedFile, *, max_bytes: int) -> str:
    """Check `uploaded_file` and return it as a base64 `data:` URI, or raise ImageRejected."""
    if uploaded_file.size is not None and uploaded_file.size > max_bytes:
        raise ImageTooLarge(f"The image is {_mb(uploaded_file.size)}; at most {_mb(max_bytes)} is allowed.")
    uploaded_file.seek(0)
    data = uploaded_file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"The image is larger than {_mb(max_bytes)}.")
    if not data:
        raise ImageRejected("The image file is empty.")
    content_type = _detect(data)
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def image_preview_jpeg(uploaded_file: UploadedFile, *, max_bytes: int) -> bytes:
    """A small JPEG of an acceptable start image, for formats browsers cannot show (HEIF).

    Applies the same checks as `image_to_data_uri` (raises ImageRejected / ImageTooLarge)."""
    data_uri = image_to_data_uri(uploaded_file, max_bytes=max_bytes)
    raw = base64.b64decode(data_uri.split(",", 1)[1])
    with Image.open(io.BytesIO(raw)) as image:
        image = image.convert("RGB")
        image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
        output = io.BytesIO()
        image.save(output, format="JPEG", quality=80)
    return output.getvalue()


def _detect(data: bytes) -> str:
    if _is_avif(data) and not features.check("avif"):
        # This Pillow cannot decode AVIF; trust the ISO-BMFF brand, fal decodes it.
        return ALLOWED_FORMATS["AVIF"]
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            if image_format not in ALLOWED_FORMATS:
                raise ImageRejected(f"{image_format} images are not supported; use PNG, JPEG, WebP, AVIF or HEIF.")
            image.load()  # decode fully, so a truncated or corrupt file is caught here
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ImageRejected("This file is not a readable image; use PNG, JPEG, WebP, AVIF or HEIF.") from None
    return ALLOWED_FORMATS[image_format]


def _is_avif(data: bytes) -> bool:
    return data[4:12] in (b"ftypavif", b"ftypavis")


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
