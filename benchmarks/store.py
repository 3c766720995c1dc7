"""Redis round trips per step transition, and the memory one finished restore occupies.

Walks a restore of 3 hosts through every step of the procedure with the real `Store`
(the same Lua scripts the engine runs) on the embedded server, counting every command
sent, then sums `MEMORY USAGE` over the restore's keys.

    .venv/bin/python benchmarks/store.py

Targets: at most 3 round trips per transition. Prints figures; not a test.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.asyncio as aioredis  # noqa: E402

from bot.redis_server import EmbeddedRedis  # noqa: E402
from runbook.procedure import ONLINE  # noqa: E402
from runbook.store import Store, events_key, output_key, restore_key  # noqa: E402

HOSTS = ["scheduler-1", "scheduler-2", "scheduler-3"]


class Counting:
    """Wraps a client and counts the commands that reach the server."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await attr(*args, **kwargs)

        return counted


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp)) as server:
        client = aioredis.Redis.from_url(server.start())
        counting = Counting(client)
        store = Store(counting)
        steps = {s.id: {"status": "pending", "attempt": 0} for s in ONLINE}
        await store.create(
            "bench",
            "west",
            {"cluster": "west", "plan": list(steps)},
            steps,
            {"type": "restore_started"},
        )
        per_transition: list[int] = []
        latencies: list[float] = []
        output = {
            "exit_status": 0,
            "duration": 0.1,
            "stdout": "x" * 2000,
            "stderr": "",
            "error": None,
        }

        async def transition(
            sid: str, allowed: tuple[str, ...], patch: dict[str, Any], lease: str = ""
        ) -> None:
            before = counting.calls
            t0 = time.perf_counter()
            res = await store.transition(
                "bench", sid, allowed, patch, {"type": "t", "actor": "U1"}, lease=lease
            )
            latencies.append(time.perf_counter() - t0)
            assert res.ok, (sid, res)
            per_transition.append(counting.calls - before)

        for step in ONLINE:
            await transition(step.id, ("pending",), {"status": "awaiting"})
            await transition(
                step.id, ("awaiting",), {"status": "running", "attempt": 1}, lease="take:w:10000"
            )
            for h in HOSTS:
                await store.save_output("bench", f"{step.id}:1:{h}", output)
                await transition(step.id, ("running",), {}, lease="own:w")
            await transition(
                step.id, ("running",), {"status": "succeeded", "summary": "ok"}, lease="own:w"
            )
        await store.restore_event(
            "bench",
            {"status": "succeeded"},
            {"type": "restore_succeeded"},
            ("running",),
            release=True,
        )

        memory = 0
        for key in (restore_key("bench"), events_key("bench"), output_key("bench")):
            memory += int(await client.memory_usage(key, samples=0) or 0)
        events = len(await store.events("bench"))
        print(f"transitions:                {len(per_transition)}")
        print(
            f"round trips per transition: max {max(per_transition)}, mean {statistics.mean(per_transition):.2f} (target <= 3)"
        )
        print(
            f"transition latency:         p50 {statistics.median(latencies) * 1000:.2f} ms, "
            f"p99 {sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000:.2f} ms (appendfsync always)"
        )
        print(f"events in the log:          {events}")
        print(
            f"memory of the finished restore: {memory / 1024:.1f} KiB "
            f"({len(ONLINE)} steps x {len(HOSTS)} hosts, 2 KB output per host per step)"
        )
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
