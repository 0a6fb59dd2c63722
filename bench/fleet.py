"""Load-generator processes: each runs one worker object in its own event loop.

The bench process sends every worker a command, ``(name, kwargs)``; the worker
runs its ``do_<name>(**kwargs)`` coroutine and answers ``("ok", result)`` or
``("error", traceback)``. Several processes, so that on a 2-core machine the
clients are not the bottleneck; each reports the CPU time it used.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time
import traceback
from typing import Any

from common import die_with_parent
from measure import cpu_seconds

CLOSE_TIMEOUT = 20.0


class WorkerFailed(RuntimeError):
    pass


class Fleet:
    def __init__(self, worker_class: type, count: int, name: str = "gen") -> None:
        self.worker_class = worker_class
        self.count = count
        self.name = name
        self.context = multiprocessing.get_context("spawn")
        self.pipes: list = []
        self.procs: list = []
        self.busy = False  # a command was sent and not all replies are in

    def start(self) -> None:
        for index in range(self.count):
            mine, theirs = self.context.Pipe()
            proc = self.context.Process(
                target=worker_main,
                args=(self.worker_class, index, self.count, theirs),
                name=f"{self.name}-{index}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self.pipes.append(mine)
            self.procs.append(proc)

    @property
    def pids(self) -> dict[str, int]:
        return {proc.name: proc.pid for proc in self.procs}

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(proc.pid) for proc in self.procs)

    async def ask(
        self, command: str, args: dict | list[dict] | None = None, *, within: float
    ) -> list[Any]:
        """Send ``command`` to every worker (``args`` per worker if a list)."""
        each = args if isinstance(args, list) else [args or {}] * self.count
        self.busy = True
        for pipe, kwargs in zip(self.pipes, each, strict=True):
            pipe.send((command, kwargs))
        replies = await asyncio.gather(*(receive(pipe, within) for pipe in self.pipes))
        self.busy = False
        for index, (status, value) in enumerate(replies):
            if status != "ok":
                raise WorkerFailed(f"{self.name}-{index} {command}:\n{value}")
        return [value for _, value in replies]

    def close(self) -> None:
        """Ask idle workers to exit; terminate busy ones and any that stay."""
        for pipe in self.pipes:
            try:
                pipe.send(("exit", {}))
            except OSError:
                pass
        # A worker in the middle of a command (the run was interrupted) would
        # only read "exit" once the command is done: do not wait for it.
        deadline = time.monotonic() + (0 if self.busy else CLOSE_TIMEOUT)
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join()


async def receive(pipe, within: float) -> tuple[str, Any]:
    """The next reply on ``pipe``; waits in the event loop, so it can be
    cancelled (a thread blocked in ``poll`` would hold up the exit)."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(pipe.fileno(), lambda: readable.done() or readable.set_result(1))
    try:
        async with asyncio.timeout(within):
            await readable
    except TimeoutError:
        raise TimeoutError(f"a worker did not answer within {within:.0f} s") from None
    finally:
        loop.remove_reader(pipe.fileno())
    return pipe.recv()  # the worker sends each reply whole


def worker_main(worker_class: type, index: int, count: int, pipe) -> None:
    die_with_parent()
    # The bench process handles Ctrl+C and then ends its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(serve(worker_class(index, count), pipe))


async def serve(worker: Any, pipe) -> None:
    try:
        while True:
            try:
                command, kwargs = await asyncio.to_thread(pipe.recv)
            except EOFError:
                return
            if command == "exit":
                return
            try:
                reply = ("ok", await getattr(worker, f"do_{command}")(**kwargs))
            except Exception:
                reply = ("error", traceback.format_exc())
            pipe.send(reply)
    finally:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await worker.close()
        except Exception:
            traceback.print_exc()
