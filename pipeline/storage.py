"""Where a lake's bytes live (a local folder or an S3 prefix), and its one-writer lock.

The tables are Delta tables that delta-rs reads and writes through its own
object store (`delta_options()`). What is left to this module is small: the
`lake.json` marker, the spool that region tasks hand their rows to the
run's committer in (`<lake>/_spool/`, Parquet through pyarrow), the lock,
and making the tables' files readable by DuckDB.

Credentials for S3 are never frozen here: delta-rs and pyarrow each resolve
the standard AWS chain themselves (environment, profile, SSO, web identity,
instance role) and refresh what expires; boto3 does the same for the lease.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from .errors import ConfigError, LakeBusyError

S3_SCHEME = "s3://"
log = logging.getLogger("ssm_etl")


def is_s3(location: str | os.PathLike[str]) -> bool:
    return isinstance(location, str) and location.startswith(S3_SCHEME)


class Lease:
    """Proof that this run still holds the lake; checked before every commit."""

    def check(self) -> None:
        """Raise LakeBusyError if the lake may have passed to another run."""


class Storage:
    """File operations under one root; the subclasses supply what differs per medium.

    Paths are plain strings relative to the root, with `/` separators.
    """

    fs: pafs.FileSystem

    @staticmethod
    def from_location(
        location: str | os.PathLike[str], *, sse_kms_key_id: str | None = None
    ) -> Storage:
        """`s3://bucket/prefix` or a local path (`~` expanded, made absolute)."""
        if is_s3(location):
            return S3Storage(str(location), sse_kms_key_id=sse_kms_key_id)
        return LocalStorage(Path(location).expanduser().resolve())

    @property
    def location(self) -> str:
        """The root as a user writes it: a path, or an `s3://` URL."""
        raise NotImplementedError

    def uri(self, relative: str = "") -> str:
        """How delta-rs and DuckDB name `relative`: an absolute path or an `s3://` URL."""
        return self.location.rstrip("/") + ("/" + relative if relative else "")

    def _path(self, relative: str) -> str:
        """How this storage's pyarrow filesystem names `relative`."""
        raise NotImplementedError

    def fs_path(self, uri: str) -> str:
        """How this storage's pyarrow filesystem names a `uri()` (an `s3://` URL or a path)."""
        return uri.removeprefix(S3_SCHEME)

    def delta_options(self) -> dict[str, str]:
        """Storage options for delta-rs (none for a local folder)."""
        return {}

    def register(self, con: Any) -> None:
        """Make `uri()`s readable on a DuckDB connection (nothing to do locally)."""

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self._path(relative)).type != pafs.FileType.NotFound

    def read_text(self, relative: str) -> str:
        with self.fs.open_input_stream(self._path(relative)) as stream:
            return bytes(stream.read()).decode()

    def write_text(self, relative: str, text: str) -> None:
        raise NotImplementedError

    def files(self, relative: str) -> list[str]:
        """Every file below `relative` (relative to the root), sorted; none if it is missing."""
        base = self._path(relative)
        selector = pafs.FileSelector(base, allow_not_found=True, recursive=True)
        prefix = self._path("")
        return sorted(
            info.path[len(prefix) :].lstrip("/")
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        )

    def put_file(self, local: Path, relative: str) -> None:
        """Move a finished local file to `relative` (the spool's hand-over)."""
        raise NotImplementedError

    def read_parquet(self, relatives: list[str]) -> pa.Table:
        return pq.ParquetDataset([self._path(r) for r in relatives], filesystem=self.fs).read()

    def delete_tree(self, relative: str) -> None:
        raise NotImplementedError

    @contextmanager
    def lock(self) -> Iterator[Lease]:
        """Hold the lake for one writer; raise LakeBusyError if another holds it."""
        raise NotImplementedError
        yield  # pragma: no cover


class LocalStorage(Storage):
    """A lake folder: atomic renames and an flock."""

    def __init__(self, root: Path) -> None:
        self.fs = pafs.LocalFileSystem()
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, relative: str) -> str:
        return str(self.root / relative) if relative else str(self.root)

    def write_text(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def put_file(self, local: Path, relative: str) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(local, target)

    def delete_tree(self, relative: str) -> None:
        shutil.rmtree(self.root / relative, ignore_errors=True)

    @contextmanager
    def lock(self) -> Iterator[Lease]:
        """An flock on `<lake>/.lock`: the kernel drops it when the process dies."""
        handle = open(self.root / ".lock", "a+")  # noqa: SIM115 (held for the block)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LakeBusyError(f"another ssm-etl run holds the lake {self.root}") from None
            yield Lease()
        finally:
            handle.close()


LEASE_SECONDS = 600.0
"""How long a lease lasts without renewal; the holder renews it every third of that."""
LEASE_MARGIN = 60.0
"""A holder stops committing this long before its lease could have expired."""


def s3_endpoint() -> str | None:
    """The S3 endpoint the standard variables name, if any (`AWS_ENDPOINT_URL_S3` first)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


class S3Storage(Storage):
    """A lake under `s3://bucket/prefix`.

    The spool goes through pyarrow's S3FileSystem, `lake.json` and the lease
    through boto3 (which sends the SSE-KMS headers), the tables through
    delta-rs. All three honour `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`)
    and resolve credentials from the standard chain themselves.
    """

    def __init__(self, location: str, sse_kms_key_id: str | None = None) -> None:
        import boto3  # only S3 lakes need it here

        parsed = urlsplit(location)
        bucket, prefix = parsed.netloc, parsed.path.strip("/")
        if not bucket or parsed.query or parsed.fragment:
            raise ConfigError(f"not an S3 lake URL (want s3://bucket/prefix): {location}")
        self.bucket, self.prefix = bucket, prefix
        self.sse_kms_key_id = sse_kms_key_id
        session = boto3.Session()
        self.region = session.region_name or "us-east-1"
        self.endpoint = s3_endpoint()
        self.client = session.client("s3", endpoint_url=self.endpoint)
        self.fs = pafs.S3FileSystem(
            region=self.region,
            endpoint_override=self.endpoint,
            scheme=urlsplit(self.endpoint).scheme if self.endpoint else None,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its location (Dask workers): each process resolves its own credentials."""
        return (S3Storage, (self.location, self.sse_kms_key_id))

    @property
    def location(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}" if self.prefix else S3_SCHEME + self.bucket

    def _path(self, relative: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, relative) if p)

    def key(self, relative: str) -> str:
        return "/".join(p for p in (self.prefix, relative) if p)

    def delta_options(self) -> dict[str, str]:
        options = {"AWS_REGION": self.region}
        if self.endpoint:
            options["AWS_ENDPOINT_URL"] = self.endpoint
            if self.endpoint.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if self.sse_kms_key_id:
            options["AWS_SERVER_SIDE_ENCRYPTION"] = "aws:kms"
            options["AWS_SSE_KMS_KEY_ID"] = self.sse_kms_key_id
        return options

    def register(self, con: Any) -> None:
        from fsspec.implementations.arrow import ArrowFSWrapper

        class LakeS3(ArrowFSWrapper):  # type: ignore[misc]
            """`s3://` for DuckDB (its httpfs extension is not needed)."""

            protocol = "s3"
            cachable = False

        con.register_filesystem(LakeS3(self.fs))
        con.execute("SET parquet_metadata_cache = true")  # Delta never rewrites a data file

    def _encryption(self) -> dict[str, str]:
        if self.sse_kms_key_id is None:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.sse_kms_key_id}

    def write_text(self, relative: str, text: str, **conditions: str) -> Any:
        return self.client.put_object(
            Bucket=self.bucket,
            Key=self.key(relative),
            Body=text.encode(),
            ContentType="application/json",
            **self._encryption(),
            **conditions,
        )

    def put_file(self, local: Path, relative: str) -> None:
        """An upload (multipart when large) that sends the SSE-KMS headers too."""
        self.client.upload_file(
            str(local), self.bucket, self.key(relative), ExtraArgs=self._encryption() or None
        )
        local.unlink()

    def delete_tree(self, relative: str) -> None:
        keys = [{"Key": self.key(f)} for f in self.files(relative)]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
            )

    @contextmanager
    def lock(self) -> Iterator[Lease]:
        """A fenced lease object, `<lake>/_lock.json`.

        S3 has no flock. The lease names its owner and an expiry and is
        created and taken over with S3's conditional writes (If-None-Match /
        If-Match), so two runs starting together cannot both win. The holder
        renews it with If-Match on the ETag it last wrote: a renewal that
        finds another writer's lease fails, and from then on `Lease.check()`
        (called before every commit) refuses, as it does once the lease may
        have expired. A run that dies without cleaning up blocks the lake until
        its lease expires (`LEASE_SECONDS`).
        """
        lease = _S3Lease(self)
        lease.acquire()
        try:
            yield lease
        finally:
            lease.release()

    def lease_document(self) -> tuple[dict[str, Any], str] | None:
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=self.key("_lock.json"))
        except self.client.exceptions.NoSuchKey:
            return None
        return json.loads(found["Body"].read()), found["ETag"]


class _S3Lease(Lease):
    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.etag = ""
        self.valid_until = 0.0
        self.lost: str | None = None
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, daemon=True, name="lease")

    def _busy(self) -> LakeBusyError:
        return LakeBusyError(f"another ssm-etl run holds the lake {self.storage.location}")

    def acquire(self) -> None:
        current = self.storage.lease_document()
        if current is None:
            condition = {"IfNoneMatch": "*"}
        elif current[0].get("expires", 0) > time.time():
            raise self._busy()
        else:
            condition = {"IfMatch": current[1]}
        if not self._write(condition):
            raise self._busy()
        self._renewer.start()

    def _write(self, condition: dict[str, str]) -> bool:
        started = time.monotonic()
        document = {"owner": self.owner, "expires": time.time() + LEASE_SECONDS}
        try:
            answer = self.storage.write_text("_lock.json", json.dumps(document), **condition)
        except self.storage.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        self.etag = answer["ETag"]
        self.valid_until = started + LEASE_SECONDS - LEASE_MARGIN
        return True

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3) and self.lost is None:
            try:
                self.renew()
            except Exception as exc:  # the next renewal may succeed; check() judges the time
                log.warning("could not renew the lease on %s: %s", self.storage.location, exc)

    def renew(self) -> None:
        """Extend the lease, if it is still ours (If-Match on the ETag we last wrote)."""
        if not self._write({"IfMatch": self.etag}):
            self.lost = "another run took the lease over"

    def check(self) -> None:
        if self.lost or time.monotonic() > self.valid_until:
            reason = self.lost or "the lease could not be renewed in time"
            raise LakeBusyError(f"lost the lease on {self.storage.location}: {reason}")

    def release(self) -> None:
        self._stop.set()
        if self._renewer.is_alive():
            self._renewer.join()
        current = self.storage.lease_document()
        if current is not None and current[0].get("owner") == self.owner:
            self.storage.client.delete_object(
                Bucket=self.storage.bucket, Key=self.storage.key("_lock.json")
            )
