"""Print a new STUDIO_SIGNING_KEY (the gateway's Ed25519 webhook signing key) on one line."""
from typing import Any

from django.core.management.base import BaseCommand

from webhooks.signing_keys import new_signing_key


class Command(BaseCommand):
    help = "Print a new random STUDIO_SIGNING_KEY (base64 of a raw Ed25519 private key)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(new_signing_key())
