"""Leader detection over 5 and 50 fake schedulers on loopback, one of them black-holed.

    .venv/bin/python benchmarks/leader.py

Each fake serves /vars from an in-process aiohttp app; the black hole accepts and never
answers. The wall time should be close to one vars timeout, not one per host.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402

from bot.leader import detect_leader  # noqa: E402
from bot.probes import HttpVarsProbe  # noqa: E402
from runbook.clusters import Cluster  # noqa: E402

TIMEOUT = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def main() -> None:
    runners: list[web.AppRunner] = []
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    hole = await asyncio.start_server(accept, "127.0.0.1", 0)
    hole_port = hole.sockets[0].getsockname()[1]
    probe = HttpVarsProbe()
    try:
        for n in (5, 50):
            ports: dict[str, int] = {}
            for i in range(n - 1):
                state = "LEADER_AWAITING_REGISTRATION" if i == 0 else "STORAGE_PREPARED"
                text = f"scheduler_lifecycle_{state} 1\nscheduler_lifecycle_ACTIVE 0"

                async def handler(_: web.Request, text: str = text) -> web.Response:
                    return web.Response(text=text)

                app = web.Application()
                app.router.add_get("/vars", handler)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                port = free_port()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                runners.append(runner)
                ports[f"sched-{i + 1}"] = port
            ports[f"sched-{n}"] = hole_port
            cluster = Cluster.model_validate(
                {
                    "name": "bench",
                    "aurora_name": "bench",
                    "schedulers": [
                        {"host": h, "address": "127.0.0.1", "http_port": p}
                        for h, p in ports.items()
                    ],
                }
            )
            for _ in range(3):
                started = time.perf_counter()
                report = await detect_leader(cluster, probe, vars_timeout=TIMEOUT)
                took = time.perf_counter() - started
                assert report.leader == "sched-1", report.problems
                print(
                    f"{n:3d} schedulers (1 black-holed): {took:.3f}s "
                    f"= {took / TIMEOUT:.2f} x the {TIMEOUT:g}s vars timeout"
                )
    finally:
        await probe.close()
        for w in held:
            w.close()
        hole.close()
        await hole.wait_closed()
        for r in runners:
            await r.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
