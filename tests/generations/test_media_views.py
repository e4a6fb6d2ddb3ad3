"""Serving stored videos: owner-only, hidden content for staff only, Range/seek, download names."""
from __future__ import annotations

import pytest

from generations.models import Generation
from tests.factories import StaffFactory
from tests.generations.test_pipeline import create, track_until
from tests.media_fetch import fetch

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def video(storage_backend, fal_sim, task_queue, user):
    generation = create(user, prompt="A cowboy at high noon")
    task_queue.run_all()
    track_until(generation, Generation.Status.STORING)
    task_queue.run_all()
    generation.refresh_from_db()
    assert generation.status == Generation.Status.SUCCEEDED
    return generation, storage_backend


def test_owner_gets_the_whole_video_with_type_and_inline_disposition(client, user, video):
    generation, backend = video
    client.force_login(user)
    status, headers, body = fetch(client, f"/generations/{generation.pk}/video")
    assert status == 200
    assert body == backend.read(generation.video.file.key)
    assert headers["Content-Type"] == "video/mp4"
    assert headers["Content-Disposition"].startswith("inline")


@pytest.mark.parametrize("header, start, end",
                         [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-10", -10, None)])
def test_range_requests_return_exactly_those_bytes(client, user, video, header, start, end):
    generation, backend = video
    client.force_login(user)
    whole = backend.read(generation.video.file.key)
    status, headers, body = fetch(client, f"/generations/{generation.pk}/video", Range=header)
    expected = whole[start:] if end is None else whole[start:end + 1]
    assert (status, body) == (206, expected)
    first = start if start >= 0 else len(whole) + start
    assert headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(whole)}"


def test_download_names_the_file_after_the_prompt(client, user, video):
    generation, _ = video
    client.force_login(user)
    status, headers, _ = fetch(client, f"/generations/{generation.pk}/video?download=1")
    assert status == 200
    assert headers["Content-Disposition"] == (
        f'attachment; filename="ltx-a-cowboy-at-high-noon-{str(generation.pk)[:8]}.mp4"')


def test_poster_is_a_jpeg(client, user, video):
    generation, _ = video
    client.force_login(user)
    status, headers, body = fetch(client, f"/generations/{generation.pk}/poster")
    assert (status, headers["Content-Type"], body[:3]) == (200, "image/jpeg", b"\xff\xd8\xff")


def test_other_users_and_anonymous_visitors_get_nothing(client, other_user, video):
    generation, _ = video
    response = client.get(f"/generations/{generation.pk}/video")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(other_user)
    for path in ("video", "poster", "video?download=1"):
        assert client.get(f"/generations/{generation.pk}/{path}").status_code == 404


def test_hidden_video_is_served_to_staff_only(client, user, db, video):
    generation, backend = video
    Generation.objects.filter(pk=generation.pk).update(is_hidden=True)
    client.force_login(user)
    assert client.get(f"/generations/{generation.pk}/video").status_code == 404
    page = client.get("/")
    assert "Hidden by a moderator." in page.content.decode()
    assert f"/generations/{generation.pk}/video" not in page.content.decode()
    staff = StaffFactory(username="mod")
    client.force_login(staff)
    status, _, body = fetch(client, f"/generations/{generation.pk}/video")
    assert (status, body) == (200, backend.read(generation.video.file.key))
