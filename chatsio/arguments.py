"""The command line's arguments and help: every command, option and setting."""

from __future__ import annotations

import argparse

from chatsio import __version__
from chatsio.config import LOG_LEVELS, SETTINGS, Config
from chatsio.startup import shown_database

# What the absence of a setting means, where "unset" would not say.
UNSET_MEANS = {
    "redis_url": "unset: one process, no fan-out between nodes",
    "secret": "unset: made once and kept in the database",
    "cors_origins": "none: same origin only",
    "trusted_proxies": "none",
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="chatsio",
        description="A real-time chat server speaking Socket.IO.",
    )
    root.add_argument("--version", action="version", version=f"chatsio {__version__}")
    commands = root.add_subparsers(
        dest="command",
        required=True,
        title="commands",
        help="each has its own --help",
    )
    serve = commands.add_parser(
        "serve",
        help="run the chat server",
        description="Run the chat server; the database schema is made if missing.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to listen on (HOST)")
    serve.add_argument("--port", help="port to listen on (PORT)")
    database_option(serve)
    serve.add_argument(
        "--log-level", choices=LOG_LEVELS, help="log verbosity (CHATSIO_LOG_LEVEL)"
    )

    createuser = commands.add_parser(
        "createuser",
        help="add a user",
        description="Add a user. Without --password, the password is asked for "
        "twice on a terminal, or read from the first line of standard input.",
    )
    createuser.add_argument("name", help="the username (1-32 of A-Z a-z 0-9 _ . -)")
    createuser.add_argument(
        "--password",
        help="the password (8-128 characters); others may see it in ps: leave it out",
    )
    createuser.add_argument(
        "--admin", action="store_true", help="may send system notifications"
    )
    database_option(createuser)

    deleteuser = commands.add_parser(
        "deleteuser",
        help="delete a user, their memberships and every token issued to them",
    )
    deleteuser.add_argument("name", help="the username")
    database_option(deleteuser)

    notify = commands.add_parser(
        "notify",
        help="send a system notification to every server (REDIS_URL)",
        description="Send a system notification through Redis (REDIS_URL) to "
        "everyone connected to any server; with --chat, to that chat's members, "
        "stored in the chat (DATABASE_URL).",
    )
    notify.add_argument("text", help="what to say (1-4000 characters)")
    notify.add_argument(
        "--chat", metavar="ID", help="send it to this chat's members and store it"
    )
    database_option(notify, "with --chat: ")
    return root


def database_option(command: argparse.ArgumentParser, when: str = "") -> None:
    command.add_argument(
        "--database-url", metavar="URL", help=f"{when}database URL (DATABASE_URL)"
    )


def settings_help() -> str:
    """Every environment variable serve reads, with its default."""
    defaults = Config()
    width = max(len(setting.env) for setting in SETTINGS) + 2
    rows = [
        f"  {setting.env:<{width}}{default_text(setting.field, defaults)}"
        for setting in SETTINGS
    ]
    return "\n".join(
        [
            "environment variables and their defaults (a flag overrides its",
            "variable; the README's Configuration section says what each does):",
            *rows,
        ]
    )


def default_text(field: str, defaults: Config) -> str:
    value = getattr(defaults, field)
    if field == "database_url":
        return f"{shown_database(value, absolute=False)} (in the working directory)"
    if not value and field in UNSET_MEANS:
        return UNSET_MEANS[field]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(value)
    return "unset" if value is None else str(value)
