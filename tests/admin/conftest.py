from tests.moderation_fixtures import admin_client, moderator, moderator_client, superuser  # noqa: F401
