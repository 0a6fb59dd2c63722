"""Password hashing on a small pool of its own, behind a bounded queue.

The parameters are chosen, not inherited: Argon2id with 19 MiB, 2 passes and
1 lane, one of the equivalent configurations of OWASP's Password Storage Cheat
Sheet. Measured here (bench/hash_cost.py): ~22 ms of CPU per hash, against
~183 ms for argon2-cffi's default (64 MiB, 3 passes, 4 lanes).

Hashes run on ``workers`` threads, never on the event loop's default executor,
and at most ``queue`` more wait for one: past that, RateLimited at once, so a
flood of logins cannot build a queue that real users wait behind.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from chatsio.errors import RateLimited

ARGON2_PARAMETERS = {
    "type": Type.ID,
    "memory_cost": 19 * 1024,  # KiB
    "time_cost": 2,
    "parallelism": 1,
}
# Suggested to a client whose hash found the queue full: one queue's worth of
# hashes takes well under a second.
FULL_RETRY_AFTER = 1.0


class PasswordPool:
    """Hashes and checks passwords on a bounded pool of threads."""

    def __init__(self, workers: int, queue: int) -> None:
        self.hasher = PasswordHasher(**ARGON2_PARAMETERS)
        # Unknown names are checked against this, at a real check's cost, so
        # that names cannot be probed. Made here, once: made on first use, a
        # burst of logins for unknown names would each make it.
        self.dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        self.capacity = workers + queue
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="argon2")
        self._lock = threading.Lock()
        self._pending = 0

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(self._verify, password_hash, password)

    @property
    def pending(self) -> int:
        """Hashes running or waiting for a thread."""
        return self._pending

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether a stored hash was made with other parameters than these."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return False  # not ours to repair: it never verifies anyway

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, function, *args: Any) -> Any:
        with self._lock:
            if self._pending >= self.capacity:
                raise RateLimited(
                    "too many password checks at once; try again shortly",
                    retry_after=FULL_RETRY_AFTER,
                )
            self._pending += 1
        job = self.executor.submit(function, *args)
        # Released when the hash ends (or is cancelled while queued), not when
        # its caller stops waiting: an abandoned hash still holds its thread.
        job.add_done_callback(self._release)
        return await asyncio.wrap_future(job)

    def _release(self, _: Future) -> None:
        with self._lock:
            self._pending -= 1

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
