"""osbuild/images' deterministic stand-ins for depsolving and for resolving containers and commits.

images' test manifests (`gen-manifests --packages=false --containers=false --commits=false`) are
made without a network: every package of a package set "resolves" to a fake package whose name,
version, release, checksum and URL are derived from the set, the transaction and the name (sha256),
and each transaction also gets a pseudo-package naming its repositories and one per repository.
Reproducing those stand-ins here (`pkg/manifestgen/manifestmock` in images) lets our engine's
manifests be compared byte for byte with the checksums images publishes.

Repositories are dicts in the form of images' test repository files (`name`, `baseurl`,
`check_gpg`, `gpgkeys`, `rhsm`, ...); `repo_config` turns one into images' RepoConfig fields,
with `id` set to images' `RepoConfig.Hash()` when the file gives none.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

# GPG keys images' mock pretends the first transaction of every set installs into the tree
GPG_KEYS_FROM_TREE = [
    "/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release",
    "/etc/pki/rpm-gpg/RPM-GPG-KEY-microsoft-azure-release",
]
ROOT_DIR_REPO = {"name": "root-dir-repo", "baseurls": ["https://example.com/root_dir_repo"]}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def repo_config(repo: Mapping[str, Any]) -> dict[str, Any]:
    """A test repository (file form or RepoConfig form) → images' RepoConfig fields.

    File form (`baseurl`, `gpgkey`/`gpgkeys`, `check_gpg`) always has a CheckGPG (false when
    absent), RepoConfig form (`baseurls`, as a config's `custom_repos`) keeps what it says."""
    if "baseurls" in repo or "id" in repo:
        cfg = dict(repo)
        cfg.setdefault("baseurls", [])
    else:
        baseurl = repo.get("baseurl")
        keys = ([repo["gpgkey"]] if repo.get("gpgkey") else []) + list(repo.get("gpgkeys") or [])
        cfg = {k: v for k, v in repo.items() if k not in ("baseurl", "gpgkey", "gpgkeys")}
        cfg["baseurls"] = [baseurl] if isinstance(baseurl, str) else list(baseurl or [])
        cfg["gpgkeys"] = keys
        cfg["check_gpg"] = bool(repo.get("check_gpg", False))
    if not cfg.get("id"):
        cfg["id"] = repo_hash(cfg)
    return cfg


def repo_hash(cfg: Mapping[str, Any]) -> str:
    """images' `RepoConfig.Hash()`. Go formats the *presence* of its optional booleans (`%T` prints
    the type, `*bool`), not their values, and `bool` for RHSM; name and tags are not part of it."""
    def present(key: str) -> str:
        return "*bool" if cfg.get(key) is not None else ""

    text = ("".join(cfg.get("baseurls") or []) + (cfg.get("metalink") or "") + (cfg.get("mirrorlist") or "")
            + "".join(cfg.get("gpgkeys") or []) + present("check_gpg") + present("check_repo_gpg")
            + present("ignore_ssl") + (cfg.get("metadata_expire") or "") + "bool" + present("module_hotfixes")
            + (cfg.get("sslcacert") or "") + (cfg.get("sslclientkey") or "") + (cfg.get("sslclientcert") or ""))
    return _sha256(text)


def full_nevra(pkg: Mapping[str, Any]) -> str:
    return f"{pkg['name']}-{pkg.get('epoch', 0)}:{pkg['version']}-{pkg['release']}.{pkg['arch']}"


def _package(name: str, version: str, release: str, arch: str, checksum: str, repo: Mapping[str, Any],
             check_gpg: bool, location: str | None = None, remote: str | None = None) -> dict[str, Any]:
    pkg: dict[str, Any] = {"name": name, "epoch": 0, "version": version, "release": release, "arch": arch,
                           "checksum": "sha256:" + checksum, "check_gpg": check_gpg, "repo_id": repo["id"]}
    if location is None:
        location = f"packages/{full_nevra(pkg)}.rpm"
        remote = f"{repo['baseurls'][0]}/{location}"
    pkg["location"] = location
    pkg["remote_location"] = remote
    return pkg


def _go_url_string(scheme: str, host: str, path: str) -> str:
    """Go's url.URL.String() for scheme://host + a path that may lack its leading slash."""
    escaped = urllib.parse.quote(path, safe="/:@&=+$,;~!*'()")
    if escaped and not escaped.startswith("/"):
        escaped = "/" + escaped
    return f"{scheme}://{host}{escaped}"


def _repo_pseudo_package(repo: Mapping[str, Any], arch: str) -> dict[str, Any]:
    base = repo["baseurls"][0]
    idx = base.rfind("-")
    if idx > 0:
        base = base[:idx]          # the test repositories end in a snapshot date
    parsed = urllib.parse.urlsplit(base)
    path = f"passed-arch:{arch}/passed-repo:{urllib.parse.unquote(parsed.path)}"
    url = _go_url_string(parsed.scheme, "example.com", path)
    if parsed.query:
        url += "?" + parsed.query
    checksum = _sha256(url)
    return _package(url, str(ord(checksum[0]) % 9), f"{ord(checksum[1]) % 9}.fk1", arch, checksum, repo,
                    False, location=path, remote=url)


def depsolve_chain(set_name: str, chain: Sequence[Mapping[str, Any]], arch: str,
                   gpg_key_files: Sequence[str] = (), use_root_dir: bool = False) -> list[list[dict[str, Any]]]:
    """One pipeline's chain → its transactions, each sorted by full NEVRA (images' mock `Depsolve`).

    Each package set carries `include`, `exclude`, `install_weak_deps` and `repositories` (RepoConfig
    dicts with `id`, `name`, `baseurls`, `check_gpg`)."""
    transactions: list[list[dict[str, Any]]] = []
    seen_repos: dict[str, Mapping[str, Any]] = {}
    for tx, pset in enumerate(chain):
        repos = list(pset.get("repositories") or [])
        if use_root_dir:
            if repos:
                raise ValueError(f"package set {set_name} has repositories when use_root_dir is true")
            repos = [repo_config(ROOT_DIR_REPO)]
        if not repos:
            raise ValueError(f"package set {set_name} (transaction {tx}) has no repositories")
        packages: list[dict[str, Any]] = []
        for kind, names in (("include", pset.get("include") or []), ("exclude", pset.get("exclude") or [])):
            for name in names:
                checksum = _sha256(f"pkgset:{set_name}_trans:{tx}_{kind}:{name}")
                repo = repos[hashlib.sha256(name.encode()).digest()[0] % len(repos)]
                # included packages keep their names (pipelines look for `kernel`); versions stay
                # below 5 for them (dnf 4 is recognised by version 4)
                version = str(ord(checksum[0]) % (5 if kind == "include" else 9))
                release = f"{ord(checksum[1]) % 9}.pkgset~{set_name}^trans~{tx}"
                packages.append(_package(name if kind == "include" else f"exclude:{name}", version, release,
                                         arch, checksum, repo, repo.get("check_gpg") is True))
        config_name = f"pkgset:{set_name}_trans:{tx}_repos:" + "+".join(r.get("name") or "" for r in repos)
        if pset.get("install_weak_deps"):
            config_name += "+weak"
        checksum = _sha256(config_name)
        config_pkg = _package(config_name, str(ord(checksum[0]) % 9), f"{ord(checksum[1]) % 9}.fk1", arch,
                              checksum, repos[0], False)
        if tx == 0:
            config_pkg["files"] = list(GPG_KEYS_FROM_TREE) + list(gpg_key_files)
        packages.append(config_pkg)
        for repo in repos:
            known = seen_repos.get(repo["id"])
            if known is not None:
                if repo_hash(known) != repo_hash(repo):
                    raise ValueError(f"repo ID {repo['id']!r} collision: different configs with same ID")
                continue
            seen_repos[repo["id"]] = repo
            packages.append(_repo_pseudo_package(repo, arch))
        packages.sort(key=full_nevra)
        transactions.append(packages)
    return transactions


def all_packages(transactions: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """images' `TransactionList.AllPackages()`: every transaction's packages, sorted by full NEVRA."""
    return sorted((p for tx in transactions for p in tx), key=full_nevra)


def depsolve(package_sets: Mapping[str, Sequence[Mapping[str, Any]]], arch: str,
             gpg_key_files: Sequence[str] = (), use_root_dir: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Every pipeline's chain → the packages that pipeline installs (the engine's `packages`)."""
    return {name: all_packages(depsolve_chain(name, chain, arch, gpg_key_files, use_root_dir))
            for name, chain in package_sets.items()}


def resolve_container(source: str, name: str = "", tls_verify: bool | None = None,
                      local: bool = False) -> dict[str, Any]:
    """images' mock `ResolveContainers` for one container source."""
    def digest(suffix: str) -> str:
        return "sha256:" + _sha256(name + source + suffix)

    spec: dict[str, Any] = {"Source": source, "Digest": digest("digest"), "ImageID": digest("imageid"),
                            "LocalName": name or source, "ListDigest": digest("list-digest"),
                            "TLSVerify": tls_verify}
    if local:
        spec["LocalStorage"] = True
    return spec


def resolve_containers(blueprint: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The blueprint's `containers` as the mock resolves them, for the `os` pipeline."""
    specs = [resolve_container(str(c["source"]), str(c.get("name") or ""), c.get("tls-verify"),
                               bool(c.get("local-storage")))
             for c in blueprint.get("containers") or [] if c.get("source")]
    return {"os": specs} if specs else {}


def resolve_commit(url: str, ref: str, rhsm: bool = False) -> dict[str, str]:
    """images' mock ostree resolve: the checksum is sha256(url + ref)."""
    commit = {"ref": ref, "url": url, "checksum": _sha256(url + ref)}
    if rhsm:
        commit["secrets"] = "org.osbuild.rhsm.consumer"
    return commit



def resolve_flatpak(url: str, ref: str, remote_name: str = "", registry_type: int = 1) -> dict[str, Any]:
    """images' mock `ResolveFlatpaks` for one OCI registry reference: digests from the registry's
    type (1: OCI), remote name, URL and the reference; the reference itself is the source and the
    image has no local name."""
    base = f"{registry_type}{remote_name}{url}{ref}"
    return {"Source": ref, "Digest": "sha256:" + _sha256(base + "digest"),
            "ImageID": "sha256:" + _sha256(base + "imageid")}
