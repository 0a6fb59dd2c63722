"""Accounts, passwords and tokens."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from chatsio.errors import Forbidden, RateLimited, Unauthorized
from chatsio.protocol import now_ms
from chatsio.services.passwords import PasswordPool
from chatsio.services.throttle import Gatekeeper
from chatsio.storage.records import User
from chatsio.storage.users import UserStore

TOKEN_ALGORITHM = "HS256"
# The claim naming the account a token was issued to: its users.token_key.
ACCOUNT_CLAIM = "acct"
ACCOUNTS_PER_QUERY = 500


@dataclass(frozen=True)
class Token:
    token: str
    username: str
    expires_at: int


@dataclass(frozen=True)
class SignedToken(Token):
    """A token whose signature holds, before its account is checked."""

    account: str


class Identity:
    """Registers users, checks passwords (Argon2id) and signs expiring tokens."""

    def __init__(
        self,
        users: UserStore,
        *,
        secret: str,
        token_ttl: int,
        registration_open: bool,
        passwords: PasswordPool,
        gatekeeper: Gatekeeper,
    ) -> None:
        self.users = users
        self.secret = secret
        self.token_ttl = token_ttl
        self.registration_open = registration_open
        self.passwords = passwords
        self.hasher = passwords.hasher
        self.gatekeeper = gatekeeper

    async def register(
        self,
        username: str,
        password: str,
        *,
        is_admin: bool = False,
        by_operator: bool = False,
        address: str | None = None,
    ) -> User:
        """Create a user; ``by_operator`` (the CLI) may when registration is closed.

        Registrations are throttled per client ``address`` (None: not at all).
        """
        if not (self.registration_open or by_operator):
            raise Forbidden("registration is closed")
        async with self.gatekeeper.registration(address) as attempt:
            password_hash = await self.passwords.hash(password)
            attempt.done()
        return await self.users.create(
            username, password_hash, is_admin=is_admin, now=now_ms()
        )

    async def login(
        self, username: str, password: str, *, address: str | None = None
    ) -> Token:
        """A token for the right password; failed logins are throttled per
        username and per client ``address``, known names or not."""
        async with self.gatekeeper.login(username, address) as attempt:
            user = await self.users.get(username)
            # An unknown name costs a check too, so names cannot be probed.
            stored = user.password_hash if user else self.passwords.dummy_hash
            matched = await self.passwords.verify(stored, password)
            attempt.done(matched=matched and user is not None)
        if user is None or not attempt.matched:
            raise Unauthorized("wrong username or password")
        await self._rehash_if_old(user, password)
        return self.issue(user)

    async def _rehash_if_old(self, user: User, password: str) -> None:
        """Store the password under the current parameters if its hash has
        others; with the pool full, the next login does it."""
        if not self.passwords.needs_rehash(user.password_hash):
            return
        try:
            new_hash = await self.passwords.hash(password)
        except RateLimited:
            return
        await self.users.replace_password_hash(
            user.username, user.password_hash, new_hash
        )

    def issue(self, user: User) -> Token:
        """Sign a token for ``user``, naming this account by its key."""
        expires_at = now_ms() + self.token_ttl * 1000
        claims = {
            "sub": user.username,
            ACCOUNT_CLAIM: user.token_key,
            "exp": expires_at // 1000,
            "iat": now_ms() // 1000,
        }
        token = jwt.encode(claims, self.secret, algorithm=TOKEN_ALGORITHM)
        return Token(token, user.username, (expires_at // 1000) * 1000)

    async def authenticate(self, token: object) -> str:
        """Return the username a token was issued to, or raise Unauthorized."""
        return (await self.verify(token)).username

    async def verify(self, token: object) -> SignedToken:
        """The token's user and expiry, or Unauthorized; the account it was
        issued to must still exist (one lookup by primary key)."""
        checked = self.decode(token)
        if await self.users.token_key(checked.username) != checked.account:
            raise Unauthorized("the token's account no longer exists")
        return checked

    def decode(self, token: object) -> SignedToken:
        """Check the token's signature and expiry; Unauthorized if either fails."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise Unauthorized("a token is required")
        if not token.isascii():  # a JWT is ASCII; PyJWT fails on anything else
            raise Unauthorized("the token is not valid")
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[TOKEN_ALGORITHM],
                # Tokens signed before accounts had keys lack the claim and
                # are refused: their holders log in again once.
                options={"require": ["sub", "exp", ACCOUNT_CLAIM]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is not valid") from None
        username, account = claims["sub"], claims[ACCOUNT_CLAIM]
        if not (isinstance(username, str) and isinstance(account, str) and account):
            raise Unauthorized("the token is not valid")
        return SignedToken(token, username, int(claims["exp"]) * 1000, account)

    async def accounts(self, usernames: Iterable[str]) -> dict[str, str]:
        """The account key of each of ``usernames`` that still exists, as
        tokens name it (in queries of at most ACCOUNTS_PER_QUERY names)."""
        names, found = list(usernames), {}
        for start in range(0, len(names), ACCOUNTS_PER_QUERY):
            found |= await self.users.token_keys(
                names[start : start + ACCOUNTS_PER_QUERY]
            )
        return found

    async def is_admin(self, username: str) -> bool:
        user = await self.users.get(username)
        return bool(user and user.is_admin)

    def close(self) -> None:
        self.passwords.close()
