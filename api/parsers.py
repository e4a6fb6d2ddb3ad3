"""The REST API's JSON parser: DRF's, but loading through `core.jsonbody` so a body nested deeper
than MAX_JSON_DEPTH is a 400 `parse_error` instead of a RecursionError."""
from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from core.jsonbody import json_loads_bounded


class BoundedJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = stream.read().decode(encoding)
            return json_loads_bounded(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
