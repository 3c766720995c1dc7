"""Leader detection over 5 and 50 fake schedulers on loopback, one of them black-holed.

    .venv/bin/python benchmarks/leader.py

The fakes are the tests' (`tests.test_leader.Fakes`): each serves /vars from an
in-process aiohttp app; the black hole accepts and never answers. The wall time should
be close to one vars timeout, not one per host.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.leader import detect_leader  # noqa: E402
from bot.probes import HttpVarsProbe  # noqa: E402
from tests.test_leader import Fakes, fake_cluster  # noqa: E402

TIMEOUT = 1.0


async def main() -> None:
    fakes = Fakes()
    probe = HttpVarsProbe()
    try:
        hole = await fakes.black_hole()
        for n in (5, 50):
            ports = {"sched-1": await fakes.vars_server("LEADER_AWAITING_REGISTRATION")}
            for i in range(2, n):
                ports[f"sched-{i}"] = await fakes.vars_server("STORAGE_PREPARED")
            ports[f"sched-{n}"] = hole
            cluster = fake_cluster(ports)
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
        await fakes.close()


if __name__ == "__main__":
    asyncio.run(main())
