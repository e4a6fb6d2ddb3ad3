"""`python manage.py models [--json]`: the model catalog as users may use it (what `GET /api/v1/models/` answers)."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from fal_protocol import catalog
from generations import ltx
from generations.catalog_reads import catalog_model_json, catalog_models
from generations.management.command_help import ExamplesHelpFormatter
from generations.quotes import usd_text
from generations.selectors import EndpointState

EPILOG = """\
examples:
  manage.py models
  manage.py models --json | jq '.[] | select(.refusal == null) | .id'

Prices are USD per second of video; marks: ? unconfirmed (fal's pages did not confirm the catalog's
price), * the operator's price (admin: Endpoint overrides).
"""
HEADER = ("ID", "VERSION", "KIND", "TIER", "ENABLED", "AVAILABLE", *catalog.RESOLUTIONS, "SHORT NAME")


class Command(BaseCommand):
    help = ("List every LTX endpoint of the catalog: version, kind, tier, whether new jobs may use it, the price per "
            "second at each resolution, the short name meaning it, and why it is refused (with its replacement).")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", ExamplesHelpFormatter)
        kwargs.setdefault("epilog", EPILOG)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true",
                            help="print the catalog as JSON: the same list GET /api/v1/models/ answers")

    def handle(self, *args: Any, **options: Any) -> None:
        models = catalog_models()
        if options["json"]:
            self.stdout.write(json.dumps([catalog_model_json(model) for model in models], indent=2, ensure_ascii=False))
            return
        rows = [HEADER, *(_row(model) for model in models)]
        widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        self.stdout.write("")
        self.stdout.write("Prices: USD per second; ? unconfirmed (fal's pages did not confirm it), * the operator's.")
        self.stdout.write(f"Short names mean the endpoints of STUDIO_LTX_VERSION (now {ltx.version()}).")
        aliases = [f"{alias} = {model.endpoint.id}" for model in models for alias in model.endpoint.aliases]
        if aliases:
            self.stdout.write(f"Aliases: {', '.join(aliases)}")
        refused = [model for model in models if model.refusal]
        if refused:
            self.stdout.write("Refused for new jobs:")
            for model in refused:
                self.stdout.write(f"  {model.endpoint.id}: {model.refusal}")


def _row(model: EndpointState) -> tuple[str, ...]:
    endpoint = model.endpoint
    prices = []
    for resolution in catalog.RESOLUTIONS:
        mark = "*" if resolution in model.overridden_resolutions else "" if endpoint.price_confirmed else "?"
        prices.append(f"{usd_text(model.rates[resolution])}{mark}")
    return (endpoint.id, endpoint.version, endpoint.kind, endpoint.tier,
            "yes" if model.enabled else ("retired" if model.retired else "no"),
            "yes" if model.available else "no (gone at fal)", *prices, model.short_name or "-")
