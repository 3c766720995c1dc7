"""A second event loop, in its own thread, for everything after the ack.

Slack wants every request acked within 3 seconds, and Bolt's ack waits for the event
loop. With twenty restores running SSH commands, rendering cards and calling Slack, one
loop is busy enough to delay acks by hundreds of milliseconds. So the HTTP server and
the Bolt listeners (which only validate and ack) keep the main loop, and the work (the
engine, Redis, SSH, Slack calls) runs on this one. Objects bound to a loop (the Redis
client, the Slack client's HTTP session, SSH connections) belong to this loop only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class WorkLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="aurora-restore-work", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the work loop, from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the work loop and await it from another loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
