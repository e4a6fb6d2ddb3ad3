"""drf-spectacular schema class: every operation documents the API's error responses. Also the
catalog-driven schemas of a request's `model` and `input` (`fal_protocol.catalog`)."""
from typing import Any, Literal

from django.conf import settings
from drf_spectacular.openapi import AutoSchema

from api.errors import ERROR_RESPONSES
from fal_protocol import catalog
from fal_protocol.catalog import Endpoint, Field
from generations import ltx


class StudioAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, serializer in ERROR_RESPONSES.items():
            responses.setdefault(str(code), self._get_response_for_code(serializer, str(code), direction=direction))
        return responses


# --- the catalog in the schema ------------------------------------------------------------------

def model_name_schema() -> dict[str, Any]:
    """`model` in a request: every name the studio accepts (ids, aliases, short names)."""
    return {"type": "string", "enum": ltx.model_names(),
            "description": "an endpoint id (e.g. fal-ai/ltx-2.3/text-to-video), an alias (fal-ai/ltxv-2/…, meaning "
                           "LTX-2.0) or a short name: t2v, t2v-fast, i2v and i2v-fast mean that endpoint of the "
                           "studio's LTX version (STUDIO_LTX_VERSION; GET /api/v1/models/ shows each endpoint's "
                           "short_name). Generations record the exact endpoint id."}


def ltx_input_schema() -> dict[str, Any]:
    """`input` in a request: one object schema per endpoint of the catalog (which one applies follows
    from `model`), each field with its type, allowed values and default for that endpoint."""
    return {"anyOf": [_endpoint_input_schema(endpoint) for endpoint in catalog.ENDPOINTS],
            "description": "the LTX fields of the chosen model: one schema per endpoint (its title is the endpoint "
                           "id; an alias or short name means the endpoint it resolves to). Numbers may also be "
                           'sent as digit strings ("6"); a field set to null is refused (leave it out to get its '
                           "default). In a multipart body this is JSON text, and image files may be uploaded as "
                           "`image` / `end_image` instead of `image_url` / `end_image_url`."}


def _endpoint_input_schema(endpoint: Endpoint) -> dict[str, Any]:
    return {"title": endpoint.id, "type": "object", "additionalProperties": False,
            "description": f"{endpoint.label}: {endpoint.id}"
                           + (f" (also {', '.join(endpoint.aliases)})" if endpoint.aliases else ""),
            "properties": {field.name: _field_schema(field) for field in endpoint.fields},
            "required": [field.name for field in endpoint.fields if field.required]}


def _field_schema(field: Field) -> dict[str, Any]:
    schema: dict[str, Any]
    if field.type == "text":
        longest = settings.STUDIO_PROMPT_MAX_CHARS if field.name == "prompt" else field.max
        schema = {"type": "string", "minLength": 1, **({"maxLength": int(longest)} if longest else {})}
    elif field.type == "integer" and field.enum is not None:
        # Nested, not a top-level `enum`: drf-spectacular's enum hook would name every endpoint's set of
        # durations the same and keep one. Digit strings are accepted too.
        schema = {"anyOf": [{"type": "integer", "enum": list(field.enum)},
                            {"type": "string", "enum": [str(value) for value in field.enum]}]}
    elif field.type == "integer":
        schema = {"type": "integer", **{key: value for key, value in (("minimum", field.min), ("maximum", field.max))
                                        if value is not None}}
    elif field.type == "choice":
        schema = {"allOf": [{"type": "string", "enum": list(field.enum or ())}]}
    elif field.type == "boolean":
        schema = {"type": "boolean"}
    else:  # "image"
        schema = {"type": "string", "description": "an http(s) URL or a data:image/…;base64 URI"}
    if field.default is not None:
        schema["default"] = field.default
    if field.description:
        schema["description"] = field.description
    return schema
