"""`python manage.py create_api_key USERNAME [--name NAME]`: prints the new key alone on its last line."""
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.keys import TooManyApiKeys, api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user and print it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user named {options['username']!r}")
        try:
            key, raw = api_key_create(user=user, name=options["name"])
        except TooManyApiKeys as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"created API key {key.name!r} ({key.prefix}…) for {user.username}; it is shown only once:")
        self.stdout.write(raw)
