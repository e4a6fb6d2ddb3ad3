"""The LTX endpoints on fal, declared once: what each one takes, what it costs, what it makes.

Every reader follows this table: the studio's validation, prices, bytes reservation, web form, REST
schema and `GET /api/v1/models/`, the gateway's routes, the command line, and the local simulator
(which validates and renders by it). Adding an endpoint of a known kind is adding an `Endpoint`
here (and a test); a new kind of input is a new `Field` type.

Facts are from fal's model pages (`https://fal.ai/models/<id>/llms.txt`) and fal's JS client types;
a price fal's pages did not confirm is marked `price_confirmed=False` (the README lists them; an
operator can override any price). Plain Python: no Django.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

T2V, I2V = "t2v", "i2v"
STANDARD, FAST = "standard", "fast"
KINDS = (T2V, I2V)
TIERS = (STANDARD, FAST)
VERSIONS = ("2.0", "2.3")

RESOLUTIONS = ("1080p", "1440p", "2160p")
# The long side and the short side of each resolution, in pixels.
RESOLUTION_SIDES = {"1080p": (1920, 1080), "1440p": (2560, 1440), "2160p": (3840, 2160)}
LANDSCAPE, PORTRAIT, AUTO = "16:9", "9:16", "auto"
# A fast video longer than this many seconds is offered only at LONG_FPS and LONG_RESOLUTION.
LONG_AFTER_SECONDS, LONG_FPS, LONG_RESOLUTION = 10, 25, "1080p"


@dataclass(frozen=True)
class Field:
    """One input field of an endpoint.

    `type` is what it is to users: "text", "integer" (a number from `enum` or from `min`..`max`),
    "choice" (a string from `enum`), "boolean", or "image" (an http(s) URL or a data URI of an
    image). `wire` is how fal wants a number: "string" (the 2.0 schemas' string enums, "6") or
    "integer" (2.3's, 6). A field without `default` that is not `required` is simply left out.
    """

    name: str
    type: str
    required: bool = False
    default: Any = None
    enum: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    wire: str = "integer"
    description: str = ""

    def as_wire(self, value: Any) -> Any:
        """`value` (already checked) as the endpoint expects it on the wire."""
        if self.type == "integer":
            return str(value) if self.wire == "string" else int(value)
        return value

    def describe(self) -> dict[str, Any]:
        """The field as `GET /api/v1/models/` shows it."""
        shown: dict[str, Any] = {"type": self.type, "required": self.required}
        if self.enum is not None:
            shown["enum"] = list(self.enum)
        if self.min is not None:
            shown["min"] = self.min
        if self.max is not None:
            shown["max"] = self.max
        if self.default is not None:
            shown["default"] = self.default
        if self.description:
            shown["description"] = self.description
        return shown


@dataclass(frozen=True)
class Endpoint:
    """One fal endpoint of the LTX family."""

    id: str
    version: str
    kind: str
    tier: str
    fields: tuple[Field, ...]
    # USD per second of output video, by resolution.
    price_per_second: Mapping[str, Decimal]
    price_confirmed: bool = True
    aliases: tuple[str, ...] = ()
    # Fast: a video longer than LONG_AFTER_SECONDS only at LONG_FPS and LONG_RESOLUTION.
    long_only_at_25_1080p: bool = False
    fields_by_name: Mapping[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields_by_name", {f.name: f for f in self.fields})

    @property
    def app(self) -> str:
        """`owner/app`: what fal's status, result and cancel URLs are built on."""
        return "/".join(self.id.split("/")[:2])

    @property
    def label(self) -> str:
        """A short name for people: "LTX-2.3 i2v fast"."""
        return f"LTX-{self.version} {self.kind}" + (" fast" if self.tier == FAST else "")

    @property
    def media_fields(self) -> tuple[str, ...]:
        """The inputs that carry an image (start image, end image)."""
        return tuple(f.name for f in self.fields if f.type == "image")

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields if f.default is not None}

    def price_usd(self, params: Mapping[str, Any]) -> Decimal:
        """The price of one video with checked `params` (duration × the rate of its resolution)."""
        return self.price_per_second[params["resolution"]] * int(params["duration"])

    def output(self, params: Mapping[str, Any], *, portrait_source: bool = False) -> Output:
        """What a video with checked `params` is: its size (by resolution and aspect ratio; `auto`
        follows the start image, `portrait_source`), fps, duration, frames and audio."""
        aspect = params.get("aspect_ratio", LANDSCAPE)
        if aspect == AUTO:
            aspect = PORTRAIT if portrait_source else LANDSCAPE
        long_side, short_side = RESOLUTION_SIDES[params["resolution"]]
        width, height = (short_side, long_side) if aspect == PORTRAIT else (long_side, short_side)
        fps, duration = int(params["fps"]), int(params["duration"])
        return Output(width=width, height=height, fps=fps, duration=duration, num_frames=fps * duration,
                      audio=bool(params.get("generate_audio", True)))

    def describe(self) -> dict[str, Any]:
        """The endpoint as `GET /api/v1/models/` and `manage.py models` show it (prices aside)."""
        return {"id": self.id, "version": self.version, "kind": self.kind, "tier": self.tier,
                "aliases": list(self.aliases), "fields": {f.name: f.describe() for f in self.fields}}


@dataclass(frozen=True)
class Output:
    width: int
    height: int
    fps: int
    duration: int
    num_frames: int
    audio: bool


# --- the fields ----------------------------------------------------------------------------------

PROMPT = Field("prompt", "text", required=True, max=2500, description="what the video shows and sounds like")
RESOLUTION = Field("resolution", "choice", default="1080p", enum=RESOLUTIONS)
GENERATE_AUDIO = Field("generate_audio", "boolean", default=True)
IMAGE_URL = Field("image_url", "image", required=True, description="the first frame: an http(s) URL or a data URI")
END_IMAGE_URL = Field("end_image_url", "image",
                      description="the last frame (the clip travels from the start image to it): a URL or a data URI")

STANDARD_DURATIONS = (6, 8, 10)
FAST_DURATIONS = (6, 8, 10, 12, 14, 16, 18, 20)


def _duration(durations: tuple[int, ...], wire: str) -> Field:
    return Field("duration", "integer", default=6, enum=durations, wire=wire, description="seconds")


def _fps(values: tuple[int, ...], wire: str) -> Field:
    return Field("fps", "integer", default=25, enum=values, wire=wire, description="frames per second")


# LTX-2.0: string enums on the wire, landscape only.
V20_FPS = (25, 50)
V20_ASPECT = Field("aspect_ratio", "choice", default=LANDSCAPE, enum=(LANDSCAPE,))
# LTX-2.3: integers on the wire, portrait too; image-to-video follows its start image by default.
V23_FPS = (24, 25, 48, 50)
V23_T2V_ASPECT = Field("aspect_ratio", "choice", default=LANDSCAPE, enum=(LANDSCAPE, PORTRAIT))
V23_I2V_ASPECT = Field("aspect_ratio", "choice", default=AUTO, enum=(AUTO, LANDSCAPE, PORTRAIT),
                       description="auto: the start image's orientation decides")


def _rates(p1080: str, p1440: str, p2160: str) -> dict[str, Decimal]:
    return {"1080p": Decimal(p1080), "1440p": Decimal(p1440), "2160p": Decimal(p2160)}


def _v20(kind: str, tier: str, path: str, aliases: tuple[str, ...] = ()) -> Endpoint:
    durations = FAST_DURATIONS if tier == FAST else STANDARD_DURATIONS
    media = (IMAGE_URL,) if kind == I2V else ()
    rates = _rates("0.04", "0.08", "0.16") if tier == FAST else _rates("0.06", "0.12", "0.24")
    return Endpoint(id=f"fal-ai/ltx-2/{path}", version="2.0", kind=kind, tier=tier,
                    fields=(PROMPT, _duration(durations, "string"), RESOLUTION, _fps(V20_FPS, "string"),
                            GENERATE_AUDIO, V20_ASPECT, *media),
                    price_per_second=rates, aliases=aliases, long_only_at_25_1080p=tier == FAST)


def _v23(kind: str, tier: str, path: str, rates: dict[str, Decimal], *, confirmed: bool = True) -> Endpoint:
    durations = FAST_DURATIONS if tier == FAST else STANDARD_DURATIONS
    aspect = V23_I2V_ASPECT if kind == I2V else V23_T2V_ASPECT
    media = (IMAGE_URL, END_IMAGE_URL) if kind == I2V else ()
    return Endpoint(id=f"fal-ai/ltx-2.3/{path}", version="2.3", kind=kind, tier=tier,
                    fields=(PROMPT, _duration(durations, "integer"), RESOLUTION, _fps(V23_FPS, "integer"),
                            GENERATE_AUDIO, aspect, *media),
                    price_per_second=rates, price_confirmed=confirmed, long_only_at_25_1080p=tier == FAST)


ENDPOINTS: tuple[Endpoint, ...] = (
    _v20(T2V, STANDARD, "text-to-video", aliases=("fal-ai/ltxv-2/text-to-video",)),
    _v20(T2V, FAST, "text-to-video/fast"),
    _v20(I2V, STANDARD, "image-to-video", aliases=("fal-ai/ltxv-2/image-to-video",)),
    _v20(I2V, FAST, "image-to-video/fast"),
    _v23(T2V, STANDARD, "text-to-video", _rates("0.08", "0.16", "0.32")),
    _v23(T2V, FAST, "text-to-video/fast", _rates("0.04", "0.08", "0.16")),
    _v23(I2V, STANDARD, "image-to-video", _rates("0.06", "0.12", "0.24")),
    # fal's page for 2.3 image-to-video fast was not found: the 2.3 text-to-video fast rates, unconfirmed.
    _v23(I2V, FAST, "image-to-video/fast", _rates("0.04", "0.08", "0.16"), confirmed=False),
)
BY_ID: Mapping[str, Endpoint] = {endpoint.id: endpoint for endpoint in ENDPOINTS}
BY_ALIAS: Mapping[str, Endpoint] = {alias: endpoint for endpoint in ENDPOINTS for alias in endpoint.aliases}
# The short names users may give for "this kind, this tier, in the operator's version".
SHORT_NAMES: Mapping[str, tuple[str, str]] = {
    "t2v": (T2V, STANDARD), "t2v-fast": (T2V, FAST), "i2v": (I2V, STANDARD), "i2v-fast": (I2V, FAST),
}


def endpoint_for(model: str, *, version: str) -> Endpoint | None:
    """The endpoint `model` names: an id, an alias, or a short name (meaning `version`'s endpoint)."""
    if model in BY_ID:
        return BY_ID[model]
    if model in BY_ALIAS:
        return BY_ALIAS[model]
    if model in SHORT_NAMES:
        kind, tier = SHORT_NAMES[model]
        return next((e for e in ENDPOINTS if (e.kind, e.tier, e.version) == (kind, tier, version)), None)
    return None
