"""A database URL and a driver's error as start-up reports them.

Start-up names the database in its one-line failures; these keep SQLAlchemy's
URL parsing and error types inside storage.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from chatsio.config import without_password

# The driver's own failures (asyncpg's wrapped by SQLAlchemy, sqlite3's).
DriverError = DBAPIError


def driver_cause(exc: BaseException) -> BaseException:
    """The driver's exception inside SQLAlchemy's wrapper, else ``exc``."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def sqlite_file(url: str) -> Path | None:
    """The SQLite database file the URL names; None for other databases and
    for SQLite in memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def shown_database(url: str, *, absolute: bool = True) -> str:
    """The database as a person writes DATABASE_URL: no driver, no password,
    and (``absolute``) a SQLite file by its full path."""
    parsed = make_url(url)
    parsed = parsed.set(drivername=parsed.get_backend_name())
    if absolute and (path := sqlite_file(url)) is not None:
        parsed = parsed.set(database=str(path.absolute()))
    return without_password(parsed.render_as_string(hide_password=False))
