"""The service layer: every rule of the protocol, shared by sockets and REST."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from chatsio.config import Config
from chatsio.metrics import Metrics
from chatsio.services.allowance import MessageAllowance
from chatsio.services.chats import ChatService
from chatsio.services.emitter import Emitter
from chatsio.services.health import HealthService, Probe
from chatsio.services.identity import Identity
from chatsio.services.messages import MessageService
from chatsio.services.notifications import NotificationService
from chatsio.services.passwords import PasswordPool
from chatsio.services.presence import (
    LocalDirectory,
    PresenceDirectory,
    PresenceService,
)
from chatsio.services.reads import ReadService
from chatsio.services.throttle import Gatekeeper
from chatsio.storage import Storage

SECRET_SETTING = "token_secret"


@dataclass(frozen=True)
class Services:
    identity: Identity
    chats: ChatService
    messages: MessageService
    notifications: NotificationService
    health: HealthService
    presence: PresenceService
    reads: ReadService


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
        passwords=PasswordPool(config.hash_workers, config.hash_queue),
        gatekeeper=Gatekeeper(
            failures_per_user=config.login_failures_per_user,
            failures_per_address=config.login_failures_per_address,
            registrations_per_hour=config.registrations_per_hour,
        ),
    )


async def create_services(
    storage: Storage,
    emitter: Emitter,
    config: Config,
    metrics: Metrics,
    redis_probe: Probe | None = None,
    presence_directory: PresenceDirectory | None = None,
) -> Services:
    """``presence_directory``: where presence is kept deployment-wide; by
    default in this process (a deployment of one)."""
    identity = await create_identity(storage, config)
    presence = PresenceService(
        storage,
        emitter,
        presence_directory or LocalDirectory(),
        grace=config.presence_grace,
    )
    chats = ChatService(
        storage,
        emitter,
        metrics,
        presence,
        chats_per_minute=config.chats_per_minute,
        invites_per_minute=config.invites_per_minute,
    )
    messages = MessageService(
        storage,
        emitter,
        chats,
        metrics,
        allowance=MessageAllowance(config.rate_limit, config.rate_burst),
        max_file_bytes=config.max_file_bytes,
        file_quota_bytes=config.file_quota_bytes,
    )
    notifications = NotificationService(emitter, messages)
    health = HealthService(storage, redis_probe)
    reads = ReadService(storage, emitter, chats)
    return Services(identity, chats, messages, notifications, health, presence, reads)
