"""The digest grammar and the blob store: only verified bytes ever appear under a final name.

Issue #4: the original built paths from digests it never checked and left error bodies and
partial downloads under the names the agent trusts (SPEC.md §1.2, §9 rows 1 and 10).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_uri.docker.digest import MAX_DIGEST_LENGTH, digest_of, parse_digest
from mesos_uri.errors import DigestError, DigestMismatchError, FetchError
from mesos_uri.store import BlobSizeError, Store

BLOB = b"layer bytes " * 1000
DIGEST = parse_digest("sha256:" + hashlib.sha256(BLOB).hexdigest())
OTHER = b"other bytes " * 1000
HEX64 = "a" * 64


def listing(directory: Path) -> list[str]:
    """Every name in ``directory``, hidden ones included."""
    return sorted(os.listdir(directory))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# The digest grammar


@pytest.mark.parametrize(
    "text",
    [
        "sha256:" + HEX64,
        "sha512:" + "0123456789abcdef" * 8,
        # Unregistered algorithms follow the generic grammar (OCI descriptor.md).
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    ],
)
def test_valid_digests_parse_and_print_unchanged(text: str) -> None:
    assert str(parse_digest(text)) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("../../etc/passwd", "expected 'algorithm:encoded'"),
        ("sha256:../x", "malformed encoded part"),
        ("sha256:../../" + HEX64, "malformed encoded part"),
        ("sha256:" + HEX64 + "/..", "malformed encoded part"),
        ("", "empty"),
        ("sha256:" + "a" * MAX_DIGEST_LENGTH, f"longer than {MAX_DIGEST_LENGTH} characters"),
        ("sha256:" + "A" * 64, "lowercase hex"),
        ("sha256:" + "a" * 63, "lowercase hex"),
        ("sha256:" + "a" * 65, "lowercase hex"),
        ("sha512:" + HEX64, "lowercase hex"),
        ("SHA256:" + HEX64, "malformed algorithm"),
        (":" + HEX64, "malformed algorithm"),
        ("sha256:", "malformed encoded part"),
        ("sha256" + HEX64, "expected 'algorithm:encoded'"),
        ("sha256:" + HEX64 + "\n", "malformed encoded part"),
        ("sha256:" + HEX64 + "\0", "malformed encoded part"),
        (" sha256:" + HEX64, "malformed algorithm"),
    ],
)
def test_hostile_or_malformed_digests_are_refused_with_the_reason(text: str, reason: str) -> None:
    """A manifest naming one of these gets a clear error instead of a file path."""
    with pytest.raises(DigestError, match="Invalid digest") as caught:
        parse_digest(text)
    assert reason in str(caught.value)
    assert isinstance(caught.value, FetchError)


def test_an_oversized_digest_is_not_quoted_whole() -> None:
    text = "sha256:" + "a" * 100_000
    with pytest.raises(DigestError) as caught:
        parse_digest(text)
    assert len(str(caught.value)) < 200


@given(st.text(max_size=300))
def test_any_text_parses_to_a_safe_file_name_or_raises_digest_error(text: str) -> None:
    """Whatever a manifest says, a digest either is a plain file name or is refused."""
    try:
        digest = parse_digest(text)
    except DigestError:
        return
    name = str(digest)
    assert name == text
    assert "/" not in name
    assert "\0" not in name
    assert name not in (".", "..")
    assert not name.startswith(".")  # never mistaken for one of the store's temporary files
    assert len(name) <= MAX_DIGEST_LENGTH


@given(st.binary(max_size=2000))
def test_digest_of_agrees_with_hashlib_and_the_grammar(data: bytes) -> None:
    digest = digest_of(data)
    assert str(digest) == sha256(data)
    assert parse_digest(str(digest)) == digest


def test_sha512_digests_are_computed_and_verified() -> None:
    digest = digest_of(BLOB, "sha512")
    assert str(digest) == "sha512:" + hashlib.sha512(BLOB).hexdigest()
    hasher = digest.hasher()
    hasher.update(BLOB)
    digest.verify(hasher, what="the blob")


def test_verify_names_expected_and_actual_digests() -> None:
    hasher = DIGEST.hasher()
    hasher.update(OTHER)
    with pytest.raises(DigestMismatchError) as caught:
        DIGEST.verify(hasher, what="blob 'x'")
    assert caught.value.expected == str(DIGEST)
    assert caught.value.actual == sha256(OTHER)
    assert str(DIGEST) in str(caught.value)
    assert sha256(OTHER) in str(caught.value)


def test_an_unknown_algorithm_cannot_be_verified() -> None:
    """A grammatical but unregistered algorithm is a clear error, not an unverified file."""
    digest = parse_digest("blake3:" + HEX64)
    with pytest.raises(DigestError, match="Unsupported digest algorithm 'blake3'"):
        digest.hasher()


# ---------------------------------------------------------------------------------------------
# The store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    target = Store(tmp_path / "dir")
    target.create()
    return target


def test_create_makes_missing_parents(tmp_path: Path) -> None:
    Store(tmp_path / "a" / "b" / "c").create()
    assert (tmp_path / "a" / "b" / "c").is_dir()


def test_create_under_a_file_is_the_originals_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FetchError, match=r"Failed to create directory '.*file/dir': "):
        Store(tmp_path / "file" / "dir").create()


@pytest.mark.anyio
async def test_committed_blob_appears_with_its_bytes_and_nothing_else(store: Store) -> None:
    writer = store.open_blob(DIGEST, len(BLOB), what="the blob")
    for start in range(0, len(BLOB), 1000):
        writer.write(BLOB[start : start + 1000])
    assert not store.path(DIGEST).exists()  # nothing under the final name before it verified
    await store.commit(writer)
    assert store.path(DIGEST).read_bytes() == BLOB
    assert listing(store.directory) == [str(DIGEST)]
    # Readable like the original's files (SPEC.md §6.2 writes 0644).
    assert stat.S_IMODE(store.path(DIGEST).stat().st_mode) == 0o644


def test_temporary_files_are_hidden_and_never_a_digest(store: Store) -> None:
    writer = store.open_blob(DIGEST, len(BLOB), what="the blob")
    try:
        assert writer.path.parent == store.directory
        assert writer.path.name.startswith(".mesos-uri-")
        assert store.leftovers() == [writer.path]
        with pytest.raises(DigestError):
            parse_digest(writer.path.name)
    finally:
        store.discard(writer)
    assert store.leftovers() == []
    assert listing(store.directory) == []


@pytest.mark.anyio
async def test_wrong_bytes_are_never_committed(store: Store) -> None:
    writer = store.open_blob(DIGEST, len(OTHER), what=f"blob '{DIGEST}'")
    writer.write(OTHER)
    with pytest.raises(DigestMismatchError) as caught:
        await store.commit(writer)
    assert caught.value.expected == str(DIGEST)
    assert caught.value.actual == sha256(OTHER)
    assert listing(store.directory) == []


@pytest.mark.anyio
async def test_a_failed_commit_keeps_the_good_file_already_there(store: Store) -> None:
    store.path(DIGEST).write_bytes(BLOB)
    writer = store.open_blob(DIGEST, -1, what="the blob")
    writer.write(OTHER)
    with pytest.raises(DigestMismatchError):
        await store.commit(writer)
    assert store.path(DIGEST).read_bytes() == BLOB
    assert listing(store.directory) == [str(DIGEST)]


def test_more_bytes_than_declared_are_refused_before_they_are_written(store: Store) -> None:
    """The overlong chunk raises from the sink (which stops curl); none of it reaches disk."""
    writer = store.open_blob(DIGEST, 10, what=f"blob '{DIGEST}'")
    writer.write(b"0123456789")
    with pytest.raises(BlobSizeError, match="larger than the 10 bytes its manifest declares"):
        writer.write(b"x")
    assert writer.path.read_bytes() == b"0123456789"
    store.discard(writer)
    assert listing(store.directory) == []


@pytest.mark.anyio
async def test_fewer_bytes_than_declared_are_refused(store: Store) -> None:
    writer = store.open_blob(DIGEST, len(BLOB), what=f"blob '{DIGEST}'")
    writer.write(BLOB[:-1])
    with pytest.raises(FetchError, match=f"has {len(BLOB) - 1} bytes but its manifest declares"):
        await store.commit(writer)
    assert listing(store.directory) == []


@pytest.mark.anyio
async def test_unknown_size_is_verified_by_digest_alone(store: Store) -> None:
    """Schema 1 manifests declare no sizes (UNKNOWN_SIZE = -1)."""
    writer = store.open_blob(DIGEST, -1, what="the blob")
    writer.write(BLOB)
    await store.commit(writer)
    assert store.path(DIGEST).read_bytes() == BLOB


@pytest.mark.anyio
async def test_restart_forgets_what_was_written(store: Store) -> None:
    """A server that ignores a Range request answers from byte 0: the file starts over."""
    writer = store.open_blob(DIGEST, len(BLOB), what="the blob")
    writer.write(OTHER[:5000])
    writer.restart()
    writer.write(BLOB)
    await store.commit(writer)
    assert store.path(DIGEST).read_bytes() == BLOB


@pytest.mark.anyio
async def test_a_cancelled_commit_leaves_no_file(store: Store) -> None:
    writer = store.open_blob(DIGEST, len(BLOB), what="the blob")
    writer.write(BLOB)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await store.commit(writer)
    # Either it committed the verified bytes or it left nothing: never a temporary file.
    assert store.leftovers() == []
    assert listing(store.directory) in ([], [str(DIGEST)])
    if listing(store.directory):
        assert store.path(DIGEST).read_bytes() == BLOB


@pytest.mark.anyio
async def test_has_verified_hashes_what_is_there(store: Store) -> None:
    """A retried pull skips a blob only when its bytes are right (issue #4 point 2)."""
    assert not await store.has_verified(DIGEST)
    store.path(DIGEST).write_bytes(OTHER)
    assert not await store.has_verified(DIGEST)
    store.path(DIGEST).write_bytes(BLOB[:-1])
    assert not await store.has_verified(DIGEST)
    store.path(DIGEST).write_bytes(BLOB)
    assert await store.has_verified(DIGEST)


@pytest.mark.anyio
async def test_has_verified_is_false_for_a_directory_under_the_name(store: Store) -> None:
    store.path(DIGEST).mkdir()
    assert not await store.has_verified(DIGEST)


@pytest.mark.anyio
async def test_a_wrong_file_under_the_name_is_replaced_by_verified_bytes(store: Store) -> None:
    store.path(DIGEST).write_bytes(OTHER)
    writer = store.open_blob(DIGEST, len(BLOB), what="the blob")
    writer.write(BLOB)
    await store.commit(writer)
    assert store.path(DIGEST).read_bytes() == BLOB
    assert listing(store.directory) == [str(DIGEST)]


@pytest.mark.anyio
async def test_concurrent_writers_of_the_same_digest_all_succeed(store: Store) -> None:
    """Two pulls of the same image into one directory at once (issue #4 point 2)."""

    async def one(chunk_size: int) -> None:
        writer = store.open_blob(DIGEST, len(BLOB), what="the blob")
        for start in range(0, len(BLOB), chunk_size):
            writer.write(BLOB[start : start + chunk_size])
            await anyio.lowlevel.checkpoint()
        await store.commit(writer)

    async with anyio.create_task_group() as group:
        for chunk_size in (100, 333, 1000, 4096):
            group.start_soon(one, chunk_size)
    assert store.path(DIGEST).read_bytes() == BLOB
    assert listing(store.directory) == [str(DIGEST)]


@pytest.mark.anyio
async def test_write_file_is_atomic_and_leaves_nothing_else(store: Store) -> None:
    await store.write_file("manifest", b"old")
    await store.write_file("manifest", b'{"schemaVersion": 2}')
    assert store.path("manifest").read_bytes() == b'{"schemaVersion": 2}'
    assert stat.S_IMODE(store.path("manifest").stat().st_mode) == 0o644
    assert listing(store.directory) == ["manifest"]


@pytest.mark.anyio
async def test_non_durable_store_commits_the_same(tmp_path: Path) -> None:
    store = Store(tmp_path, durable=False)
    writer = store.open_blob(DIGEST, len(BLOB), what="the blob")
    writer.write(BLOB)
    await store.commit(writer)
    await store.write_file("manifest", b"{}")
    assert listing(tmp_path) == sorted([str(DIGEST), "manifest"])


def test_temp_path_and_place_rename_into_the_directory(store: Store) -> None:
    temp = store.temp_path("file.txt")
    temp.write_bytes(b"abc")
    final = store.place(temp, "file.txt")
    assert final == store.directory / "file.txt"
    assert final.read_bytes() == b"abc"
    assert listing(store.directory) == ["file.txt"]


def test_a_temporary_file_that_cannot_be_created_is_a_fetch_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "missing")
    with pytest.raises(FetchError, match=r"Failed to create a temporary file in '.*missing'"):
        store.open_blob(DIGEST, 1, what="the blob")


# Failures of the file system itself are reported in the error family, never as a bare OSError
# (the CLI prints a traceback for anything else), and leave no temporary file behind.


def _in_the_way(store: Store, name: str) -> None:
    """Put a non-empty directory where the final file should go: renaming onto it fails."""
    blocker = store.path(name)
    blocker.mkdir()
    (blocker / "keep").write_bytes(b"")


@pytest.mark.anyio
async def test_a_blob_that_cannot_be_renamed_into_place_is_a_fetch_error(store: Store) -> None:
    _in_the_way(store, str(DIGEST))
    writer = store.open_blob(DIGEST, len(BLOB), what="the blob")
    writer.write(BLOB)
    with pytest.raises(FetchError, match=str(DIGEST)):
        await store.commit(writer)
    assert store.leftovers() == []


@pytest.mark.anyio
async def test_a_manifest_that_cannot_be_renamed_into_place_is_a_fetch_error(
    store: Store,
) -> None:
    _in_the_way(store, "manifest")
    with pytest.raises(FetchError, match="manifest"):
        await store.write_file("manifest", b"{}")
    assert store.leftovers() == []


def _disk_full(*args: object) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_is_a_fetch_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while a blob arrives: a clear error from the sink (which stops curl)."""
    writer = store.open_blob(DIGEST, len(BLOB), what=f"blob '{DIGEST}'")
    monkeypatch.setattr(os, "write", _disk_full)
    try:
        with pytest.raises(FetchError, match="No space left on device"):
            writer.write(BLOB)
    finally:
        monkeypatch.undo()
        store.discard(writer)
    assert listing(store.directory) == []


@pytest.mark.anyio
async def test_a_full_disk_while_flushing_is_a_fetch_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC from fsync before the rename: a clear error, and the partial file is gone."""
    writer = store.open_blob(DIGEST, len(BLOB), what=f"blob '{DIGEST}'")
    writer.write(BLOB)
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(FetchError, match="No space left on device"):
        await store.commit(writer)
    monkeypatch.undo()
    assert listing(store.directory) == []
