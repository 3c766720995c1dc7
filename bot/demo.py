"""`make demo`: the sandbox, the embedded store and a whole restore, in one command.

Without `--out` the transcripts go to a fresh directory under `demo-out/`, named by the
time, printed at the end (the sandbox and the store are temporary). With `--out DIR`
everything stays in DIR: DIR/sandbox, DIR/data (the store) and the transcripts. A demo
killed mid-restore is continued by the same command: the store in DIR/data still holds
the restore, and DIR/sandbox is reused as it was left (`sandbox.cluster.build` reuses a
DIR). A restore kept without its sandbox is refused: it cannot go on against new hosts.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bot import wiring
from bot.console import run_console
from bot.probes import HttpVarsProbe
from bot.redis_server import EmbeddedRedis
from bot.settings import Settings
from runbook.actions import Timing, lifecycle
from runbook.clusters import load_clusters
from sandbox.cluster import Options, Sandbox, SandboxError, build
from sandbox.layout import INFO_FILE

CLUSTER = "sandbox"  # the cluster the sandbox's cluster file names
DEMO_OUT = Path("demo-out")


class DemoRefused(Exception):
    """The demo cannot go on; the message is one line."""


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


async def kept_restore(url: str) -> str | None:
    """The restore of the sandbox an earlier run left running in this store, if any."""
    async with wiring.open_store(url) as store:
        return await store.holder(CLUSTER)


def sandbox_options(
    base: Path, schedulers: int, kept: str | None, aurora_version: str = "0.17"
) -> Options:
    """A fresh sandbox, or, to continue a kept restore, the one it ran against."""
    directory = base / "sandbox"
    if kept is None:
        return Options(
            dir=directory,
            schedulers=schedulers,
            reset=True,
            restart_sec=1.0,
            aurora_version=aurora_version,
        )
    if not (directory / INFO_FILE).exists():
        raise DemoRefused(
            f"{base / 'data'} holds restore {kept} of an earlier demo, but its sandbox "
            f"{directory} is gone: it cannot continue against a new sandbox; "
            f"remove {base} or use another --out"
        )
    return Options(dir=directory, schedulers=schedulers, reset=False, restart_sec=1.0)


async def _demo(
    base: Path,
    yes: bool,
    out: Path,
    schedulers: int,
    me: str,
    settings: Settings | None,
    aurora_version: str = "0.17",
) -> str:
    with EmbeddedRedis(base / "data") as server:
        url = server.start()
        kept = await kept_restore(url)
        try:
            info = build(sandbox_options(base, schedulers, kept, aurora_version))
        except SandboxError as exc:
            raise DemoRefused(str(exc)) from None
        async with Sandbox(info) as sandbox:
            reused = " (kept from the earlier run)" if kept else ""
            print(
                f"sandbox: {len(info.hosts)} schedulers (Aurora {info.aurora_version}) "
                f"in {info.dir}{reused}",
                flush=True,
            )
            if kept is None:
                await _wait_active(sandbox)
            cluster = load_clusters(Path(info.dir) / "clusters.toml")[CLUSTER]
            timing = Timing(
                leader_wait=60, failover_wait=60, verify_wait=60, poll=0.5, vars_timeout=2
            )
            _rid, status = await run_console(
                cluster,
                url,
                me=me,
                yes=yes,
                backup=None,
                out_dir=out,
                timing=timing,
                settings=settings,
            )
            return status


def fresh_out(root: Path = DEMO_OUT) -> Path:
    """A new directory under demo-out/, named by the time (UTC), for one run's transcripts."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    path = root / stamp
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def run_demo(
    *,
    yes: bool,
    out: Path | None,
    schedulers: int,
    me: str,
    settings: Settings | None = None,
    aurora_version: str = "0.17",
) -> int:
    transcripts = out if out is not None else fresh_out()
    # Without --out only the transcripts are kept: the sandbox and the store are scratch.
    base = out if out is not None else Path(tempfile.mkdtemp(prefix="aurora-restore-demo-"))
    try:
        status = asyncio.run(
            _demo(base, yes, transcripts, schedulers, me, settings, aurora_version)
        )
    except DemoRefused as exc:
        print(f"aurora-restore demo: refused: {exc}", file=sys.stderr)
        return 2
    except SandboxError as exc:  # the sandbox could not start (a port taken, say)
        print(f"aurora-restore demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        again = f" (again: aurora-restore demo --out {out})" if out is not None else ""
        print(f"demo interrupted{again}", file=sys.stderr)
        return 130
    finally:
        if out is None:
            shutil.rmtree(base, ignore_errors=True)
            if not any(transcripts.iterdir()):
                transcripts.rmdir()  # nothing was written: leave no empty directory
    print(f"demo: restore {status}")
    print(
        f"transcripts: {transcripts}/transcript.md, .json, .html",
        flush=True,
    )
    return 0 if status == "succeeded" else 1
