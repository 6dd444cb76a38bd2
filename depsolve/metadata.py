"""Repository metadata: fetch, verify, and cache it in a directory every worker on a host shares.

Layout under `<cache_dir>/rpmmd/<repository cache key>/`:

    .lock                      flock(2) held while the directory is refreshed or a .solv written
    state.json                 chosen baseurl, repomd.xml checksum, when last checked, documents
    repomd.xml                 as served
    <checksum>-primary.xml.gz  each document under its own (checksummed) name, verified
    <repomd sha256>.solv       the solver's own cache of primary + filelists (see solver_solv)
    <repomd sha256>.lean.solv  the same without descriptions, file lists, …: a one-shot depsolve loads it

Readers take no lock: every file is written to a temporary name and renamed into place, and
documents are named by checksum, so a reader sees either the old set or the new one.  A refresh
takes the lock and re-reads the state first, so N workers starting at once download once.
`metadata_expire` decides how long a checked repomd.xml is trusted before it is asked for again;
an unchanged repomd.xml costs one small request and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from core.records import Record, field
from depsolve.errors import RepositoryError
from depsolve.repository import (
    DEFAULT_METADATA_EXPIRE,
    NEVER,
    Mirrors,
    Repository,
    normalise_baseurl,
    parse_metalink,
    parse_mirrorlist,
)

if TYPE_CHECKING:
    from depsolve import transport

log = logging.getLogger(__name__)

_REPO_NS = "{http://linux.duke.edu/metadata/repo}"
# Which repomd data types to fetch, in order of preference for each role.  Compressed comps
# first: mirrors (and ../shared/repodata) do not always carry the plain one repomd lists.
ROLES: dict[str, tuple[str, ...]] = {
    "primary": ("primary",),
    "filelists": ("filelists",),
    "group": ("group_gz", "group_xz", "group_zst", "group"),
    "modules": ("modules",),
}
OPTIONAL_ROLES = ("group", "modules")
# Unreferenced files younger than this stay: a reader may have just read the old state.
_PRUNE_AFTER = 600.0
_STATE = "state.json"


# Bytes of metadata documents served from the cache / downloaded by this process since the
# last `take_traffic()`; the depsolve task turns them into the service's metrics.
_TRAFFIC = {"cache_hit": 0, "downloaded": 0}


def take_traffic() -> dict[str, int]:
    """Metadata bytes served from the cache and downloaded since the last call (then reset)."""
    out = dict(_TRAFFIC)
    for key in _TRAFFIC:
        _TRAFFIC[key] = 0
    return out


def _count(kind: str, paths) -> None:
    for path in paths:
        try:
            _TRAFFIC[kind] += path.stat().st_size
        except OSError:
            pass


class RepoMetadata(Record, frozen=True):
    """One repository's verified metadata on local disk, ready for a solver to load."""

    repo: Repository
    baseurl: str
    directory: Path
    repomd_checksum: str
    documents: dict[str, Path] = field(default_factory=dict)
    revision: str = ""

    @property
    def solv_path(self) -> Path:
        return self.directory / f"{self.repomd_checksum}.solv"

    @property
    def lean_solv_path(self) -> Path:
        """The solver-only cache: the .solv without what only search reads (see solver_solv)."""
        return self.directory / f"{self.repomd_checksum}.lean.solv"

    def derived_path(self, suffix: str) -> Path:
        """Where a parsed form of this metadata (comps, modules) is cached."""
        return self.directory / f"{self.repomd_checksum}{suffix}"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with directory_lock(self.directory):
            yield


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on `directory/.lock`, shared by threads, processes and containers."""
    try:
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o664)
    except PermissionError:  # made by another user: flock needs no write access
        fd = os.open(directory / ".lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a mix."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        _share(fd)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _share(fd: int) -> None:
    """Cache files are read by every worker on the host, which may run as other users of the
    same group: mkstemp's 0600 would lock them out (the umask still applies)."""
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o664 & ~umask)


def open_document(path: Path) -> BinaryIO:
    """A document's decompressed bytes as a stream, whichever compression the repository used."""
    name = path.name
    if name.endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")  # type: ignore[return-value]
    if name.endswith(".xz"):
        import lzma

        return lzma.open(path, "rb")  # type: ignore[return-value]
    if name.endswith(".zst"):
        import zstandard

        raw = open(path, "rb")
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    if name.endswith(".bz2"):
        import bz2

        return bz2.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


class _RepomdEntry(Record, frozen=True):
    type: str
    href: str
    checksum_type: str
    checksum: str


def parse_repomd(data: bytes) -> tuple[str, dict[str, _RepomdEntry]]:
    """The revision and the data entries (type → location and checksum) of a repomd.xml.

    Raises ValueError for anything but a usable repomd.xml.  (xml.etree is imported here:
    a warm run reads its state from state.json and never parses a repomd.xml.)
    """
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(str(exc)) from None
    if root.tag != f"{_REPO_NS}repomd":
        raise ValueError(f"root element is {root.tag!r}, not repomd")
    entries: dict[str, _RepomdEntry] = {}
    for node in root.findall(f"{_REPO_NS}data"):
        dtype = node.get("type", "")
        location = node.find(f"{_REPO_NS}location")
        checksum = node.find(f"{_REPO_NS}checksum")
        if location is None or checksum is None or not location.get("href"):
            continue
        ctype = (checksum.get("type") or "sha256").lower()
        if ctype == "sha":
            ctype = "sha1"
        entries[dtype] = _RepomdEntry(dtype, location.get("href", ""), ctype,
                                      (checksum.text or "").strip().lower())
    if "primary" not in entries:
        raise ValueError("repomd.xml has no primary data")
    revision = root.findtext(f"{_REPO_NS}revision") or ""
    return revision, entries


class MetadataCache:
    """Shared, concurrency-safe cache of repository metadata under one directory."""

    def __init__(self, cache_dir: Path | str, *, default_expire: int | None = None,
                 fetch_options: dict | None = None) -> None:
        # Callers pass the service's cache_dir; one that already names this directory is
        # taken as is, so every caller lands in the same shared cache.
        cache_dir = Path(cache_dir)
        self.root = cache_dir if cache_dir.name == "rpmmd" else cache_dir / "rpmmd"
        self.default_expire = DEFAULT_METADATA_EXPIRE if default_expire is None else default_expire
        self._fetch_overrides = dict(fetch_options or {})

    def _options(self, repo: Repository) -> transport.FetchOptions:
        from depsolve import transport

        return transport.FetchOptions(proxy=repo.proxy, sslverify=repo.sslverify,
                                      **self._fetch_overrides)

    def _expire(self, repo: Repository) -> int:
        return self.default_expire if repo.metadata_expire is None else repo.metadata_expire

    # -- reading the state -------------------------------------------------------------------

    def _load_state(self, repo: Repository, directory: Path) -> RepoMetadata | None:
        try:
            state = json.loads((directory / _STATE).read_text())
        except (FileNotFoundError, ValueError):
            return None
        if state.get("source") != repo.source_url:
            return None
        documents = {role: directory / name for role, name in state.get("documents", {}).items()}
        if not all(path.exists() for path in documents.values()):
            return None
        return RepoMetadata(repo=repo, baseurl=state["baseurl"], directory=directory,
                            repomd_checksum=state["repomd"], documents=documents,
                            revision=state.get("revision", ""))

    def _fresh(self, repo: Repository, directory: Path) -> bool:
        expire = self._expire(repo)
        if expire == NEVER:
            return True
        try:
            checked = json.loads((directory / _STATE).read_text()).get("checked", 0.0)
        except (FileNotFoundError, ValueError):
            return False
        return time.time() - float(checked) < expire

    def cached(self, repo: Repository) -> RepoMetadata | None:
        """The cached metadata of `repo` if any, fresh or not, without touching the network."""
        return self._load_state(repo, self.root / repo.cache_key())

    # -- refreshing ----------------------------------------------------------------------------

    def ensure(self, repo: Repository) -> RepoMetadata:
        """Verified local metadata for `repo`, downloading only what changed since last time.

        Raises RepositoryError naming the repository and the URL that failed.
        """
        directory = self.root / repo.cache_key()
        if self._fresh(repo, directory):
            current = self._load_state(repo, directory)
            if current is not None:
                _count("cache_hit", current.documents.values())
                return current
        directory.mkdir(parents=True, exist_ok=True)
        with directory_lock(directory):
            # Another worker may have refreshed while this one waited for the lock.
            current = self._load_state(repo, directory)
            if current is not None and self._fresh(repo, directory):
                _count("cache_hit", current.documents.values())
                return current
            return self._refresh(repo, directory, current)

    def _candidates(self, repo: Repository) -> Mirrors:
        from depsolve import transport

        options = self._options(repo)
        if repo.baseurl:
            return Mirrors(tuple(repo.baseurl))
        url = repo.metalink or repo.mirrorlist or ""
        try:
            body = transport.fetch_bytes(url, options)
        except transport.TransportError as exc:
            kind = "metalink" if repo.metalink else "mirrorlist"
            raise RepositoryError(f"repository '{repo.id}': cannot download {kind} {url}: "
                                  f"{exc.reason}", repo.id, url) from None
        try:
            if repo.metalink:
                return parse_metalink(body, url)
            return parse_mirrorlist(body)
        except ValueError as exc:
            raise RepositoryError(f"repository '{repo.id}': {url}: {exc}", repo.id, url) from None

    def _fetch_repomd(self, repo: Repository) -> tuple[str, bytes]:
        """The first candidate baseurl serving a usable (and, for metalinks, current) repomd."""
        from depsolve import transport

        mirrors = self._candidates(repo)
        options = self._options(repo)
        failures: list[str] = []
        for candidate in mirrors.baseurls:
            baseurl = normalise_baseurl(candidate)
            url = baseurl + "repodata/repomd.xml"
            try:
                body = transport.fetch_bytes(url, options)
            except transport.TransportError as exc:
                failures.append(f"{url}: {exc.reason}")
                continue
            if mirrors.repomd_checksums and not _matches_any(body, mirrors.repomd_checksums):
                failures.append(f"{url}: repomd.xml does not match the metalink's checksum")
                continue
            try:
                parse_repomd(body)
            except ValueError as exc:
                failures.append(f"{url}: broken repomd.xml ({exc})")
                continue
            if repo.check_repogpg:
                problem = self._signature_problem(repo, url, body, options)
                if problem:
                    failures.append(f"{url}.asc: {problem}")
                    continue
            return baseurl, body
        first = failures[0].split(": ", 1)[0] if failures else repo.source_url
        detail = "; ".join(failures)
        raise RepositoryError(f"repository '{repo.id}': cannot download repodata: {detail}",
                              repo.id, first)

    def _signature_problem(self, repo: Repository, url: str, body: bytes,
                           options: transport.FetchOptions) -> str | None:
        """Why this repomd.xml is not signed by the repository's keys, or None if it is."""
        from depsolve import transport
        from depsolve.signature import SignatureError, verify_detached

        try:
            signature = transport.fetch_bytes(url + ".asc", options)
        except transport.TransportError as exc:
            return f"no signature ({exc.reason})"
        keys: list[bytes] = []
        for key in repo.gpgkeys:
            if key.lstrip().startswith("-----BEGIN PGP"):
                keys.append(key.encode())
                continue
            try:
                keys.append(transport.fetch_bytes(key, options))
            except transport.TransportError as exc:
                return f"cannot download gpgkey {key}: {exc.reason}"
        try:
            fingerprint = verify_detached(body, signature, keys)
        except SignatureError as exc:
            return f"signature check failed: {exc}"
        log.info("repository %s: repomd.xml signed by %s", repo.id, fingerprint)
        return None

    def _refresh(self, repo: Repository, directory: Path,
                 current: RepoMetadata | None) -> RepoMetadata:
        from depsolve import transport

        started = time.monotonic()
        baseurl, repomd = self._fetch_repomd(repo)
        checksum = hashlib.sha256(repomd).hexdigest()
        if current is not None and current.repomd_checksum == checksum \
                and current.baseurl == baseurl:
            self._write_state(repo, directory, current.baseurl, checksum,
                              {r: p.name for r, p in current.documents.items()}, current.revision)
            _count("cache_hit", current.documents.values())
            return current
        revision, entries = parse_repomd(repomd)
        options = self._options(repo)
        documents: dict[str, Path] = {}
        for role, types in ROLES.items():
            documents_for_role = [entries[t] for t in types if t in entries]
            for index, entry in enumerate(documents_for_role):
                dest = directory / Path(entry.href).name
                url = baseurl + entry.href
                if dest.exists() and _digest(dest, entry.checksum_type) == entry.checksum:
                    _count("cache_hit", [dest])
                else:
                    try:
                        transport.fetch_file(url, dest, checksum_type=entry.checksum_type,
                                             checksum=entry.checksum, options=options)
                        _count("downloaded", [dest])
                    except transport.TransportError as exc:
                        if role in OPTIONAL_ROLES and not exc.transient:
                            # Listed but not served in this compression: try the next one,
                            # and without any the repository still resolves (no groups).
                            if index + 1 < len(documents_for_role):
                                continue
                            log.warning("repository %s: skipping %s: %s", repo.id, role, exc)
                            break
                        raise RepositoryError(
                            f"repository '{repo.id}': cannot download {role} metadata {url}: "
                            f"{exc.reason}", repo.id, url) from None
                    except ValueError as exc:  # unknown checksum type
                        raise RepositoryError(f"repository '{repo.id}': {url}: {exc}",
                                              repo.id, url) from None
                documents[role] = dest
                break
        atomic_write(directory / "repomd.xml", repomd)
        self._write_state(repo, directory, baseurl, checksum,
                          {r: p.name for r, p in documents.items()}, revision)
        self._prune(directory, keep={p.name for p in documents.values()}, checksum=checksum)
        log.info("repository %s: metadata %s from %s in %.2fs", repo.id, checksum[:12], baseurl,
                 time.monotonic() - started)
        return RepoMetadata(repo=repo, baseurl=baseurl, directory=directory,
                            repomd_checksum=checksum, documents=documents, revision=revision)

    def _write_state(self, repo: Repository, directory: Path, baseurl: str, checksum: str,
                     documents: dict[str, str], revision: str) -> None:
        state = {"source": repo.source_url, "repo_id": repo.id, "baseurl": baseurl,
                 "repomd": checksum, "revision": revision, "checked": time.time(),
                 "documents": documents}
        atomic_write(directory / _STATE, json.dumps(state, indent=1).encode())

    @staticmethod
    def _prune(directory: Path, keep: set[str], checksum: str) -> None:
        now = time.time()
        for path in directory.iterdir():
            name = path.name
            if name in keep or name in (".lock", _STATE, "repomd.xml") or name.startswith(checksum):
                continue
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > _PRUNE_AFTER:
                    path.unlink()


def _digest(path: Path, checksum_type: str) -> str:
    digest = hashlib.new(checksum_type)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _matches_any(body: bytes, checksums: tuple[tuple[str, str], ...]) -> bool:
    for ctype, value in checksums:
        try:
            if hashlib.new(ctype, body).hexdigest() == value:
                return True
        except ValueError:
            continue
    # No checksum of a type we can compute: nothing to hold the mirror to.
    return not any(ctype in hashlib.algorithms_available for ctype, _ in checksums)


def read_decompressed(path: Path) -> bytes:
    with open_document(path) as stream:
        return stream.read()


__all__ = ["MetadataCache", "RepoMetadata", "atomic_write", "directory_lock", "open_document",
           "parse_repomd", "read_decompressed", "take_traffic"]
