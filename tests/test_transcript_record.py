"""The record after the fact (issue 13): an aborted-and-reverted restore and an
interrupted-then-retried one read completely in Markdown and HTML (who aborted, when, at
which step, how the revert ended per host; the interruption, the check's verdict, the
retry and who did it; per-step waiting and running times); the HTML in a real Chromium;
verify-transcript catches an edited header field; an old SHA-1 transcript still verifies.

Expected values come from the store (events as Redis holds them, the restore's `current`
before the abort), not from the transcript code under test."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.wiring import connect
from runbook import transcript
from runbook.engine import Actor, Engine
from runbook.procedures import PROCEDURES
from runbook.store import Store, restore_key
from runbook.transcript_html import to_html
from tests.conftest import ROOT, RunningSandbox
from tests.test_transcript import FAST, SCHEMA, export
from tests.test_transcript_html import _run, chromium  # noqa: F401  (a fixture)

pytestmark = pytest.mark.timeout(300)
SAMPLE = ROOT / "tests/data/transcript-sample.json"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def clock(ms: int) -> str:
    return iso(ms).split("T", 1)[1][:12] + " UTC"


def first(events: list[dict[str, Any]], type_: str, step: str | None = None) -> dict[str, Any]:
    return next(e for e in events if e["type"] == type_ and (step is None or e.get("step") == step))


def timing_line(events: list[dict[str, Any]], sid: str) -> str:
    """The Markdown's timing line of a step approved once, computed from the raw events."""
    waiting = first(events, "awaiting_approval", sid)["at"]
    approved = first(events, "approved", sid)["at"]
    done = first(events, "succeeded", sid)["at"]
    return (
        f"started {clock(approved)} · waited for approval {(approved - waiting) / 1000:.3f}s"
        f" · ran {(done - approved) / 1000:.3f}s"
    )


def section(md: str, title: str) -> str:
    return md.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def check(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, SCHEMA)
    assert transcript.verify(doc, PROCEDURES) == []
    assert transcript.verify(json.loads(transcript.to_json(doc)), PROCEDURES) == []


async def aborted_and_reverted(sandbox: RunningSandbox, store: Store) -> tuple[str, str]:
    engine = Engine(
        store, {"sandbox": sandbox.cluster}, connect, timing=FAST, procedures=PROCEDURES
    )
    rid = await engine.start("sandbox", None, Actor("alice"))
    await engine.advance(rid)
    await engine.approve(rid, "prep.stop", Actor("alice"))
    await engine.skip(rid, "prep.block_traffic", Actor("bob"), "no load balancer here")
    await engine.approve(rid, "prep.admin_access", Actor("alice"))
    await engine.approve(rid, "prep.disable", Actor("alice"))
    rec = await store.load(rid)
    assert rec is not None and rec.current
    assert await engine.abort(rid, Actor("bob"), revert=True) == "reverted"
    await engine.close()
    return rid, rec.current


async def test_an_aborted_and_reverted_restore_reads_completely(
    sandbox: RunningSandbox, one_store: Store, tmp_path: Path
) -> None:
    store = one_store
    rid, current = await aborted_and_reverted(sandbox, store)
    events = await store.events(rid)
    doc = await export(store, rid)
    check(doc)
    aborted, ended = first(events, "aborted"), first(events, "reverted")
    assert ended["summary"]

    (tmp_path / "aborted.json").write_text(transcript.to_json(doc))
    md = transcript.to_markdown(doc)
    (tmp_path / "aborted.md").write_text(md)
    abort = section(md, "Abort")
    assert (
        f"- aborted by **bob** at {iso(aborted['at'])}, while **{current}** was the current "
        "step; a revert was asked for" in abort
    )
    assert f"- how it ended: **reverted** at {iso(ended['at'])}" in abort
    for line in ended["summary"].splitlines():  # the revert's result, host by host
        assert line in abort
    record = section(md, "Record")
    assert (
        f"- {clock(aborted['at'])} · restore (at {current}) · ABORTED by bob at {current}, "
        "asking for the revert" in record
    )
    assert f"- {clock(ended['at'])} · restore (at {current}) · abort ended: reverted" in record
    skipped = section(md, "prep.block_traffic — " + doc["steps"][3]["title"])
    assert "skipped by bob" in skipped and "no load balancer here" in skipped
    for sid in ("prep.stop", "prep.admin_access", "prep.disable"):
        step = section(md, f"{sid} — " + next(s["title"] for s in doc["steps"] if s["id"] == sid))
        assert timing_line(events, sid) in step, sid
        assert "approved by alice" in step

    page = to_html(doc)
    (tmp_path / "aborted.html").write_text(page)
    box = page.split('<section id="abort">', 1)[1].split("</section>", 1)[0]
    assert (
        f"Aborted by <strong>bob</strong> at <time>{iso(aborted['at'])}</time>, while "
        f"<code>{current}</code> was the current step; a revert was asked for." in box
    )
    assert f"<strong>reverted</strong> at <time>{iso(ended['at'])}</time>" in box
    assert f'<pre class="abort-summary">{escape(ended["summary"])}</pre>' in box
    row = page.split(f'<tr class="step" data-step="{current}"', 1)[1].split("</tr>", 1)[0]
    assert 'class="marker marker-abort" data-event="aborted"' in row
    restore_row = page.split('<tr class="restore-row"', 1)[1].split("</tr>", 1)[0]
    assert 'data-event="aborted"' in restore_row and 'data-event="reverted"' in restore_row
    ticks = re.findall(r'<span class="tick" style="left:[\d.]+%">([\d:.]+)</span>', page)
    assert len(ticks) >= 2 and all(re.fullmatch(r"\d\d:\d\d:\d\d(\.\d{3})?", t) for t in ticks)
    assert "(times in UTC)" in page
    assert (
        f'data-event="skipped"><time>{clock(first(events, "skipped")["at"])}</time> '
        "<code>prep.block_traffic</code> skipped by bob" in page
    )


async def test_an_interrupted_then_retried_restore_reads_completely(
    sandbox: RunningSandbox, one_store: Store, tmp_path: Path
) -> None:
    store = one_store
    engine = Engine(
        store, {"sandbox": sandbox.cluster}, connect, timing=FAST, procedures=PROCEDURES
    )
    rid = await engine.start("sandbox", None, Actor("alice"))
    await engine.advance(rid)
    # What approve() writes before it runs the step, by a worker that then dies: its
    # 1 ms lease lapses and the sweep finds the step interrupted.
    took = await store.transition(
        rid,
        "prep.stop",
        ("awaiting",),
        {"status": "running", "attempt": 1, "approved_by": "alice"},
        {"type": "approved", "actor": "alice"},
        restore_patch={"current": "prep.stop"},
        lease="take:worker-dead:1",
    )
    assert took.ok
    await asyncio.sleep(0.05)
    assert [sid for sid, _ in await engine.recover(rid)] == ["prep.stop"]
    outcome = await engine.retry(rid, "prep.stop", Actor("bob"))
    assert outcome.ok
    await engine.close()
    events = await store.events(rid)
    doc = await export(store, rid)
    check(doc)
    interrupted, checked = first(events, "interrupted"), first(events, "checked")
    retried, done = first(events, "retried"), first(events, "succeeded", "prep.stop")
    approved, waiting = first(events, "approved", "prep.stop"), first(events, "awaiting_approval")
    verdict = (
        "it appears finished" if checked["appears_finished"] else "it does not appear finished"
    )

    (tmp_path / "retried.json").write_text(transcript.to_json(doc))
    md = transcript.to_markdown(doc)
    (tmp_path / "retried.md").write_text(md)
    stop = section(md, "prep.stop — " + doc["steps"][2]["title"])
    assert (
        f"- {iso(interrupted['at'])} interrupted: its worker worker-dead stopped renewing its "
        "lease (it died)" in stop
    )
    assert f"- {iso(checked['at'])} the check after the interruption: {verdict}" in stop
    assert checked["summary"].splitlines()[0] in stop
    assert f"- {iso(retried['at'])} retried by bob (attempt 2)" in stop
    assert "approved by alice; retried by bob" in stop
    ran = ((interrupted["at"] - approved["at"]) + (done["at"] - retried["at"])) / 1000
    assert (
        f"started {clock(approved['at'])} · waited for approval "
        f"{(approved['at'] - waiting['at']) / 1000:.3f}s · ran {ran:.3f}s in 2 runs" in stop
    )
    record = section(md, "Record")
    assert f"- {clock(retried['at'])} · prep.stop · retried by bob (attempt 2)" in record

    page = to_html(doc)
    (tmp_path / "retried.html").write_text(page)
    row = page.split('<tr class="step" data-step="prep.stop"', 1)[1].split("</tr>", 1)[0]
    assert 'class="marker marker-interruption" data-event="interrupted"' in row
    assert 'class="marker marker-retry" data-event="retried"' in row
    assert row.count('class="bar-running"') == 2  # the interrupted run and the retry
    detail = page.split('id="step-prep.stop"', 1)[1].split("</details>", 1)[0]
    assert f"the check after the interruption: {verdict}" in detail
    assert "run 1 (alice," in detail and "run 2 (bob," in detail and "retried by bob" in detail


async def test_the_html_record_in_chromium(
    sandbox: RunningSandbox,
    one_store: Store,
    tmp_path: Path,
    chromium: str,  # noqa: F811
) -> None:
    store = one_store
    rid, current = await aborted_and_reverted(sandbox, store)
    doc = await export(store, rid)
    page = tmp_path / "aborted.html"
    page.write_text(to_html(doc), encoding="utf-8")
    dumped = _run(chromium, tmp_path, "dom", "--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert 'id="abort"' in dumped.stdout and "marker-abort" in dumped.stdout
    assert "<script" not in dumped.stdout
    png = tmp_path / "aborted.png"
    shot = _run(
        chromium,
        tmp_path,
        "shot",
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=1000",
        "--hide-scrollbars",
        f"--screenshot={png}",
        "--window-size=1400,2000",
        page.as_uri(),
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1400, 2000)
    assert len(data) > 20_000, len(data)  # a blank page compresses to a few KB
    if os.environ.get("TRANSCRIPT_SCREENSHOT"):  # to look at it: TRANSCRIPT_SCREENSHOT=FILE
        Path(os.environ["TRANSCRIPT_SCREENSHOT"]).write_bytes(data)


# -- verify-transcript ------------------------------------------------------------------


async def test_the_chain_is_sha256_from_the_restore_key(store: Store) -> None:
    """On each kind of server (the Lua SHA-256 runs inside it): every hash is
    sha256(previous hash + body), the first from the restore's key."""
    steps = {"prep.stop": {"status": "awaiting", "attempt": 0}}
    body = "é → ✓ " * 40  # multi-byte text, several 64-byte blocks
    ok, _ = await store.create(
        "abcdef012345", "c1", {"cluster": "c1", "plan": ["prep.stop"]}, steps,
        {"type": "restore_started", "actor": "alice", "cluster": "c1", "note": body},
    )  # fmt: skip
    assert ok
    for n in range(3):
        await store.transition(
            "abcdef012345", "prep.stop", ("awaiting",), {}, {"type": "refused", "reason": body * n}
        )
    events = await store.events("abcdef012345")
    prev = restore_key("abcdef012345")
    for e in events:
        assert e["hash"] == hashlib.sha256((prev + e["raw"]).encode()).hexdigest()
        prev = e["hash"]
    assert len(events) == 4 and len(events[-1]["raw"]) > 64 * 4


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


EDITS: dict[str, Any] = {
    "restore": "0123456789ab",
    "cluster": "prod-west",
    "started_by": "mallory",
    "started_at": "2026-01-01T00:00:00.000+00:00",
    "ended_at": "2026-01-01T00:00:00.000+00:00",
    "outcome": "succeeded",
    "backup": "scheduler-backup-2020-01-01-00-00",
}


async def test_an_edited_header_field_fails(
    sandbox: RunningSandbox, one_store: Store, tmp_path: Path
) -> None:
    store = one_store
    rid, current = await aborted_and_reverted(sandbox, store)
    doc = await export(store, rid)
    check(doc)
    for field, value in EDITS.items():
        edited = copy.deepcopy(doc)
        edited[field] = value
        problems = transcript.verify(edited, PROCEDURES)
        assert problems and any(field in p for p in problems), (field, problems)
    edited = copy.deepcopy(doc)
    edited["abort"]["by"] = "alice"
    assert "abort is not what the log says" in transcript.verify(edited, PROCEDURES)
    edited = copy.deepcopy(doc)
    edited["record"][-1]["text"] = "abort ended: nothing to see"
    assert "record is not what the log says" in transcript.verify(edited, PROCEDURES)
    edited = copy.deepcopy(doc)
    step = next(s for s in edited["steps"] if s["id"] == "prep.stop")
    # A value other than the true one (which may itself be 0.0 when approved at once).
    step["waiting_seconds"] = float(step.get("waiting_seconds") or 0.0) + 1.0
    assert "prep.stop: waiting_seconds is not what the log says" in transcript.verify(
        edited, PROCEDURES
    )
    for field in ("abort", "started_by", "record"):  # dropping a field hides nothing
        edited = copy.deepcopy(doc)
        del edited[field]
        assert f"field {field!r} is missing" in transcript.verify(edited, PROCEDURES), field
    edited = copy.deepcopy(doc)
    edited["approved_by_ceo"] = "yes"
    assert "field 'approved_by_ceo' is not part of a transcript" in transcript.verify(
        edited, PROCEDURES
    )

    out = tmp_path / "t.json"
    ok = copy.deepcopy(doc)
    out.write_text(json.dumps(ok))
    good = cli("verify-transcript", "--offline", str(out))
    assert good.returncode == 0 and "SHA-256 chain" in good.stdout, good.stdout + good.stderr
    edited = copy.deepcopy(doc)
    edited["started_by"] = "mallory"
    out.write_text(json.dumps(edited))
    bad = cli("verify-transcript", "--offline", str(out))
    assert bad.returncode == 1
    assert "FAIL started_by 'mallory' but the log says 'alice'" in bad.stdout.splitlines()


def test_header_facts_of_a_complete_restore_are_checked() -> None:
    """backup, reviewed_tasks and leader, which steps learn, against what their summaries
    in the log say (the sample: a complete restore)."""
    doc = json.loads(SAMPLE.read_text())
    assert transcript.verify(doc, PROCEDURES) == []
    for field, value in (
        ("reviewed_tasks", 279),
        ("backup", "scheduler-backup-2026-11-27-02-08"),
        ("leader", "scheduler-2"),
        ("backup_age_seconds", 7200.0),
    ):
        edited = copy.deepcopy(doc)
        edited[field] = value
        problems = transcript.verify(edited, PROCEDURES)
        assert any(p.startswith(f"{field} ") for p in problems), (field, problems)


def test_an_old_sha1_transcript_verifies_as_older_format(tmp_path: Path) -> None:
    res = cli("verify-transcript", "--offline", str(SAMPLE))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SHA-1 chain (older format)" in res.stdout
    doc = json.loads(SAMPLE.read_text())
    doc["log"][5]["body"] = doc["log"][5]["body"].replace("3 hosts", "4 hosts")
    (tmp_path / "old.json").write_text(json.dumps(doc))
    bad = cli("verify-transcript", "--offline", str(tmp_path / "old.json"))
    assert bad.returncode == 1 and "FAIL event 6: hash does not match its content" in bad.stdout


# -- pure: the table of event types ----------------------------------------------------


def test_every_engine_event_type_has_a_reading() -> None:
    engine = (ROOT / "runbook/engine.py").read_text()
    emitted = set(re.findall(r'"type": "([a-z_]+)"', engine))
    emitted |= {f"restore_{x}" for x in ("succeeded", "failed")}  # f"restore_{final}"
    emitted |= {"held_stopped", "abort_done", "reverted", "revert_failed"}  # _end(kind)
    emitted.discard("restore_")
    assert emitted <= set(transcript.EVENTS), emitted - set(transcript.EVENTS)


def test_an_unknown_event_type_shows_generically() -> None:
    bodies = [
        {"type": "restore_started", "actor": "alice", "cluster": "c", "at": 1000, "seq": 1},
        {"type": "frobnicated", "step": "prep.stop", "actor": "carol", "count": 3, "at": 2000},
    ]
    rec = transcript.record(bodies)
    assert rec[-1]["text"] == "frobnicated (carol): count 3"
    assert rec[0]["text"] == "alice started the restore of c (backup: the newest)"
