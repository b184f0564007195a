"""The digest grammar and the store: only committed files ever appear under a final name.

The original built paths from digests it never checked and left error bodies and partial
downloads under the names the agent trusts.
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

from mesos_uri._docker.digest import MAX_DIGEST_LENGTH, digest_of, parse_digest
from mesos_uri._store import Store
from mesos_uri.errors import DigestError, DigestMismatchError, FetchError

BLOB = b"layer bytes " * 1000
DIGEST = parse_digest("sha256:" + hashlib.sha256(BLOB).hexdigest())
OTHER = b"other bytes " * 1000
HEX64 = "a" * 64


def listing(directory: Path) -> list[str]:
    """Every name in ``directory``, hidden ones included."""
    return sorted(os.listdir(directory))


def leftovers(store: Store) -> list[Path]:
    """The temporary files in the store's directory: there are none after a fetch."""
    return sorted(store.directory.glob(".mesos-uri-*"))


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


def test_create_makes_missing_parents_and_only_those_are_removed_if_left_empty(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    made = Store(tmp_path / "a" / "b" / "c")
    made.create()
    assert (tmp_path / "a" / "b" / "c").is_dir()
    existing = Store(tmp_path / "a" / "b" / "c")
    existing.create()
    existing.remove_if_empty()
    assert (tmp_path / "a" / "b" / "c").is_dir()
    made.remove_if_empty()
    assert listing(tmp_path) == ["a"]
    assert listing(tmp_path / "a") == []


def test_a_directory_another_fetch_made_meanwhile_is_not_removed_as_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both fetches saw the directory missing; the other one made it first.
    target = tmp_path / "new"
    store = Store(target)
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda path: path != target and real_exists(path))
    target.mkdir()

    store.create()
    store.remove_if_empty()

    assert target.is_dir()


def test_create_under_a_file_is_the_originals_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FetchError, match=r"Failed to create directory '.*file/dir': "):
        Store(tmp_path / "file" / "dir").create()


def test_temporary_files_are_hidden_empty_private_and_never_a_digest(store: Store) -> None:
    temp = store.temp(str(DIGEST))
    assert temp.parent == store.directory
    assert temp.name.startswith(".mesos-uri-")
    assert temp.read_bytes() == b""
    assert stat.S_IMODE(temp.stat().st_mode) == 0o600
    assert leftovers(store) == [temp]
    with pytest.raises(DigestError):
        parse_digest(temp.name)
    store.discard(temp)
    store.discard(temp)  # twice is fine: a failed commit already removed it
    assert listing(store.directory) == []


@pytest.mark.anyio
async def test_a_committed_file_appears_with_its_bytes_and_nothing_else(store: Store) -> None:
    temp = store.temp(str(DIGEST))
    temp.write_bytes(BLOB)
    assert not store.path(str(DIGEST)).exists()
    await store.commit(temp, str(DIGEST))
    assert store.path(str(DIGEST)).read_bytes() == BLOB
    assert listing(store.directory) == [str(DIGEST)]


@pytest.mark.anyio
async def test_committed_files_follow_the_umask(store: Store) -> None:
    old = os.umask(0o027)
    try:
        temp = store.temp("a")
        await store.commit(temp, "a")
        await store.write_file("manifest", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path("a").stat().st_mode) == 0o640
    assert stat.S_IMODE(store.path("manifest").stat().st_mode) == 0o640


@pytest.mark.anyio
async def test_a_file_committed_with_a_mark_is_trusted_until_it_changes(store: Store) -> None:
    temp = store.temp(str(DIGEST))
    temp.write_bytes(BLOB)
    await store.commit(temp, str(DIGEST), verified=True)
    assert store.committed(str(DIGEST)) == len(BLOB)
    # Moved to another digest's name: its mark names the digest it was verified as.
    os.link(store.path(str(DIGEST)), store.path("sha256:" + HEX64))
    assert store.committed("sha256:" + HEX64) is None
    # Rewritten in place, even to the same size: no longer what was verified.
    path = store.path(str(DIGEST))
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1))
    assert store.committed(str(DIGEST)) is None


@pytest.mark.anyio
async def test_a_file_this_program_did_not_commit_is_not_trusted(store: Store) -> None:
    store.path(str(DIGEST)).write_bytes(BLOB)
    assert store.committed(str(DIGEST)) is None
    assert store.committed("missing") is None
    store.mark(str(DIGEST))
    assert store.committed(str(DIGEST)) == len(BLOB)


@pytest.mark.anyio
async def test_a_cancelled_commit_leaves_no_temporary_file(store: Store) -> None:
    temp = store.temp(str(DIGEST))
    temp.write_bytes(BLOB)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await store.commit(temp, str(DIGEST))
    # Either it committed the bytes or it left nothing: never a temporary file.
    assert leftovers(store) == []
    assert listing(store.directory) in ([], [str(DIGEST)])


@pytest.mark.anyio
async def test_concurrent_commits_of_the_same_name_all_succeed(store: Store) -> None:
    """Two pulls of the same image into one directory at once."""

    async def one() -> None:
        temp = store.temp(str(DIGEST))
        temp.write_bytes(BLOB)
        await anyio.lowlevel.checkpoint()
        await store.commit(temp, str(DIGEST), verified=True)

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(one)
    assert store.path(str(DIGEST)).read_bytes() == BLOB
    assert listing(store.directory) == [str(DIGEST)]


@pytest.mark.anyio
async def test_write_file_is_atomic_and_leaves_nothing_else(store: Store) -> None:
    await store.write_file("manifest", b"old")
    await store.write_file("manifest", b'{"schemaVersion": 2}')
    assert store.path("manifest").read_bytes() == b'{"schemaVersion": 2}'
    assert listing(store.directory) == ["manifest"]


@pytest.mark.anyio
async def test_non_durable_store_commits_the_same(tmp_path: Path) -> None:
    store = Store(tmp_path, durable=False)
    temp = store.temp("a")
    await store.commit(temp, "a")
    await store.write_file("manifest", b"{}")
    assert listing(tmp_path) == ["a", "manifest"]


def test_a_temporary_file_that_cannot_be_created_is_a_fetch_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "missing")
    with pytest.raises(FetchError, match=r"Failed to create a temporary file in '.*missing'"):
        store.temp(str(DIGEST))


# Failures of the file system itself are reported in the error family, never as a bare OSError
# (the CLI prints a traceback for anything else), and leave no temporary file behind.


def _in_the_way(store: Store, name: str) -> None:
    """Put a non-empty directory where the final file should go: renaming onto it fails."""
    blocker = store.path(name)
    blocker.mkdir()
    (blocker / "keep").write_bytes(b"")


@pytest.mark.anyio
async def test_a_file_that_cannot_be_renamed_into_place_is_a_fetch_error(store: Store) -> None:
    _in_the_way(store, str(DIGEST))
    temp = store.temp(str(DIGEST))
    with pytest.raises(FetchError, match=str(DIGEST)):
        await store.commit(temp, str(DIGEST))
    assert leftovers(store) == []


@pytest.mark.anyio
async def test_a_manifest_that_cannot_be_renamed_into_place_is_a_fetch_error(
    store: Store,
) -> None:
    _in_the_way(store, "manifest")
    with pytest.raises(FetchError, match="manifest"):
        await store.write_file("manifest", b"{}")
    assert leftovers(store) == []


def _disk_full(*args: object) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.anyio
async def test_a_full_disk_while_flushing_is_a_fetch_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC from fsync before the rename: a clear error, and the partial file is gone."""
    temp = store.temp(str(DIGEST))
    temp.write_bytes(BLOB)
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(FetchError, match="No space left on device"):
        await store.commit(temp, str(DIGEST))
    monkeypatch.undo()
    assert listing(store.directory) == []
