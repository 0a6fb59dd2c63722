"""Settings, read once from the environment into a frozen Config.

Only this module reads ``os.environ``. Command-line flags arrive as overrides.
A bad value raises ConfigError with a one-line message naming the setting.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from chatsio.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "sqlite+aiosqlite:///chatsio.db"  # a file in the cwd
    redis_url: str | None = None
    # False accepts a rediss:// server whose certificate cannot be verified
    # (Heroku Redis's is self-signed); the traffic stays encrypted.
    redis_tls_verify: bool = True
    # The pub/sub channel; None names it from REDIS_URL's database number
    # (transport/bus.py default_channel), as pub/sub ignores that number.
    redis_channel: str | None = None
    secret: str | None = None
    token_ttl: int = 24 * 3600
    rate_limit: float = 20.0
    rate_burst: int = 50
    max_connections_per_user: int = 20
    # Per user, on each node: chats started, and users invited to them, per
    # minute (a minute's worth at once). Invitations cover a full member list.
    chats_per_minute: int = 10
    invites_per_minute: int = 300
    registration_open: bool = True
    # Password hashing (services/passwords.py): a thread pool of its own and a
    # bounded queue; a full queue answers rate_limited at once.
    hash_workers: int = 1
    hash_queue: int = 16
    # Failed logins before back-off, per username and per client address, and
    # registrations per client address per hour (services/throttle.py).
    login_failures_per_user: int = 5
    login_failures_per_address: int = 20
    registrations_per_hour: int = 20
    max_file_bytes: int = 5 * 1024 * 1024
    # What one user's files may take: stored in all (a quota), and held in
    # flight on a node (binary packets from header to stored file), whose
    # attachment must arrive within the timeout (transport/attachments.py).
    file_quota_bytes: int = 100 * 1024 * 1024
    attachment_bytes_per_user: int = 16 * 1024 * 1024
    attachment_timeout: float = 120.0
    cors_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    # Slow or idle HTTP connections (api/connections.py): request headers are
    # due this long after a connection opens or its last response ends; a
    # body then gets that long plus a second per min_body_rate bytes; and one
    # client address may hold this many connections without a session.
    header_timeout: float = 10.0
    min_body_rate: int = 8 * 1024
    max_connections_per_address: int = 256
    log_level: str = "info"
    # permessage-deflate costs ~90 KB of zlib state per WebSocket and CPU per
    # frame; chat frames are small, so it is off unless asked for.
    ws_compression: bool = False
    # Seconds between a user's last /control connection closing and their
    # going offline: a reload or a short drop is no change (services/presence.py).
    presence_grace: float = 5.0

    def with_overrides(self, **overrides: Any) -> Config:
        """Return a copy with command-line values applied, each checked like env."""
        checked = {}
        for name, raw in overrides.items():
            if raw is None:
                continue
            setting = SETTINGS_BY_FIELD[name]
            checked[name] = setting.parse(str(raw))
        return replace(self, **checked)


def database_url(raw: str) -> str:
    """Map the URL forms platforms hand out onto SQLAlchemy's async drivers."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise ValueError("expected a URL such as sqlite:///chatsio.db")
    scheme = scheme.lower()
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        if rest.split("?")[0] in ("", "/", "/:memory:") or "mode=memory" in rest:
            raise ValueError(
                "an SQLite database in memory would lose every chat at a restart:"
                " name a file, such as sqlite:///chatsio.db"
            )
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        if not urlsplit(raw).hostname and "host=" not in rest:
            raise ValueError("a PostgreSQL URL needs a host")
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported scheme {scheme!r}: use sqlite:// or postgresql://")


REDIS_SCHEMES = (
    "redis", "rediss", "redis+sentinel", "redis+cluster", "rediss+cluster", "unix"
)  # fmt: skip


def redis_url(raw: str) -> str:
    """One server, a Sentinel set, or a node of a Redis Cluster (``+cluster``)."""
    scheme = raw.partition("://")[0].lower()
    if scheme not in REDIS_SCHEMES:
        raise ValueError(
            "expected redis://, rediss://, redis+sentinel:// or redis+cluster://"
        )
    if scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        parts = urlsplit(raw)
        parts.port  # noqa: B018 -- raises ValueError unless a number
        database = parts.path.strip("/") or "0"
        if not database.isdigit():
            raise ValueError("the database after the host must be a number")
        if scheme.endswith("+cluster") and int(database) != 0:
            raise ValueError("a Redis Cluster has only database 0")
    return raw


def channel_name(raw: str) -> str:
    if not re.fullmatch(r"\S{1,200}", raw):
        raise ValueError("expected 1 to 200 characters without spaces")
    return raw


def secret(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("use at least 32 characters")
    return raw


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def bounded_float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on", "open"):
        return True
    if lowered in ("0", "false", "no", "off", "closed"):
        return False
    raise ValueError("expected true or false")


def origins(raw: str) -> tuple[str, ...]:
    """Comma-separated origins such as ``https://chat.example.com``, or ``*``."""
    found = tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())
    for origin in found:
        parts = urlsplit(origin)
        if origin != "*" and (
            parts.scheme not in ("http", "https") or not parts.netloc or parts.path
        ):
            raise ValueError(f"{origin!r} is not an origin like https://example.com")
    return found


def networks(raw: str) -> tuple[str, ...]:
    """Comma-separated addresses or networks, e.g. ``127.0.0.1,10.0.0.0/8``."""
    found = tuple(item.strip() for item in raw.split(",") if item.strip())
    for item in found:
        ipaddress.ip_network(item, strict=False)  # ValueError names the bad one
    return found


def log_level(raw: str) -> str:
    lowered = raw.strip().lower()
    if lowered not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return lowered


@dataclass(frozen=True)
class Setting:
    field: str
    env: str
    parser: Callable[[str], Any]
    # How an invalid value is quoted in the error: a secret never, a URL
    # without its password.
    quote: Callable[[str], str] = repr

    def parse(self, raw: str) -> Any:
        try:
            return self.parser(raw)
        except ValueError as exc:
            shown = self.quote(raw)
            raise ConfigError(f"{self.env}: invalid value {shown}: {exc}") from None


def withheld(_raw: str) -> str:
    return "(not shown)"


def quoted_url(raw: str) -> str:
    return repr(without_password(raw))


def without_password(url: str) -> str:
    """``url`` with its password, as user info or a query parameter, as ``***``.

    Plain string work, not urlsplit: that fails on some malformed URLs and
    rewrites others (``sqlite:///x`` comes back as ``sqlite:/x``).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # "user:password@host/db" without its scheme is redacted too
        scheme, rest = "", url
    netloc, tail = re.match(r"([^/?#]*)(.*)", rest, re.DOTALL).groups()
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.partition(':')[0]}:***@{host}"
    tail = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", tail)
    return f"{scheme}{sep}{netloc}{tail}"


SETTINGS = (
    Setting("host", "HOST", str),
    Setting("port", "PORT", bounded_int(0, 65535)),
    Setting("database_url", "DATABASE_URL", database_url, quoted_url),
    Setting("redis_url", "REDIS_URL", redis_url, quoted_url),
    Setting("redis_tls_verify", "CHATSIO_REDIS_TLS_VERIFY", boolean),
    Setting("redis_channel", "CHATSIO_REDIS_CHANNEL", channel_name),
    Setting("secret", "CHATSIO_SECRET", secret, withheld),
    Setting("token_ttl", "CHATSIO_TOKEN_TTL", bounded_int(60, 90 * 24 * 3600)),
    Setting("rate_limit", "CHATSIO_RATE_LIMIT", bounded_float(0.1, 100_000)),
    Setting("rate_burst", "CHATSIO_RATE_BURST", bounded_int(1, 1_000_000)),
    Setting(
        "max_connections_per_user",
        "CHATSIO_MAX_CONNECTIONS_PER_USER",
        bounded_int(1, 100_000),
    ),
    Setting("chats_per_minute", "CHATSIO_CHATS_PER_MINUTE", bounded_int(1, 100_000)),
    Setting(
        "invites_per_minute",
        "CHATSIO_INVITES_PER_MINUTE",
        bounded_int(100, 1_000_000),  # at least one full member list (100)
    ),
    Setting("registration_open", "CHATSIO_REGISTRATION_OPEN", boolean),
    Setting("hash_workers", "CHATSIO_HASH_WORKERS", bounded_int(1, 64)),
    Setting("hash_queue", "CHATSIO_HASH_QUEUE", bounded_int(0, 10_000)),
    Setting(
        "login_failures_per_user",
        "CHATSIO_LOGIN_FAILURES_PER_USER",
        bounded_int(1, 1_000),
    ),
    Setting(
        "login_failures_per_address",
        "CHATSIO_LOGIN_FAILURES_PER_ADDRESS",
        bounded_int(1, 100_000),
    ),
    Setting(
        "registrations_per_hour",
        "CHATSIO_REGISTRATIONS_PER_HOUR",
        bounded_int(1, 1_000_000),
    ),
    Setting("max_file_bytes", "CHATSIO_MAX_FILE_BYTES", bounded_int(1, 100 * 2**20)),
    Setting("file_quota_bytes", "CHATSIO_FILE_QUOTA_BYTES", bounded_int(1, 2**50)),
    Setting(
        "attachment_bytes_per_user",
        "CHATSIO_ATTACHMENT_BYTES_PER_USER",
        bounded_int(1, 2**40),
    ),
    Setting(
        "attachment_timeout", "CHATSIO_ATTACHMENT_TIMEOUT", bounded_float(0.1, 3600)
    ),
    Setting("cors_origins", "CHATSIO_CORS_ORIGINS", origins),
    Setting("trusted_proxies", "CHATSIO_TRUSTED_PROXIES", networks),
    Setting("header_timeout", "CHATSIO_HEADER_TIMEOUT", bounded_float(0.1, 3600)),
    Setting("min_body_rate", "CHATSIO_MIN_BODY_RATE", bounded_int(1, 2**30)),
    Setting(
        "max_connections_per_address",
        "CHATSIO_MAX_CONNECTIONS_PER_ADDRESS",
        bounded_int(1, 1_000_000),
    ),
    Setting("log_level", "CHATSIO_LOG_LEVEL", log_level),
    Setting("ws_compression", "CHATSIO_WS_COMPRESSION", boolean),
    Setting("presence_grace", "CHATSIO_PRESENCE_GRACE", bounded_float(0, 600)),
)
SETTINGS_BY_FIELD = {setting.field: setting for setting in SETTINGS}


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from the environment (``os.environ`` by default)."""
    environ = os.environ if environ is None else environ
    values = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is not None and raw != "":
            values[setting.field] = setting.parse(raw)
    return Config(**values)


def logging_level(config: Config) -> int:
    return getattr(logging, config.log_level.upper())
