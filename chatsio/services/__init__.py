"""The service layer: every rule of the protocol, shared by sockets and REST."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from chatsio.config import Config
from chatsio.metrics import Metrics
from chatsio.services.chats import ChatService
from chatsio.services.emitter import Emitter
from chatsio.services.health import HealthService, Probe
from chatsio.services.identity import Identity
from chatsio.services.messages import MessageService
from chatsio.services.notifications import NotificationService
from chatsio.storage import Storage

SECRET_SETTING = "token_secret"


@dataclass(frozen=True)
class Services:
    identity: Identity
    chats: ChatService
    messages: MessageService
    notifications: NotificationService
    health: HealthService


async def create_identity(storage: Storage, config: Config) -> Identity:
    """Without CHATSIO_SECRET the token key is made once and kept in the database."""
    secret = config.secret or await storage.users.setting(
        SECRET_SETTING, secrets.token_urlsafe(48)
    )
    return Identity(
        storage.users,
        secret=secret,
        token_ttl=config.token_ttl,
        registration_open=config.registration_open,
    )


async def create_services(
    storage: Storage,
    emitter: Emitter,
    config: Config,
    metrics: Metrics,
    redis_probe: Probe | None = None,
) -> Services:
    identity = await create_identity(storage, config)
    chats = ChatService(storage, emitter, metrics)
    messages = MessageService(
        storage, emitter, chats, metrics, max_file_bytes=config.max_file_bytes
    )
    notifications = NotificationService(emitter, messages)
    health = HealthService(storage, redis_probe)
    return Services(identity, chats, messages, notifications, health)
