"""`manage.py generate` in process: arguments that are not valid UTF-8 (surrogate-escaped by Python)
or hold NUL are refused by name before anything is created. The real-process runs are in
tests/e2e/test_generate_cli.py."""
from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from generations.models import Generation, Project
from storage.models import UsageEntry

pytestmark = pytest.mark.django_db
SURROGATE = "must be valid Unicode text: it holds a lone surrogate (U+DCFF), which cannot be encoded as UTF-8"


@pytest.mark.parametrize("args, message", [
    (["a fox \udcff in the snow"], "invalid input: prompt: " + SURROGATE),
    (["a fox", "--project", "Westerns \udcff"], "--project " + SURROGATE),
    (["a fox", "--user", "alice\x00"], "--user must not contain NUL characters (U+0000)"),
    (["a fox", "--duration", "6\x00"], "--duration must not contain NUL characters (U+0000)"),
])
def test_arguments_that_cannot_be_stored_are_refused_by_name(user, task_queue, args, message):
    with pytest.raises(CommandError) as info:
        call_command("generate", *(args if "--user" in args else [*args, "--user", "alice"]))
    assert str(info.value) == message
    assert not Generation.objects.exists() and not UsageEntry.objects.exists() and task_queue.calls == []
    assert not Project.objects.filter(name__startswith="Westerns").exists()
