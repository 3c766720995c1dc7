"""What a person approves is exactly what runs (runbook.plan): over a whole restore in the
console, every command sent to every host, recorded beneath the engine, is one the
approved plan of its step held (or one a read-only step showed on its card), byte for
byte, and every file edit was shown as a diff before its approval; an approval is void
when the rendering changes between the card and the run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.console import Console
from bot.wiring import connect
from runbook.actions import Recorder, Timing
from runbook.clusters import Cluster
from runbook.engine import Engine, Refused
from runbook.ports import Remote, VarsProbe
from runbook.procedure import Risk
from runbook.procedures import PROCEDURES
from runbook.store import Store
from tests.conftest import RunningSandbox
from tests.drive import ALICE, BOB, drive, file_sums

pytestmark = pytest.mark.timeout(400)


@pytest.fixture
def store(one_store: Store) -> Store:
    """One kind of server is enough for these scenarios (see tests/conftest.py)."""
    return one_store


FAST = Timing(
    leader_wait=30, failover_wait=40, verify_wait=60, poll=0.3, vars_timeout=2, start_wait=40
)


async def test_every_command_sent_in_a_whole_restore_was_shown_and_approved(
    sandbox: RunningSandbox, store: Store
) -> None:
    batches: list[dict[str, str]] = []

    def recording(c: Cluster) -> tuple[Remote, VarsProbe]:
        # Beneath the engine: every command that reaches the SSH executor.
        remote, probe = connect(c)
        return Recorder(remote, batches), probe

    before = file_sums(sandbox.cluster)
    engine = Engine(
        store, {"sandbox": sandbox.cluster}, recording, timing=FAST, procedures=PROCEDURES
    )
    out = io.StringIO()
    rid = await Console(engine, sandbox.cluster, me="alice", yes=True, out=out).run(None)
    text = out.getvalue()
    rec = await engine.record(rid)
    assert rec.status == "succeeded", text[-3000:]
    assert file_sums(sandbox.cluster) == before
    shown: dict[str, set[tuple[str, str]]] = {}
    for sid in rec.meta["plan"]:
        step = engine.step(sid, rec)
        allowed = shown.setdefault(sid, set())
        if step.risk is Risk.READ_ONLY:
            for part in ("commands", "reads"):
                for batch in rec.steps[sid].get(part) or []:
                    allowed |= set(batch.items())
        else:
            plan = rec.data.get(f"plan:{sid}") or {}
            for part in ("commands", "reads"):
                for host, commands in (plan.get(part) or {}).items():
                    allowed |= {(host, c) for c in commands}
    everything = set().union(*shown.values())
    sent = [pair for batch in batches for pair in batch.items()]
    unshown = [c for c in sent if c not in everything]
    assert unshown == [], unshown[:5]
    assert len(sent) > 50
    # Every file edit was on the card (as a diff) before it was approved.
    for sid in ("prep.admin_access", "prep.disable", "cleanup.revert"):
        files = rec.data[f"plan:{sid}"]["files"]
        assert set(files) == {s.host for s in sandbox.cluster.schedulers}, sid
        card = text.index(f"{sid} · ")
        approved = text.index("approved by", card)
        assert "file edit:" in text[card:approved], sid
        for edits in files.values():
            for edit in edits.values():
                assert edit["diff"].startswith("--- "), sid
    # The approval names the plan it ran.
    approvals = [e for e in await store.events(rid) if e["type"] == "approved"]
    for e in approvals:
        step_plan = rec.data.get(f"plan:{e['step']}") or {}
        assert e.get("plan_digest") == step_plan.get("digest"), e["step"]
    await engine.close()


async def test_an_approval_is_void_when_the_file_changed_since_the_card(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = Engine(
        store, {"sandbox": sandbox.cluster}, connect, timing=FAST, procedures=PROCEDURES
    )
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "prep.disable") == "at prep.disable"
    shown = (await engine.record(rid)).data["plan:prep.disable"]
    s = sandbox.cluster.schedulers[1]
    env = Path(sandbox.cluster.path(s, "env_file") or "")
    env.write_text(env.read_text() + "# edited by hand while the card was up\n")
    with pytest.raises(Refused, match="what it would do changed since the card was shown"):
        await engine.approve(rid, "prep.disable", ALICE)
    rec = await engine.record(rid)
    assert rec.steps["prep.disable"]["status"] == "awaiting"
    new = rec.data["plan:prep.disable"]
    assert new["digest"] != shown["digest"]
    changed = [e for e in await store.events(rid) if e["type"] == "plan_changed"]
    assert (
        changed
        and f"{s.host}: {env}: changed on the host since it was shown" in changed[0]["reason"]
    )
    # A click on the old card is refused too: it is bound to the plan it showed.
    with pytest.raises(Refused, match="the card you approved is not the current one"):
        await engine.approve(rid, "prep.disable", ALICE, seen=shown["digest"])
    # Approved again, the new plan runs, and the hand edit is kept.
    out = await engine.approve(rid, "prep.disable", ALICE, seen=new["digest"])
    assert out.ok, out.summary
    assert "# edited by hand while the card was up" in env.read_text()
    await engine.abort(rid, BOB, revert=True)
    await engine.close()
