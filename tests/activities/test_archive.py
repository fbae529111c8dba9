"""The audit archive's stores: write once, read back, list, never overwrite, in a directory and in S3.

Both stores run the same behaviour tests: the directory in a fresh temporary folder, S3 against moto's
real HTTP server (a fresh bucket per test), which answers ``If-None-Match: *`` on an existing key with
412 as S3 does. Only S3's 409 (a conflicting conditional write in flight), which moto never answers, is
injected at the archive's own client boundary.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from activities import archive
from activities.archive import AlreadyArchived, ArchiveError, ArchiveStore, DirectoryArchive, S3Archive
from sandbox.processes import free_port
from tests.support.s3 import S3Server, running_s3

DOCUMENT = b'{"release": "rel-1", "outcome": "promoted"}'
SECRET = "s3cr3t-Value"
BIG_SIZE = 4_000_000
BIG_DOCUMENTS = 8
WRITER = f"""
import sys
from activities import archive
store = archive.open_archive(sys.argv[1])
for i in range(int(sys.argv[2])):
    store.put_if_absent(f"big/{{i}}.json", b"x" * {BIG_SIZE})
"""
"""A writer process: ``BIG_DOCUMENTS`` documents of ``BIG_SIZE`` bytes to the store at ``argv[1]``."""
FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from activities.archive import ArchiveError, DirectoryArchive
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
try:
    DirectoryArchive(Path(sys.argv[1])).put_if_absent("rel-1/run.json", b"x" * 2_000_000)
except ArchiveError as err:
    print(err)
    sys.exit(3)
"""
"""A writer process that may write no file past 1 MB, as on a full disk, writing a 2 MB document."""
WRITERS = 8


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """moto's S3 server on this machine, with dummy credentials in the environment."""
    yield from running_s3()


@pytest.fixture(params=["directory", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each kind: a directory, and a prefix of a fresh bucket."""
    if request.param == "directory":
        return f"file://{tmp_path}/archive"
    server: S3Server = request.getfixturevalue("s3")
    return f"s3://{server.new_bucket()}/audit?endpoint={server.endpoint}"


@pytest.fixture
def store(location: str) -> ArchiveStore:
    """The store at ``location``, as the worker and the CLI open it."""
    return archive.open_archive(location)


def race(*writers: Any) -> list[BaseException | None]:
    """Run every writer at once (released together by a barrier); each one's exception or None."""
    barrier = threading.Barrier(len(writers))
    outcomes: list[BaseException | None] = [None] * len(writers)

    def run(index: int) -> None:
        barrier.wait()
        try:
            writers[index]()
        except BaseException as err:
            outcomes[index] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


class TestWriteOnce:
    def test_a_written_document_reads_back_byte_for_byte(self, store: ArchiveStore) -> None:
        """What put_if_absent stored, get returns unchanged."""
        store.put_if_absent("releases/rel-1/run-1.json", DOCUMENT)
        assert store.get("releases/rel-1/run-1.json") == DOCUMENT

    def test_a_missing_key_reads_as_none(self, store: ArchiveStore) -> None:
        """get of a key never written is None, in an empty store and beside other documents."""
        assert store.get("releases/rel-1/run-1.json") is None
        store.put_if_absent("releases/rel-1/run-1.json", DOCUMENT)
        assert store.get("releases/rel-1/run-2.json") is None
        assert store.get("releases") is None

    def test_a_second_write_is_refused_and_the_first_document_kept(self, store: ArchiveStore) -> None:
        """Writing a key twice raises AlreadyArchived naming store and key, and never overwrites."""
        store.put_if_absent("run-1.json", DOCUMENT)
        with pytest.raises(AlreadyArchived) as refused:
            store.put_if_absent("run-1.json", b'{"forged": true}')
        assert refused.value.key == "run-1.json"
        assert store.where in str(refused.value) and "'run-1.json'" in str(refused.value)
        assert store.get("run-1.json") == DOCUMENT
        assert store.keys() == ["run-1.json"]

    def test_exactly_one_of_concurrent_writers_of_a_key_wins(self, store: ArchiveStore) -> None:
        """Writers racing on one key: one succeeds, every other gets AlreadyArchived, the winner's
        document is the one kept."""
        bodies = [b'{"writer": %d}' % i for i in range(WRITERS)]
        outcomes = race(*(lambda body=body: store.put_if_absent("race.json", body) for body in bodies))
        winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
        assert len(winners) == 1, outcomes
        assert all(isinstance(outcome, AlreadyArchived) for outcome in outcomes if outcome is not None)
        assert store.get("race.json") == bodies[winners[0]]

    def test_a_reader_sees_a_whole_document_or_none(self, store: ArchiveStore, location: str) -> None:
        """While another process writes large documents, every read of their keys here is either None
        or the whole document."""
        keys = [f"big/{i}.json" for i in range(BIG_DOCUMENTS)]
        done = threading.Event()
        seen: list[int] = []

        def read() -> None:
            while not done.is_set():
                seen.extend(len(found) for key in keys if (found := store.get(key)) is not None)

        reader = threading.Thread(target=read)
        reader.start()
        try:  # another process, so the writes do not wait for this one's reads (the GIL)
            subprocess.run(
                [sys.executable, "-c", WRITER, location, str(BIG_DOCUMENTS)], check=True, timeout=120
            )
        finally:
            done.set()
            reader.join()
        assert seen, "the reader saw no document"
        assert set(seen) == {BIG_SIZE}
        assert [len(store.get(key) or b"") for key in keys] == [BIG_SIZE] * BIG_DOCUMENTS


class TestKeys:
    def test_keys_under_a_prefix_are_listed_sorted(self, store: ArchiveStore) -> None:
        """keys(prefix) lists, sorted, exactly the keys starting with the prefix, whole segments or not."""
        for key in ["rel-2/b.json", "rel-1/z.json", "rel-10/a.json", "rel-1/a.json", "other.json"]:
            store.put_if_absent(key, DOCUMENT)
        assert store.keys("rel-1/") == ["rel-1/a.json", "rel-1/z.json"]
        assert store.keys("rel-1") == ["rel-1/a.json", "rel-1/z.json", "rel-10/a.json"]
        assert store.keys() == ["other.json", "rel-1/a.json", "rel-1/z.json", "rel-10/a.json", "rel-2/b.json"]
        assert store.keys("rel-3/") == []

    def test_an_empty_store_lists_nothing(self, store: ArchiveStore) -> None:
        """A store never written to has no keys, under any prefix."""
        assert store.keys() == []
        assert store.keys("rel-1/") == []

    def test_every_key_character_is_accepted(self, store: ArchiveStore) -> None:
        """A key may use letters, digits and . _ : @ + = - in nested segments."""
        key = "rel_1/2026-12-07T08:15:00Z/ring=eu+1@v1.2.json"
        store.put_if_absent(key, DOCUMENT)
        assert store.get(key) == DOCUMENT
        assert store.keys() == [key]

    @pytest.mark.parametrize(
        "key",
        [
            "",
            "/abs.json",
            "a//b.json",
            "a/",
            "./a.json",
            "a/../../etc/passwd",
            "..",
            "a b.json",
            "a\\b.json",
            "a%2Fb.json",
            "é.json",
            "a?b",
            "a#b",
            "a~tmp",
            "a\x00b",
            "x" * 256,
            "a/" * 512 + "b",
        ],
    )
    def test_a_bad_key_is_refused_before_anything_is_written(self, store: ArchiveStore, key: str) -> None:
        """put_if_absent and get refuse a key outside the key rule with an ArchiveError that says the
        rule, and the store stays empty."""
        with pytest.raises(ArchiveError, match="a key") as refused:
            store.put_if_absent(key, DOCUMENT)
        assert not isinstance(refused.value, AlreadyArchived)
        assert store.where in str(refused.value)
        with pytest.raises(ArchiveError, match="a key"):
            store.get(key)
        assert store.keys() == []

    @given(st.text(alphabet=st.sampled_from("ab./\\:@+=-_~ %\x00é"), max_size=24))
    def test_an_accepted_key_names_a_file_under_the_root(self, text: str) -> None:
        """Whatever the key text, one check_key accepts resolves to a path strictly inside the root."""
        try:
            archive.check_key(text)
        except ArchiveError:
            return
        root = "/srv/archive"
        assert os.path.normpath(os.path.join(root, *text.split("/"))).startswith(root + "/")


class TestDirectoryArchive:
    def test_where_names_the_absolute_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A relative root is shown, and used, as the absolute directory it was when the store opened."""
        monkeypatch.chdir(tmp_path)
        store = DirectoryArchive(Path("archive"))
        assert store.where == f"dir:{tmp_path / 'archive'}"
        store.put_if_absent("a.json", DOCUMENT)
        assert (tmp_path / "archive" / "a.json").read_bytes() == DOCUMENT

    def test_no_temporary_file_is_left_behind(self, tmp_path: Path) -> None:
        """After a write and a refused second write, the key's directory holds the document alone."""
        store = DirectoryArchive(tmp_path)
        store.put_if_absent("rel-1/run.json", DOCUMENT)
        with pytest.raises(AlreadyArchived):
            store.put_if_absent("rel-1/run.json", DOCUMENT)
        assert sorted(p.name for p in (tmp_path / "rel-1").iterdir()) == ["run.json"]

    def test_a_write_that_fails_midway_leaves_no_document(self, tmp_path: Path) -> None:
        """A writer stopped by the disk partway through fails with ArchiveError and leaves nothing: no
        partial document at the key, no temporary file."""
        done = subprocess.run(
            [sys.executable, "-c", FULL_DISK, str(tmp_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 3, done.stderr
        assert "cannot write" in done.stdout and "'rel-1/run.json'" in done.stdout
        store = DirectoryArchive(tmp_path)
        assert store.get("rel-1/run.json") is None
        assert [p.name for p in (tmp_path / "rel-1").iterdir()] == []

    def test_a_crashed_writers_temporary_file_is_not_a_key(self, tmp_path: Path) -> None:
        """A temporary file a killed writer left (its name has ``~``, no key character) is not listed."""
        store = DirectoryArchive(tmp_path)
        store.put_if_absent("rel-1/run.json", DOCUMENT)
        (tmp_path / "rel-1" / ".0123456789abcdef~tmp").write_bytes(DOCUMENT[:5])
        assert store.keys() == ["rel-1/run.json"]

    def test_a_key_that_is_a_directory_of_keys_is_an_error_not_already_archived(self, tmp_path: Path) -> None:
        """Writing key ``a`` when ``a/b`` exists is an ArchiveError: no document is at ``a``."""
        store = DirectoryArchive(tmp_path)
        store.put_if_absent("a/b.json", DOCUMENT)
        with pytest.raises(ArchiveError, match="directory of other keys") as refused:
            store.put_if_absent("a", DOCUMENT)
        assert not isinstance(refused.value, AlreadyArchived)

    def test_an_unwritable_root_is_an_archive_error(self, tmp_path: Path) -> None:
        """A root that cannot hold the key's directory (it is a file) fails with the store and key named."""
        (tmp_path / "file").write_bytes(b"")
        store = DirectoryArchive(tmp_path / "file")
        with pytest.raises(ArchiveError, match="cannot write") as refused:
            store.put_if_absent("a/b.json", DOCUMENT)
        assert f"dir:{tmp_path / 'file'}" in str(refused.value) and "'a/b.json'" in str(refused.value)
        assert store.keys() == []


class Conflicting:
    """A real client whose first ``conflicts`` writes are answered 409 ConditionalRequestConflict, as S3
    answers a conditional write racing another (moto never does)."""

    def __init__(self, client: Any, conflicts: int) -> None:
        self._client = client
        self.conflicts = conflicts
        self.writes = 0

    def put_object(self, **request: Any) -> Any:
        self.writes += 1
        if self.conflicts:
            self.conflicts -= 1
            error = {"Code": "ConditionalRequestConflict", "Message": "A conflicting operation occurred"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 409}}, "PutObject")
        return self._client.put_object(**request)

    def get_object(self, **request: Any) -> Any:
        return self._client.get_object(**request)

    def list_objects_v2(self, **request: Any) -> Any:
        return self._client.list_objects_v2(**request)


class TestS3Archive:
    def test_a_document_is_written_as_json_under_the_prefix(self, s3: S3Server) -> None:
        """The object is at ``prefix/key`` with content type application/json."""
        bucket = s3.new_bucket()
        store = S3Archive(bucket, "/audit/runs/", s3.client())
        assert store.where == f"s3://{bucket}/audit/runs"
        store.put_if_absent("rel-1.json", DOCUMENT)
        head = s3.client().head_object(Bucket=bucket, Key="audit/runs/rel-1.json")
        assert head["ContentType"] == archive.CONTENT_TYPE

    def test_keys_outside_the_prefix_or_not_keys_are_not_listed(self, s3: S3Server) -> None:
        """keys lists only objects under the store's prefix, without it, and skips names that are no keys."""
        bucket = s3.new_bucket()
        client = s3.client()
        for name in ["audit/a.json", "audit-old/b.json", "c.json", "audit/x//y.json"]:
            client.put_object(Bucket=bucket, Key=name, Body=DOCUMENT)
        assert S3Archive(bucket, "audit", client).keys() == ["a.json"]
        assert S3Archive(bucket, "", client).keys() == ["audit-old/b.json", "audit/a.json", "c.json"]

    def test_keys_are_read_across_pages(self, s3: S3Server) -> None:
        """A listing longer than one ListObjectsV2 page is read to its end."""
        store = S3Archive(s3.new_bucket(), "audit", s3.client(), page_size=2)
        written = [f"rel-{i}.json" for i in range(5)]
        for key in reversed(written):
            store.put_if_absent(key, DOCUMENT)
        assert store.keys() == written

    def test_a_conflicting_write_is_retried_with_a_growing_wait(self, s3: S3Server) -> None:
        """409 ConditionalRequestConflict is retried after doubling waits until the write lands."""
        waits: list[float] = []
        client = Conflicting(s3.client(), conflicts=2)
        store = S3Archive(s3.new_bucket(), "", client, backoff_seconds=0.05, sleep=waits.append)
        store.put_if_absent("a.json", DOCUMENT)
        assert waits == [0.05, 0.1]
        assert client.writes == 3
        assert store.get("a.json") == DOCUMENT

    def test_a_write_that_keeps_conflicting_is_an_archive_error(self, s3: S3Server) -> None:
        """After the last retry a 409 is an ArchiveError (not AlreadyArchived), and nothing is written."""
        client = Conflicting(s3.client(), conflicts=10)
        store = S3Archive(s3.new_bucket(), "", client, conflict_retries=3, sleep=lambda _: None)
        with pytest.raises(ArchiveError, match="ConditionalRequestConflict 4 times") as refused:
            store.put_if_absent("a.json", DOCUMENT)
        assert not isinstance(refused.value, AlreadyArchived)
        assert client.writes == 4
        assert store.get("a.json") is None

    def test_another_error_names_its_code_and_message(self, s3: S3Server) -> None:
        """An S3 error other than 412 and 409 is an ArchiveError with S3's code and message."""
        store = S3Archive("no-such-bucket-here", "audit", s3.client())
        calls = [lambda: store.put_if_absent("a.json", DOCUMENT), lambda: store.get("a.json"), store.keys]
        for call in calls:
            with pytest.raises(ArchiveError, match="NoSuchBucket") as refused:
                call()
            assert "s3://no-such-bucket-here/audit" in str(refused.value)

    def test_an_unreachable_store_is_an_archive_error(self, s3: S3Server) -> None:
        """A store that does not answer fails with an ArchiveError, not botocore's own exception."""
        closed = S3Server(f"http://127.0.0.1:{free_port()}")
        store = S3Archive("archive", "", closed.client(retries={"max_attempts": 1}, connect_timeout=2))
        with pytest.raises(ArchiveError, match="cannot write: EndpointConnectionError"):
            store.put_if_absent("a.json", DOCUMENT)

    @pytest.mark.parametrize(("bucket", "prefix"), [("Bad_Bucket", ""), ("ab", ""), ("archive", "a/../b")])
    def test_a_bad_bucket_or_prefix_is_refused(self, bucket: str, prefix: str) -> None:
        """The bucket must be an S3 bucket name and the prefix a key path, checked at construction."""
        with pytest.raises(ArchiveError, match=r"bucket name|prefix"):
            S3Archive(bucket, prefix, Conflicting(None, 0))


class TestOpenArchive:
    def test_a_file_url_opens_its_directory(self, tmp_path: Path) -> None:
        """file:///abs/path (percent-escapes decoded) is a DirectoryArchive at that path."""
        store = archive.open_archive(f"file://{tmp_path}/audit%20log")
        assert isinstance(store, DirectoryArchive)
        assert store.where == f"dir:{tmp_path}/audit log"
        store.put_if_absent("a.json", DOCUMENT)
        assert (tmp_path / "audit log" / "a.json").read_bytes() == DOCUMENT

    def test_a_plain_path_opens_its_directory(self, tmp_path: Path) -> None:
        """A filesystem path without a scheme is a DirectoryArchive there."""
        store = archive.open_archive(str(tmp_path / "audit"))
        assert isinstance(store, DirectoryArchive)
        assert store.where == f"dir:{tmp_path / 'audit'}"

    def test_an_s3_url_opens_the_bucket_at_its_endpoint_and_region(self, s3: S3Server) -> None:
        """s3://bucket/prefix?endpoint=...&region=... is an S3Archive there, with credentials from the
        environment."""
        bucket = s3.new_bucket()
        store = archive.open_archive(f"s3://{bucket}/audit/runs?endpoint={s3.endpoint}&region=eu-central-1")
        assert isinstance(store, S3Archive)
        assert store.where == f"s3://{bucket}/audit/runs"
        assert store._client.meta.region_name == "eu-central-1"  # the region a signature is scoped to
        store.put_if_absent("rel-1.json", DOCUMENT)
        assert S3Archive(bucket, "audit/runs", s3.client()).get("rel-1.json") == DOCUMENT

    @pytest.mark.parametrize(
        ("url", "allowed"),
        [
            (f"s3://AKIAEXAMPLE:{SECRET}@archive/audit", "default chain"),
            (f"s3://{SECRET}@archive/audit", "default chain"),
            (f"s3://archive/audit?aws_secret_access_key={SECRET}", "endpoint=URL and region=NAME"),
            (f"s3://archive/audit?{SECRET}", "endpoint=URL and region=NAME"),
            ("s3://archive/audit?region=eu-central-1&region=us-east-1", "each at most once"),
            (f"s3://archive/audit?endpoint=http://AKIA:{SECRET}@127.0.0.1:9000", "default chain"),
            (f"s3://archive/audit?endpoint=ftp://127.0.0.1/{SECRET}", "http(s)://host[:port]"),
            (f"s3://archive/audit?endpoint=http://127.0.0.1:9000/{SECRET}", "http(s)://host[:port]"),
            ("s3://archive/audit?region=EU%20Central", "eu-central-1"),
            (f"s3://archive/audit#{SECRET}", "no fragment"),
            ("s3://Archive_Bucket/audit", "bucket name"),
            (f"s3://archive/{SECRET}/../x", "no key path"),
            (f"gs://{SECRET}/audit", "file:///absolute/path, a filesystem path, or s3://bucket/prefix"),
            (f"file://host/{SECRET}", "file:///absolute/path"),
            (f"file:///srv/archive?{SECRET}", "file:///absolute/path"),
            ("  ", "file:///absolute/path, a filesystem path, or s3://bucket/prefix"),
        ],
    )
    def test_a_refused_url_says_what_is_allowed_without_repeating_it(self, url: str, allowed: str) -> None:
        """Credentials in the URL, unknown query parameters and unknown schemes are refused with what is
        allowed, and the message never contains the secret."""
        with pytest.raises(ArchiveError) as refused:
            archive.open_archive(url)
        assert allowed in str(refused.value)
        assert SECRET not in str(refused.value) and SECRET.lower() not in str(refused.value).lower()

    def test_without_boto3_an_s3_url_asks_for_the_s3_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Where boto3 is not installed, an s3:// URL is an ArchiveError naming the s3 extra."""
        monkeypatch.setitem(sys.modules, "boto3", None)
        with pytest.raises(ArchiveError, match=r"ringmaster\[s3\]"):
            archive.open_archive("s3://archive/audit")
