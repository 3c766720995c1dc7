"""The offline procedure's start order and its aborts, against a 0.22 sandbox whose
schedulers reconcile within a second (a scheduler started wrongly would kill at once).

- The interlock: recovery-tool and the rehydrated scheduler's start are refused while
  another scheduler runs; a blank scheduler's start is refused while the rehydrated one
  is not up; nothing a refusal touches starts.
- An abort at each step: before the wipe the revert starts the schedulers on their
  intact log; from the wipe until recovery-tool succeeded the schedulers are held
  stopped (nothing starts, nothing is killed) and the old log can be put back; after it,
  the revert starts the rehydrated scheduler first and the blank ones after it. No kill
  but the forecast ones (the tasks started since the backup, once the backup is the
  truth), and the files are as they were.
- `auto` chooses the offline procedure on 0.22 hosts and the online one on 0.17 hosts.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.wiring import build_engine
from runbook.clusters import Cluster
from runbook.engine import Engine, Refused
from runbook.store import Store
from tests.conftest import RunningSandbox, wait_for
from tests.drive import ALICE, BOB, drive, file_sums, kills
from tests.test_empty_log_window import FAST, fast_reconciliation
from tests.test_offline_restore import set_procedure

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def store(one_store: Store) -> Store:
    """One kind of server is enough for these scenarios (see tests/conftest.py)."""
    return one_store


@pytest.fixture
def sandbox22(make_sandbox) -> RunningSandbox:
    sandbox = make_sandbox("--aurora-version", "0.22")
    fast_reconciliation(sandbox)
    return sandbox


def make_engine(store: Store, cluster: Cluster) -> Engine:
    """The engine as the console and the Slack app build it (every adapter, the chooser)."""
    return build_engine(store, {cluster.name: cluster}, timing=FAST, lease_ms=5000)


def ssh_ok(sandbox: RunningSandbox, host: str, command: str) -> None:
    r = sandbox.ssh(host, command)
    assert r.returncode == 0, r.stderr


async def test_auto_chooses_by_the_version_on_vars(
    make_sandbox, store: Store, tmp_path: Path
) -> None:
    for version, expected in (("0.22", "offline"), ("0.17", "online")):
        sandbox = make_sandbox("--aurora-version", version, directory=tmp_path / version)
        try:
            wait_for(lambda sb=sandbox: len(sb.leaders("ACTIVE")) == 1, timeout=60)
            engine = make_engine(store, sandbox.cluster)
            assert sandbox.cluster.procedure == "auto"
            rid = await engine.start("sandbox", None, ALICE)
            rec = await engine.record(rid)
            assert rec.meta["procedure"] == expected
            assert rec.meta["procedure_version"] == f"{version}.0"
            assert f"Aurora {version}.0" in rec.meta["procedure_why"]
            await engine.abort(rid, ALICE, revert=False)
            await engine.close()
        finally:
            sandbox.stop()


async def test_the_start_order_interlock(sandbox22: RunningSandbox, store: Store) -> None:
    sandbox = sandbox22
    set_procedure(sandbox, "offline")
    engine = make_engine(store, sandbox.cluster)
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "offline.recover") == "at offline.recover"
    rec = await engine.record(rid)
    chosen = rec.data["rehydrate"]
    blank = next(s.host for s in sandbox.cluster.schedulers if s.host != chosen)

    # A blank scheduler running: recovery-tool is refused, and nothing was written.
    ssh_ok(sandbox, blank, "sudo systemctl start aurora-scheduler")
    wait_for(lambda: sandbox.states()[blank] != "DOWN", timeout=30)
    with pytest.raises(Refused, match="every other scheduler must be stopped first"):
        await engine.approve(rid, "offline.recover", BOB)
    assert (await engine.record(rid)).steps["offline.recover"]["attempt"] == 0
    ssh_ok(sandbox, blank, "sudo systemctl stop aurora-scheduler")
    wait_for(lambda: sandbox.states()[blank] == "DOWN", timeout=30)
    assert await drive(engine, rid, "offline.start_rehydrated") == "at offline.start_rehydrated"

    # The same for the first start: the rehydrated scheduler starts only alone.
    ssh_ok(sandbox, blank, "sudo systemctl start aurora-scheduler")
    wait_for(lambda: sandbox.states()[blank] != "DOWN", timeout=30)
    with pytest.raises(Refused, match="every other scheduler must be stopped first"):
        await engine.approve(rid, "offline.start_rehydrated", ALICE)
    assert sandbox.states()[chosen] == "DOWN"
    ssh_ok(sandbox, blank, "sudo systemctl stop aurora-scheduler")
    wait_for(lambda: sandbox.states()[blank] == "DOWN", timeout=30)
    assert await drive(engine, rid, "offline.start_quorum") == "at offline.start_quorum"
    assert sandbox.states()[chosen] != "DOWN"

    # The rehydrated scheduler gone: no blank scheduler may start.
    ssh_ok(sandbox, chosen, "sudo systemctl stop aurora-scheduler")
    wait_for(lambda: sandbox.states()[chosen] == "DOWN", timeout=30)
    with pytest.raises(Refused, match=f"the rehydrated scheduler {chosen} must be up first"):
        await engine.approve(rid, "offline.start_quorum", ALICE)
    assert set(sandbox.states().values()) == {"DOWN"}
    assert kills(sandbox.dir) == []
    ssh_ok(sandbox, chosen, "sudo systemctl start aurora-scheduler")
    wait_for(lambda: sandbox.states()[chosen] != "DOWN", timeout=30)
    assert await drive(engine, rid) == "succeeded"
    assert len(sandbox.leaders("ACTIVE")) == 1
    await engine.close()


BEFORE_WIPE = ["offline.stop", "offline.archive", "offline.wipe"]
IN_WINDOW = ["offline.init", "offline.choose", "offline.recover"]
AFTER_TOOL = ["offline.start_rehydrated", "offline.start_quorum", "offline.start_rest"]


async def test_an_abort_at_each_step(sandbox22: RunningSandbox, store: Store) -> None:
    sandbox = sandbox22
    set_procedure(sandbox, "offline")
    before = file_sums(sandbox.cluster)
    engine = make_engine(store, sandbox.cluster)
    for sid in BEFORE_WIPE + IN_WINDOW + AFTER_TOOL:
        killed = len(kills(sandbox.dir))
        rid = await engine.start("sandbox", None, ALICE)
        assert await drive(engine, rid, sid) == f"at {sid}", sid
        forecast = (await engine.record(rid)).data["kills"]
        if sid in IN_WINDOW:
            # The log is empty: everything stays stopped, then the old log goes back.
            assert await engine.abort(rid, BOB, revert=True) == "aborted", sid
            assert (await engine.record(rid)).data["held_after_wipe"] is True
            assert set(sandbox.states().values()) == {"DOWN"}, sid
            time.sleep(2)
            assert set(sandbox.states().values()) == {"DOWN"}, sid
            assert len(kills(sandbox.dir)) == killed, sid
            assert await engine.put_back_log(rid, BOB) == "reverted", sid
        else:
            assert await engine.abort(rid, BOB, revert=True) == "reverted", sid
        wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1, timeout=60)
        time.sleep(3)  # several reconciliation delays
        new = len(kills(sandbox.dir)) - killed
        # Only once the backup is the truth may the tasks started since it be killed.
        assert new == (forecast["predicted"] if sid in AFTER_TOOL else 0), sid
        assert file_sums(sandbox.cluster) == before, sid
        assert await store.holder("sandbox") is None
    await engine.close()


async def drive_all(engine: Engine, rid: str, until: str | None = None) -> str:
    """Approve every waiting step, the optional ones too (bob for destructive ones)."""
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
        if state == "pending":
            await engine.advance(rid)
            continue
        if state != "awaiting":
            return f"{sid} {state}: {rec.steps[sid].get('summary', '')}"
        if sid == until:
            return "at " + sid
        step = engine.step(sid, rec)
        await engine.approve(rid, sid, BOB if step.risk.value == "destructive" else ALICE)


async def test_the_review_window(sandbox22: RunningSandbox, store: Store) -> None:
    """Started disabled, the rehydrated scheduler and the quorum show the backup's tasks
    before anything registers; then every file goes back and the real start order runs."""
    sandbox = sandbox22
    set_procedure(sandbox, "offline")
    before = file_sums(sandbox.cluster)
    engine = make_engine(store, sandbox.cluster)
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive_all(engine, rid, "offline.review") == "at offline.review"
    rec = await engine.record(rid)
    seen = rec.data["offline_review"]
    assert seen["matches"] is True, seen
    assert seen["count"] == sum(seen["backup_by_status"].values()) > 0
    states = sandbox.states()
    rest = [
        s.host
        for s in sandbox.cluster.schedulers
        if s.host not in (rec.data["rehydrate"], *[h for h, st in states.items() if st != "DOWN"])
    ]
    assert sorted(states.values()) == ["DOWN", "LEADER_AWAITING_REGISTRATION", "STORAGE_PREPARED"]
    assert len(rest) == 1  # the blank one beyond the quorum stays down
    time.sleep(2)  # several reconciliation delays: disabled, nothing is killed
    assert kills(sandbox.dir) == []
    assert file_sums(sandbox.cluster) != before  # disabled
    assert await drive_all(engine, rid) == "succeeded"
    rec = await engine.record(rid)
    assert rec.data["reviewed_count"] == seen["count"]
    assert file_sums(sandbox.cluster) == before
    assert len(sandbox.leaders("ACTIVE")) == 1
    assert len(kills(sandbox.dir)) == rec.data["kills"]["predicted"]
    await engine.close()
