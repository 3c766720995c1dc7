"""Never a start on an empty log: from log.wipe until restore.commit has succeeded, no
path (an abort by a person, an unattended run's abort, a revert) starts a scheduler with
its normal flags. Each abort in that window leaves the schedulers stopped and disabled;
putting the archived log back (sha256-checked) then brings the cluster back on its old
state. The sandbox records every kill: there must be none.

The schedulers' `-reconciliation_initial_delay` is set to 1 second in the files the
restore starts from, so a scheduler started on an empty log with its normal flags would
kill the running tasks within seconds, and the tests would see it."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.console import Console
from bot.leader import detector
from bot.wiring import connect
from runbook import envfile
from runbook.actions import Timing
from runbook.clusters import Cluster
from runbook.engine import Engine
from runbook.ports import HostResult, OnResult, Remote, VarsProbe
from runbook.procedures import PROCEDURES
from runbook.store import Store
from tests.conftest import RunningSandbox, wait_for
from tests.drive import ALICE, BOB, drive, file_sums, kills

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def store(one_store: Store) -> Store:
    """One kind of server is enough for these scenarios (see tests/conftest.py)."""
    return one_store


FAST = Timing(
    leader_wait=20, failover_wait=30, verify_wait=45, poll=0.3, vars_timeout=2, start_wait=40
)
AFTER_WIPE = ["log.init", "log.start", "restore.place", "restore.stage", "restore.review"]


def fast_reconciliation(sandbox: RunningSandbox) -> None:
    """-reconciliation_initial_delay=1secs in every host's flags, then restart them so
    they run with it; the leader comes back ACTIVE."""
    for s in sandbox.cluster.schedulers:
        path = Path(sandbox.cluster.path(s, "env_file") or "")
        text = path.read_text()
        path.write_text(set_reconciliation(text, "1secs"))
        r = sandbox.ssh(s.host, "sudo systemctl restart aurora-scheduler")
        assert r.returncode == 0, r.stderr
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1, timeout=60)


def set_reconciliation(text: str, value: str) -> str:
    """The flag in the env file's flags (Debian EXTRA_SCHEDULER_ARGS or RPM AURORA_FLAGS)."""
    flag = "-reconciliation_initial_delay"
    if re.search(rf"{flag}[= ]\S+", text):
        return re.sub(rf"{flag}([= ])[^\s\"')]+", rf"{flag}\g<1>{value}", text)
    if envfile.flavour(text) == "rpm":
        return text.replace("AURORA_FLAGS=(", f"AURORA_FLAGS=({flag}={value} ", 1)
    return re.sub(
        r'EXTRA_SCHEDULER_ARGS="', f'EXTRA_SCHEDULER_ARGS="{flag}={value} ', text, count=1
    )


def make_engine(store: Store, cluster: Cluster, connect_: Any = connect) -> Engine:
    # Every leader source, as the console and the Slack app use them.
    return Engine(
        store,
        {cluster.name: cluster},
        connect_,
        timing=FAST,
        lease_ms=5000,
        detect=detector,
        procedures=PROCEDURES,
    )


def assert_held(sandbox: RunningSandbox) -> None:
    """Stopped everywhere, the files still disabled, nothing killed (and still nothing a
    few reconciliation delays later)."""
    assert set(sandbox.states().values()) == {"DOWN"}, sandbox.states()
    for s in sandbox.cluster.schedulers:
        text = Path(sandbox.cluster.path(s, "env_file") or "").read_text()
        assert envfile.check_disabled(text) == [], s.host
    time.sleep(3)
    assert set(sandbox.states().values()) == {"DOWN"}
    assert kills(sandbox.dir) == []


async def put_back(
    engine: Engine, sandbox: RunningSandbox, rid: str, before: Mapping[str, str]
) -> None:
    """The way back: the old log, the files byte for byte, an ACTIVE leader, no kill."""
    assert await engine.put_back_log(rid, BOB) == "reverted"
    assert file_sums(sandbox.cluster) == before
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1, timeout=60)
    time.sleep(3)  # several reconciliation delays
    assert kills(sandbox.dir) == []
    assert await engine.store.holder("sandbox") is None


async def test_an_attended_abort_at_each_step_after_the_wipe_starts_nothing(
    sandbox: RunningSandbox, store: Store
) -> None:
    fast_reconciliation(sandbox)
    before = file_sums(sandbox.cluster)
    engine = make_engine(store, sandbox.cluster)
    # Before the wipe the log is intact: the revert starts the schedulers on it.
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "log.wipe") == "at log.wipe"
    assert await engine.abort(rid, BOB, revert=True) == "reverted"
    assert file_sums(sandbox.cluster) == before
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1, timeout=60)
    for sid in AFTER_WIPE:
        rid = await engine.start("sandbox", None, ALICE)
        assert await drive(engine, rid, sid) == f"at {sid}", sid
        assert await engine.abort(rid, BOB, revert=True) == "aborted"
        rec = await engine.record(rid)
        assert rec.data["held_after_wipe"] is True
        assert await store.holder("sandbox") is None  # an abort always frees the cluster
        assert_held(sandbox)
        held = [e for e in await store.events(rid) if e["type"] == "held_stopped"]
        assert held and "Two ways on" in held[0]["summary"], sid
        await put_back(engine, sandbox, rid, before)
    await engine.close()


class FailingRemote:
    """The real SSH executor, except that commands matching `pattern` fail (exit 1,
    nothing run) on every host: a host failing at one chosen step."""

    def __init__(self, inner: Remote, pattern: str, after_starts: int = 0) -> None:
        self.inner = inner
        self.pattern = re.compile(pattern)
        # Let this many batches that match go through first (log.start is the second start).
        self.spare = after_starts

    async def run(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float | None = None,
        stdin: Mapping[str, bytes] | None = None,
        on_result: OnResult | None = None,
    ) -> dict[str, HostResult]:
        failing = {h for h, c in commands.items() if self.pattern.search(c)}
        if failing and self.spare > 0:
            self.spare -= 1
            failing = set()
        rest = {h: c for h, c in commands.items() if h not in failing}
        out = {}
        if rest:
            out = await self.inner.run(rest, timeout=timeout, stdin=stdin, on_result=on_result)
        for h in failing:
            r = HostResult(h, 1, "", "injected failure\n", 0.01)
            out[h] = r
            if on_result is not None:
                res = on_result(r)
                if asyncio.iscoroutine(res):
                    await res
        return out

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes:
        return await self.inner.read_file(host, path, timeout)

    async def close(self) -> None:
        await self.inner.close()


# The step after the wipe that fails, and the command (sent by that step alone) that
# fails on every host.
FAILURES = {
    "log.wipe": r"^sudo -n find \S+ -mindepth 1 -delete$",
    "log.init": r"^sudo -n -u \S+ mesos-log initialize --path=\S+$",
    "log.start": r"^sudo systemctl start aurora-scheduler$",
    "restore.leader": r"^sudo -n journalctl -u \S+ -n 200 ",
    "restore.place": r"^sha256sum \S+/scheduler-backup-\S+ && stat",
    "restore.stage": r" scheduler_stage_recovery ",
    "restore.review": r" scheduler_print_recovery_tasks ",
}


async def test_an_unattended_run_that_fails_after_the_wipe_leaves_everything_stopped(
    sandbox: RunningSandbox, store: Store
) -> None:
    fast_reconciliation(sandbox)
    before = file_sums(sandbox.cluster)
    cluster = sandbox.cluster
    for failing, pattern in FAILURES.items():
        spare = 1 if failing == "log.start" else 0  # log.start is the second start

        def failing_connect(
            c: Cluster, pattern: str = pattern, spare: int = spare
        ) -> tuple[Remote, VarsProbe]:
            remote, probe = connect(c)
            return FailingRemote(remote, pattern, after_starts=spare), probe

        engine = make_engine(store, cluster, failing_connect)
        out = io.StringIO()
        console = Console(engine, cluster, me="alice", yes=True, out=out)
        rid = await console.run(None)
        text = out.getvalue()
        rec = await engine.record(rid)
        assert rec.status == "aborted", (failing, text[-3000:])
        assert rec.steps[failing]["status"] == "failed", (failing, text[-3000:])
        assert "the schedulers stay stopped and disabled; a person chooses" in text
        assert_held(sandbox)
        await engine.close()
        # A person puts the old log back (with the real executor).
        engine = make_engine(store, cluster)
        await put_back(engine, sandbox, rid, before)
        await engine.close()
