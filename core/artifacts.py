"""Where finished images live: a local directory (default) or an S3-compatible bucket.

One setting, `artifacts_url`, decides.  Empty: `<artifacts_dir>/<compose id>/<file>` on this
machine, which is all a single host needs.  `s3://bucket/prefix`: objects
`<prefix>/<compose id>/<file>` in a bucket every machine reaches, so a build worker on one host
hands its image to the API and the upload workers on others without a shared file system.

Everything streams: `put` uploads a file in parts (boto3's multipart transfer), `read` yields
chunks of a byte range (what `compose/image` answers an HTTP Range request with), `fetch` gives
an uploader a local file (the file itself for a directory store, a download into the worker's
cache directory for a bucket).  The bucket's credentials are `artifacts_access_key`/`_secret_key`
when set, else boto3's usual places.  A store that cannot be reached raises `ArtifactsUnavailable`,
a Weldr error naming it.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from core.errors import WeldrError

CHUNK = 1 << 20


class ArtifactsUnavailable(WeldrError):
    """The artifact store cannot be read or written (bucket unreachable, credentials refused)."""

    def __init__(self, where: str, reason: str):
        super().__init__("ArtifactsError", f"the artifact store {where} cannot be used: {reason}", 503)


class Artifacts(Protocol):
    name: str

    def put(self, compose_id: str, filename: str, path: Path) -> int:
        """Store the local file `path` as the compose's `filename`; returns its size.  The local
        file may be moved away (a directory store renames it into place)."""
        ...

    def size(self, compose_id: str, filename: str) -> int:
        """Bytes of a stored file; FileNotFoundError when there is none."""
        ...

    def read(self, compose_id: str, filename: str, start: int = 0, end: int | None = None
             ) -> Iterator[bytes]:
        """Chunks of bytes `start`..`end` (inclusive; None: to the end) of a stored file."""
        ...

    def fetch(self, compose_id: str, filename: str, scratch: Path) -> Path:
        """A local file with the stored content, for code that needs a path (uploaders)."""
        ...

    def delete(self, compose_id: str) -> None:
        """Remove every file of the compose; nothing there is not an error."""
        ...


def _key(compose_id: str, filename: str) -> str:
    """`<id>/<name>`: the id canonicalised and the name a plain file name, so nobody escapes."""
    name = Path(filename).name
    if not name or name in (".", ".."):
        raise ValueError(f"not a file name: {filename!r}")
    return f"{uuid.UUID(compose_id)}/{name}"


class DirectoryArtifacts:
    """`<root>/<compose id>/<file>` on this machine."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.name = str(self.root)

    def path(self, compose_id: str, filename: str) -> Path:
        return self.root / _key(compose_id, filename)

    def _open(self, compose_id: str, filename: str) -> int:
        """The file opened for reading without following a symlink: not for the compose's
        directory, not for the file.  A link planted there (by whoever can write the artifacts
        directory) must not make the API, often root, serve another file.  FileNotFoundError when
        it is missing; OSError (ELOOP, EINVAL) when a link or a non-regular file is in the way."""
        compose_dir, name = _key(compose_id, filename).split("/")
        root = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            inner = os.open(compose_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root)
        finally:
            os.close(root)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=inner)
        finally:
            os.close(inner)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, f"{self.path(compose_id, filename)} is not a regular file")
        return fd

    def put(self, compose_id: str, filename: str, path: Path) -> int:
        target = self.path(compose_id, filename)
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(path).resolve() != target.resolve():
            try:
                os.replace(path, target)
            except OSError:  # another file system: copy, then drop the original
                shutil.copyfile(path, target)
                Path(path).unlink(missing_ok=True)
        return target.stat().st_size

    def size(self, compose_id: str, filename: str) -> int:
        fd = self._open(compose_id, filename)
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def read(self, compose_id: str, filename: str, start: int = 0, end: int | None = None
             ) -> Iterator[bytes]:
        fh = os.fdopen(self._open(compose_id, filename), "rb")  # opened now: a missing file raises here

        def chunks() -> Iterator[bytes]:
            with fh:
                fh.seek(start)
                left = None if end is None else end - start + 1
                while left is None or left > 0:
                    block = fh.read(CHUNK if left is None else min(CHUNK, left))
                    if not block:
                        return
                    if left is not None:
                        left -= len(block)
                    yield block
        return chunks()

    def fetch(self, compose_id: str, filename: str, scratch: Path) -> Path:
        os.close(self._open(compose_id, filename))  # a regular file, reached without a link
        return self.path(compose_id, filename)

    def delete(self, compose_id: str) -> None:
        shutil.rmtree(self.root / str(uuid.UUID(compose_id)), ignore_errors=True)


class S3Artifacts:
    """Objects `<prefix>/<compose id>/<file>` in an S3-compatible bucket."""

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str = "", region: str = "",
                 access_key: str = "", secret_key: str = "", client: Any = None):
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.name = f"s3://{bucket}/{self.prefix}" + (f" at {endpoint_url}" if endpoint_url else "")
        if client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            client = boto3.client("s3", endpoint_url=endpoint_url or None,
                                  region_name=region or None,
                                  aws_access_key_id=access_key or None,
                                  aws_secret_access_key=secret_key or None,
                                  config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"},
                                                    connect_timeout=10, read_timeout=60))
        self.client = client

    def _object(self, compose_id: str, filename: str) -> str:
        key = _key(compose_id, filename)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kw)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"{self.name}: no object {args or kw}") from exc
            raise ArtifactsUnavailable(self.name, str(exc)) from exc
        except BotoCoreError as exc:
            raise ArtifactsUnavailable(self.name, str(exc)) from exc

    def put(self, compose_id: str, filename: str, path: Path) -> int:
        size = Path(path).stat().st_size
        self._call(self.client.upload_file, str(path), self.bucket, self._object(compose_id, filename))
        Path(path).unlink(missing_ok=True)
        return size

    def size(self, compose_id: str, filename: str) -> int:
        head = self._call(self.client.head_object, Bucket=self.bucket,
                          Key=self._object(compose_id, filename))
        return int(head["ContentLength"])

    def read(self, compose_id: str, filename: str, start: int = 0, end: int | None = None
             ) -> Iterator[bytes]:
        byte_range = f"bytes={start}-{'' if end is None else end}"
        got = self._call(self.client.get_object, Bucket=self.bucket,
                         Key=self._object(compose_id, filename), Range=byte_range)
        body = got["Body"]

        def chunks() -> Iterator[bytes]:
            with body:
                yield from body.iter_chunks(CHUNK)
        return chunks()

    def fetch(self, compose_id: str, filename: str, scratch: Path) -> Path:
        scratch = Path(scratch) / str(uuid.UUID(compose_id))
        scratch.mkdir(parents=True, exist_ok=True)
        target = scratch / Path(filename).name
        self._call(self.client.download_file, self.bucket, self._object(compose_id, filename),
                   str(target))
        return target

    def delete(self, compose_id: str) -> None:
        prefix = self._object(compose_id, "x")[:-1]

        def delete_all() -> None:  # pages are fetched while iterating: errors come from the loop
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=prefix)
            for page in pages:
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket,
                                               Delete={"Objects": keys, "Quiet": True})
        self._call(delete_all)


_buckets: dict[tuple[str, str, str, int], S3Artifacts] = {}


def from_config(config: Any) -> Artifacts:
    """The artifact store `artifacts_url` names (empty: the local `artifacts_path`).

    A bucket's client is made once per process (it is thread-safe, and slow to make; a forked
    child makes its own)."""
    url = config.artifacts_url
    if not url:
        return DirectoryArtifacts(config.artifacts_path)
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"artifacts_url {url!r}: expected s3://BUCKET[/PREFIX] or empty")
    key = (url, config.artifacts_endpoint_url, config.artifacts_region, os.getpid())
    store = _buckets.get(key)
    if store is None:
        store = _buckets[key] = S3Artifacts(parsed.netloc, parsed.path,
                                            endpoint_url=config.artifacts_endpoint_url,
                                            region=config.artifacts_region,
                                            access_key=config.artifacts_access_key,
                                            secret_key=config.artifacts_secret_key)
    return store
