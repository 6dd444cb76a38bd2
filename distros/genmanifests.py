"""`celery-composer gen-manifests --mock`: osbuild/images' test manifests, made by our engine.

osbuild/images publishes, for every distro × arch × image type × test config it supports, the
sha1 of a mock manifest (`test/data/manifest-checksums.txt`, here `manifest-checksums.tsv` in
`../shared/reference/images-test`).  This command makes the same manifests the way images'
`cmd/gen-manifests` does with `OSBUILD_TESTING_RNG_SEED=0`,
`IMAGE_BUILDER_EXPERIMENTAL=gen-manifest-mock-bpfile-uris` and `--packages=false --containers=false
--commits=false --flatpaks=false --metadata=false`:

- the entries are those of the checksum list (names `<distro>-<arch>-<type>-<config>` with `-`
  inside each part written `_`), narrowed with --distro/--arch/--type/--config (globs);
- the blueprint and options come from the config (`configs/*.json`), the repositories from
  `repositories/<distro>.json` (those without image-type tags plus those tagged with the type) and
  the config's `custom_repos`;
- the UUIDs come from Go's math/rand seeded like images' `cmdutil.SeedArgFor`
  (`distros.gorand`); packages, containers, ostree commits and Flatpaks from images' mock resolvers
  (`distros.manifestmock`); blueprint files with a URI point at the file images would write;
- each manifest is written as Go's `json.MarshalIndent` plus a newline (`distros.gojson`), to
  `<NAME>.json`.

`--check` compares each file's sha1 with the list and prints the scoreboard (matches per distro and
per image type, mismatches, entries we do not offer and why, time taken); `make manifest-checksums`
runs that for every entry.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "images-test"
# os.TempDir() of images' gen-manifests: blueprint files with URIs are mocked below it
MOCK_TMPDIR = "/tmp/gen-manifests-tmpdir"
# images' gen-manifests runs its tests with this fact (options.Facts.APIType = TEST_APITYPE)
TEST_API_TYPE = "test-manifest"
BOOTC_REASON = ("bootc image types are built from a bootc container image (images' bootc distro with "
                "fake containers), not from distro definitions; out of scope for the engine")


def u(name: str) -> str:
    """images' file-name encoding of a name part: every `-` written `_`."""
    return name.replace("-", "_")


@dataclass
class Entry:
    """One line of the checksum list, resolved against our definitions where possible."""

    name: str
    sha1: str
    distro: str = ""            # images' distro name (e.g. rhel-9.6)
    arch: str = ""
    image_type: str = ""        # our canonical name, or images' as far as we can tell
    config_jobs: int = 1        # entries of this config in the run (images' bpfile URI rewrites)
    images_type: str = ""       # images' name of the type (repositories are tagged with it)
    config: str = ""            # the config's name
    unsupported: str = ""       # why we do not make this entry, when we do not


@dataclass
class Reference:
    """The inputs images made its checksums from."""

    root: Path
    config_list: Path | None = None
    configs_dir: Path | None = None
    repositories_dir: Path | None = None
    checksums: Path | None = None
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)   # u(name) -> config

    def __post_init__(self) -> None:
        self.config_list = self.config_list or self.root / "config-list.json"
        self.configs_dir = self.configs_dir or self.root / "configs"
        self.repositories_dir = self.repositories_dir or self.root / "repositories"
        self.checksums = self.checksums or self.root / "manifest-checksums.tsv"

    def load_configs(self, single: Path | None = None) -> None:
        paths = [single] if single else sorted(self.configs_dir.glob("*.json"))  # type: ignore[union-attr]
        for path in paths:
            cfg = json.loads(path.read_text())
            self.configs[u(cfg["name"])] = cfg

    def repositories(self, distro: str, arch: str, image_type: str) -> list[dict[str, Any]]:
        """images' `ReposByImageTypeName`: repositories without tags plus those tagged with the type."""
        path = self.repositories_dir / f"{distro}.json"  # type: ignore[operator]
        repos = json.loads(path.read_text()).get(arch) or []
        return [r for r in repos if not r.get("image_type_tags") or image_type in r["image_type_tags"]]


def read_checksums(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            name, sha1 = line.split("\t")
            out[name] = sha1.strip()
    return out


def _type_names(distro: Any, arch: str) -> dict[str, str]:
    """u(name) -> our canonical name, for canonical names and aliases on this distro/arch."""
    names = {u(n): n for n in distro.image_types(arch)}
    for alias, canonical in distro.aliases(arch).items():
        names.setdefault(u(alias), canonical)
    return names


def resolve_entries(checksums: dict[str, str], ref: Reference) -> list[Entry]:
    """Name each entry's distro, arch, type and config, or say why we do not make it."""
    import distros

    ours = {u(n): n for n in distros.list_distros()}
    theirs = {u(p.stem): p.stem for p in ref.repositories_dir.glob("*.json")}  # type: ignore[union-attr]
    type_cache: dict[tuple[str, str], dict[str, str]] = {}
    entries = []
    for name, sha1 in checksums.items():
        e = Entry(name=name, sha1=sha1)
        parts = name.split("-")
        if len(parts) != 4:
            e.unsupported = "name is not <distro>-<arch>-<type>-<config>"
            entries.append(e)
            continue
        udistro, e.arch, utype, uconfig = parts
        e.distro = theirs.get(udistro) or ours.get(udistro) or udistro.replace("_", "-")
        e.image_type = e.images_type = utype.replace("_", "-")
        cfg = ref.configs.get(uconfig)
        e.config = cfg["name"] if cfg else uconfig.replace("_", "-")
        if udistro.startswith("bootc_"):
            e.unsupported = BOOTC_REASON
        elif cfg is None:
            e.unsupported = f"no config named {uconfig!r} in {ref.configs_dir}"
        elif udistro not in ours:
            e.unsupported = f"distro {e.distro} is not defined in distros/defs"
        else:
            distro = distros.get_distro(ours[udistro])
            if e.arch not in distro.arches():
                e.unsupported = f"{e.distro} has no architecture {e.arch}"
            else:
                key = (distro.name, e.arch)
                if key not in type_cache:
                    type_cache[key] = _type_names(distro, e.arch)
                canonical = type_cache[key].get(utype)
                if canonical is None:
                    e.unsupported = f"image type {e.image_type} is not offered for {e.distro}/{e.arch}"
                else:
                    e.image_type = canonical
        entries.append(e)
    # images collects a job for every entry of its run and rewrites the config's shared blueprint
    # for each (`mock_bpfile_uris`); the checksum list is one whole run, so every entry is made
    # with its config's count over the whole list, also when only a few entries are selected
    jobs = Counter(e.config for e in entries)
    for e in entries:
        e.config_jobs = jobs[e.config]
    return entries


def select(entries: Iterable[Entry], distro: list[str], arch: list[str], image_type: list[str],
           config: list[str]) -> list[Entry]:
    def match(value: str, globs: list[str]) -> bool:
        return not globs or any(fnmatch.fnmatchcase(value, g) or fnmatchcase_u(value, g) for g in globs)

    def fnmatchcase_u(value: str, g: str) -> bool:
        return fnmatch.fnmatchcase(u(value), u(g))

    return [e for e in entries if match(e.distro, distro) and match(e.arch, arch)
            and match(e.image_type, image_type) and match(e.config, config)]


# --- making one manifest ----------------------------------------------------------------------

def mock_bpfile_uris(blueprint: dict[str, Any], rewrites: int = 1, tmpdir: str = MOCK_TMPDIR) -> dict[str, Any]:
    """IMAGE_BUILDER_EXPERIMENTAL=gen-manifest-mock-bpfile-uris: a blueprint file with a URI is
    replaced by a local file named after the URI's sha256 (images writes the URI into it).

    images rewrites the blueprint its jobs share, once per job of the config while collecting the
    jobs, so every job sees the URI after `rewrites` = the number of jobs of that config in the run
    (18 for the whole checksum list); the file's content is the URI of the step before the last.
    The file is written (mode 0600) as images does: the engine reads it like any local file."""
    files = ((blueprint.get("customizations") or {}).get("files")) or []
    if not any(f.get("uri") for f in files):
        return blueprint
    bp = json.loads(json.dumps(blueprint))
    for f in bp["customizations"]["files"]:
        if f.get("uri"):
            uri = f["uri"]
            for _ in range(max(rewrites, 1)):
                path = Path(tmpdir, "fake-bp-files-with-urls", hashlib.sha256(uri.encode()).hexdigest())
                content, uri = uri, f"file://{path}"
            _write_private(path, content.encode())
            f["uri"] = uri
    return bp


def _write_private(path: Path, data: bytes) -> None:
    """Write `path` (mode 0600) whole or not at all: parallel workers write the same files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def engine_options(config: dict[str, Any]) -> dict[str, Any]:
    """A config's `options` (images' ImageOptions) → our engine's manifest options."""
    opts = config.get("options") or {}
    # blueprint files name local files (written by mock_bpfile_uris)
    out: dict[str, Any] = {"api_type": TEST_API_TYPE, "local_file_uris": True}
    if opts.get("size"):
        out["size"] = int(opts["size"])
    if opts.get("ostree"):
        out["ostree"] = {k: v for k, v in opts["ostree"].items() if v not in (None, "")}
    if opts.get("partitioning_mode"):
        out["partitioning_mode"] = opts["partitioning_mode"]
    return out


def _engine_repo(repo: dict[str, Any]) -> dict[str, Any]:
    """A RepoConfig-form repository (a config's custom_repos) in the file form the engine reads."""
    if "baseurls" not in repo:
        return repo
    out = {k: v for k, v in repo.items() if k != "baseurls"}
    out["baseurl"] = repo["baseurls"][0] if len(repo["baseurls"]) == 1 else list(repo["baseurls"])
    return out


def make_manifest(entry: Entry, ref: Reference) -> dict[str, Any]:
    """The engine's manifest for one entry, with images' mock inputs."""
    import distros
    from distros import gorand, manifestmock

    config = ref.configs[u(entry.config)]
    blueprint = mock_bpfile_uris(config.get("blueprint") or {}, entry.config_jobs)
    options = engine_options(config)
    file_repos = ref.repositories(entry.distro, entry.arch, entry.images_type)
    custom = list(config.get("custom_repos") or [])
    rpm_configs = [manifestmock.repo_config(r) for r in file_repos + custom]
    # the engine's repositories carry images' repository ids, which the mock packages name
    repos = [dict(_engine_repo(r), id=c["id"]) for r, c in zip(file_repos + custom, rpm_configs, strict=True)]
    by_engine_id = {id(r): c for r, c in zip(repos, rpm_configs, strict=True)}

    it = distros.get_distro(entry.distro).image_type(entry.arch, entry.image_type)
    use_root_dir = bool((config.get("solver") or {}).get("use_root_dir"))
    sets = it.package_sets(blueprint, options)
    for pipeline, chain in sets.items():
        usable = [by_engine_id[id(r)] for r in repos
                  if not r.get("package_sets") or pipeline in r["package_sets"]]
        for pset in chain:
            pset.setdefault("repositories", usable)
    import_keys = (((blueprint.get("customizations") or {}).get("rpm") or {}).get("import_keys") or {})
    # transactions kept apart: images writes one rpm stage per transaction
    packages = {name: manifestmock.depsolve_chain(name, chain, entry.arch, list(import_keys.get("files") or []),
                                                  use_root_dir)
                for name, chain in sets.items()}

    containers = manifestmock.resolve_containers(blueprint)
    if containers:
        options["containers"] = containers
    commits = {pipeline: [manifestmock.resolve_commit(s.url, s.ref, s.rhsm) for s in sources]
               for pipeline, sources in it.ostree_sources(blueprint, options).items()}
    if commits:
        options["ostree_commits"] = commits
    flatpaks = {pipeline: [manifestmock.resolve_flatpak(s.url, s.ref, s.remote_name) for s in sources]
                for pipeline, sources in it.flatpak_sources(blueprint, options).items()}
    if flatpaks:
        options["flatpaks"] = flatpaks
    seed = gorand.manifest_seed(0, entry.distro, entry.arch, config["name"])
    return it.manifest(blueprint, packages, repos, options, seed)


def _job(args: tuple[Entry, Reference, str]) -> tuple[str, str, str]:
    """(name, sha1 or "", error) — run in a worker process."""
    entry, ref, output = args
    from distros.gojson import manifest_bytes

    try:
        data = manifest_bytes(make_manifest(entry, ref))
    except Exception as exc:  # every failure is reported per entry; the run goes on
        return entry.name, "", f"{type(exc).__name__}: {exc}"
    Path(output, entry.name + ".json").write_bytes(data)
    return entry.name, hashlib.sha1(data).hexdigest(), ""


# --- the command ------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    ref = str(DEFAULT_REFERENCE) if DEFAULT_REFERENCE.exists() else None
    parser.add_argument("--mock", action="store_true",
                        help="mock packages, containers and commits as images' gen-manifests does (required)")
    parser.add_argument("--output", type=Path, required=True, help="directory for the <NAME>.json files")
    parser.add_argument("--reference", type=Path, default=ref,
                        help=f"images' test inputs (default: {ref or '../shared/reference/images-test'})")
    parser.add_argument("--distro", action="append", default=[], help="distro name or glob (repeatable, or comma-separated)")
    parser.add_argument("--arch", action="append", default=[], help="architecture or glob")
    parser.add_argument("--type", action="append", default=[], dest="image_type", help="image type or glob")
    parser.add_argument("--config", action="append", default=[], dest="config_name",
                        help="config name or glob (a config file path: use it for every selected entry)")
    parser.add_argument("--config-list", type=Path, default=None, help="config-list.json (default: in --reference)")
    parser.add_argument("--configs", type=Path, default=None, help="directory of config files (default: in --reference)")
    parser.add_argument("--repositories", type=Path, default=None, help="test repositories directory (default: in --reference)")
    parser.add_argument("--checksums", type=Path, default=None, help="manifest-checksums.tsv (default: in --reference)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per CPU)")
    parser.add_argument("--check", action="store_true",
                        help="compare sha1s with the checksum list and print the scoreboard")
    parser.add_argument("--list-mismatches", type=int, default=50, metavar="N",
                        help="with --check, how many mismatches and errors to list (default 50, -1 all)")


def _split(values: list[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def run(args: argparse.Namespace, config: Any) -> int:
    if not args.mock:
        print("celery-composer gen-manifests: only --mock is supported (packages, containers and commits "
              "are mocked as in images' test manifests)", file=sys.stderr)
        return 2
    if args.reference is None:
        print("celery-composer gen-manifests: give --reference (images' test inputs)", file=sys.stderr)
        return 2
    ref = Reference(root=args.reference, config_list=args.config_list, configs_dir=args.configs,
                    repositories_dir=args.repositories, checksums=args.checksums)
    config_names = _split(args.config_name)
    single = next((Path(c) for c in config_names if c.endswith(".json")), None)
    ref.load_configs(single)
    if single:
        config_names = [json.loads(single.read_text())["name"]]
    started = time.monotonic()
    entries = select(resolve_entries(read_checksums(ref.checksums), ref),  # type: ignore[arg-type]
                     _split(args.distro), _split(args.arch), _split(args.image_type), config_names)
    args.output.mkdir(parents=True, exist_ok=True)
    todo = [e for e in entries if not e.unsupported]
    results = generate(todo, ref, str(args.output), args.workers)
    elapsed = time.monotonic() - started
    if args.check:
        return scoreboard(entries, results, elapsed, args.list_mismatches)
    failed = [(n, err) for n, (_, err) in results.items() if err]
    for name, err in failed:
        print(f"{name}: {err}", file=sys.stderr)
    print(f"{len(results) - len(failed)} manifests written to {args.output} in {elapsed:.1f}s "
          f"({len(failed)} failed, {len(entries) - len(todo)} not offered)", file=sys.stderr)
    return 1 if failed else 0


def generate(entries: list[Entry], ref: Reference, output: str, workers: int) -> dict[str, tuple[str, str]]:
    """name -> (sha1, error) for every entry, in `workers` processes."""
    jobs = [(e, ref, output) for e in entries]
    if workers <= 1 or len(jobs) < 8:
        return {name: (sha1, err) for name, sha1, err in map(_job, jobs)}
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_warm) as pool:
        return {name: (sha1, err) for name, sha1, err in pool.imap_unordered(_job, jobs, chunksize=8)}


def _warm() -> None:
    """Import the engine once per worker before the first job."""
    import distros.pipelines  # noqa: F401


def scoreboard(entries: list[Entry], results: dict[str, tuple[str, str]], elapsed: float,
               limit: int = 50) -> int:
    """Print matches per distro and per image type, mismatches, unsupported entries, time."""
    per_distro: dict[str, Counter[str]] = {}
    per_type: dict[str, Counter[str]] = {}
    mismatches: list[Entry] = []
    errors: list[tuple[Entry, str]] = []
    unsupported: Counter[str] = Counter()
    for e in entries:
        if e.unsupported:
            state = "unsupported"
            reason = e.unsupported
            if reason.startswith("image type"):
                reason = "image type not offered"
            unsupported[reason] += 1
        else:
            sha1, err = results.get(e.name, ("", "not generated"))
            if err:
                state = "error"
                errors.append((e, err))
            elif sha1 == e.sha1:
                state = "match"
            else:
                state = "mismatch"
                mismatches.append(e)
        per_distro.setdefault(e.distro, Counter())[state] += 1
        per_type.setdefault(e.image_type, Counter())[state] += 1
    total = Counter(state for c in per_distro.values() for state in c.elements())

    def table(title: str, rows: dict[str, Counter[str]]) -> None:
        print(f"\n{title:<28} {'match':>6} {'differ':>6} {'error':>6} {'n/a':>6} {'total':>6}")
        for key in sorted(rows):
            c = rows[key]
            print(f"{key:<28} {c['match']:>6} {c['mismatch']:>6} {c['error']:>6} {c['unsupported']:>6} "
                  f"{sum(c.values()):>6}")

    table("distro", per_distro)
    table("image type", per_type)
    shown = mismatches if limit < 0 else mismatches[:limit]
    print(f"\nmismatches ({len(mismatches)}{', first ' + str(len(shown)) if len(shown) < len(mismatches) else ''}):")
    for e in shown:
        print(f"  {e.name}")
    shown_err = errors if limit < 0 else errors[:limit]
    print(f"\nerrors ({len(errors)}):")
    for e, err in shown_err:
        print(f"  {e.name}: {err[:200]}")
    print(f"\nnot offered ({sum(unsupported.values())}):")
    for reason, n in unsupported.most_common():
        print(f"  {n:>5}  {reason}")
    print(f"\nmatch {total['match']} / {len(entries)} entries ({total['mismatch']} differ, {total['error']} errors, "
          f"{total['unsupported']} not offered); {len(results)} manifests made in {elapsed:.1f}s")
    return 0
