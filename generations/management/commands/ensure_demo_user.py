"""Create (or reset the password of) the demo user and print the login. Safe to run again."""
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from generations.services.projects import project_default_for


class Command(BaseCommand):
    help = "Ensure the demo user exists and print its username and password."

    def handle(self, *args: Any, **options: Any) -> None:
        username, password = settings.STUDIO_DEMO_USERNAME, settings.STUDIO_DEMO_PASSWORD
        user, created = get_user_model().objects.get_or_create(username=username)
        if created or not user.check_password(password):
            user.set_password(password)
            user.save()
        project_default_for(user)
        self.stdout.write(f"demo user: {username}  password: {password}")
