"""storage.transfer: downloads from a real local HTTP origin, stores into both real storage backends."""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import httpx
import pytest
from django.core.exceptions import SuspiciousFileOperation

from storage import transfer
from storage.transfer import (
    Downloaded,
    TransferError,
    delete_key,
    download_to_tempfile,
    key_exists,
    store_bytes,
    store_file,
)
from tests.s3server import s3_client, storages_setting
from tests.storage.conftest import Origin
from tests.storage_backends import Backend
from tests.videos import make_mp4

MP4 = ["video/mp4"]
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def mp4_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_mp4(tmp_path_factory.mktemp("src") / "clip.mp4").read_bytes()


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


def fetch(url: str, downloads: Path, *, max_bytes: int = 10 * MiB, allowed: list[str] = MP4,
          timeout: float = 5.0) -> Downloaded:
    return download_to_tempfile(url, max_bytes=max_bytes, allowed_content_types=allowed, timeout=timeout,
                                dir=str(downloads))


def fetch_error(url: str, downloads: Path, **options) -> TransferError:
    with pytest.raises(TransferError) as caught:
        fetch(url, downloads, **options)
    assert list(downloads.iterdir()) == [], "the temp file must be removed on failure"
    return caught.value


# --- download: success ----------------------------------------------------------------------


def test_download_streams_the_body_to_a_temp_file_with_its_size_and_sha256(origin: Origin, downloads: Path) -> None:
    # given a 2.5 MiB body (several 1 MiB chunks) served as video/mp4 with a charset parameter
    body = os.urandom(2 * MiB + MiB // 2)
    url = origin.route("/out.mp4", body, content_type="Video/MP4; charset=binary")

    # when it is downloaded
    result = fetch(url, downloads)

    # then the temp file holds exactly the body, and size, digest and media type describe it
    assert result.path.parent == downloads
    assert result.path.read_bytes() == body
    assert (result.size, result.sha256, result.content_type) == (len(body), hashlib.sha256(body).hexdigest(),
                                                                  "video/mp4")
    assert origin.requests[0][1]["Accept-Encoding"] == "identity"


def test_download_follows_up_to_three_redirects(origin: Origin, downloads: Path, mp4_bytes: bytes) -> None:
    # given /a -> /b -> /c -> /final
    origin.route("/final", mp4_bytes)
    origin.route("/c", status=302, location="/final")
    origin.route("/b", status=301, location="/c")
    url = origin.route("/a", status=307, location="/b")

    # when / then
    assert fetch(url, downloads).sha256 == hashlib.sha256(mp4_bytes).hexdigest()
    assert [path for path, _ in origin.requests] == ["/a", "/b", "/c", "/final"]


def test_download_accepts_octet_stream_that_sniffs_as_mp4(origin: Origin, downloads: Path, mp4_bytes: bytes) -> None:
    url = origin.route("/blob", mp4_bytes, content_type="application/octet-stream")

    result = fetch(url, downloads)

    assert (result.size, result.content_type) == (len(mp4_bytes), "video/mp4")


def test_download_accepts_an_unlabelled_body_that_sniffs_as_mp4(origin: Origin, downloads: Path,
                                                                  mp4_bytes: bytes) -> None:
    url = origin.route("/blob", mp4_bytes, content_type=None)

    assert fetch(url, downloads).content_type == "video/mp4"


def test_download_without_content_length_reads_to_the_end(origin: Origin, downloads: Path, mp4_bytes: bytes) -> None:
    url = origin.route("/chunked", mp4_bytes, chunked=True, content_length=None)

    assert fetch(url, downloads).path.read_bytes() == mp4_bytes


def test_download_with_a_client_of_the_callers_uses_it_and_leaves_it_open(origin: Origin, downloads: Path,
                                                                          mp4_bytes: bytes) -> None:
    url = origin.route("/out.mp4", mp4_bytes)
    with httpx.Client(headers={"User-Agent": "studio-test"}) as client:
        download_to_tempfile(url, max_bytes=MiB, allowed_content_types=MP4, client=client, dir=str(downloads))
        assert not client.is_closed
    assert origin.requests[0][1]["User-Agent"] == "studio-test"


# --- download: every failure code -----------------------------------------------------------


@pytest.mark.parametrize("status", [404, 500, 206])
def test_download_rejects_a_non_200_status_without_reading_the_body(origin: Origin, downloads: Path,
                                                                    status: int) -> None:
    # given an error response whose body never arrives (reading it would time out as "network")
    url = origin.route("/gone", status=status, content_length=1000, stall=True)

    error = fetch_error(url, downloads, timeout=2.0)

    assert error.code == "http_status"
    assert f"HTTP {status}" in str(error)


def test_download_rejects_more_than_three_redirects(origin: Origin, downloads: Path, mp4_bytes: bytes) -> None:
    origin.route("/final", mp4_bytes)
    for hop, target in [("/d", "/final"), ("/c", "/d"), ("/b", "/c")]:
        origin.route(hop, status=302, location=target)
    url = origin.route("/a", status=302, location="/b")

    error = fetch_error(url, downloads)

    assert error.code == "http_status"
    assert "redirected more than 3 times" in str(error)
    assert "/final" not in [path for path, _ in origin.requests]


@pytest.mark.parametrize(
    ("content_type", "body", "allowed"),
    [
        ("text/html; charset=utf-8", b"<html>", MP4),
        ("application/octet-stream", b"\x00\x00\x00\x20moov" + b"\x00" * 100, MP4),  # not ftyp
        ("application/octet-stream", b"\x00\x00\x00\x20ftypisom" + b"\x00" * 100, ["image/png"]),
        (None, b"\x00\x01", MP4),  # too short to sniff
    ],
)
def test_download_rejects_a_wrong_content_type(origin: Origin, downloads: Path, content_type: str | None,
                                               body: bytes, allowed: list[str]) -> None:
    url = origin.route("/x", body, content_type=content_type)

    assert fetch_error(url, downloads, allowed=allowed).code == "content_type"


def test_download_rejects_a_declared_length_over_the_limit_without_reading(origin: Origin, downloads: Path) -> None:
    # given a response declaring 1 byte over the limit, whose body never arrives
    url = origin.route("/big", content_length=1001, stall=True)

    error = fetch_error(url, downloads, max_bytes=1000, timeout=2.0)

    assert error.code == "too_large"
    assert "declares 1001 bytes" in str(error)


@pytest.mark.parametrize("framing", [{"chunked": True}, {}])
def test_download_stops_a_body_that_grows_past_the_limit(origin: Origin, downloads: Path, framing: dict) -> None:
    # given a 3 MiB body without Content-Length (chunked, or ended by closing the connection)
    url = origin.route("/endless", os.urandom(3 * MiB), content_length=None, **framing)

    error = fetch_error(url, downloads, max_bytes=MiB + 10)

    assert error.code == "too_large"
    assert "more than the limit" in str(error)


def test_download_rejects_an_empty_body(origin: Origin, downloads: Path) -> None:
    url = origin.route("/empty", b"")

    assert fetch_error(url, downloads).code == "empty"


def test_download_rejects_a_body_shorter_than_its_content_length(origin: Origin, downloads: Path,
                                                                 mp4_bytes: bytes) -> None:
    # given a response that declares 1000 bytes more than it sends, then closes cleanly
    url = origin.route("/liar", mp4_bytes, content_length=len(mp4_bytes) + 1000)

    error = fetch_error(url, downloads)

    assert error.code == "size_mismatch"
    assert f"declared {len(mp4_bytes) + 1000} bytes" in str(error)


def test_download_reports_a_connection_reset_mid_body_as_network(origin: Origin, downloads: Path) -> None:
    # given a 4 MiB response whose connection is reset after 1 MiB
    url = origin.route("/drop", os.urandom(4 * MiB), reset_after=MiB)

    assert fetch_error(url, downloads).code == "network"


def test_download_reports_a_broken_chunked_body_as_network(origin: Origin, downloads: Path) -> None:
    # given a chunked body that stops without its final zero-length chunk
    url = origin.route("/cut", os.urandom(MiB), chunked=True, content_length=None, send=300_000)

    assert fetch_error(url, downloads).code == "network"


def test_download_reports_a_read_timeout_as_network(origin: Origin, downloads: Path) -> None:
    url = origin.route("/slow", content_length=100, stall=True)

    error = fetch_error(url, downloads, timeout=0.3)

    assert error.code == "network"
    assert "ReadTimeout" in str(error)


def test_download_reports_a_refused_connection_as_network(downloads: Path) -> None:
    # given a port that is bound (so nobody else takes it) but not listening
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

        error = fetch_error(f"http://127.0.0.1:{port}/x.mp4", downloads)

    assert error.code == "network"
    assert "ConnectError" in str(error)


# --- store ----------------------------------------------------------------------------------


def test_store_file_writes_exact_bytes_under_exactly_the_key(storage_backend: Backend, tmp_path: Path,
                                                             mp4_bytes: bytes) -> None:
    # given a local MP4
    source = tmp_path / "local.mp4"
    source.write_bytes(mp4_bytes)

    # when it is stored under a nested key
    size = store_file("videos/u1/g1/video.mp4", source, content_type="video/mp4")

    # then that object alone exists, with these bytes (and, on S3, this content type)
    assert size == len(mp4_bytes)
    assert storage_backend.keys() == ["videos/u1/g1/video.mp4"]
    assert storage_backend.read("videos/u1/g1/video.mp4") == mp4_bytes
    assert key_exists("videos/u1/g1/video.mp4")
    if storage_backend.s3:
        head = storage_backend.head("videos/u1/g1/video.mp4")
        assert (head["ContentType"], head["ContentLength"]) == ("video/mp4", len(mp4_bytes))


def test_storing_again_under_the_same_key_replaces_the_object(storage_backend: Backend, tmp_path: Path) -> None:
    # given an object stored under a key
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(b"first version, longer than the second")
    second.write_bytes(b"second version")
    store_file("videos/g/video.mp4", first, content_type="video/mp4")

    # when a rerun stores other bytes under the same key
    size = store_file("videos/g/video.mp4", second, content_type="video/mp4")

    # then the key holds the new bytes and no other object appeared (no "video_AbC12.mp4", no temp file)
    assert size == len(b"second version")
    assert storage_backend.keys() == ["videos/g/video.mp4"]
    assert storage_backend.read("videos/g/video.mp4") == b"second version"


def test_store_bytes_writes_and_overwrites(storage_backend: Backend) -> None:
    # given a poster stored once
    store_bytes("posters/g/poster.jpg", b"\xff\xd8old", content_type="image/jpeg")

    # when it is stored again
    size = store_bytes("posters/g/poster.jpg", b"\xff\xd8new poster", content_type="image/jpeg")

    # then only the new bytes exist under the key
    assert size == len(b"\xff\xd8new poster")
    assert storage_backend.keys() == ["posters/g/poster.jpg"]
    assert storage_backend.read("posters/g/poster.jpg") == b"\xff\xd8new poster"
    if storage_backend.s3:
        assert storage_backend.head("posters/g/poster.jpg")["ContentType"] == "image/jpeg"


def test_delete_key_is_idempotent(storage_backend: Backend) -> None:
    # given a stored object
    store_bytes("posters/p.jpg", b"jpeg", content_type="image/jpeg")

    # when it is deleted twice, and a key that never existed is deleted
    delete_key("posters/p.jpg")
    delete_key("posters/p.jpg")
    delete_key("never/was.mp4")

    # then nothing is left and nothing raised
    assert not key_exists("posters/p.jpg")
    assert storage_backend.keys() == []


@pytest.mark.parametrize("key", ["../escape.mp4", "videos/../../escape.mp4", "/etc/escape.mp4", "videos//x.mp4",
                                 "videos/./x.mp4", "videos\\..\\x.mp4", ""])
def test_keys_that_are_not_plain_relative_paths_are_refused(storage_backend: Backend, tmp_path: Path,
                                                            key: str) -> None:
    source = tmp_path / "x.mp4"
    source.write_bytes(b"data")

    with pytest.raises(SuspiciousFileOperation):
        store_file(key, source, content_type="video/mp4")
    with pytest.raises(SuspiciousFileOperation):
        store_bytes(key, b"data", content_type="video/mp4")

    assert storage_backend.keys() == []
    assert not (tmp_path / "escape.mp4").exists()


def test_filesystem_store_is_atomic_when_the_final_rename_fails(filesystem_backend: Backend, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # given a stored file, and a rename that fails on the next store
    store_bytes("videos/v.mp4", b"old and complete", content_type="video/mp4")
    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(transfer.os, "replace", failing_replace)

    # when a new version is stored
    with pytest.raises(OSError, match="disk gone"):
        store_bytes("videos/v.mp4", b"new", content_type="video/mp4")

    # then the old file is untouched and no temp file is left behind
    assert filesystem_backend.keys() == ["videos/v.mp4"]
    assert filesystem_backend.read("videos/v.mp4") == b"old and complete"


def test_filesystem_store_gives_files_the_upload_permissions(filesystem_backend: Backend, settings) -> None:
    settings.FILE_UPLOAD_PERMISSIONS = 0o640

    store_bytes("videos/v.mp4", b"data", content_type="video/mp4")

    assert (filesystem_backend.media_root / "videos/v.mp4").stat().st_mode & 0o777 == 0o640


def test_s3_keys_are_prefixed_with_the_storage_location(s3_backend: Backend, settings, tmp_path: Path) -> None:
    # given an S3 storage with location "media"
    settings.STORAGES = storages_setting(s3_backend.s3, location="media")
    s3_backend.location = "media"
    source = tmp_path / "v.mp4"
    source.write_bytes(b"video bytes")

    # when a file is stored, checked and deleted
    store_file("videos/v.mp4", source, content_type="video/mp4")

    # then the object key carries the prefix
    assert s3_backend.head("videos/v.mp4")["ContentLength"] == len(b"video bytes")
    assert key_exists("videos/v.mp4")
    delete_key("videos/v.mp4")
    assert s3_backend.keys() == []


def test_s3_store_of_a_large_file_is_a_multipart_upload(s3_backend: Backend, tmp_path: Path) -> None:
    # given a 17 MiB file (above the 8 MiB threshold: parts of 8 + 8 + 1 MiB)
    data = os.urandom(17 * MiB)
    source = tmp_path / "big.mp4"
    source.write_bytes(data)

    # when it is stored
    size = store_file("videos/big.mp4", source, content_type="video/mp4")

    # then S3 assembled it from 3 parts and holds the exact bytes
    head = s3_backend.head("videos/big.mp4")
    assert size == head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "video/mp4"
    assert hashlib.sha256(s3_backend.read("videos/big.mp4")).digest() == hashlib.sha256(data).digest()


def test_s3_failed_part_aborts_the_multipart_upload(s3_backend: Backend, tmp_path: Path) -> None:
    # given a 20 MiB file and an S3 client whose upload of part 2 fails
    source = tmp_path / "big.mp4"
    source.write_bytes(os.urandom(20 * MiB))
    from django.core.files.storage import default_storage

    def fail_part_two(params: dict, **kwargs) -> None:
        if params.get("PartNumber") == 2:
            raise ConnectionError("injected failure on part 2")

    client = default_storage.connection.meta.client
    client.meta.events.register("before-parameter-build.s3.UploadPart", fail_part_two)

    # when it is stored
    with pytest.raises(ConnectionError, match="injected failure on part 2"):
        store_file("videos/big.mp4", source, content_type="video/mp4")

    # then boto3 aborted the upload: no unfinished upload is left, and no object exists
    raw = s3_client(s3_backend.s3)
    assert raw.list_multipart_uploads(Bucket=s3_backend.s3.bucket).get("Uploads", []) == []
    assert not key_exists("videos/big.mp4")
    assert s3_backend.keys() == []


def test_other_backends_are_written_through_the_storage_api(settings, tmp_path: Path) -> None:
    # given Django's in-memory storage as the default storage
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    source = tmp_path / "v.mp4"
    source.write_bytes(b"first")
    store_file("videos/v.mp4", source, content_type="video/mp4")

    # when the key is stored again
    size = store_bytes("videos/v.mp4", b"second!", content_type="video/mp4")

    # then it was replaced in place
    from django.core.files.storage import default_storage

    assert size == 7
    assert default_storage.listdir("videos") == ([], ["v.mp4"])
    assert default_storage.open("videos/v.mp4").read() == b"second!"
