"""Programmatic Alembic: configuration without alembic.ini, and a tiny developer command line.

The server migrates on start-up (`SqlStore.migrate`), so the migration scripts ship inside the
package and are located from this file rather than from a working directory. Functions taking a
`Connection` are synchronous on purpose: they run under ``AsyncConnection.run_sync``, which lets
Alembic's synchronous API drive an async driver from inside a running event loop.

Developers add a revision with::

    python -m sipbox.storage.migrate --url sqlite:///var/dev.db upgrade
    python -m sipbox.storage.migrate --url sqlite:///var/dev.db revision -m "add x" --autogenerate
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(*, connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic `Config` pointing at the packaged scripts; `connection` wins over `url`."""
    config = Config(attributes={"connection": connection} if connection is not None else {})
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal "%" (e.g. in a password) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the database behind `connection` (inside its current transaction)."""
    command.upgrade(alembic_config(connection=connection), revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for an unmigrated database."""
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision shipped with this version of sipbox."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revision 0001
        raise RuntimeError("no migration scripts found")
    return head


def main(argv: list[str] | None = None) -> int:
    """Developer entry point: ``upgrade``, ``current``, ``revision`` against ``--url``."""
    parser = argparse.ArgumentParser(prog="python -m sipbox.storage.migrate")
    parser.add_argument("--url", required=True, help="database URL or SQLite file path")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("upgrade", help="migrate to the newest revision")
    sub.add_parser("current", help="show the database's revision")
    rev = sub.add_parser("revision", help="create a new revision script")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")
    rev.add_argument("--rev-id", default=None)
    args = parser.parse_args(argv)
    config = alembic_config(url=args.url)
    if args.action == "upgrade":
        command.upgrade(config, "head")
    elif args.action == "current":
        command.current(config)
    else:
        command.revision(
            config, message=args.message, autogenerate=args.autogenerate, rev_id=args.rev_id
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
