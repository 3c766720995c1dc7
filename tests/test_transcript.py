"""Transcript exports: a complete sandbox restore, an aborted and reverted one, one with
an interrupted step; the JSON against its schema; tamper evidence; no secrets; retention;
the command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.console import run_console
from bot.wiring import connect
from runbook import transcript
from runbook.actions import Timing
from runbook.engine import Actor, Engine
from runbook.procedure import ONLINE
from runbook.procedures import PROCEDURES
from runbook.store import Store, restore_key
from tests.conftest import ROOT, RunningSandbox

pytestmark = pytest.mark.timeout(300)
SCHEMA = json.loads((ROOT / "runbook/transcript.schema.json").read_text())
FAST = Timing(leader_wait=30, failover_wait=30, verify_wait=45, poll=0.3, vars_timeout=2)
SECRETS = ("hunter2", "xoxb-1234567890-abcdefghij")


async def export(store: Store, rid: str) -> dict[str, Any]:
    rec = await store.load(rid)
    assert rec is not None
    return transcript.build(rec, await store.events(rid), await store.outputs(rid), ONLINE)


def plant_secrets(sb: RunningSandbox) -> None:
    """Command output that carries secrets: file names in the backup directory."""
    for s in sb.cluster.schedulers:
        d = Path(sb.cluster.path(s, "backup_dir") or "")
        (d / "password=hunter2").write_text("")
        (d / "token=xoxb-1234567890-abcdefghij").write_text("")


def check_export(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, SCHEMA)
    assert [s["id"] for s in doc["steps"]] == ONLINE.ids()
    assert transcript.verify(doc, PROCEDURES) == []
    for text in (transcript.to_json(doc), transcript.to_markdown(doc)):
        for secret in SECRETS:
            assert secret not in text


async def test_a_complete_restore(
    sandbox: RunningSandbox, redis_url: str, store: Store, tmp_path: Path
) -> None:
    plant_secrets(sandbox)
    rid, status = await run_console(
        sandbox.cluster,
        redis_url,
        me="alice",
        yes=True,
        backup=None,
        out_dir=tmp_path / "out",
        timing=FAST,
    )
    assert status == "succeeded"
    doc = await export(store, rid)
    check_export(doc)
    assert doc["outcome"] == "succeeded"
    stop = next(s for s in doc["steps"] if s["id"] == "prep.stop")
    assert stop["approved_by"] == "alice" and stop["running_seconds"] is not None
    assert stop["waiting_seconds"] is not None and set(stop["hosts"]) == {
        "scheduler-1",
        "scheduler-2",
        "scheduler-3",
    }
    preflight = next(s for s in doc["steps"] if s["id"] == "prep.preflight")
    assert "[REDACTED]" in json.dumps(preflight["hosts"])  # the planted secrets were there, masked
    live = [e["hash"] for e in await store.events(rid)]
    assert transcript.verify(doc, PROCEDURES, live) == []

    # Tampering is caught: an edited approver, an edited event, a dropped event.
    edited = json.loads(json.dumps(doc))
    next(s for s in edited["steps"] if s["id"] == "log.wipe")["approved_by"] = "mallory"
    assert any(
        "log.wipe: approved_by 'mallory'" in p for p in transcript.verify(edited, PROCEDURES)
    )
    edited = json.loads(json.dumps(doc))
    i = next(n for n, e in enumerate(edited["log"]) if '"approved"' in e["body"])
    edited["log"][i]["body"] = edited["log"][i]["body"].replace('"alice"', '"eve"')
    assert any("hash does not match" in p for p in transcript.verify(edited, PROCEDURES))
    edited = json.loads(json.dumps(doc))
    del edited["log"][3]
    assert transcript.verify(edited, PROCEDURES) != []
    edited = json.loads(json.dumps(doc))
    edited["outcome"] = "failed"
    assert transcript.verify(edited, PROCEDURES) != []
    # ...and an edited output: each host_result event carries its output's digest.
    edited = json.loads(json.dumps(doc))
    wipe = next(s for s in edited["steps"] if s["id"] == "log.wipe")
    host = sorted(wipe["hosts"])[0]
    wipe["hosts"][host]["exit_status"] = 0 if wipe["hosts"][host]["exit_status"] else 1
    assert transcript.verify(edited, PROCEDURES) == [
        f"log.wipe on {host}: the output is not the one the log holds"
    ]
    edited = json.loads(json.dumps(doc))
    pre = next(s for s in edited["steps"] if s["id"] == "prep.preflight")
    host = sorted(pre["hosts"])[-1]
    pre["hosts"][host]["stdout"] += "scheduler-backup-2099-01-01-00-00\n"
    assert transcript.verify(edited, PROCEDURES) == [
        f"prep.preflight on {host}: the output is not the one the log holds"
    ]

    # Retention: the finished restore expires (90 days by default), export works until then.
    ttl = await store.redis.ttl(restore_key(rid))
    assert 89 * 24 * 3600 < ttl <= 90 * 24 * 3600


async def test_an_aborted_and_reverted_restore(sandbox: RunningSandbox, store: Store) -> None:
    engine = Engine(
        store, {"sandbox": sandbox.cluster}, connect, timing=FAST, procedures=PROCEDURES
    )
    rid = await engine.start("sandbox", None, Actor("alice"))
    await engine.advance(rid)
    await engine.approve(rid, "prep.stop", Actor("alice"))
    await engine.skip(rid, "prep.block_traffic", Actor("bob"), "none here")
    await engine.approve(rid, "prep.admin_access", Actor("alice"))
    assert await engine.abort(rid, Actor("bob"), revert=True) == "reverted"
    await engine.close()
    doc = await export(store, rid)
    check_export(doc)
    assert doc["outcome"] == "reverted"
    statuses = {s["id"]: s["status"] for s in doc["steps"]}
    assert statuses["prep.block_traffic"] == "skipped" and statuses["prep.disable"] == "awaiting"
    assert next(s for s in doc["steps"] if s["id"] == "prep.block_traffic")["skipped_by"] == "bob"


async def test_a_restore_with_an_interrupted_step(sandbox: RunningSandbox, store: Store) -> None:
    engine = Engine(
        store, {"sandbox": sandbox.cluster}, connect, timing=FAST, procedures=PROCEDURES
    )
    rid = await engine.start("sandbox", None, Actor("alice"))
    await engine.advance(rid)
    # The transition a worker makes before it runs a step, with a lease that then lapses
    # (the worker died).
    took = await store.transition(
        rid,
        "prep.stop",
        ("awaiting",),
        {"status": "running", "attempt": 1, "approved_by": "alice"},
        {"type": "approved", "actor": "alice"},
        lease="take:dead-worker:1",
    )
    assert took.ok
    await asyncio.sleep(0.05)  # the 1 ms lease is surely over
    found = await engine.recover(rid)
    assert [sid for sid, _ in found] == ["prep.stop"]
    await engine.close()
    doc = await export(store, rid)
    check_export(doc)
    stop = next(s for s in doc["steps"] if s["id"] == "prep.stop")
    assert stop["status"] == "interrupted" and "interrupted" in [e["type"] for e in stop["events"]]


async def test_command_line_export_list_verify(
    sandbox: RunningSandbox, redis_url: str, store: Store, tmp_path: Path
) -> None:
    engine = Engine(
        store, {"sandbox": sandbox.cluster}, connect, timing=FAST, procedures=PROCEDURES
    )
    rid = await engine.start("sandbox", None, Actor("alice"))
    await engine.advance(rid)
    await engine.abort(rid, Actor("alice"), revert=False)
    await engine.close()
    env = {**os.environ, "REDIS_URL": redis_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listing = cli("list")
    assert (
        listing.returncode == 0
        and rid in listing.stdout
        and "aborted" in listing.stdout
        and "alice" in listing.stdout
    )
    out = tmp_path / "t.json"
    assert cli("export", rid, "--format", "json", "-o", str(out)).returncode == 0
    assert cli("export", rid, "--format", "md").stdout.startswith(f"# Restore {rid}")
    ok = cli("verify-transcript", str(out))
    assert (
        ok.returncode == 0
        and "checked against the export and the event log kept in the store" in ok.stdout
    )
    doc = json.loads(out.read_text())
    doc["steps"][0]["approved_by"] = "mallory"
    out.write_text(json.dumps(doc))
    bad = cli("verify-transcript", str(out))
    assert bad.returncode == 1 and "FAIL" in bad.stdout
    assert cli("export", "nope").returncode == 2
