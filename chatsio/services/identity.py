"""Accounts, passwords and tokens."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from chatsio.errors import Forbidden, Unauthorized
from chatsio.protocol import now_ms
from chatsio.storage.records import User
from chatsio.storage.users import UserStore

TOKEN_ALGORITHM = "HS256"


@dataclass(frozen=True)
class Token:
    token: str
    username: str
    expires_at: int


class Identity:
    """Registers users, checks passwords (Argon2id) and signs expiring tokens."""

    def __init__(
        self, users: UserStore, *, secret: str, token_ttl: int, registration_open: bool
    ) -> None:
        self.users = users
        self.secret = secret
        self.token_ttl = token_ttl
        self.registration_open = registration_open
        self.hasher = PasswordHasher()
        self._dummy_hash: str | None = None

    async def register(
        self, username: str, password: str, *, is_admin: bool = False, by_operator=False
    ) -> User:
        """Create a user; ``by_operator`` (the CLI) may when registration is closed."""
        if not (self.registration_open or by_operator):
            raise Forbidden("registration is closed")
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        return await self.users.create(
            username, password_hash, is_admin=is_admin, now=now_ms()
        )

    async def login(self, username: str, password: str) -> Token:
        user = await self.users.get(username)
        if user is None:
            # Spend the same time as a real check, so names cannot be probed.
            await asyncio.to_thread(self._verify, await self._dummy(), password)
            raise Unauthorized("wrong username or password")
        if not await asyncio.to_thread(self._verify, user.password_hash, password):
            raise Unauthorized("wrong username or password")
        return self.issue(username)

    def issue(self, username: str) -> Token:
        expires_at = now_ms() + self.token_ttl * 1000
        claims = {"sub": username, "exp": expires_at // 1000, "iat": now_ms() // 1000}
        token = jwt.encode(claims, self.secret, algorithm=TOKEN_ALGORITHM)
        return Token(token, username, (expires_at // 1000) * 1000)

    def authenticate(self, token: object) -> str:
        """Return the username a token was issued to, or raise Unauthorized."""
        return self.verify(token).username

    def verify(self, token: object) -> Token:
        """The token's user and expiry, or Unauthorized."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise Unauthorized("a token is required")
        if not token.isascii():  # a JWT is ASCII; PyJWT fails on anything else
            raise Unauthorized("the token is not valid")
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[TOKEN_ALGORITHM],
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is not valid") from None
        username = claims["sub"]
        if not isinstance(username, str):
            raise Unauthorized("the token is not valid")
        return Token(token, username, int(claims["exp"]) * 1000)

    async def is_admin(self, username: str) -> bool:
        user = await self.users.get(username)
        return bool(user and user.is_admin)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(
                self.hasher.hash, "not a password"
            )
        return self._dummy_hash
