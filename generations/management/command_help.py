"""Help output of the studio's own commands: Django's option order, with the description and the
examples epilog kept as written (line breaks and indentation)."""
from __future__ import annotations

from argparse import RawDescriptionHelpFormatter

from django.core.management.base import DjangoHelpFormatter


class ExamplesHelpFormatter(DjangoHelpFormatter, RawDescriptionHelpFormatter):
    """`--help` with the command's options first and its description and epilog verbatim."""
