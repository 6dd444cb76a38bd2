"""`celery-composer depsolve`: resolve packages against repositories and print the transaction.

    celery-composer depsolve --repo https://…/BaseOS/x86_64/os/ --repo … @core tmux

prints the JSON list of packages (name, epoch, version, release, arch, remote_location,
checksum, check_gpg, repo_id), the same the depsolve task hands the build; on failure the error
message goes to stderr and the exit status is 1 (unsatisfiable) or 2 (unusable repository).
Only the standard library is imported before `run`, so a user pays for Python and libsolv, not
for the service.  `run` ends the process itself once its output is flushed (`os._exit`): tearing
down a loaded pool and the interpreter's objects would cost more than the solve's lookups.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, NoReturn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("packages", nargs="+", metavar="PACKAGE|@GROUP",
                        help="package names, provides, file paths, globs or @groups to install")
    parser.add_argument("--repo", action="append", default=[], metavar="URL",
                        help="a repository baseurl (repeat for more); $basearch/$releasever allowed")
    parser.add_argument("--metalink", action="append", default=[], metavar="URL",
                        help="a repository given by its metalink")
    parser.add_argument("--mirrorlist", action="append", default=[], metavar="URL",
                        help="a repository given by its mirrorlist")
    parser.add_argument("--arch", default=None, help="target architecture (default: this host's)")
    parser.add_argument("--releasever", default="", help="value of $releasever in URLs")
    parser.add_argument("--exclude", action="append", default=[], metavar="NAME",
                        help="package name or glob to exclude (repeatable)")
    parser.add_argument("--no-weak-deps", action="store_true",
                        help="do not install weak dependencies (Recommends, Supplements)")
    parser.add_argument("--module-platform-id", default=None, help="e.g. platform:el9")
    parser.add_argument("--cache-dir", default=None,
                        help="metadata cache directory (default: the configured cache_dir)")
    parser.add_argument("--check-gpg", action="store_true",
                        help="mark the packages as needing a GPG check")


def _repositories(args: argparse.Namespace) -> list[dict[str, Any]]:
    repos: list[dict[str, Any]] = []
    for kind, urls in (("baseurl", args.repo), ("metalink", args.metalink),
                       ("mirrorlist", args.mirrorlist)):
        for url in urls:
            repos.append({"id": f"repo-{len(repos) + 1}", kind: url, "check_gpg": args.check_gpg})
    return repos


def run(args: argparse.Namespace, config: Any) -> int:
    import gc

    # Nothing this process makes is garbage before it ends (with os._exit, see _exit): the
    # cycle collector would only walk the modules' and the solver's objects, again and again.
    gc.disable()

    import json
    import logging
    import os
    from pathlib import Path

    from depsolve import DepsolveError, PackageSet, RepositoryError, depsolve

    # A one-shot process: print the answer first, let a child write the solver caches.
    os.environ.setdefault("CELERY_COMPOSER_DEPSOLVE_DEFER_CACHE_WRITES", "1")

    # Progress goes to the log, the transaction alone to stdout (it is meant to be piped).
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    repos = _repositories(args)
    if not repos:
        print("celery-composer depsolve: give at least one --repo, --metalink or --mirrorlist",
              file=sys.stderr)
        return 2
    cache_dir = Path(args.cache_dir) if args.cache_dir else Path(config.cache_dir)
    package_set = PackageSet(args.packages, args.exclude, not args.no_weak_deps)
    try:
        [packages] = depsolve([package_set], repos, arch=args.arch or os.uname().machine,
                              releasever=args.releasever,
                              module_platform_id=args.module_platform_id, cache_dir=cache_dir,
                              metadata_expire=getattr(config, "metadata_expire", None))
    except DepsolveError as exc:
        _exit(f"celery-composer depsolve: {exc}", 1)
    except RepositoryError as exc:
        _exit(f"celery-composer depsolve: {exc}", 2)
    try:
        sys.stdout.write(json.dumps(packages, indent=2))
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head` is a normal way to look at a transaction
        _exit("", 0)
    _exit("", 0)


def _exit(message: str, status: int) -> NoReturn:
    """Print `message` (if any) to stderr, flush, and end the process without tearing it down.

    Nothing is left to clean up: the .solv caches are written by a child of their own.
    """
    import os

    with contextlib.suppress(OSError, ValueError):
        if message:
            print(message, file=sys.stderr)
        sys.stderr.flush()
    os._exit(status)
