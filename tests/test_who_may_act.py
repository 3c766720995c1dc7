"""Who may act, in the engine (every front end goes through it): only approvers start a
restore; every run of a destructive step (a first approval, a retry, a Mark done) needs
an approver other than the requester; an abort always ends and frees the cluster, even
when its revert meets a failure; the originals kept for the revert leave Redis when the
restore ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.wiring import connect
from runbook.actions import Timing
from runbook.engine import Actor, Engine, Refused
from runbook.procedures import PROCEDURES
from runbook.store import Store
from tests.conftest import RunningSandbox
from tests.drive import ALICE, BOB, MALLORY, drive

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def store(one_store: Store) -> Store:
    """One kind of server is enough for these scenarios (see tests/conftest.py)."""
    return one_store


FAST = Timing(
    leader_wait=20, failover_wait=30, verify_wait=45, poll=0.3, vars_timeout=2, start_wait=30
)


def make_engine(store: Store, sandbox: RunningSandbox) -> Engine:
    return Engine(
        store,
        {"sandbox": sandbox.cluster},
        connect,
        timing=FAST,
        lease_ms=3000,
        procedures=PROCEDURES,
    )


async def test_only_an_approver_starts_a_restore(sandbox: RunningSandbox, store: Store) -> None:
    engine = make_engine(store, sandbox)
    with pytest.raises(Refused, match="mallory is not an approver for sandbox"):
        await engine.start("sandbox", None, MALLORY)
    assert await store.restore_ids() == []
    assert await store.holder("sandbox") is None
    await engine.close()


async def test_a_retry_of_a_destructive_step_needs_the_second_approver(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = make_engine(store, sandbox)
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "log.wipe") == "at log.wipe"
    # The wipe fails on one host (its log directory made unwritable for a moment).
    s = sandbox.cluster.schedulers[0]
    log_dir = Path(sandbox.cluster.path(s, "native_log_file_path") or "")
    log_dir.rename(log_dir.with_name("db.away"))
    out = await engine.approve(rid, "log.wipe", BOB)
    assert not out.ok
    log_dir.with_name("db.away").rename(log_dir)
    before = await store.events(rid)
    with pytest.raises(
        Refused, match="log.wipe is destructive: retrying it needs an approver other than alice"
    ):
        await engine.retry(rid, "log.wipe", ALICE)
    assert await store.events(rid) == before  # refused: nothing ran, nothing recorded
    assert (await engine.retry(rid, "log.wipe", BOB)).ok
    types = [e["type"] for e in await store.events(rid) if e.get("step") == "log.wipe"]
    assert types.count("retried") == 1
    await engine.abort(rid, BOB, revert=True)
    await engine.close()


async def test_a_mark_done_of_a_destructive_step_needs_the_second_approver(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = make_engine(store, sandbox)
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "log.wipe") == "at log.wipe"
    # An interrupted wipe whose check found it finished, as a dead worker leaves it.
    await store.transition(
        rid,
        "log.wipe",
        ("awaiting",),
        {
            "status": "interrupted",
            "attempt": 1,
            "appears_finished": True,
            "check": "directory empty everywhere",
        },
        {"type": "interrupted"},
    )
    with pytest.raises(Refused, match="marking done it needs an approver other than alice"):
        await engine.mark_done(rid, "log.wipe", ALICE)
    await engine.mark_done(rid, "log.wipe", BOB)
    assert (await engine.record(rid)).steps["log.wipe"]["status"] == "succeeded"
    await engine.abort(rid, BOB, revert=False)
    await engine.close()


async def test_an_abort_whose_revert_fails_still_ends_and_frees_the_cluster(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = make_engine(store, sandbox)
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "prep.start") == "at prep.start"
    # A value the revert cannot use: the kept original is garbage.
    rec = await engine.record(rid)
    originals = rec.data["originals"]
    host = next(iter(originals))
    originals[host]["env_file"]["b64"] = "!!! not base64 !!!"
    await store.set_data(rid, originals=originals)
    with pytest.raises(Refused, match="aborted, but the revert failed"):
        await engine.abort(rid, BOB, revert=True)
    rec = await engine.record(rid)
    assert rec.status == "aborted"
    assert await store.holder("sandbox") is None
    events = [e["type"] for e in await store.events(rid)]
    assert "revert_failed" in events
    assert "originals" not in rec.data
    # A new restore may start.
    rid2 = await engine.start("sandbox", None, ALICE)
    await engine.abort(rid2, ALICE, revert=False)
    await engine.close()


async def test_the_originals_leave_redis_when_the_restore_ends(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = make_engine(store, sandbox)
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "prep.stop") == "at prep.stop"
    assert "originals" in (await engine.record(rid)).data
    assert await engine.abort(rid, Actor("bob"), revert=True) == "reverted"
    assert "originals" not in (await engine.record(rid)).data
    await engine.close()


async def test_an_approval_older_than_expire_after_is_refused_and_asked_again(
    sandbox: RunningSandbox, store: Store
) -> None:
    import asyncio

    from runbook.clusters import Approvals

    cluster = sandbox.cluster.model_copy(update={"approvals": Approvals(expire_after="1s")})
    engine = Engine(store, {"sandbox": cluster}, connect, timing=FAST, procedures=PROCEDURES)
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "prep.stop") == "at prep.stop"
    await asyncio.sleep(1.5)
    with pytest.raises(Refused, match="longer than approvals.expire_after = 1s"):
        await engine.approve(rid, "prep.stop", ALICE)
    rec = await engine.record(rid)
    assert rec.steps["prep.stop"]["status"] == "awaiting"  # asked again, with a new card
    assert "approval_expired" in [e["type"] for e in await store.events(rid)]
    assert sandbox.leaders("ACTIVE")  # nothing was stopped
    assert (await engine.approve(rid, "prep.stop", ALICE)).ok
    await engine.abort(rid, BOB, revert=True)
    await engine.close()
