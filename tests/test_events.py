"""One event vocabulary (runbook.events): the log and the listener speak EventKind.

The engine is driven through a small procedure of its own (a procedure is a value: the
engine is given it, like the online one), whose steps run on the bot alone, so a whole
restore with an approval, a failure and its retry, an interruption and its Mark done
runs on a real store in a moment.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from runbook import transcript
from runbook.actions import Outcome, StepContext
from runbook.clusters import Cluster, load_clusters
from runbook.engine import Actor, Engine
from runbook.events import LISTENER_ONLY, Event, EventKind
from runbook.state import StepStatus
from runbook.step import Procedure, Risk, Role, Step, Targets
from runbook.store import Store

ROOT = Path(__file__).resolve().parent.parent
ALICE, BOB = Actor("alice"), Actor("bob")


async def ok(ctx: StepContext) -> Outcome:
    return Outcome(True, f"{ctx.step.id} done")


class Flaky:
    """Fails its first run, succeeds after."""

    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self, ctx: StepContext) -> Outcome:
        self.runs += 1
        return Outcome(self.runs > 1, f"run {self.runs}")


async def finished(ctx: StepContext) -> Outcome:
    return Outcome(True, "finished")


def fake_procedure(flaky: Flaky) -> Procedure:
    def step(sid: str, risk: Risk, run: Any, **extra: Any) -> Step:
        return Step(
            id=sid,
            phase="Fake",
            title=sid,
            explain=sid,
            targets=Targets.BOT,
            risk=risk,
            commands=(),
            check=f"{sid} checked",
            run=run,
            **extra,
        )

    return Procedure(
        name="fake",
        title="A procedure of the bot alone",
        aurora_versions="none",
        steps=(
            step("fake.look", Risk.READ_ONLY, ok, role=Role.PREFLIGHT),
            step("fake.never", Risk.MUTATING, ok, condition=lambda facts: False),
            step("fake.change", Risk.MUTATING, ok),
            step("fake.flaky", Risk.MUTATING, flaky),
            step("fake.slow", Risk.MUTATING, ok, verify=finished),
            step("fake.end", Risk.READ_ONLY, ok, role=Role.VERIFY),
        ),
    )


def cluster(tmp_path: Path) -> Cluster:
    key, known = tmp_path / "id", tmp_path / "known_hosts"
    key.write_text("a key\n")
    known.write_text("")
    path = tmp_path / "clusters.toml"
    path.write_text(
        f"""
[clusters.west]
[clusters.west.ssh]
key = "{key}"
known_hosts = "{known}"
[clusters.west.approvers]
console = ["alice", "bob"]
[[clusters.west.schedulers]]
host = "scheduler-1"
address = "127.0.0.1"
"""
    )
    return load_clusters(path)["west"]


class Nothing:
    """Remote and probe of a procedure that never leaves the bot."""

    async def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("nothing is sent")

    async def read_file(self, *args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("nothing is read")

    async def close(self) -> None:
        pass


async def choose_fake(c: Cluster) -> tuple[str, str]:
    return "fake", "the test's"


def test_round_trip_of_every_field() -> None:
    e = Event(
        EventKind.HOST_RESULT,
        rid="abc",
        step="s",
        actor="bot",
        at=5,
        host="h",
        attempt=2,
        exit_status=0,
        duration=0.5,
        error=None,
        output_sha256="ff",
    )
    body = e.to_dict()
    assert body == {
        "type": "host_result",
        "step": "s",
        "actor": "bot",
        "at": 5,
        "host": "h",
        "attempt": 2,
        "exit_status": 0,
        "duration": 0.5,
        "output_sha256": "ff",
    }
    assert Event.from_dict(json.loads(json.dumps(body)), rid="abc") == e
    # What the store sets (step, at) is not handed to it; falsy values are kept.
    assert e.to_store() == {k: v for k, v in body.items() if k not in ("step", "at")}
    assert Event(EventKind.ABORTED, revert=False).to_dict() == {"type": "aborted", "revert": False}


def test_from_dict_names_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="event type 'exploded' is not an EventKind"):
        Event.from_dict({"type": "exploded"})
    with pytest.raises(ValueError, match="event approved: unknown field 'mood'"):
        Event.from_dict({"type": "approved", "mood": "good"})
    # The store's bookkeeping is dropped, not refused.
    e = Event.from_dict({"type": "approved", "seq": 3, "prev": "", "hash": "x", "raw": "{}"})
    assert e == Event(EventKind.APPROVED)


def test_the_listener_gets_the_live_objects_the_log_never_holds() -> None:
    check = Outcome(True, "finished")
    e = Event(EventKind.INTERRUPTED, rid="r", step="s", worker="w", live={"check": check})
    assert e.info() == {"rid": "r", "step": "s", "worker": "w", "check": check}
    assert "check" not in e.to_dict()


def test_every_logged_kind_reads_in_the_transcript() -> None:
    logged = set(EventKind) - LISTENER_ONLY
    assert logged - set(transcript.EVENTS) == set()
    assert set(transcript.EVENTS) - set(EventKind) == set()


def test_the_sample_transcripts_log_is_in_the_vocabulary() -> None:
    doc = json.loads((ROOT / "tests/data/transcript-sample.json").read_text())
    bodies = [json.loads(entry["body"]) for entry in doc["log"]]
    assert bodies
    for body in bodies:
        Event.from_dict(body)  # raises, naming the type or field, if not


async def test_a_restore_logs_and_tells_only_event_kinds(tmp_path: Path, one_store: Store) -> None:
    flaky = Flaky()
    fake = fake_procedure(flaky)
    told: list[tuple[str, dict[str, Any]]] = []
    engine = Engine(
        one_store,
        {"west": cluster(tmp_path)},
        lambda c: (Nothing(), Nothing()),  # type: ignore[arg-type, return-value]
        procedures={"fake": fake},
        choose=choose_fake,
        lease_ms=1000,
    )
    engine.listener = lambda kind, info: told.append((kind, info))  # type: ignore[assignment, func-returns-value]
    rid = await engine.start("west", None, ALICE)
    rec = await engine.record(rid)
    assert rec.meta["procedure"] == "fake" and engine.procedure_of(rec) is fake
    assert rec.meta["plan"] == fake.ids()
    await engine.advance(rid)
    await engine.approve(rid, "fake.change", ALICE)
    assert not (await engine.approve(rid, "fake.flaky", ALICE)).ok
    assert (await engine.retry(rid, "fake.flaky", BOB)).ok
    # fake.slow is taken by a worker that dies: its lease runs out, the sweep finds it.
    rec = await engine.record(rid)
    assert rec.steps["fake.slow"]["status"] == StepStatus.AWAITING
    taken = await one_store.transition(
        rid,
        "fake.slow",
        ("awaiting",),
        {"status": "running", "attempt": 1, "approved_by": "alice"},
        Event(EventKind.APPROVED, actor="alice").to_store(),
        lease="take:dead-worker:1",
    )
    assert taken.ok
    while not await engine.sweep():
        await asyncio.sleep(0.01)
    rec = await engine.record(rid)
    assert rec.steps["fake.slow"]["status"] == StepStatus.INTERRUPTED
    assert rec.steps["fake.slow"]["appears_finished"] is True
    await engine.mark_done(rid, "fake.slow", BOB)
    rec = await engine.record(rid)
    assert rec.status == "succeeded", rec.steps
    assert rec.steps["fake.never"]["status"] == StepStatus.SKIPPED

    events = await one_store.events(rid)
    kinds = [Event.from_dict(e, rid=rid).kind for e in events]  # every one parses
    assert EventKind.RETRIED in kinds and EventKind.MARKED_DONE in kinds
    assert kinds[0] is EventKind.RESTORE_STARTED and kinds[-1] is EventKind.RESTORE_SUCCEEDED
    assert events[0]["procedure"] == "fake"
    told_kinds = [kind for kind, _ in told]
    assert all(isinstance(k, EventKind) for k in told_kinds), told_kinds
    for kind in (EventKind.RETRIED, EventKind.MARKED_DONE, EventKind.INTERRUPTED):
        assert kind in told_kinds
    # What the fronts are told is what the log holds (plus the runs the log has no event for).
    assert set(told_kinds) - LISTENER_ONLY <= set(kinds)
    retried = next(info for kind, info in told if kind is EventKind.RETRIED)
    assert retried == {"rid": rid, "step": "fake.flaky", "actor": "bob"}

    # The transcript is given the procedure, says it, and verifies against it.
    doc = transcript.build(rec, events, await one_store.outputs(rid), fake)
    assert doc["procedure"] == "fake"
    assert [s["id"] for s in doc["steps"]] == fake.ids()
    assert transcript.verify(json.loads(transcript.to_json(doc)), {"fake": fake}) == []
    assert transcript.verify(doc, {}) == ["procedure 'fake' is not one this bot knows"]
    await engine.close()
