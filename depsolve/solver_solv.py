"""The libsolv backend: the solver underneath libdnf5, through the `solv` wheel.

Loading is the expensive part, so it is cached twice.  On disk, each repository's primary and
filelists become one `.solv` file next to its metadata, stored together with the file provides
the pool needed (`REPOSITORY_ADDEDFILEPROVIDES`): without them a warm start would rescan every
file list.  A one-shot process (the CLI) loads a lean copy instead, `.lean.solv`, which leaves
out what only search and info read (summaries, descriptions, URLs, licenses, sizes, build
data) and the file lists (their file provides are stored): a sixth less loading for the same
transaction.  Its writer child makes it after the full
one; repomd.xml's checksum names both, so new metadata means new files.  In memory, a process keeps its last few loaded pools keyed by the repositories and
their repomd.xml checksums, so a worker or an API solver process answers repeated requests from
a warm pool; a changed repomd.xml is a new key.

Behaviour follows dnf's (what osbuild's dnf and dnf5 solvers do): names before provides before
files; the best arch and newest version by libsolv's policy; excludes hide packages for one
transaction only; earlier transactions of a chain are pinned; modular packages filtered as dnf
does; obsoletes handled the yum way; no transaction ordering (not needed, and
`Transaction.order()` can abort the process on huge transactions).

Pools are not thread-safe and hold the GIL: call this from one thread per process.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import solv

from core.records import Record
from depsolve.comps import Comps
from depsolve.errors import DepsolveError, RepositoryError
from depsolve.metadata import MetadataCache, RepoMetadata, _share, atomic_write, open_document
from depsolve.modularity import ModuleIndex, load_modules
from depsolve.packageset import PackageSet
from depsolve.repository import Repository

log = logging.getLogger(__name__)

NAME = "libsolv"
# Warm pools kept per process; each is tens to hundreds of MB for big repositories.
MAX_POOLS = 3

_SEL = solv.Selection
_NAME_FLAGS = (_SEL.SELECTION_NAME | _SEL.SELECTION_GLOB | _SEL.SELECTION_DOTARCH
               | _SEL.SELECTION_CANON | _SEL.SELECTION_REL)
_PROVIDES_FLAGS = _SEL.SELECTION_PROVIDES | _SEL.SELECTION_REL
_FILE_FLAGS = _SEL.SELECTION_FILELIST | _SEL.SELECTION_GLOB
_NATIVE_COMPRESSION = (".gz", ".xml", ".solv")
# What a lean cache leaves out: read by search and info (projects), never by the solver or by
# the package entries a depsolve returns (location, media base and checksum stay).  File lists
# go too: the file provides the pool needed are stored with the cache, and a depsolve that
# needs more (a new repository's file requires) or names a path loads the full caches.
_DESCRIPTIVE_KEYS = (
    solv.SOLVABLE_SUMMARY, solv.SOLVABLE_DESCRIPTION, solv.SOLVABLE_URL, solv.SOLVABLE_LICENSE,
    solv.SOLVABLE_BUILDTIME, solv.SOLVABLE_BUILDHOST, solv.SOLVABLE_PACKAGER, solv.SOLVABLE_GROUP,
    solv.SOLVABLE_SOURCENAME, solv.SOLVABLE_SOURCEEVR, solv.SOLVABLE_SOURCEARCH,
    solv.SOLVABLE_HEADEREND, solv.SOLVABLE_INSTALLSIZE, solv.SOLVABLE_DOWNLOADSIZE,
    solv.SOLVABLE_CHANGELOG_AUTHOR, solv.SOLVABLE_CHANGELOG_TEXT, solv.SOLVABLE_CHANGELOG_TIME,
    solv.SOLVABLE_FILELIST,
)


def _xfopen(path: Path, stack: contextlib.ExitStack):
    """A libsolv file handle for a document; zstd/xz are decompressed here (the wheel cannot)."""
    if path.name.endswith(_NATIVE_COMPRESSION):
        handle = solv.xfopen(str(path))
    else:
        import tempfile

        plain = stack.enter_context(tempfile.TemporaryFile())
        with open_document(path) as stream:
            while block := stream.read(1 << 20):
                plain.write(block)
        plain.flush()
        plain.seek(0)
        handle = solv.xfopen_fd("document.xml", plain.fileno())
    if handle is None:  # passing None on crashes the process
        raise RepositoryError(f"cannot open {path}", url=str(path))
    return handle


_PLAIN = re.compile(r"[A-Za-z0-9_+-]+")
_SEGMENT = re.compile(r"[0-9]+|[A-Za-z]+|~|\^")


def _segments(text: str) -> list[str]:
    """rpm's version comparison units: two versions compare equal iff these are equal."""
    return [part.lstrip("0") or "0" if part.isdigit() else part
            for part in _SEGMENT.findall(text)]


def _epoch_version_release(evr: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in evr:
        head, evr = evr.split(":", 1)
        epoch = int(head or 0)
    version, _, release = evr.rpartition("-")
    return epoch, version, release


def _stored_file_provides(handle, added: list[int]) -> bool:
    """Whether a loaded repository's cache already holds all the file provides `added` names."""
    data = handle.first_repodata()
    if data is None:
        return True  # an empty repository: nothing to store
    stored = data.lookup_idarray(solv.SOLVID_META, solv.REPOSITORY_ADDEDFILEPROVIDES)
    return set(added) <= set(stored)


class _Source(Record):
    meta: RepoMetadata
    handle: Any  # solv.Repo


class LoadedPool:
    """A libsolv pool with a set of repositories loaded, plus what dnf adds on top of it."""

    def __init__(self, metadata: list[RepoMetadata], arch: str, *, lean: bool = False,
                 first: list[PackageSet] | None = None) -> None:
        """`lean`: load the lean caches when there are (a pool that only depsolves); `first`:
        the chain this pool will be asked to depsolve first (see _look_up_early)."""
        started = time.monotonic()
        self.arch = arch
        self.lean = lean
        loaded_from, added = self._load_all(metadata, lean)
        if lean and any(kind == "lean" and not _stored_file_provides(source.handle, added)
                        for source, kind in zip(self.sources.values(), loaded_from, strict=True)):
            # These repositories need file provides a lean cache did not store, and it has no
            # file lists to find them in: load the full caches (the lean ones get rewritten).
            loaded_from, added = self._load_all(metadata, False)
        self.comps = Comps.from_files(
            (m.documents["group"], m.derived_path(".comps.json"))
            for m in metadata if "group" in m.documents)
        self.modules = ModuleIndex()
        for meta in metadata:
            if "modules" in meta.documents:
                self.modules.extend(load_modules(meta.documents["modules"],
                                                 meta.derived_path(".modules.json")))
        self._string_ids = self._look_up_early(first or [])
        self.pool.createwhatprovides()
        # What is left to write: a cache without all the file provides this pool needed, a
        # missing lean one (only made in a writer child, see write_caches).
        self._pending = [(source, added, kind)
                         for source, kind in zip(self.sources.values(), loaded_from, strict=True)
                         if kind == "xml" or not _stored_file_provides(source.handle, added)
                         or lean and kind != "lean"]
        warm = [kind != "xml" for kind in loaded_from]
        if not _defer_cache_writes():
            self.write_caches()
        self._ids = self._all_ids()
        self._hidden_for: dict[tuple, set[int]] = {}
        self._visible_for: dict[tuple, list[int]] = {}
        self.hidden = self._modular_hidden({})
        self.visible = self._visible({})
        self._considered_for: dict[tuple, list[int]] = {}
        self._excluded_for: dict[tuple[str, ...], set[int]] = {}
        self._projects: list[dict] | None = None
        self._names: list[str] | None = None
        log.info("libsolv pool for %s (%s): %d packages in %.2fs (%s)", arch,
                 ", ".join(self.sources), len(self.visible), time.monotonic() - started,
                 "warm" if all(warm) else "cold")

    # -- loading -------------------------------------------------------------------------------

    def _look_up_early(self, chain: list[PackageSet]) -> dict[str, int]:
        """The ids of the strings a depsolve of `chain` looks up, looked up now.

        createwhatprovides frees libsolv's string hash, and the next lookup rebuilds it over
        every string of the pool (~8 ms on CentOS Stream 9, a twentieth of a whole warm CLI
        run); a lookup before it costs microseconds.  Names, provides and the name-version
        splits of each spec, group members, exclude names; _string_id falls back to libsolv.
        """
        specs: set[str] = set()
        for package_set in chain:
            for spec in (*package_set.include, *package_set.exclude):
                if not spec.startswith("@"):
                    specs.add(spec)
                elif ":" not in spec and (expanded := self.comps.expand(spec[1:])) is not None:
                    specs.update(expanded[0])
                    specs.update(expanded[1])
        words = set(specs)
        for spec in specs:  # what _may_be_name_version looks up
            parts = spec.split("-")
            words.update("-".join(parts[:end]) for end in range(1, len(parts)))
        return {word: self.pool.str2id(word, False) for word in words}

    def _string_id(self, text: str) -> int:
        """libsolv's id of `text`, 0 if the pool has no such string."""
        ident = self._string_ids.get(text)
        return self.pool.str2id(text, False) if ident is None else ident

    def _load_all(self, metadata: list[RepoMetadata], lean_caches: bool
                  ) -> tuple[list[str], list[int]]:
        """A new pool with these repositories; what each was loaded from (see _load) and the
        file provides the pool added."""
        self.pool = solv.Pool()
        self.pool.setarch(self.arch)
        self.sources: dict[str, _Source] = {}
        loaded_from = []
        for meta in metadata:
            handle = self.pool.add_repo(meta.repo.id)
            loaded_from.append(self._load(handle, meta, lean_caches))
            self.sources[meta.repo.id] = _Source(meta, handle)
        return loaded_from, self.pool.addfileprovides_queue()

    def _load(self, handle, meta: RepoMetadata, lean_caches: bool) -> str:
        """Load one repository, from a .solv cache when there is one.  Says from what: "lean"
        (its lean cache, when `lean_caches`), "full" (the .solv) or "xml" (the metadata)."""
        caches = [("lean", meta.lean_solv_path)] if lean_caches else []
        caches.append(("full", meta.solv_path))
        for kind, path in caches:
            if not path.exists():
                continue
            with contextlib.ExitStack() as stack:
                fp = _xfopen(path, stack)
                ok = handle.add_solv(fp, 0)
                fp.close()
            if ok:
                return kind
            log.warning("repository %s: unreadable solver cache %s, reloading", meta.repo.id, path)
            handle.empty()
        try:
            with contextlib.ExitStack() as stack:
                fp = _xfopen(meta.documents["primary"], stack)
                handle.add_rpmmd(fp, None, 0)
                fp.close()
                # File requires outside primary's short file list resolve only with filelists.
                if "filelists" in meta.documents:
                    fp = _xfopen(meta.documents["filelists"], stack)
                    handle.add_rpmmd(fp, None, solv.Repo.REPO_EXTEND_SOLVABLES
                                     | solv.Repo.REPO_REUSE_REPODATA)
                    fp.close()
        except RepositoryError:
            raise
        except Exception as exc:  # libsolv raises plain errors on broken XML
            raise RepositoryError(f"repository '{meta.repo.id}': broken metadata: {exc}",
                                  meta.repo.id, meta.baseurl) from None
        if handle.nsolvables == 0 and meta.documents["primary"].stat().st_size > 512:
            raise RepositoryError(f"repository '{meta.repo.id}': primary metadata lists no "
                                  f"packages ({meta.baseurl})", meta.repo.id, meta.baseurl)
        handle.internalize()
        return "xml"

    def write_caches(self, *, lean: bool = False) -> None:
        """Write the .solv caches this pool's loading left to write (once).

        With `lean` (a lean pool's writer child) the lean caches too: made by stripping the
        descriptive data out of this very pool, so only a process that is done with the pool
        may ask for them.
        """
        pending, self._pending = self._pending, []
        for source, added, kind in pending:
            if kind != "lean":
                self._store(source, added, source.meta.solv_path, kind == "full")
        if not (lean and self.lean):
            return
        for source, added, kind in pending:
            if kind != "lean":
                for s in source.handle.solvables_iter():
                    for key in _DESCRIPTIVE_KEYS:
                        s.unset(key)
                source.handle.internalize()
            self._store(source, added, source.meta.lean_solv_path, kind == "lean")

    def write_caches_in_background(self) -> None:
        """Hand the .solv writing to a forked child, so a one-shot process answers first.

        The child owns a copy of the loaded pool, drops stdout/stderr (a reader waiting for
        the end of the output must not wait for it) and exits when the files are in place.
        """
        if not self._pending:
            return
        try:
            pid = os.fork()
        except OSError:
            self.write_caches()
            return
        if pid:
            self._pending = []
            return
        try:  # the child
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.setsid()
            self.write_caches(lean=True)
        finally:
            os._exit(0)

    def _store(self, source: _Source, added: list[int], path: Path,
               loaded_from_it: bool) -> None:
        """Write a .solv cache, with the file provides this pool needed, unless the pool was
        loaded from that very file and it has them all."""
        data = source.handle.first_repodata()
        if data is None:
            return
        stored = set(data.lookup_idarray(solv.SOLVID_META, solv.REPOSITORY_ADDEDFILEPROVIDES))
        if loaded_from_it and set(added) <= stored:
            return
        if not set(added) <= stored:
            # The whole set, in one go: ids added to a loaded cache's array after it was
            # internalized replace the stored ones instead of joining them.
            data.unset(solv.SOLVID_META, solv.REPOSITORY_ADDEDFILEPROVIDES)
            for ident in sorted(stored | set(added)):
                data.add_idarray(solv.SOLVID_META, solv.REPOSITORY_ADDEDFILEPROVIDES, ident)
            data.internalize()
        import tempfile

        meta = source.meta
        try:
            with meta.lock():
                fd, tmp = tempfile.mkstemp(dir=meta.directory, prefix=".part-")
                _share(fd)
                try:
                    fp = solv.xfopen_fd("cache.solv", fd, "w")
                    os.close(fd)
                    source.handle.write(fp)
                    fp.close()
                    os.replace(tmp, path)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
        except OSError as exc:  # a read-only cache still solves, just not warm next time
            log.warning("repository %s: cannot write solver cache: %s", meta.repo.id, exc)

    def _all_ids(self) -> list[int]:
        """Every solvable id; a freshly loaded repository's solvables are one contiguous range."""
        ids: list[int] = []
        for source in self.sources.values():
            handle = source.handle
            if handle.nsolvables == 0:
                continue
            if handle.iscontiguous():
                first = next(iter(handle.solvables_iter())).id
                ids.extend(range(first, first + handle.nsolvables))
            else:
                ids.extend(s.id for s in handle.solvables_iter())
        return ids

    def _modular_hidden(self, enabled: dict[str, str]) -> set[int]:
        """Packages dnf's modularity hides with these streams enabled (besides the defaults)."""
        key = tuple(sorted(enabled.items()))
        if key in self._hidden_for:
            return self._hidden_for[key]
        hidden: set[int] = set()
        if self.modules.streams:
            path = self._hidden_path(key)
            stored = self._read_hidden(path)
            if stored is not None:
                self._hidden_for[key] = stored
                return stored
            hidden_nevras, shadowed_names = self.modules.exclusions(enabled)
            exempt = {s.meta.repo.id for s in self.sources.values()
                      if s.meta.repo.module_hotfixes}
            names = shadowed_names | {n.rsplit("-", 2)[0] for n in hidden_nevras}
            # Only packages named in module metadata can be affected: look those up by name.
            for name in names:
                for s in self._named(name):
                    if s.repo.name in exempt:
                        continue
                    epoch, version, release = _epoch_version_release(s.evr)
                    if f"{s.name}-{epoch}:{version}-{release}.{s.arch}" in hidden_nevras or s.name in shadowed_names and "module" not in release:
                        hidden.add(s.id)
            self._write_hidden(path, hidden)
        self._hidden_for[key] = hidden
        return hidden

    def _hidden_path(self, key: tuple) -> Path:
        """Where the modular-hidden set for these repositories, arch and streams is cached.

        It depends on every loaded repository (packages and module metadata: their repomd
        checksums), on which of them are module_hotfixes, on the arch and the enabled streams.
        """
        sources = [(s.meta.repo.id, s.meta.repomd_checksum, s.meta.repo.module_hotfixes)
                   for s in self.sources.values()]
        digest = hashlib.sha256(json.dumps([self.arch, sources, key]).encode()).hexdigest()
        first = next(iter(self.sources.values())).meta
        return first.derived_path(f".hidden-{digest[:24]}.json")

    def _read_hidden(self, path: Path) -> set[int] | None:
        """The cached set, if every entry still names the same package in this pool.

        Solvable ids follow the order the .solv files load in; each entry carries its NEVRA
        so a pool that numbers them differently recomputes instead of hiding the wrong ones.
        """
        try:
            stored = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        hidden: set[int] = set()
        count = len(self.pool.solvables)  # id2solvable does not check its argument
        if not isinstance(stored, dict) or stored.get("solvables") != count:
            return None
        try:
            for ident, nevra in stored["hidden"]:
                if not isinstance(ident, int) or not 0 < ident < count:
                    return None
                s = self.pool.id2solvable(ident)
                if f"{s.name}-{s.evr}.{s.arch}" != nevra:
                    return None
                hidden.add(ident)
        except (TypeError, ValueError, KeyError):
            return None
        return hidden

    def _write_hidden(self, path: Path, hidden: set[int]) -> None:
        entries = []
        for ident in sorted(hidden):
            s = self.pool.id2solvable(ident)
            entries.append([ident, f"{s.name}-{s.evr}.{s.arch}"])
        try:
            atomic_write(path, json.dumps({"solvables": len(self.pool.solvables),
                                           "hidden": entries}).encode())
        except OSError as exc:  # a read-only cache still solves
            log.debug("cannot cache modular-hidden packages in %s: %s", path, exc)

    def _visible(self, enabled: dict[str, str]) -> list[int]:
        key = tuple(sorted(enabled.items()))
        visible = self._visible_for.get(key)
        if visible is None:
            hidden = self._modular_hidden(enabled)
            visible = [i for i in self._ids if i not in hidden] if hidden else self._ids
            self._visible_for[key] = visible
        return visible

    def _enabled_streams(self, package_set: PackageSet, enabled: dict[str, str]
                         ) -> dict[str, str]:
        """Streams enabled so far in the chain plus this set's (`enable_modules`, `@n:s` specs)."""
        out = dict(enabled)
        problems = []
        specs = list(package_set.enable_modules)
        specs += [spec[1:].split("/", 1)[0] for spec in package_set.include
                  if spec.startswith("@") and ":" in spec]
        for spec in specs:
            name, _, stream = spec.partition(":")
            if not self.modules.has_stream(name, stream):
                problems.append(f"No match for module stream: {spec}")
            elif out.get(name, stream) != stream:
                problems.append(f"Module {name} cannot enable stream {stream}: "
                                f"stream {out[name]} is enabled")
            else:
                out[name] = stream
        if problems:
            raise DepsolveError("\n".join(problems), kind="marking")
        return out

    # -- helpers ----------------------------------------------------------------------------------

    def _consider(self, ids: Iterable[int]) -> None:
        self.pool.set_considered_list(list(ids))

    def _excluded(self, patterns: Iterable[str]) -> set[int]:
        """Ids of the packages whose names match the exclude patterns (names or globs)."""
        key = tuple(sorted(set(patterns)))
        if not key:
            return set()
        cached = self._excluded_for.get(key)
        if cached is None:
            cached = set()
            for pattern in key:
                if any(c in pattern for c in "*?["):
                    # Every package whose name matches the glob, as a name selection with
                    # SELECTION_GLOB and WITH_DISABLED/BADARCH/SOURCE answers, in a third of
                    # the time for a `langpacks-*` (the selection also builds and expands a job
                    # per matching name).
                    cached.update(match.solvid for match in self.pool.Dataiterator(
                        solv.SOLVABLE_NAME, pattern, solv.Dataiterator.SEARCH_GLOB))
                else:
                    # What the selection gives, less source and other-arch packages, which
                    # are never installable: nothing an exclude changes or reports on.
                    cached.update(s.id for s in self._named(pattern))
            self._excluded_for[key] = cached
        return cached

    def _considered(self, patterns: tuple[str, ...], pinned: list[int],
                    enabled: dict[str, str]) -> list[int]:
        """What a transaction may use: visible packages minus its excludes, plus pinned ones."""
        key = (tuple(sorted(set(patterns))), tuple(sorted(enabled.items())))
        considered = self._considered_for.get(key)
        if considered is None:
            excluded = self._excluded(key[0])
            visible = self._visible(enabled)
            considered = [i for i in visible if i not in excluded] if excluded else visible
            if len(self._considered_for) > 16:
                self._considered_for.clear()
            self._considered_for[key] = considered
        return considered + pinned if pinned else considered

    def package(self, s) -> dict[str, Any]:
        """A solvable in the golden `rpmmd` shape, plus the repository id."""
        source = self.sources[s.repo.name]
        epoch, version, release = _epoch_version_release(s.evr)
        location = s.lookup_location()[0]
        base = s.lookup_str(solv.SOLVABLE_MEDIABASE) or source.meta.baseurl
        checksum = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
        return {
            "name": s.name,
            "epoch": epoch,
            "version": version,
            "release": release,
            "arch": s.arch,
            "remote_location": base.rstrip("/") + "/" + location,
            "checksum": f"{checksum.typestr()}:{checksum.hex()}" if checksum else "",
            "check_gpg": source.meta.repo.check_gpg,
            "repo_id": source.meta.repo.id,
        }

    # -- depsolve ---------------------------------------------------------------------------------

    def depsolve(self, chain: list[PackageSet]) -> list[list[dict[str, Any]]]:
        results: list[list[dict[str, Any]]] = []
        pinned: list[int] = []
        enabled: dict[str, str] = {}
        for package_set in chain:
            enabled = self._enabled_streams(package_set, enabled)
            excluded = self._excluded(package_set.exclude) - set(pinned)
            self._consider(self._considered(package_set.exclude, pinned, enabled))
            jobs = [self.pool.Job(solv.Job.SOLVER_INSTALL | solv.Job.SOLVER_SOLVABLE, i)
                    for i in pinned]
            jobs += self._mark(package_set, excluded, self._modular_hidden(enabled))
            solvables = self._solve(jobs, package_set)
            pinned = [s.id for s in solvables]
            packages = [self.package(s) for s in solvables]
            packages.sort(key=lambda p: (p["name"], p["epoch"], p["version"], p["release"],
                                         p["arch"], p["repo_id"]))
            results.append(packages)
        return results

    def _named(self, name: str) -> list:
        """The packages called exactly `name`, disabled ones included (src and bad arches not).

        The same list as `pool.select(name, SELECTION_NAME | …).solvables()` gives for a name
        some package has, found through the name's provides without the selection's parsing
        (globs, `.arch`, `-version`): a @core depsolve asks this a few hundred times.
        """
        ident = self._string_id(name)
        if not ident:
            return []
        return [s for s in self.pool.whatprovides(ident) if s.nameid == ident]

    def _may_be_name_version(self, spec: str) -> bool:
        """Whether `spec` (letters, digits, `_+-`) could be `name-version[-release]` of a
        package, which is what libsolv's canonical selection would look for.

        Conservative: any package of that name whose version (and release) has the same rpm
        version segments says yes, and the caller asks libsolv.
        """
        parts = spec.split("-")
        for fields in (1, 2):
            if len(parts) <= fields:
                continue
            wanted = [_segments(part) for part in parts[-fields:]]
            for s in self._named("-".join(parts[:-fields])):
                _, version, release = _epoch_version_release(s.evr)
                if [_segments(part) for part in (version, release)[:fields]] == wanted:
                    return True
        return False

    def _one_of(self, ids: list[int]):
        return self.pool.Job(solv.Job.SOLVER_INSTALL | solv.Job.SOLVER_SOLVABLE_ONE_OF,
                             self.pool.towhatprovides(ids))

    def _spec_jobs(self, spec: str, excluded: set[int], names_only: bool = False,
                   hidden: set[int] | None = None) -> tuple[list, str | None]:
        """Install jobs for one spec, or the reason it names nothing installable.

        Names win over provides, provides over nothing (dnf's order); a name glob installs
        every matching name, a provide installs one of its providers.  Candidates are checked
        against this transaction's considered packages here, because a selection still lists
        excluded ones and installing those would be reported as a conflict, not as a marking.
        """
        named = self._named(spec)
        if named:
            # A package name: what pool.select(spec, _NAME_FLAGS) answers (a name match lists
            # the name's excluded and hidden packages too), without parsing it or a lookup
            # that rebuilds libsolv's string hash (see _look_up_early).
            candidates, by_name = named, True
        elif spec.startswith("/"):
            candidates, by_name = self.pool.select(spec, _FILE_FLAGS).solvables(), False
        elif _PLAIN.fullmatch(spec) and not self._may_be_name_version(spec):
            # Not a name and no name-version of one: the name selection would be empty
            # (finding that out costs libsolv ~17 ms the first time: it rebuilds its hashes).
            if names_only:
                candidates, by_name = [], True
            else:
                # A plain word: its providers, what the provides selection would answer.
                ident = self._string_id(spec)
                candidates = list(self.pool.whatprovides(ident)) if ident else []
                by_name = False
        else:
            selection, by_name = self.pool.select(spec, _NAME_FLAGS), True
            if selection.isempty() and not names_only:
                selection, by_name = self.pool.select(spec, _PROVIDES_FLAGS), False
            candidates = selection.solvables()
        if not candidates and any(c in spec for c in "*?[") and not spec.startswith("/"):
            candidates, by_name = self._version_glob(spec), True
        allowed = [s for s in candidates if s.installable()]
        if not allowed:
            if any(s.id in excluded for s in candidates):
                return [], f"All matches were filtered out by exclude filtering for argument: {spec}"
            if any(s.id in (self.hidden if hidden is None else hidden) for s in candidates):
                return [], f"All matches were filtered out by modular filtering for argument: {spec}"
            return [], f"No match for argument: {spec}"
        if not by_name:
            return [self._one_of([s.id for s in allowed])], None
        names: dict[str, list[int]] = {}
        for s in allowed:
            names.setdefault(s.name, []).append(s.id)
        return [self._one_of(ids) for _, ids in sorted(names.items())], None

    def _version_glob(self, spec: str) -> list:
        """`name-3.*`, `name-2:2.3*`, `name-1.2-3.el9*`: a glob over the version part.

        libsolv's canonical selections take exact EVRs only; blueprints write `"version": "3.*"`,
        which dnf matches as name + version (or version-release[.arch]) globs.
        """
        parts = spec.split("-")
        found = []
        for fields in (1, 2):
            if len(parts) <= fields:
                continue
            name, wanted = "-".join(parts[:-fields]), "-".join(parts[-fields:])
            for s in self.pool.select(name, _SEL.SELECTION_NAME | _SEL.SELECTION_GLOB
                                      | _SEL.SELECTION_WITH_DISABLED).solvables():
                epoch, version, release = _epoch_version_release(s.evr)
                if fields == 1:
                    texts = [version, f"{epoch}:{version}"]
                else:
                    evr = f"{version}-{release}"
                    texts = [evr, f"{epoch}:{evr}", f"{evr}.{s.arch}", f"{epoch}:{evr}.{s.arch}"]
                if any(fnmatch.fnmatchcase(t, wanted) for t in texts):
                    found.append(s)
            if found:
                break
        return found

    def _mark(self, package_set: PackageSet, excluded: set[int], hidden: set[int]) -> list:
        jobs = []
        problems: list[str] = []
        for spec in package_set.include:
            if spec.startswith("@") and ":" in spec:
                # A module stream (already enabled by _enabled_streams): install its profile.
                name, _, rest = spec[1:].partition(":")
                stream, _, profile = rest.partition("/")
                names = self.modules.profile_packages(name, stream, profile or None)
                if names is None:
                    problems.append(f"No profile {profile or '(default)'} in module "
                                    f"{name}:{stream}")
                    continue
                for member in names:
                    member_jobs, problem = self._spec_jobs(member, excluded, names_only=True,
                                                           hidden=hidden)
                    if problem:
                        problems.append(problem)
                    jobs += member_jobs
                continue
            if spec.startswith("@"):
                expanded = self.comps.expand(spec[1:])
                if expanded is None:
                    problems.append(f"No match for group: {spec[1:]}")
                    continue
                names, conditions = expanded
                # Members are matched by name only; missing or excluded ones are skipped with
                # no error, the rest are as strict as any other request (dnf's strict=True).
                for name in names:
                    jobs += self._spec_jobs(name, excluded, names_only=True)[0]
                # A conditional member comes in when its condition package does: a rich
                # dependency says exactly that to the solver, in the same solve.
                for name, condition in sorted(conditions.items()):
                    if not any(s.installable() for s in self._named(name)):
                        continue
                    dep = self.pool.parserpmrichdep(f"({name} if {condition})")
                    if dep:
                        jobs.append(self.pool.Job(
                            solv.Job.SOLVER_INSTALL | solv.Job.SOLVER_SOLVABLE_PROVIDES, dep.id))
                continue
            spec_jobs, problem = self._spec_jobs(spec, excluded, hidden=hidden)
            if problem:
                problems.append(problem)
            jobs += spec_jobs
        if problems:
            raise DepsolveError("\n".join(problems), kind="marking")
        return jobs

    def _solve(self, jobs: list, package_set: PackageSet) -> list:
        solver = self.pool.Solver()
        # As libdnf's goal: yum-style obsoletes, policy-respecting "best", vendor changes allowed.
        solver.set_flag(solv.Solver.SOLVER_FLAG_YUM_OBSOLETES, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_BEST_OBEY_POLICY, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_ALLOW_VENDORCHANGE, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_KEEP_ORPHANS, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_IGNORE_RECOMMENDED,
                        0 if package_set.install_weak_deps else 1)
        problems = solver.solve(jobs)
        if problems:
            raise DepsolveError(_describe(problems))
        return list(solver.transaction().newsolvables())

    # -- search -------------------------------------------------------------------------------------

    def _visible_solvables(self):
        self._consider(self.visible)
        for ident in self.visible:
            s = self.pool.id2solvable(ident)
            if s.arch in ("src", "nosrc") or not s.installable():
                continue
            yield s

    def names(self, globs: list[str] | None) -> list[str]:
        if globs is None:
            if self._names is None:
                self._names = sorted({s.name for s in self._visible_solvables()},
                                     key=lambda n: (n.lower(), n))
            return list(self._names)
        matcher = _matcher(globs)
        return sorted({s.name for s in self._visible_solvables() if matcher(s.name)},
                      key=lambda n: (n.lower(), n))

    def projects_page(self, globs: list[str] | None, offset: int, limit: int
                      ) -> tuple[int, list[dict[str, Any]]]:
        """One page of `projects(globs)` and the total: only the page crosses to the caller."""
        if globs is None:
            if self._projects is None:
                self._projects = self._build_projects(lambda name: True)
            everything = self._projects
        else:
            everything = self._build_projects(_matcher(globs))
        start = max(0, offset)
        return len(everything), [dict(p) for p in everything[start:start + max(0, limit)]]

    def projects(self, globs: list[str] | None) -> list[dict[str, Any]]:
        if globs is None:
            if self._projects is None:
                self._projects = self._build_projects(lambda name: True)
            # Copies of the entries: a caller adding keys (modules/info adds "dependencies")
            # must not change what the next caller gets.
            return [dict(p) for p in self._projects]
        return self._build_projects(_matcher(globs))

    def _build_projects(self, matcher) -> list[dict[str, Any]]:
        from datetime import UTC, datetime  # search only: a depsolve need not import it

        by_name: dict[str, dict[str, Any]] = {}
        seen: set[tuple] = set()
        for s in self._visible_solvables():
            if not matcher(s.name):
                continue
            epoch, version, release = _epoch_version_release(s.evr)
            key = (s.name, epoch, version, release, s.arch)
            if key in seen:
                continue
            seen.add(key)
            project = by_name.get(s.name)
            if project is None:
                project = by_name[s.name] = {
                    "name": s.name,
                    "summary": s.lookup_str(solv.SOLVABLE_SUMMARY) or "",
                    "description": s.lookup_str(solv.SOLVABLE_DESCRIPTION) or "",
                    "homepage": s.lookup_str(solv.SOLVABLE_URL) or "",
                    "upstream_vcs": "UPSTREAM_VCS",
                    "builds": [],
                }
            buildtime = s.lookup_num(solv.SOLVABLE_BUILDTIME) or 0
            project["builds"].append({
                "arch": s.arch,
                "build_time": datetime.fromtimestamp(buildtime, UTC)
                                      .strftime("%Y-%m-%dT%H:%M:%S"),
                "epoch": epoch,
                "release": release,
                "changelog": "CHANGELOG_NEEDED",
                "build_config_ref": "BUILD_CONFIG_REF",
                "build_env_ref": "BUILD_ENV_REF",
                "metadata": {},
                "source": {"license": s.lookup_str(solv.SOLVABLE_LICENSE) or "",
                           "version": version, "source_ref": "SOURCE_REF", "metadata": {}},
            })
        projects = sorted(by_name.values(), key=lambda p: (p["name"].lower(), p["name"]))
        for project in projects:
            project["builds"].sort(key=lambda b: (b["epoch"], b["source"]["version"],
                                                  b["release"], b["arch"]))
        return projects


def _matcher(globs: list[str] | None):
    """dnf's search rule: `*x*` is a substring, other `*`/`?` a glob, else an exact name."""
    if globs is None:
        return lambda name: True
    exact = set()
    substrings = []
    patterns = []
    for glob in globs:
        if "*" in glob and glob.startswith("*") and glob.endswith("*") and len(glob) > 1:
            inner = glob.strip("*")
            if any(c in inner for c in "*?["):
                patterns.append(glob)
            else:
                substrings.append(inner)
        elif any(c in glob for c in "*?["):
            patterns.append(glob)
        else:
            exact.add(glob)

    def match(name: str) -> bool:
        return (name in exact or any(s in name for s in substrings)
                or any(fnmatch.fnmatchcase(name, p) for p in patterns))

    return match


def _describe(problems) -> str:
    """dnf's text: `Problem: conflicting requests` and the problem's rules as `  - …` lines."""
    blocks = []
    for number, problem in enumerate(problems, 1):
        lines: list[str] = []
        for rule in problem.findallproblemrules():
            for info in rule.allinfos():
                text = info.problemstr()
                if text and text not in lines:
                    lines.append(text)
        if not lines:
            lines.append(str(problem))
        head = "Problem" if len(problems) == 1 else f"Problem {number}"
        blocks.append(f"{head}: conflicting requests\n  - " + "\n  - ".join(lines))
    return "\n ".join(blocks)


# --- the per-process warm cache ------------------------------------------------------------------

_POOLS: "OrderedDict[tuple, LoadedPool]" = OrderedDict()


def _pool_key(metadata: list[RepoMetadata], arch: str, lean: bool) -> tuple:
    return (arch, lean) + tuple((m.repo, m.repomd_checksum, m.baseurl) for m in metadata)


def loaded_pool(repositories: list[Repository], *, arch: str, cache: MetadataCache,
                lean: bool = False, first: list[PackageSet] | None = None) -> LoadedPool:
    """A warm pool for these repositories if this process has one, else a freshly loaded one.

    `lean`: a pool for depsolving only, loaded from the lean caches (search needs a full one).
    `first`: the chain a new pool will depsolve first (its strings are looked up early).
    """
    metadata = [cache.ensure(repo) for repo in repositories]
    key = _pool_key(metadata, arch, lean)
    pool = _POOLS.get(key)
    if pool is not None:
        _POOLS.move_to_end(key)
        return pool
    pool = LoadedPool(metadata, arch, lean=lean, first=first)
    _POOLS[key] = pool
    while len(_POOLS) > MAX_POOLS:
        _POOLS.popitem(last=False)
    return pool


@contextlib.contextmanager
def _pool_for(repositories: list[Repository], *, arch: str, cache: MetadataCache,
              lean: bool = False, first: list[PackageSet] | None = None
              ) -> Iterator[LoadedPool]:
    """loaded_pool for one query; the .solv caches its loading left are written after the
    answer (in a child when deferred), so every query pays for them off its own path."""
    pool = loaded_pool(repositories, arch=arch, cache=cache, lean=lean, first=first)
    try:
        yield pool
    finally:
        pool.write_caches_in_background()


def forget_pools() -> None:
    """Drop this process's warm pools (benchmarks measure cold starts with it)."""
    _POOLS.clear()


DEFER_ENV = "CELERY_COMPOSER_DEPSOLVE_DEFER_CACHE_WRITES"


def _defer_cache_writes() -> bool:
    """One-shot processes (the CLI) set this: answer first, write .solv caches in a child."""
    return os.environ.get(DEFER_ENV, "") == "1"


def depsolve(chain: list[PackageSet], repositories: list[Repository], *, arch: str,
             releasever: str, module_platform_id: str | None, cache: MetadataCache
             ) -> list[list[dict[str, Any]]]:
    # URLs are already substituted; only default module streams are active, so the platform
    # id (which decides which streams *may* be enabled) changes nothing here.
    del releasever, module_platform_id
    # A one-shot process loads the lean caches; a long-lived one keeps one full pool in memory
    # for depsolve and search alike (two would load twice and hold twice the memory).  A path
    # to install is looked up in the file lists, which the lean caches leave out.
    lean = _defer_cache_writes() and not any(spec.startswith("/") for package_set in chain
                                             for spec in package_set.include)
    with _pool_for(repositories, arch=arch, cache=cache, lean=lean, first=chain) as pool:
        return pool.depsolve(chain)


def search(repositories: list[Repository], *, arch: str, releasever: str, cache: MetadataCache,
           globs: list[str] | None) -> list[dict[str, Any]]:
    del releasever
    with _pool_for(repositories, arch=arch, cache=cache) as pool:
        return pool.projects(globs)


def search_page(repositories: list[Repository], *, arch: str, releasever: str,
                cache: MetadataCache, globs: list[str] | None, offset: int, limit: int
                ) -> tuple[int, list[dict[str, Any]]]:
    del releasever
    with _pool_for(repositories, arch=arch, cache=cache) as pool:
        return pool.projects_page(globs, offset, limit)


def names(repositories: list[Repository], *, arch: str, releasever: str, cache: MetadataCache,
          globs: list[str] | None) -> list[str]:
    del releasever
    with _pool_for(repositories, arch=arch, cache=cache) as pool:
        return pool.names(globs)
