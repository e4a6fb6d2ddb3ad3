"""The REST API's JSON parser: DRF's, but loading through `core.jsonbody` so a body nested deeper
than MAX_JSON_DEPTH is a 400 `parse_error` instead of a RecursionError."""
from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from core.jsonbody import json_loads_bounded

if TYPE_CHECKING:
    from collections.abc import Mapping


class BoundedJSONParser(parsers.JSONParser):
    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]  # DRF 3.16; not in its stubs
        try:
            text = stream.read().decode(encoding)
            return json_loads_bounded(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
