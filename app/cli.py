"""The `celery-composer` command and its subcommands.

Each subcommand lives in the module of the concept it drives and exposes two functions,
`add_arguments(parser)` and `run(args, config) -> int`.  They are imported only when chosen, so
that `celery-composer depsolve` does not pay for Flask or Celery at start-up: a subcommand module keeps
its top-level imports light and imports what `run` needs inside `run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType


def _serve() -> ModuleType:
    from app import server

    return server


def _worker() -> ModuleType:
    from tasks import worker

    return worker


def _depsolve() -> ModuleType:
    from depsolve import cli

    return cli


def _manifest() -> ModuleType:
    from distros import cli

    return cli


def _gen_manifests() -> ModuleType:
    from distros import genmanifests

    return genmanifests


def _migrate() -> ModuleType:
    from core import migrate

    return migrate


def _status() -> ModuleType:
    from app import status

    return status


# name -> (the subcommand's module, imported on demand; one-line help)
SUBCOMMANDS: dict[str, tuple[Callable[[], ModuleType], str]] = {
    "serve": (_serve, "serve the Weldr API on its unix socket (and optionally TCP)"),
    "worker": (_worker, "run a Celery worker for compose queues (depsolve, build, upload.<target>)"),
    "depsolve": (_depsolve, "resolve packages against repositories and print the pinned transaction"),
    "manifest": (_manifest, "print the osbuild manifest of a golden-case document or of a blueprint"),
    "gen-manifests": (_gen_manifests, "make osbuild/images' mock test manifests with our engine (--check: sha1 scoreboard)"),
    "migrate": (_migrate, "apply the store's pending database migrations (--check: only report)"),
    "status": (_status, "health summary: API, broker, workers per queue, osbuild"),
}


def _chosen_subcommand(argv: list[str]) -> str | None:
    """The subcommand named on the command line, if any (skipping `--config FILE`)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--config":
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in SUBCOMMANDS else None
    return None


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, sized as shutil.get_terminal_size would, without importing shutil.

    argparse makes a formatter for every option it is given (to check the option's metavar), and
    the stock one imports shutil (and with it zlib, bz2 and lzma) to learn the terminal's width:
    a few milliseconds of every `celery-composer depsolve`, which prints no help.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """$COLUMNS, else the width of the terminal on stdout, else 80 (shutil's rule)."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that subcommand (the others are not needed to parse its
    command line, and importing their modules and making their parsers would slow it down)."""
    parser = argparse.ArgumentParser(
        prog="celery-composer",
        description="Image builds through osbuild-composer's Weldr API, as Celery tasks.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="configuration file (default /etc/celery-composer/celery-composer.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        if only is not None and name != only:
            continue
        sp = sub.add_parser(name, help=help_text, description=help_text,
                            formatter_class=_HelpFormatter)
        sp.set_defaults(_module=module)
        module().add_arguments(sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    from core import config as config_mod

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=_chosen_subcommand(argv))
    args = parser.parse_args(argv)
    try:
        config = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        print(f"celery-composer: configuration error: {exc}", file=sys.stderr)
        return 2
    return int(args._module().run(args, config) or 0)


if __name__ == "__main__":
    sys.exit(main())
