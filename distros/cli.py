"""`celery-composer manifest`: print the osbuild manifest of a request, without building it.

    celery-composer manifest CASE.json[.xz]
        a document with the golden cases' keys (compose-request, rpmmd, optional ostree-commits
        and containers): no network, the packages are given
    celery-composer manifest --distro centos-9 --arch x86_64 --image-type qcow2 --blueprint bp.toml
        resolves the image type's package sets with the depsolver against the distro's
        repositories (`repositories/<distro>.json`, or --repo URLs) and prints the manifest;
        ostree-based types take --ostree-url/--ostree-ref/--ostree-parent (commits are resolved
        as POST /compose resolves them)

A preview users can read (or diff) before building.  Only the standard library is imported before
`run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", nargs="?", type=Path,
                        help="golden-case document (JSON, optionally .xz) with compose-request and rpmmd")
    parser.add_argument("--distro", help="distro name, e.g. centos-9")
    parser.add_argument("--arch", help="architecture (default: this host's)")
    parser.add_argument("--image-type", help="image type, e.g. qcow2")
    parser.add_argument("--blueprint", type=Path, help="blueprint file (TOML or JSON)")
    parser.add_argument("--repo", action="append", default=[], metavar="URL",
                        help="repository baseurl instead of the distro's configured repositories (repeatable)")
    parser.add_argument("--size", type=int, default=0, help="image size in bytes (default: the image type's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random identifiers (UUIDs)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="depsolve metadata cache directory")
    parser.add_argument("--ostree-url", default="", help="ostree repository of the commit to build on (edge/iot types)")
    parser.add_argument("--ostree-ref", default="", help="ostree ref to build or to pull")
    parser.add_argument("--ostree-parent", default="", help="ostree parent ref")


def read_case(path: Path) -> dict[str, Any]:
    import json
    import lzma

    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt") as f:  # type: ignore[operator]
        return json.load(f)


def read_blueprint(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    text = path.read_text()
    if path.suffix == ".json":
        import json

        return json.loads(text)
    from core import tomldoc

    return tomldoc.loads(text)


def distro_repositories(config: Any, distro: str, arch: str) -> list[dict[str, Any]]:
    import json

    path = Path(config.repositories_dir) / f"{distro}.json"
    if not path.exists():
        raise LookupError(f"no repositories for {distro} ({path} does not exist); give --repo URLs")
    data = json.loads(path.read_text())
    repos = data.get(arch)
    if not repos:
        raise LookupError(f"{path} has no repositories for {arch}")
    return repos


def resolve_packages(it: Any, blueprint: dict[str, Any], repos: list[dict[str, Any]], arch: str,
                     releasever: str, module_platform_id: str, cache_dir: Path,
                     metadata_expire: int | None = None,
                     options: dict[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Depsolve each pipeline's chain; a pipeline gets the union of its chain's transactions."""
    from depsolve import PackageSet, depsolve

    packages: dict[str, list[dict[str, Any]]] = {}
    for pipeline, chain in it.package_sets(blueprint, options).items():
        usable = [r for r in repos if not r.get("package_sets") or pipeline in r["package_sets"]]
        results = depsolve([PackageSet(**s) for s in chain], usable, arch=arch, releasever=releasever,
                           module_platform_id=module_platform_id, cache_dir=cache_dir,
                           metadata_expire=metadata_expire)
        seen: dict[str, dict[str, Any]] = {}
        for transaction in results:
            for pkg in transaction:
                seen.setdefault(pkg["checksum"], pkg)
        packages[pipeline] = sorted(seen.values(), key=lambda p: (p["name"], p["version"], p["release"], p["arch"]))
    return packages


def run(args: argparse.Namespace, config: Any) -> int:
    import json
    import platform

    import distros

    try:
        if args.case is not None:
            from distros.cases import manifest_for_case

            manifest = manifest_for_case(read_case(args.case), seed=args.seed)
        else:
            if not args.distro or not args.image_type:
                print("celery-composer manifest: give CASE.json, or --distro and --image-type", file=sys.stderr)
                return 2
            arch = args.arch or platform.machine()
            distro = distros.get_distro(args.distro)
            it = distro.image_type(arch, args.image_type)
            blueprint = read_blueprint(args.blueprint)
            if args.repo:
                repos = [{"id": f"repo-{i + 1}", "baseurl": url, "check_gpg": False}
                         for i, url in enumerate(args.repo)]
            else:
                repos = distro_repositories(config, distro.name, arch)
            cache_dir = args.cache_dir or Path(config.cache_dir)  # shared with the depsolve workers
            options: dict[str, Any] = {"size": args.size}
            ostree = {k: v for k, v in (("url", args.ostree_url), ("ref", args.ostree_ref),
                                        ("parent", args.ostree_parent)) if v}
            if ostree:
                options["ostree"] = ostree
            # what POST /compose does first: check the request, resolve ostree commits, containers
            # and the flatpaks an installer embeds
            from distros.inputs import prepare_compose, prepare_containers, prepare_flatpaks

            warnings, commits = prepare_compose(it, blueprint, ostree)
            for warning in warnings:
                print(f"celery-composer manifest: warning: {warning}", file=sys.stderr)
            if commits:
                options["ostree_commits"] = commits
            containers = prepare_containers(blueprint, arch=arch)
            if containers:
                options["containers"] = containers
            flatpaks = prepare_flatpaks(it, blueprint, ostree)
            if flatpaks:
                options["flatpaks"] = flatpaks
            packages = resolve_packages(it, blueprint, repos, arch, distro.release_version,
                                        distro.module_platform_id, cache_dir,
                                        getattr(config, "metadata_expire", None), options)
            manifest = it.manifest(blueprint, packages, repos, options, args.seed)
    except (LookupError, ValueError, OSError, RuntimeError) as exc:
        print(f"celery-composer manifest: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # depsolve and repository errors carry a message for the user
        if type(exc).__name__ in ("DepsolveError", "RepositoryError"):
            print(f"celery-composer manifest: {exc}", file=sys.stderr)
            return 1
        raise
    try:
        json.dump(manifest, sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stderr.close()
    return 0
