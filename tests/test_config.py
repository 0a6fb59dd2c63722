"""Settings: read from an environment mapping, checked, and overridable by flags."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.engine import make_url

from chatsio.config import Config, load_config
from chatsio.errors import ConfigError

SECRET = "s" * 32


def test_defaults_use_sqlite_in_the_working_directory_and_port_8080() -> None:
    config = load_config({})
    assert config == Config()
    assert config.port == 8080
    url = make_url(config.database_url)
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == "chatsio.db"  # relative: a file in the cwd
    assert config.redis_url is None and config.secret is None
    assert config.registration_open is True


def test_load_config_ignores_unrelated_variables() -> None:
    assert load_config({"HOME": "/root", "DATABASE": "x", "port": "1"}) == Config()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
    ],
)
def test_database_url_forms_are_normalized(raw: str, expected: str) -> None:
    url = load_config({"DATABASE_URL": raw}).database_url
    assert url == expected
    make_url(url)  # SQLAlchemy accepts it


def test_every_setting_is_read() -> None:
    config = load_config(
        {
            "HOST": "0.0.0.0",
            "PORT": "9001",
            "REDIS_URL": "redis://localhost:6379/0",
            "CHATSIO_SECRET": SECRET,
            "CHATSIO_TOKEN_TTL": "60",
            "CHATSIO_RATE_LIMIT": "2.5",
            "CHATSIO_RATE_BURST": "7",
            "CHATSIO_REGISTRATION_OPEN": "false",
            "CHATSIO_LOG_LEVEL": "DEBUG",
        }
    )
    assert config == Config(
        host="0.0.0.0",
        port=9001,
        redis_url="redis://localhost:6379/0",
        secret=SECRET,
        token_ttl=60,
        rate_limit=2.5,
        rate_burst=7,
        registration_open=False,
        log_level="debug",
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("PORT", "-1"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "nonsense"),
        ("CHATSIO_SECRET", "s" * 31),
        ("CHATSIO_TOKEN_TTL", "5"),
        ("CHATSIO_TOKEN_TTL", "a day"),
        ("CHATSIO_RATE_LIMIT", "-1"),
        ("CHATSIO_RATE_LIMIT", "fast"),
        ("CHATSIO_RATE_BURST", "0"),
        ("CHATSIO_REGISTRATION_OPEN", "maybe"),
        ("CHATSIO_LOG_LEVEL", "loud"),
        ("REDIS_URL", "http://x"),
        ("REDIS_URL", "redis://localhost:6379/abc"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_variable(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({key: value})
    message = str(raised.value)
    assert key in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False)],
)
def test_registration_open_reads_booleans(raw: str, expected: bool) -> None:
    config = load_config({"CHATSIO_REGISTRATION_OPEN": raw})
    assert config.registration_open is expected


def test_with_overrides_replaces_only_what_is_given() -> None:
    base = load_config({"PORT": "8000", "CHATSIO_LOG_LEVEL": "warning"})
    changed = base.with_overrides(port="9000", host=None, log_level=None)
    assert changed.port == 9000
    assert changed == dataclasses.replace(base, port=9000)
    assert base.port == 8000  # the original is untouched


def test_with_overrides_normalizes_like_the_environment() -> None:
    changed = Config().with_overrides(database_url="postgres://u@h/db")
    assert changed.database_url == "postgresql+asyncpg://u@h/db"
    assert Config().with_overrides(port=9000).port == 9000


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("port", "abc", "PORT"),
        ("port", "70000", "PORT"),
        ("database_url", "mysql://x", "DATABASE_URL"),
        ("log_level", "loud", "CHATSIO_LOG_LEVEL"),
    ],
)
def test_with_overrides_rejects_bad_values_naming_the_setting(
    field: str, value: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        Config().with_overrides(**{field: value})


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().port = 1  # type: ignore[misc]
