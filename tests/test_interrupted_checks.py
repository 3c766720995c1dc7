"""Every step can say whether it ran: after the bot died in a step, its check answers
"finished", "did not run" or "cannot tell"; Mark done needs "finished". For
restore.commit the check asks the leader whether the recovery is still staged."""

from __future__ import annotations

import pytest

from bot.wiring import connect
from runbook.actions import Timing
from runbook.engine import Engine, Refused
from runbook.procedures import PROCEDURES
from runbook.store import Store
from tests.conftest import RunningSandbox
from tests.drive import ALICE, BOB, drive

pytestmark = pytest.mark.timeout(400)


@pytest.fixture
def store(one_store: Store) -> Store:
    """One kind of server is enough for these scenarios (see tests/conftest.py)."""
    return one_store


FAST = Timing(
    leader_wait=30, failover_wait=40, verify_wait=60, poll=0.3, vars_timeout=2, start_wait=40
)


async def die_in(store: Store, rid: str, sid: str) -> None:
    """The step was approved and its worker died before it sent anything."""
    await store.transition(
        rid,
        sid,
        ("awaiting",),
        {"status": "running", "attempt": 1, "lease_owner": "dead", "lease_until": 0},
        {"type": "approved", "actor": "bob"},
    )


async def test_an_interrupted_commit_says_the_recovery_is_still_staged(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = Engine(
        store,
        {"sandbox": sandbox.cluster},
        connect,
        timing=FAST,
        lease_ms=2000,
        procedures=PROCEDURES,
    )
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "restore.commit") == "at restore.commit"
    await die_in(store, rid, "restore.commit")
    found = await engine.recover(rid)
    assert [sid for sid, _ in found] == ["restore.commit"]
    state = (await engine.record(rid)).steps["restore.commit"]
    assert state["status"] == "interrupted"
    assert state["appears_finished"] is False
    assert state["check"].startswith("did not run: ") and "recovery staged" in state["check"]
    with pytest.raises(Refused, match="can be marked done only when its check says it finished"):
        await engine.mark_done(rid, "restore.commit", BOB)
    # The retry is a run of a destructive step: the second approver, and it commits.
    with pytest.raises(Refused, match="retrying it needs an approver other than alice"):
        await engine.retry(rid, "restore.commit", ALICE)
    out = await engine.retry(rid, "restore.commit", BOB)
    assert out.ok, out.summary
    await engine.close()


async def test_an_interrupted_stage_and_file_edit_say_what_they_see(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = Engine(
        store,
        {"sandbox": sandbox.cluster},
        connect,
        timing=FAST,
        lease_ms=2000,
        procedures=PROCEDURES,
    )
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "prep.disable") == "at prep.disable"
    await die_in(store, rid, "prep.disable")
    await engine.recover(rid)
    state = (await engine.record(rid)).steps["prep.disable"]
    assert state["check"] == "did not run: every file is as it was before"
    assert (await engine.retry(rid, "prep.disable", ALICE)).ok
    assert await drive(engine, rid, "restore.stage") == "at restore.stage"
    await die_in(store, rid, "restore.stage")
    await engine.recover(rid)
    state = (await engine.record(rid)).steps["restore.stage"]
    assert state["check"].startswith("did not run: nothing is staged on "), state["check"]
    assert (await engine.retry(rid, "restore.stage", ALICE)).ok
    await engine.abort(rid, BOB, revert=True)
    await engine.close()
