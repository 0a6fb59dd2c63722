"""Start-up failures, run as real processes: one line naming what to change, exit 2.

Each case is what a new user meets in the first minutes: the port taken, a
HOST that does not resolve, a database that is down, missing or in a directory
that does not exist, a bad setting that holds a secret, a notice Redis never got.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import POSTGRES_ADMIN_URL, unavailable
from test_cli import PASSWORD, free_port, one_line, run

# Unresolvable by definition (RFC 6761): no resolver answers for .invalid.
NO_SUCH_HOST = "chatsio.invalid"
SECRET = "hunter2-is-not-a-password"


def assert_fails_with_one_line(
    done, *, status: int = 2, naming: tuple[str, ...] = ()
) -> str:
    """The command exited ``status``, printed one ``chatsio:`` line naming each
    of ``naming``, no traceback, nothing on stdout, and never the secret."""
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    line = one_line(done.stderr)
    assert line.startswith("chatsio: "), line
    for word in naming:
        assert word in line, (word, line)
    assert done.stdout == ""
    assert SECRET not in done.stderr
    return line


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def postgres_reachable() -> str:
    """POSTGRES_ADMIN_URL's server address, or skip (fail in CI) when it is down."""
    server = urlsplit(POSTGRES_ADMIN_URL)
    address = (server.hostname or "127.0.0.1", server.port or 5432)
    try:
        with socket.create_connection(address, timeout=2):
            return POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    except OSError as exc:
        unavailable(f"PostgreSQL at {address[0]}:{address[1]}", str(exc))


def test_port_in_use(tmp_path: Path, taken_port: int) -> None:
    done = run(tmp_path, "serve", "--port", str(taken_port))
    line = assert_fails_with_one_line(done, naming=("PORT", str(taken_port)))
    assert "in use" in line
    assert not (tmp_path / "chatsio.db").exists()  # nothing touched before the bind


def test_unresolvable_host(tmp_path: Path) -> None:
    done = run(tmp_path, "serve", "--port", "0", HOST=NO_SUCH_HOST)
    assert_fails_with_one_line(done, naming=("HOST", NO_SUCH_HOST))
    assert not (tmp_path / "chatsio.db").exists()


def test_postgresql_unreachable(tmp_path: Path) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/chatsio"
    done = run(tmp_path, "serve", "--port", "0", DATABASE_URL=url)
    line = assert_fails_with_one_line(done, naming=("DATABASE_URL", "refused"))
    assert "postgresql://postgres:***@127.0.0.1" in line


def test_postgresql_host_unresolvable(tmp_path: Path) -> None:
    url = f"postgres://postgres@{NO_SUCH_HOST}/chatsio"
    done = run(tmp_path, "serve", "--port", "0", DATABASE_URL=url)
    assert_fails_with_one_line(done, naming=("DATABASE_URL", NO_SUCH_HOST))


def test_no_such_postgresql_database(tmp_path: Path) -> None:
    name = f"chatsio_missing_{uuid.uuid4().hex[:8]}"
    url = f"{postgres_reachable()}/{name}"
    done = run(tmp_path, "serve", "--port", "0", DATABASE_URL=url)
    line = assert_fails_with_one_line(done, naming=("DATABASE_URL", name))
    assert "does not exist" in line


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("serve", "--port", "0"), id="serve"),
        pytest.param(("createuser", "alice"), id="createuser"),
        pytest.param(("deleteuser", "alice"), id="deleteuser"),
    ],
)
def test_sqlite_file_in_a_missing_directory(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    url = f"sqlite:///{missing / 'chatsio.db'}"
    done = run(tmp_path, *args, DATABASE_URL=url, input=f"{PASSWORD}\n")
    line = assert_fails_with_one_line(done, naming=("DATABASE_URL", str(missing)))
    assert "does not exist" in line
    assert not missing.exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_a_database_in_memory_is_refused_in_one_line(tmp_path: Path, url: str) -> None:
    """Everything stored would be gone at the next restart, and a second
    process would see another database: chatsio names a file instead."""
    line = assert_fails_with_one_line(run(tmp_path, "serve", DATABASE_URL=url))
    assert "DATABASE_URL" in line and "in memory" in line


@pytest.mark.parametrize(
    ("args", "settings", "key"),
    [
        pytest.param(
            ("serve",), {"CHATSIO_SECRET": SECRET}, "CHATSIO_SECRET", id="secret"
        ),
        pytest.param(
            ("serve",),
            {"DATABASE_URL": f"mysql://root:{SECRET}@db/chat"},
            "DATABASE_URL",
            id="database-url",
        ),
        pytest.param(
            ("notify", "hello"),
            {"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:port"},
            "REDIS_URL",
            id="redis-url-port",
        ),
    ],
)
def test_a_bad_secret_setting_is_named_but_never_shown(
    tmp_path: Path, args: tuple[str, ...], settings: dict[str, str], key: str
) -> None:
    assert_fails_with_one_line(run(tmp_path, *args, **settings), naming=(key,))


def test_notify_with_redis_unreachable(tmp_path: Path) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}"
    done = run(tmp_path, "notify", "hello", REDIS_URL=url)
    line = assert_fails_with_one_line(done, status=1, naming=("REDIS_URL",))
    assert "nothing was sent" in line and "redis://:***@127.0.0.1" in line


def test_notify_to_an_unknown_chat_names_the_database(tmp_path: Path) -> None:
    chat = str(uuid.uuid4())
    url = f"redis://127.0.0.1:{free_port()}"  # never reached: the chat is checked first
    done = run(tmp_path, "notify", "hello", "--chat", chat, REDIS_URL=url)
    line = assert_fails_with_one_line(done, status=1, naming=(chat,))
    assert f"sqlite:///{tmp_path / 'chatsio.db'}" in line


def test_notify_to_a_malformed_chat_id(tmp_path: Path) -> None:
    done = run(tmp_path, "notify", "hello", "--chat", "general", REDIS_URL="redis://x")
    assert_fails_with_one_line(done, naming=("--chat",))
