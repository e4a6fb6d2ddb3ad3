"""drf-spectacular schema class: every operation documents the API's error responses."""
from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema

from api.errors import ERROR_RESPONSES


class StudioAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, serializer in ERROR_RESPONSES.items():
            responses.setdefault(str(code), self._get_response_for_code(serializer, str(code), direction=direction))
        return responses
