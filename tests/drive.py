"""Driving a restore through the engine as two people would (alice started it, bob is the
second approver), for tests that need a restore at a given step."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bot import wiring
from runbook.actions import Timing
from runbook.clusters import Cluster
from runbook.engine import Actor, Engine
from runbook.procedure import Risk
from runbook.store import Store

ALICE, BOB, MALLORY = Actor("alice"), Actor("bob"), Actor("mallory")
# Short waits for the sandbox, whose schedulers start in seconds.
FAST = Timing(leader_wait=30, failover_wait=30, verify_wait=45, poll=0.3, vars_timeout=2)


def engine_for(store: Store, cluster: Cluster, **kw: Any) -> Engine:
    """The engine the fronts get (bot.wiring), on one cluster, with short waits."""
    kw.setdefault("timing", FAST)
    return wiring.build_engine(store, {cluster.name: cluster}, **kw)


async def drive(engine: Engine, rid: str, until: str | None = None) -> str:
    """Approve each waiting step (bob for destructive ones, skipping what the plan suggests
    skipping) until `until` waits for approval or the restore stops running; returns the
    restore's status. A step that fails stops the drive."""
    while True:
        rec = await engine.record(rid)
        if rec.status != "running":
            return rec.status
        sid = next(
            (s for s in rec.meta["plan"] if rec.steps[s]["status"] not in ("succeeded", "skipped")),
            None,
        )
        if sid is None:
            await engine.advance(rid)
            continue
        state = rec.steps[sid]["status"]
        if state != "awaiting":
            if state == "pending":
                await engine.advance(rid)
                continue
            return f"{sid} {state}: {rec.steps[sid].get('summary', '')}"
        if sid == until:
            return "at " + sid
        step = engine.step(sid, rec)
        if step.suggest_skip:
            await engine.skip(rid, sid, ALICE, "the plan suggests it")
            continue
        who = BOB if step.risk is Risk.DESTRUCTIVE else ALICE
        await engine.approve(rid, sid, who)


def file_sums(cluster: Cluster) -> dict[str, str]:
    """sha256 of every file the restore edits, per host and field (the sandbox's hosts
    live on this machine)."""
    out = {}
    for s in cluster.schedulers:
        for field in ("env_file", "admin_clusters_json"):
            path = cluster.path(s, field)
            if path:
                out[f"{s.host}:{field}"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def kills(sandbox_dir: Path) -> list[dict[str, Any]]:
    """Every task a simulated scheduler killed (the damage a bad restore does)."""
    path = sandbox_dir / "mesos/killed.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
