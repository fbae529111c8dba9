"""The audit archive's object store: one document per key, written once and never overwritten.

At the end of a release run an activity writes the run's audit record here, and the CLI reads it back;
both reach the same store through :func:`open_archive`, from a URL in their settings. An
:class:`ArchiveStore` offers only what write-once needs: :meth:`~ArchiveStore.put_if_absent`
(atomic: a reader sees the whole document or none), :meth:`~ArchiveStore.get` and
:meth:`~ArchiveStore.keys`. Two stores implement it:

- :class:`DirectoryArchive` (the local sandbox, a shared volume): the document is written and fsynced
  under a temporary name beside its target, then hard-linked to its key, which fails if the key exists;
- :class:`S3Archive` (production, or any S3-compatible store): a conditional ``PutObject``
  (``If-None-Match: *``), which S3 refuses with 412 when the key exists.

Keys are checked alike by both stores (:func:`check_key`), so a key that works in the sandbox works in
S3. Every failure is an :class:`ArchiveError` naming the store and the key; a refused second write is
:class:`AlreadyArchived`. Credentials never appear in a URL, a location or a message: S3 credentials
come from boto3's default chain (environment, profile, instance role), and boto3 is imported only for
an ``s3://`` store, so ringmaster runs without the ``s3`` extra.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from policies import hosts

CONTENT_TYPE = "application/json"
"""What every S3 object is written as: the archive holds one JSON document per key."""
KEY_RULE = (
    "a relative, '/'-separated path of segments made of A-Z a-z 0-9 . _ : @ + = -"
    " (no empty, '.' or '..' segment; at most 255 characters a segment and 1024 a key)"
)
"""What a key may be, as a refused key's message says it."""
MAX_KEY_LENGTH = 1024
"""S3's limit on a key, in bytes (keys are ASCII here)."""
MAX_SEGMENT_LENGTH = 255
"""A file name's limit on most filesystems."""
URL_FORMS = "file:///absolute/path, a filesystem path, or s3://bucket/prefix?endpoint=URL&region=NAME"
"""The archive locations :func:`open_archive` accepts, as its refusals say."""
S3_PARAMETERS = ("endpoint", "region")
"""The only query parameters of an ``s3://`` URL: credentials come from boto3's default chain."""
CONFLICT_RETRIES = 4
"""Retries of a write S3 answered 409 ConditionalRequestConflict (another write of the key in flight)."""
CONFLICT_BACKOFF_SECONDS = 0.05
"""The first wait before such a retry; each later one doubles."""
PAGE_SIZE = 1000
"""Keys per ``ListObjectsV2`` page (S3's most)."""

_SEGMENT = re.compile(r"[A-Za-z0-9._:@+=-]+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TEMP_MARK = "~tmp"
"""Ends a temporary file's name; ``~`` is no key character, so :meth:`DirectoryArchive.keys` skips it."""


class ArchiveError(Exception):
    """The archive could not do what was asked: the message names the store and the key, never a
    credential."""

    def __init__(self, problem: str, *, where: str | None = None, key: str | None = None) -> None:
        place = f"archive {where}" if where else "archive"
        if key is not None:
            place += f", key {hosts.shown(key)}"
        super().__init__(f"{place}: {problem}")
        self.where = where
        self.key = key


class AlreadyArchived(ArchiveError):
    """The key already holds a document, which is left as it was."""

    def __init__(self, where: str, key: str) -> None:
        super().__init__("already archived; an archived document is never overwritten", where=where, key=key)
        self.key: str = key


class ArchiveStore(Protocol):
    """Where audit records are kept: written once per key, read back, listed."""

    @property
    def where(self) -> str:
        """The store's location for people and logs (``dir:/path``, ``s3://bucket/prefix``)."""
        ...

    def put_if_absent(self, key: str, body: bytes) -> None:
        """Store ``body`` at ``key``, whole or not at all; AlreadyArchived if the key holds a document.

        After a write whose answer was lost and retried, AlreadyArchived may name this very document:
        a caller that must know compares :meth:`get` with what it wrote.
        """
        ...

    def get(self, key: str) -> bytes | None:
        """The document at ``key``; None when there is none."""
        ...

    def keys(self, prefix: str = "") -> list[str]:
        """Every key that starts with ``prefix`` (plain text, not only whole segments), sorted."""
        ...


def _key_problem(key: str) -> str | None:
    if not key:
        return "a key must not be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"a key must be at most {MAX_KEY_LENGTH} characters"
    for segment in key.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            return f"a key must be {KEY_RULE}"
        if len(segment) > MAX_SEGMENT_LENGTH:
            return f"a key's segment must be at most {MAX_SEGMENT_LENGTH} characters"
    return None


def check_key(key: str, where: str | None = None) -> str:
    """``key`` when it is a valid archive key (:data:`KEY_RULE`); ArchiveError saying why not."""
    problem = _key_problem(key)
    if problem is not None:
        raise ArchiveError(problem, where=where, key=key)
    return key


class DirectoryArchive:
    """An archive in a directory: one file per key, its segments the path under ``root``."""

    def __init__(self, root: Path) -> None:
        self._root = Path(os.path.abspath(root))

    @property
    def where(self) -> str:
        """``dir:`` and the absolute directory."""
        return f"dir:{self._root}"

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*check_key(key, self.where).split("/"))

    def put_if_absent(self, key: str, body: bytes) -> None:
        """Write ``body`` to a temporary file beside the key's, fsync it, then hard-link it to the key:
        the link is atomic and fails if the key exists, so exactly one of concurrent writers wins."""
        final = self._path(key)
        temp = final.with_name(f".{secrets.token_hex(8)}{_TEMP_MARK}")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as err:
            raise ArchiveError(f"cannot write: {err.strerror or err}", where=self.where, key=key) from err
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temp, final)
            except FileExistsError:
                if final.is_dir():
                    raise ArchiveError(
                        "the key is a directory of other keys", where=self.where, key=key
                    ) from None
                raise AlreadyArchived(self.where, key) from None
            _fsync_directory(final.parent)
        except OSError as err:
            raise ArchiveError(f"cannot write: {err.strerror or err}", where=self.where, key=key) from err
        finally:
            temp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes | None:
        """The file's bytes; None when there is no such file."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as err:
            raise ArchiveError(f"cannot read: {err.strerror or err}", where=self.where, key=key) from err

    def keys(self, prefix: str = "") -> list[str]:
        """The keys of the files under the root (the directory of ``prefix`` only, when it names one);
        files whose names are no keys (a crashed writer's temporary file) are not listed."""
        start = self._root
        folder = prefix.rpartition("/")[0]
        if folder and _key_problem(folder) is None:
            start = self._root.joinpath(*folder.split("/"))
        if not start.is_dir():
            return []
        found: list[str] = []
        try:
            for directory, _, files in os.walk(start, onerror=_unless_vanished):
                relative = Path(directory).relative_to(self._root).as_posix()
                for name in files:
                    key = name if relative == "." else f"{relative}/{name}"
                    if key.startswith(prefix) and _key_problem(key) is None:
                        found.append(key)
        except OSError as err:
            raise ArchiveError(f"cannot list: {err.strerror or err}", where=self.where) from err
        return sorted(found)


def _unless_vanished(err: OSError) -> None:
    """A directory that cannot be listed fails the listing, unless it was removed meanwhile."""
    if not isinstance(err, FileNotFoundError):
        raise err


def _fsync_directory(path: Path) -> None:
    """Make a new link in ``path`` durable, as the document's own fsync does not."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Client(Protocol):
    """The calls of boto3's S3 client the archive makes (keyword names are boto3's)."""

    def put_object(
        self,
        *,
        Bucket: str,  # noqa: N803 - boto3's names
        Key: str,  # noqa: N803
        Body: bytes,  # noqa: N803
        ContentType: str,  # noqa: N803
        IfNoneMatch: str,  # noqa: N803
    ) -> Mapping[str, Any]:
        """Store an object, unless ``IfNoneMatch="*"`` and the key exists (412 PreconditionFailed)."""
        ...

    def get_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]:  # noqa: N803
        """The object, its bytes in ``["Body"].read()``; NoSuchKey when there is none."""
        ...

    def list_objects_v2(self, **kwargs: Any) -> Mapping[str, Any]:
        """One page of keys (``Bucket``, ``Prefix``, ``MaxKeys``, ``ContinuationToken``)."""
        ...


def _botocore_errors() -> tuple[type[Exception], ...]:
    """What a boto3 client raises: ``ClientError`` (the store answered an error) and ``BotoCoreError``
    (no answer, no credentials); nothing, for a client without botocore."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - the s3 extra
    except ImportError:
        return ()
    return ClientError, BotoCoreError


def _s3_error(err: Exception) -> tuple[str, str]:
    """The code and message of a botocore ``ClientError``; the class name and text of anything else."""
    response: Mapping[str, Any] = getattr(err, "response", None) or {}
    error: Mapping[str, Any] = response.get("Error") or {}
    code = str(error.get("Code") or type(err).__name__)
    return code, str(error.get("Message") or err)


def _s3_prefix(bucket: str, prefix: str) -> str:
    """``prefix`` without its outer slashes, once ``bucket`` is a bucket name and ``prefix`` a key path;
    ArchiveError saying which is not (repeating neither)."""
    if not _BUCKET.fullmatch(bucket):
        raise ArchiveError("a bucket name is 3-63 characters of a-z 0-9 . - (starting and ending alike)")
    prefix = prefix.strip("/")
    problem = _key_problem(prefix) if prefix else None
    if problem is not None:
        raise ArchiveError(f"the prefix is no key path: {problem}")
    return prefix


class S3Archive:
    """An archive in an S3 bucket, every key under ``prefix`` (joined with ``/``)."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: S3Client,
        *,
        conflict_retries: int = CONFLICT_RETRIES,
        backoff_seconds: float = CONFLICT_BACKOFF_SECONDS,
        page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._bucket = bucket
        self._prefix = _s3_prefix(bucket, prefix)
        self._client = client
        self._conflict_retries = conflict_retries
        self._backoff_seconds = backoff_seconds
        self._page_size = page_size
        self._sleep = sleep
        self._errors = _botocore_errors()

    @property
    def where(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self._bucket}/{self._prefix}" if self._prefix else f"s3://{self._bucket}"

    def _object_key(self, key: str) -> str:
        return f"{self._prefix}/{key}" if self._prefix else key

    def put_if_absent(self, key: str, body: bytes) -> None:
        """A conditional PutObject: 412 means the key holds a document; 409 (a concurrent conditional
        write in flight) is retried with a doubling wait, as S3 asks."""
        object_key = self._object_key(check_key(key, self.where))
        for attempt in range(self._conflict_retries + 1):
            try:
                self._client.put_object(
                    Bucket=self._bucket, Key=object_key, Body=body, ContentType=CONTENT_TYPE, IfNoneMatch="*"
                )
            except self._errors as err:
                code, message = _s3_error(err)
                if code == "PreconditionFailed":
                    raise AlreadyArchived(self.where, key) from None
                if code != "ConditionalRequestConflict":
                    raise ArchiveError(f"cannot write: {code}: {message}", where=self.where, key=key) from err
                if attempt < self._conflict_retries:
                    self._sleep(self._backoff_seconds * 2**attempt)
            else:
                return
        raise ArchiveError(
            f"cannot write: ConditionalRequestConflict {self._conflict_retries + 1} times"
            " (other writes of this key kept conflicting)",
            where=self.where,
            key=key,
        )

    def get(self, key: str) -> bytes | None:
        """The object's bytes; None on NoSuchKey."""
        object_key = self._object_key(check_key(key, self.where))
        try:
            body: bytes = self._client.get_object(Bucket=self._bucket, Key=object_key)["Body"].read()
        except self._errors as err:
            code, message = _s3_error(err)
            if code == "NoSuchKey":
                return None
            raise ArchiveError(f"cannot read: {code}: {message}", where=self.where, key=key) from err
        return body

    def keys(self, prefix: str = "") -> list[str]:
        """Every page of ListObjectsV2 under the store's prefix; objects whose names are no keys (put
        there by something else) are not listed."""
        base = f"{self._prefix}/" if self._prefix else ""
        request: dict[str, Any] = {
            "Bucket": self._bucket,
            "Prefix": base + prefix,
            "MaxKeys": self._page_size,
        }
        found: list[str] = []
        try:
            while True:
                page = self._client.list_objects_v2(**request)
                for entry in page.get("Contents", []):
                    key = str(entry["Key"]).removeprefix(base)
                    if _key_problem(key) is None:
                        found.append(key)
                if not page.get("IsTruncated"):
                    break
                request["ContinuationToken"] = page["NextContinuationToken"]
        except self._errors as err:
            code, message = _s3_error(err)
            raise ArchiveError(f"cannot list: {code}: {message}", where=self.where) from err
        return sorted(found)


def open_archive(url: str) -> ArchiveStore:
    """The store at ``url`` (:data:`URL_FORMS`); ArchiveError saying what is allowed, without repeating
    the URL (it may carry a credential)."""
    text = url.strip()
    if not text:
        raise ArchiveError(f"no location: write {URL_FORMS}")
    if "://" not in text:
        return DirectoryArchive(Path(text))
    scheme = text.partition("://")[0].lower()
    if scheme == "file":
        return DirectoryArchive(_file_path(text))
    if scheme == "s3":
        return _open_s3(text)
    raise ArchiveError(f"the location must be {URL_FORMS}")


def _file_path(text: str) -> Path:
    split = urlsplit(text)
    if split.netloc not in ("", "localhost") or split.query or split.fragment or not split.path:
        raise ArchiveError("a file URL is file:///absolute/path (no host, query or fragment)")
    return Path(unquote(split.path))


def _open_s3(text: str) -> S3Archive:
    try:
        split = urlsplit(text)
    except ValueError:
        raise ArchiveError(f"not a URL: write {URL_FORMS}") from None
    if "@" in split.netloc:
        raise ArchiveError(
            "an s3:// URL carries no credentials: they come from boto3's default chain (environment,"
            " profile, instance role); write s3://bucket/prefix?endpoint=URL&region=NAME"
        )
    if split.fragment:
        raise ArchiveError("an s3:// URL has no fragment: write s3://bucket/prefix?endpoint=URL&region=NAME")
    parameters = parse_qsl(split.query, keep_blank_values=True)
    names = [name for name, _ in parameters]
    if len(set(names)) != len(names) or not set(names) <= set(S3_PARAMETERS):
        raise ArchiveError(
            "an s3:// URL's only query parameters are endpoint=URL and region=NAME, each at most once"
            " (credentials come from boto3's default chain: environment, profile, instance role)"
        )
    options = dict(parameters)
    endpoint = _endpoint(options["endpoint"]) if "endpoint" in options else None
    region = options.get("region")
    if region is not None and not (len(region) <= 32 and _REGION.fullmatch(region)):
        raise ArchiveError("region=NAME is a region name such as eu-central-1")
    _s3_prefix(split.netloc, split.path)  # refused before boto3 is asked for a client
    return S3Archive(split.netloc, split.path, _boto3_client(endpoint, region))


def _endpoint(text: str) -> str:
    """The endpoint a client connects to, rebuilt from its parsed parts (``policies.hosts``)."""
    try:
        url = hosts.parse_url(text, schemes=("http", "https"))
    except ValueError as err:
        raise ArchiveError(f"endpoint=URL is http(s)://host[:port]: {err}") from None
    if url.username is not None or url.password is not None:
        raise ArchiveError(
            "endpoint=URL carries no credentials: they come from boto3's default chain (environment,"
            " profile, instance role)"
        )
    if url.path not in ("", "/"):
        raise ArchiveError("endpoint=URL is http(s)://host[:port], without a path or query")
    return url.connect_form().rstrip("/")


def _boto3_client(endpoint: str | None, region: str | None) -> S3Client:
    """boto3's S3 client; path-style addressing at an explicit endpoint, as S3-compatible stores
    (MinIO, Ceph) serve buckets under the path rather than as host names."""
    try:
        import boto3  # noqa: PLC0415 - the s3 extra: a directory archive needs no boto3
        from botocore.config import Config  # noqa: PLC0415
    except ImportError:
        raise ArchiveError(
            "an s3:// archive needs boto3: install ringmaster with the s3 extra (ringmaster[s3])"
        ) from None
    config = Config(s3={"addressing_style": "path"}) if endpoint else None
    client: S3Client = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)
    return client
