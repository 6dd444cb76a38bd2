"""`celery-composer migrate`: bring the store's database to the newest schema, or report on it.

Every process applies pending migrations when it first opens the database, so this is not needed
for upgrades; it is for doing it at a chosen moment (before starting a new version's services, in
a deployment's init container) and for asking (`--check`) whether a database is current.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when migrations are pending")


def run(args: argparse.Namespace, config: "Config") -> int:
    from core import db as db_mod

    database = db_mod.Database.from_config(config)
    head = db_mod.head_revision()
    try:
        engine = db_mod.engine_for(database.url)
        with engine.connect() as conn:
            current = db_mod.current_revision(conn)
        if args.check:
            print(f"{database.name}: at {current or 'no schema'}, newest {head}")
            return 0 if current == head else 1
        before = db_mod.migrate(engine)
    except Exception as exc:  # noqa: BLE001 - any failure is reported with the database named
        print(f"celery-composer migrate: the database {database.name} cannot be migrated: {exc}",
              file=sys.stderr)
        return 1
    if before == head:
        print(f"{database.name}: already at {head}")
    else:
        print(f"{database.name}: migrated from {before or 'no schema'} to {head}")
    return 0
