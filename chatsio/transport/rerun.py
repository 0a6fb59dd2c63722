"""A job run in a task of its own, again when asked while it runs.

What a node does when its bus recovers (``catchup``, ``presence_catchup``)
reads state that may change while it reads: asked again meanwhile (the bus
fell and recovered again, another node asked), the job runs once more after
the run under way, never twice at once.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


class Rerun:
    """Subclasses say what ``run`` does, and ``wait`` before each run."""

    wait = 0.0  # seconds

    def __init__(self) -> None:
        self.task: asyncio.Task | None = None
        self.again = False

    def schedule(self) -> None:
        """Run now (after ``wait``), or once more after the run under way."""
        self.again = True
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run_while_asked())

    async def _run_while_asked(self) -> None:
        while self.again:
            await asyncio.sleep(self.wait)
            self.again = False
            try:
                await self.run()
            except Exception:
                logger.exception("%s failed", type(self).__name__)

    async def run(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
