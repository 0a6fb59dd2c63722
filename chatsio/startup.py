"""Start-up failures as one line each: what failed, and which setting to change.

The command line turns a ``StartupFailure`` into that line and exit status 2.
Only the failures a person can fix by a setting are mapped, each from its own
exception types at the step that raises them; anything else stays a traceback.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from chatsio.storage import Storage, open_storage
from chatsio.storage.urls import DriverError, driver_cause, shown_database, sqlite_file

HOST_ADVICE = "set HOST or --host to an address of this machine, such as 0.0.0.0"
PORT_ADVICE = {
    errno.EADDRINUSE: "set PORT or --port to a free port",
    errno.EADDRNOTAVAIL: HOST_ADVICE,
    errno.EACCES: "ports below 1024 need privileges: set PORT or --port to 1024+",
}
DATABASE_ADVICE = "check DATABASE_URL or --database-url"
# Failures to reach or open a database: the driver's own (asyncpg's wrapped by
# SQLAlchemy, sqlite3's) and the network's (refused, unresolvable, timed out).
DATABASE_ERRORS = (DriverError, OSError)


class StartupFailure(Exception):
    """A step of start-up failed in a way a setting can fix; str() says how."""


def listen_sockets(host: str, port: int) -> list[socket.socket]:
    """Bind HOST:PORT now, before anything else starts, the way
    ``loop.create_server`` would: every address HOST resolves to, IPv6 ones
    IPv6-only. aiohttp listens on them once the app has started, so until
    then a connection is refused, as before."""
    try:
        found = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupFailure(
            f"cannot listen on {host}: {exc.strerror}; {HOST_ADVICE}"
        ) from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            sockets.append(sock := socket.socket(family, kind, proto))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        advice = PORT_ADVICE.get(exc.errno, "check HOST and PORT")
        raise StartupFailure(
            f"cannot listen on {host}:{port}: {reason(exc).lower()}; {advice}"
        ) from exc
    return sockets


def check_sqlite_directory(url: str) -> None:
    """Refuse a SQLite file in a directory that does not exist, before
    aiosqlite tries: its failed connect leaves a reply for the event loop to
    its worker thread, which prints a traceback if the loop is closed by then
    (omnilib/aiosqlite#241), as it is when start-up gives up."""
    if missing := missing_sqlite_directory(url):
        raise StartupFailure(
            f"cannot open the database {shown_database(url)}: the directory "
            f"{missing} does not exist; {DATABASE_ADVICE}"
        )


def missing_sqlite_directory(url: str) -> Path | None:
    if (path := sqlite_file(url)) is None:
        return None
    directory = path.absolute().parent
    return None if directory.is_dir() else directory


async def open_database(url: str) -> Storage:
    """``open_storage``, with a failure to reach the database as one line."""
    check_sqlite_directory(url)
    try:
        return await open_storage(url)
    except DATABASE_ERRORS as exc:
        raise database_failure(url, exc) from exc


def database_failure(url: str, exc: BaseException) -> StartupFailure:
    return StartupFailure(
        f"cannot open the database {shown_database(url)}: "
        f"{database_reason(exc)}; {DATABASE_ADVICE}"
    )


def database_reason(exc: BaseException) -> str:
    return reason(driver_cause(exc))


def reason(exc: BaseException) -> str:
    """What went wrong, in one line: the OS's words if it has them."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(text.split())
