"""Where a lake's bytes live: a local folder or an S3 prefix, behind one small interface.

Every file operation of the lake goes through a `Storage`: a
`pyarrow.fs.FileSystem` plus the lake's root, as a path that filesystem
understands (`/abs/lake` locally, `bucket/prefix` on S3). Paths handed in
and out are full paths under that root, so the lake's code joins them like
any `pathlib` path.

The two differ only where the medium does:

- A local move is an atomic `os.replace`; the lock is an `flock`.
- S3 has no rename, but a PUT is atomic (a reader sees the whole object or
  none of it), so a "move" is a server-side copy to the final key followed by
  a delete of the staged one. Final keys are unique, so a copy never replaces
  an object a reader may hold. The lock is a best-effort lease (see
  `S3Storage.lock`).
- S3 credentials come from boto3's standard chain only, the endpoint from
  `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` (pyarrow does not read those).
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
from pathlib import Path, PurePath, PurePosixPath
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


class Storage:
    """File operations under one root; subclasses supply what differs per medium."""

    fs: pafs.FileSystem
    root: PurePath

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
        return str(self.root)

    def url(self, path: PurePath) -> str:
        """How DuckDB names `path` (a glob is fine)."""
        return str(path)

    def register(self, con: Any) -> None:
        """Make `url()`s readable on a DuckDB connection (nothing to do locally)."""

    # Reading
    def exists(self, path: PurePath) -> bool:
        return self.fs.get_file_info(str(path)).type != pafs.FileType.NotFound

    def is_file(self, path: PurePath) -> bool:
        return self.fs.get_file_info(str(path)).type == pafs.FileType.File

    def read_text(self, path: PurePath) -> str:
        with self.fs.open_input_stream(str(path)) as stream:
            return bytes(stream.read()).decode()

    def read_parquet(self, path: PurePath, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(str(path), columns=columns, filesystem=self.fs)

    def files(self, directory: PurePath) -> list[PurePath]:
        """The files directly inside `directory`, sorted; none if it does not exist."""
        return self._list(directory, recursive=False)

    def walk(self, directory: PurePath) -> list[PurePath]:
        """Every file below `directory`, sorted."""
        return self._list(directory, recursive=True)

    def dirs(self, directory: PurePath) -> list[PurePath]:
        """The folders (S3: common prefixes) directly inside `directory`, sorted."""
        return self._list(directory, recursive=False, kind=pafs.FileType.Directory)

    def _list(
        self, directory: PurePath, *, recursive: bool, kind: pafs.FileType = pafs.FileType.File
    ) -> list[PurePath]:
        selector = pafs.FileSelector(str(directory), allow_not_found=True, recursive=recursive)
        infos = self.fs.get_file_info(selector)
        return sorted(type(self.root)(i.path) for i in infos if i.type == kind)

    # Writing
    def write_text(self, path: PurePath, text: str) -> None:
        raise NotImplementedError

    def parquet_writer(self, path: PurePath, schema: pa.Schema, **options: Any) -> pq.ParquetWriter:
        """A streaming writer; only ever pointed at a staged path."""
        self._ensure_parent(path)
        return pq.ParquetWriter(str(path), schema, filesystem=self.fs, **options)

    def write_parquet(self, path: PurePath, table: pa.Table, **options: Any) -> None:
        self._ensure_parent(path)
        pq.write_table(table, str(path), filesystem=self.fs, **options)

    def _ensure_parent(self, path: PurePath) -> None:
        """Directories exist locally; S3 has none to create."""

    def move(self, source: PurePath, target: PurePath) -> None:
        raise NotImplementedError

    def delete(self, path: PurePath) -> None:
        """Remove a file if it is there."""
        raise NotImplementedError

    def delete_tree(self, directory: PurePath) -> None:
        raise NotImplementedError

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the lake for one writer; raise LakeBusyError if another holds it."""
        raise NotImplementedError
        yield  # pragma: no cover


class LocalStorage(Storage):
    """A lake folder: atomic renames and an flock, exactly as before S3 existed."""

    def __init__(self, root: Path) -> None:
        self.fs = pafs.LocalFileSystem()
        self.root = root

    def files(self, directory: PurePath) -> list[PurePath]:
        return sorted(p for p in Path(directory).glob("*") if p.is_file())

    def write_text(self, path: PurePath, text: str) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _ensure_parent(self, path: PurePath) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    def move(self, source: PurePath, target: PurePath) -> None:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def delete(self, path: PurePath) -> None:
        Path(path).unlink(missing_ok=True)

    def delete_tree(self, directory: PurePath) -> None:
        shutil.rmtree(directory, ignore_errors=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """An flock on `<lake>/.lock`: the kernel drops it when the process dies."""
        handle = open(Path(self.root) / ".lock", "a+")  # noqa: SIM115 (held for the block)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LakeBusyError(f"another ssm-etl run holds the lake {self.root}") from None
            yield
        finally:
            handle.close()


LEASE_SECONDS = 600.0
"""How long a lease lasts without renewal; the holder renews it every third of that."""


class S3Storage(Storage):
    """A lake under `s3://bucket/prefix`.

    Reads and Parquet streams go through pyarrow's S3FileSystem; puts, copies,
    deletes and the lease go through boto3, which can send the SSE-KMS headers
    pyarrow cannot, and never leaves the empty "directory" marker objects
    pyarrow writes when a prefix empties.
    """

    def __init__(self, location: str, sse_kms_key_id: str | None = None) -> None:
        import boto3  # only S3 lakes need it

        parsed = urlsplit(location)
        bucket, prefix = parsed.netloc, parsed.path.strip("/")
        if not bucket or parsed.query or parsed.fragment:
            raise ConfigError(f"not an S3 lake URL (want s3://bucket/prefix): {location}")
        self.bucket = bucket
        self.root = PurePosixPath(bucket, prefix) if prefix else PurePosixPath(bucket)
        self.sse_kms_key_id = sse_kms_key_id
        session = boto3.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigError("no AWS credentials found for the S3 lake (boto3's standard chain)")
        frozen = credentials.get_frozen_credentials()
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self.client = session.client("s3", endpoint_url=endpoint)
        self.fs = pafs.S3FileSystem(
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            session_token=frozen.token,
            region=session.region_name or "us-east-1",
            endpoint_override=endpoint,
            scheme=urlsplit(endpoint).scheme if endpoint else None,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its location (Dask workers): credentials come from each process's chain."""
        return (S3Storage, (self.location, self.sse_kms_key_id))

    @property
    def location(self) -> str:
        return S3_SCHEME + str(self.root)

    def url(self, path: PurePath) -> str:
        return S3_SCHEME + str(path)

    def register(self, con: Any) -> None:
        con.register_filesystem(_duckdb_filesystem(self.fs))
        con.execute("SET parquet_metadata_cache = true")  # keys are never rewritten

    def _key(self, path: PurePath) -> str:
        relative = PurePosixPath(path).relative_to(self.bucket)
        return str(relative)

    def _encryption(self) -> dict[str, str]:
        if self.sse_kms_key_id is None:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.sse_kms_key_id}

    def write_text(self, path: PurePath, text: str, **conditions: str) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._key(path),
            Body=text.encode(),
            ContentType="application/json",
            **self._encryption(),
            **conditions,
        )

    def move(self, source: PurePath, target: PurePath) -> None:
        """Server-side copy to the (unique) final key, then drop the staged object."""
        self.client.copy_object(
            Bucket=self.bucket,
            Key=self._key(target),
            CopySource={"Bucket": self.bucket, "Key": self._key(source)},
            **self._encryption(),
        )
        self.delete(source)

    def delete(self, path: PurePath) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(path))

    def delete_tree(self, directory: PurePath) -> None:
        keys = [{"Key": self._key(p)} for p in self.walk(directory)]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
            )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """A lease object, `<lake>/_lock.json`: best effort, not a real lock.

        S3 has no flock. The lease names its owner and an expiry; a run refuses
        a lake whose lease is held by another owner and not expired, renews its
        own lease in the background, and deletes it on exit. Creation and
        takeover use S3's conditional writes (If-None-Match / If-Match), so two
        runs starting together cannot both win on AWS S3.

        Limits: a run that dies without cleaning up (kill -9, lost machine)
        blocks the lake until its lease expires (`LEASE_SECONDS`); expiry is
        judged by the clocks of the machines involved, so a badly skewed clock
        can take over a live lease; a process paused longer than the lease
        (suspended VM) can wake up and write alongside a new holder; and a
        server that ignores conditional writes degrades to read-check-write.
        """
        path = self.root / "_lock.json"
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._acquire(path, owner)
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(path, owner, stop), daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            current = self._lease(path)
            if current is not None and current[0].get("owner") == owner:
                self.delete(path)

    def _lease(self, path: PurePath) -> tuple[dict[str, Any], str] | None:
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=self._key(path))
        except self.client.exceptions.NoSuchKey:
            return None
        return json.loads(found["Body"].read()), found["ETag"]

    def _acquire(self, path: PurePath, owner: str) -> None:
        busy = LakeBusyError(f"another ssm-etl run holds the lake {self.location}")
        current = self._lease(path)
        if current is None:
            condition = {"IfNoneMatch": "*"}
        elif current[0].get("expires", 0) > time.time():
            raise busy
        else:
            condition = {"IfMatch": current[1]}
        try:
            self._write_lease(path, owner, condition)
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise busy from None
            raise
        confirmed = self._lease(path)
        if confirmed is None or confirmed[0].get("owner") != owner:
            raise busy

    def _write_lease(self, path: PurePath, owner: str, condition: dict[str, str]) -> None:
        lease = {"owner": owner, "expires": time.time() + LEASE_SECONDS}
        self.write_text(path, json.dumps(lease), **condition)

    def _renew(self, path: PurePath, owner: str, stop: threading.Event) -> None:
        while not stop.wait(LEASE_SECONDS / 3):
            try:
                self._write_lease(path, owner, {})
            except Exception as exc:  # the run goes on; the next renewal may succeed
                log.warning("could not renew the lease on %s: %s", self.location, exc)


def _duckdb_filesystem(s3: pafs.S3FileSystem) -> Any:
    """`s3://` for DuckDB (no httpfs here): an fsspec wrapper over the lake's own S3FileSystem.

    fsspec's generic glob lists one "directory" per request; a view's glob is
    answered here with one recursive listing instead, and the sizes and times
    it returns are kept for DuckDB's per-file checks. Keeping them is safe
    because the lake never rewrites a Parquet key: every file gets a new,
    unique name, and a deleted one fails on open as it would anyway.
    """
    from fsspec.implementations.arrow import ArrowFSWrapper

    class LakeS3(ArrowFSWrapper):  # type: ignore[misc]
        protocol = "s3"
        cachable = False

        def __init__(self, fs: pafs.FileSystem) -> None:
            super().__init__(fs)
            self.known: dict[str, dict[str, Any]] = {}

        def find(
            self,
            path: str,
            maxdepth: int | None = None,
            withdirs: bool = False,
            detail: bool = False,
            **kwargs: Any,
        ) -> Any:
            base = self._strip_protocol(path).rstrip("/")
            selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
            found = {}
            for info in self.fs.get_file_info(selector):
                depth = info.path.count("/") - base.count("/")
                is_dir = info.type == pafs.FileType.Directory
                if (maxdepth is not None and depth > maxdepth) or (is_dir and not withdirs):
                    continue
                entry = self._make_entry(info)
                if info.path.endswith(".parquet"):
                    self.known[info.path] = entry
                found[info.path] = entry
            names = sorted(found)
            return {n: found[n] for n in names} if detail else names

        def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
            known = self.known.get(self._strip_protocol(path))
            return known if known is not None else super().info(path, **kwargs)

        def modified(self, path: str) -> Any:
            return self.info(path)["mtime"]

    return LakeS3(s3)
