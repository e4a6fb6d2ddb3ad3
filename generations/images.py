"""Start images for image-to-video: the one place an uploaded image is checked and encoded.

An upload is accepted only when it is small enough and Pillow really decodes it as PNG, JPEG,
WebP, AVIF or HEIF (pillow-heif) (the file name and the browser's content type are not trusted). The result is a
`data:` URI that goes into the LTX-2 input's `image_url`.

`load_start_image` applies the same checks (plus a pixel limit, `STUDIO_MAX_IMAGE_PIXELS`) to an
`image_url` value: a base64 data URI, or an http(s) URL fetched under studio/netguard.py's
public-address rule with byte and time limits. Every refusal is an ImageRejected naming the problem.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import time
from dataclasses import dataclass

import httpx
import pillow_heif
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError, features

from core.netguard import HostNotFound, MalformedURL, UnsafeURL, read_at_most, safe_stream

pillow_heif.register_heif_opener()  # HEIF/HEIC photos (phones) open like any other image

ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "AVIF": "image/avif",
                   "HEIF": "image/heif"}
# for <input type=file accept=…>; browsers label HEIC photos by extension or as image/heic
ACCEPT_ATTRIBUTE = ",".join([*ALLOWED_FORMATS.values(), "image/heic", ".heic", ".heif"])
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/avif": "avif",
              "image/heif": "heif"}
PREVIEW_MAX_SIDE = 480
_DATA_URI = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+=-]+)*),(?P<payload>.*)$", re.S)


class ImageRejected(Exception):
    """The upload is not an acceptable start image; the message says why, for the user."""


class ImageTooLarge(ImageRejected):
    """The image is over the size limit."""


class ImageURLNotPublic(ImageRejected):
    """The image URL points at a non-public address (or is not an http(s) URL)."""


class ImageURLUnreachable(ImageRejected):
    """The image URL could not be fetched (no answer, timeout, error status)."""


@dataclass(frozen=True)
class StartImage:
    """A checked start image: its bytes, the content type its decoded format implies, where it came from."""

    data: bytes
    content_type: str
    source_url: str = ""  # the http(s) URL it was fetched from; "" for uploads and data URIs

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.content_type]

    @property
    def size(self) -> int:
        return len(self.data)

    def data_uri(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def max_image_pixels() -> int:
    return settings.STUDIO_MAX_IMAGE_PIXELS


def load_start_image(value: str, *, max_bytes: int | None = None, max_pixels: int | None = None) -> StartImage:
    """Check an `image_url` value (a `data:` URI or an http(s) URL) and return the image, or raise ImageRejected.

    URLs are fetched under the public-address rule (studio/netguard.py; redirects re-checked), with
    the byte limit and a time limit (`STUDIO_IMAGE_FETCH_TIMEOUT_SECONDS`)."""
    max_bytes = settings.STUDIO_MAX_IMAGE_BYTES if max_bytes is None else max_bytes
    max_pixels = max_image_pixels() if max_pixels is None else max_pixels
    value = value.strip()
    if value.startswith("data:"):
        data = _decode_data_uri(value, max_bytes)
        source = ""
    elif value.lower().startswith(("http://", "https://")):
        data = _fetch(value, max_bytes)
        source = value
    else:
        raise ImageRejected("The image must be an https URL or a base64 data: URI.")
    if not data:
        raise ImageRejected("The image is empty.")
    return StartImage(data=data, content_type=_detect(data, max_pixels=max_pixels), source_url=source)


def check_image_bytes(data: bytes, *, max_bytes: int | None = None, max_pixels: int | None = None) -> StartImage:
    """Check raw image bytes (e.g. read back from storage) like an upload."""
    max_bytes = settings.STUDIO_MAX_IMAGE_BYTES if max_bytes is None else max_bytes
    if len(data) > max_bytes:
        raise ImageTooLarge(f"The image is {_mb(len(data))}; at most {_mb(max_bytes)} is allowed.")
    if not data:
        raise ImageRejected("The image is empty.")
    return StartImage(data=data, content_type=_detect(data, max_pixels=max_image_pixels() if max_pixels is None
                                                         else max_pixels))


def _decode_data_uri(value: str, max_bytes: int) -> bytes:
    match = _DATA_URI.match(value)
    if match is None or ";base64" not in match.group("params").lower():
        raise ImageRejected("The data URI is malformed; use data:image/…;base64,<data>.")
    payload = re.sub(r"\s+", "", match.group("payload"))
    if len(payload) * 3 // 4 > max_bytes + 2:
        raise ImageTooLarge(f"The image is about {_mb(len(payload) * 3 // 4)}; at most {_mb(max_bytes)} is allowed.")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("The data URI is not valid base64.") from None
    if len(data) > max_bytes:
        raise ImageTooLarge(f"The image is {_mb(len(data))}; at most {_mb(max_bytes)} is allowed.")
    return data


def _fetch(url: str, max_bytes: int) -> bytes:
    timeout = settings.STUDIO_IMAGE_FETCH_TIMEOUT_SECONDS
    started = time.monotonic()
    try:
        with safe_stream("GET", url, follow_redirects=True, max_redirects=3, timeout=timeout,
                         headers={"Accept": "image/*"}) as response:
            if response.status_code != 200:
                raise ImageURLUnreachable(f"The image URL answered HTTP {response.status_code}, not 200.")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ImageTooLarge(f"The image at the URL is {_mb(int(declared))}; "
                                    f"at most {_mb(max_bytes)} is allowed.")
            remaining = max(0.1, timeout - (time.monotonic() - started))
            data = read_at_most(response, max_bytes + 1, deadline_seconds=remaining)
            if time.monotonic() - started > timeout:
                raise ImageURLUnreachable(f"The image URL did not send the image within {timeout:g} s.")
    except HostNotFound as exc:
        raise ImageURLUnreachable(f"The image URL is not reachable: {exc}.") from None
    except MalformedURL as exc:
        raise ImageRejected(f"The image URL is {exc}.") from None
    except UnsafeURL as exc:
        raise ImageURLNotPublic(f"The image URL is not allowed: {exc}; only public addresses can be fetched.") from None
    except httpx.TimeoutException:
        raise ImageURLUnreachable(f"The image URL did not answer within {timeout:g} s.") from None
    except httpx.TooManyRedirects:
        raise ImageURLUnreachable("The image URL redirects too many times.") from None
    except (httpx.HTTPError, OSError) as exc:
        raise ImageURLUnreachable(f"The image URL is not reachable ({type(exc).__name__}).") from None
    if len(data) > max_bytes:
        raise ImageTooLarge(f"The image at the URL is larger than {_mb(max_bytes)}; "
                            f"at most {_mb(max_bytes)} is allowed.")
    return data


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
    content_type = _detect(data, max_pixels=max_image_pixels())
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def image_preview_jpeg(uploaded_file: UploadedFile, *, max_bytes: int) -> bytes:
    """A small JPEG of an acceptable start image, for formats browsers cannot show (HEIF).

    Applies the same checks as `image_to_data_uri` (raises ImageRejected / ImageTooLarge)."""
    data_uri = image_to_data_uri(uploaded_file, max_bytes=max_bytes)
    raw = base64.b64decode(data_uri.split(",", 1)[1])
    with Image.open(io.BytesIO(raw)) as opened:
        image = opened.convert("RGB")
        image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
        output = io.BytesIO()
        image.save(output, format="JPEG", quality=80)
    return output.getvalue()


def stored_image_thumbnail(key: str) -> bytes:
    """A small JPEG of a start image kept in the studio's storage under `key`."""
    from django.core.files.storage import default_storage

    with default_storage.open(key, "rb") as handle:
        raw = handle.read()
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            image = opened.convert("RGB")
            image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
            output = io.BytesIO()
            image.save(output, format="JPEG", quality=80)
    except (UnidentifiedImageError, SyntaxError) as exc:
        raise ValueError(str(exc)) from exc
    return output.getvalue()


def _detect(data: bytes, *, max_pixels: int | None = None) -> str:
    if _is_avif(data) and not features.check("avif"):
        # This Pillow cannot decode AVIF; trust the ISO-BMFF brand, fal decodes it.
        return ALLOWED_FORMATS["AVIF"]
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            if image_format not in ALLOWED_FORMATS:
                raise ImageRejected(f"{image_format} images are not supported; use PNG, JPEG, WebP, AVIF or HEIF.")
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLarge(f"The image is {width}×{height} pixels ({width * height / 1e6:.1f} megapixels); "
                                    f"at most {max_pixels / 1e6:g} megapixels are allowed.")
            image.load()  # decode fully, so a truncated or corrupt file is caught here
    except ImageRejected:
        raise
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"The image has too many pixels; at most {(max_pixels or 0) / 1e6:g} megapixels "
                            "are allowed.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageRejected("This file is not a readable image; use PNG, JPEG, WebP, AVIF or HEIF.") from None
    return ALLOWED_FORMATS[image_format]


def _is_avif(data: bytes) -> bool:
    return data[4:12] in (b"ftypavif", b"ftypavis")


def _mb(size: int) -> str:
    if size < 100_000:
        return f"{size / 1000:.1f} KB" if size >= 1000 else f"{size} bytes"
    return f"{size / 1_000_000:.1f} MB"
