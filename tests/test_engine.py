"""The engine's rules, against the sandbox (real SSH) and a real Redis-protocol server:
approvals, the two-person rule, skip, retry, abort and revert, refusals that change
nothing, 50 concurrent approvals that run a step once, and a worker killed mid-step."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.wiring import connect
from runbook.actions import Timing
from runbook.clusters import Cluster
from runbook.engine import Actor, Engine, Refused
from runbook.ports import Remote, VarsProbe
from runbook.procedures import PROCEDURES
from runbook.store import Store
from tests.conftest import ROOT, RunningSandbox

pytestmark = pytest.mark.timeout(240)

ALICE, BOB, MALLORY = Actor("alice"), Actor("bob"), Actor("mallory")
FAST = Timing(leader_wait=30, failover_wait=30, verify_wait=45, poll=0.3, vars_timeout=2)


class Counting:
    """Counts how often the engine reached for the outside world."""

    def __init__(self) -> None:
        self.connects = 0

    def __call__(self, cluster: Cluster) -> tuple[Remote, VarsProbe]:
        self.connects += 1
        return connect(cluster)


def make_engine(store: Store, cluster: Cluster, **kw: Any) -> Engine:
    return Engine(
        store,
        {cluster.name: cluster},
        kw.pop("connect", connect),
        timing=FAST,
        lease_ms=kw.pop("lease_ms", 3000),
        **kw,
        procedures=PROCEDURES,
    )


async def status(engine: Engine, rid: str, sid: str) -> str:
    rec = await engine.record(rid)
    st: str = rec.steps[sid]["status"]
    return st


async def test_bad_input_is_refused_before_any_command(
    sandbox: RunningSandbox, store: Store
) -> None:
    counting = Counting()
    engine = make_engine(store, sandbox.cluster, connect=counting)
    for cluster, backup, message in [
        ("nope", None, "Unknown cluster `nope`. Known clusters: `sandbox`."),
        ("sandbox", "scheduler-backup-2024-01-01", "not a backup id"),
        ("sandbox", "scheduler-backup-2024-01-01-00-00; rm -rf /", "not a backup id"),
        ("sandbox", "$(reboot)", "not a backup id"),
        ("sand box; reboot", None, "Unknown cluster"),
    ]:
        with pytest.raises(Refused, match=message.replace("(", r"\(").replace(")", r"\)")):
            await engine.start(cluster, backup, ALICE)
    assert counting.connects == 0
    assert await store.restore_ids() == []
    await engine.close()


async def test_rules_of_approval(sandbox: RunningSandbox, store: Store) -> None:
    engine = make_engine(store, sandbox.cluster)
    rid = await engine.start("sandbox", None, ALICE)
    await engine.advance(rid)  # preflight runs by itself (read-only)
    assert await status(engine, rid, "prep.preflight") == "succeeded"
    assert await status(engine, rid, "prep.ack_backup") == "skipped"  # newest backup is fresh
    assert "prep.ack_backup" not in (await engine.record(rid)).meta["plan"]
    assert await status(engine, rid, "prep.stop") == "awaiting"
    with pytest.raises(Refused, match="cluster sandbox already has a restore running"):
        await engine.start("sandbox", None, BOB)

    before = await store.events(rid)
    with pytest.raises(Refused, match="mallory is not an approver"):
        await engine.approve(rid, "prep.stop", MALLORY)
    with pytest.raises(Refused, match="not waiting for approval"):
        await engine.approve(rid, "prep.start", ALICE)
    with pytest.raises(Refused, match="unknown step"):
        await engine.approve(rid, "prep.nope", ALICE)
    with pytest.raises(Refused, match="cannot be skipped"):
        await engine.skip(rid, "prep.preflight", ALICE, "because")
    assert await store.events(rid) == before  # refusals changed nothing
    assert await status(engine, rid, "prep.stop") == "awaiting"

    out = await engine.approve(rid, "prep.stop", ALICE)
    assert out.ok, out.summary
    assert sandbox.states() == {h: "DOWN" for h in ["scheduler-1", "scheduler-2", "scheduler-3"]}
    assert await status(engine, rid, "prep.block_traffic") == "awaiting"
    with pytest.raises(Refused, match="no block_traffic command is configured"):
        await engine.approve(rid, "prep.block_traffic", BOB)
    assert await status(engine, rid, "prep.block_traffic") == "awaiting"
    await engine.skip(rid, "prep.block_traffic", BOB, "no firewall in the sandbox")
    await engine.approve(rid, "prep.admin_access", BOB)
    await engine.approve(rid, "prep.disable", ALICE)
    await engine.approve(rid, "prep.start", ALICE)
    await engine.approve(rid, "log.stop", ALICE)
    await engine.approve(rid, "log.archive", ALICE)
    assert await status(engine, rid, "log.wipe") == "awaiting"
    before = await store.events(rid)
    # The requester may not approve a destructive step (two-person rule).
    with pytest.raises(Refused, match="needs an approver other than alice"):
        await engine.approve(rid, "log.wipe", ALICE)
    assert await store.events(rid) == before
    # A precondition that fails: a scheduler running again.
    assert sandbox.ssh("scheduler-2", "sudo systemctl start aurora-scheduler").returncode == 0
    with pytest.raises(Refused, match="every scheduler must be stopped first"):
        await engine.approve(rid, "log.wipe", BOB)
    assert await status(engine, rid, "log.wipe") == "awaiting"
    assert sandbox.ssh("scheduler-2", "sudo systemctl stop aurora-scheduler").returncode == 0
    assert (await engine.approve(rid, "log.wipe", BOB)).ok

    # An abort after the wipe starts nothing: the schedulers stay stopped and disabled.
    rec = await engine.record(rid)
    originals = rec.data["originals"]
    assert await engine.abort(rid, BOB, revert=True) == "aborted"
    assert set(sandbox.states().values()) == {"DOWN"}
    assert await store.holder("sandbox") is None
    # Putting the old log back needs someone other than the requester; then every file
    # is back, byte for byte, and the schedulers run again on the old log.
    with pytest.raises(Refused, match="needs an approver other than alice"):
        await engine.put_back_log(rid, ALICE)
    assert await engine.put_back_log(rid, BOB) == "reverted"
    for s in sandbox.cluster.schedulers:
        for field in ("env_file", "admin_clusters_json"):
            data = Path(sandbox.cluster.path(s, field) or "").read_bytes()
            assert hashlib.sha256(data).hexdigest() == originals[s.host][field]["sha256"]
    assert (await engine.record(rid)).status == "reverted"
    assert await store.holder("sandbox") is None
    with pytest.raises(Refused, match="the restore is reverted"):
        await engine.approve(rid, "log.init", BOB)
    await engine.close()


async def test_fifty_concurrent_approvals_run_a_step_once(
    sandbox: RunningSandbox, store: Store
) -> None:
    engines = [make_engine(store, sandbox.cluster) for _ in range(5)]
    rid = await engines[0].start("sandbox", None, ALICE)
    await engines[0].advance(rid)
    approvers = [ALICE, BOB]

    async def click(i: int) -> str:
        try:
            await engines[i % 5].approve(rid, "prep.stop", approvers[i % 2])
            return "ran"
        except Refused:
            return "refused"

    results = await asyncio.gather(*(click(i) for i in range(50)))
    assert results.count("ran") == 1
    events = await store.events(rid)
    assert [e["type"] for e in events].count("approved") == 1
    assert len([e for e in events if e["type"] == "host_result" and e["step"] == "prep.stop"]) == 3
    for e in engines:
        await e.close()


WORKER = """
import asyncio, sys
import redis.asyncio as aioredis
from bot.wiring import connect
from runbook.actions import Timing
from runbook.clusters import load_clusters
from runbook.engine import Actor, Engine
from runbook.procedures import PROCEDURES
from runbook.store import Store

async def main():
    cluster = load_clusters(sys.argv[1])["sandbox"]
    store = Store(aioredis.Redis.from_url(sys.argv[2]))
    engine = Engine(store, {"sandbox": cluster}, connect, lease_ms=2000,
                    timing=Timing(leader_wait=600, poll=0.3), procedures=PROCEDURES)
    rid = await engine.start("sandbox", None, Actor("alice"))
    await engine.advance(rid)
    for sid in ("prep.stop",):
        await engine.approve(rid, sid, Actor("alice"))
    await engine.skip(rid, "prep.block_traffic", Actor("alice"), "none")
    for sid in ("prep.admin_access", "prep.disable"):
        await engine.approve(rid, sid, Actor("alice"))
    print(rid, flush=True)
    # prep.start is approved, and the worker dies while it runs.
    await engine.approve(rid, "prep.start", Actor("alice"))

asyncio.run(main())
"""


async def test_a_worker_killed_mid_step_leaves_it_interrupted(
    sandbox: RunningSandbox,
    store: Store,
    redis_url: str,
) -> None:
    # Make prep.start hang on one host, so that the worker is surely inside the step.
    stuck = sandbox.cluster.schedulers[0]
    env = Path(sandbox.cluster.path(stuck, "env_file") or "")
    startup = env.parent.parent.parent / "usr/local/bin/systemctl"
    original = startup.read_text()
    startup.write_text(
        original.replace("exec ", 'if [ "$1" = start ]; then sleep 30; fi\nexec ', 1)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(sandbox.dir / "clusters.toml"), redis_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    rid = proc.stdout.readline().strip()
    engine = make_engine(store, sandbox.cluster)

    async def running() -> bool:
        return await status(engine, rid, "prep.start") == "running"

    for _ in range(100):
        if await running():
            break
        await asyncio.sleep(0.1)
    assert await running()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    startup.write_text(original)
    # Nothing happens to the step until its lease has run out, then it is interrupted.
    for _ in range(100):
        found = await engine.recover(rid)
        if found:
            break
        await asyncio.sleep(0.2)
    assert [sid for sid, _ in found] == ["prep.start"]
    assert await status(engine, rid, "prep.start") == "interrupted"
    rec = await engine.record(rid)
    assert "appears_finished" in rec.steps["prep.start"]
    # It is never re-run by itself: advancing leaves it alone.
    await engine.advance(rid)
    assert await status(engine, rid, "prep.start") == "interrupted"
    events = [e["type"] for e in await store.events(rid) if e.get("step") == "prep.start"]
    assert events.count("approved") == 1 and "interrupted" in events
    # A person retries it.
    out = await engine.retry(rid, "prep.start", ALICE)
    assert out.ok, out.summary
    await engine.close()
