"""`make demo`: the sandbox, the embedded store and a whole restore, in one command."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bot.console import run_console
from bot.probes import HttpVarsProbe
from bot.redis_server import EmbeddedRedis
from runbook.actions import Timing, lifecycle
from runbook.clusters import load_clusters
from sandbox.cluster import Options, Sandbox, build


async def _wait_active(sandbox: Sandbox, timeout: float = 30) -> None:
    probe = HttpVarsProbe()
    endpoints = {h.name: (h.address, h.http_port) for h in sandbox.info.hosts}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            states = [lifecycle(v) for v in (await probe.vars(endpoints, 2)).values()]
            if states.count("ACTIVE") == 1:
                return
            await asyncio.sleep(0.3)
    finally:
        await probe.close()
    raise RuntimeError("the sandbox's schedulers did not elect an ACTIVE leader")


async def _demo(base: Path, yes: bool, out: Path | None, schedulers: int, me: str) -> str:
    info = build(Options(dir=base / "sandbox", schedulers=schedulers, reset=True, restart_sec=1.0))
    with EmbeddedRedis(base / "data") as server:
        url = server.start()
        async with Sandbox(info) as sandbox:
            print(f"sandbox: {len(info.hosts)} schedulers in {info.dir}", flush=True)
            await _wait_active(sandbox)
            cluster = load_clusters(Path(info.dir) / "clusters.toml")["sandbox"]
            timing = Timing(
                leader_wait=60, failover_wait=60, verify_wait=60, poll=0.5, vars_timeout=2
            )
            _rid, status = await run_console(
                cluster, url, me=me, yes=yes, backup=None, out_dir=out, timing=timing
            )
            return status


def run_demo(*, yes: bool, out: Path | None, schedulers: int, me: str) -> int:
    base = out if out is not None else Path(tempfile.mkdtemp(prefix="aurora-restore-demo-"))
    try:
        status = asyncio.run(_demo(base, yes, out, schedulers, me))
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        return 130
    finally:
        if out is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"demo: restore {status}")
    return 0 if status == "succeeded" else 1
