"""Every gate before the first change: what would make a later step fail for a reason
of configuration or environment fails prep.preflight, while nothing has changed, with
one line naming the host and the cause; and a failed preflight frees the cluster.

One sandbox, broken one way at a time and mended after each case."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.leader import detector
from bot.wiring import connect
from runbook.actions import Timing
from runbook.engine import Engine
from runbook.procedures import PROCEDURES
from runbook.store import Store
from tests.conftest import RunningSandbox, wait_for
from tests.drive import ALICE, BOB, drive, file_sums

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def store(one_store: Store) -> Store:
    """One kind of server is enough for these scenarios (see tests/conftest.py)."""
    return one_store


FAST = Timing(
    leader_wait=20, failover_wait=30, verify_wait=45, poll=0.3, vars_timeout=2, start_wait=30
)


def host_root(sandbox: RunningSandbox, i: int) -> Path:
    return Path(sandbox.info.hosts[i].root)


def env_path(sandbox: RunningSandbox, i: int) -> Path:
    return Path(sandbox.cluster.path(sandbox.cluster.schedulers[i], "env_file") or "")


def edit(path: Path, old: str, new: str) -> Callable[[], None]:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new, 1))
    return lambda: path.write_text(text)


def move(path: Path) -> Callable[[], None]:
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    return lambda: aside.rename(path)


def break_client(sb: RunningSandbox) -> Callable[[], None]:
    return move(host_root(sb, 1) / "usr/local/bin/aurora-admin")


def break_env(sb: RunningSandbox) -> Callable[[], None]:
    # A whole word that is an expansion could itself hold the flags the edit must change.
    return edit(env_path(sb, 2), 'EXTRA_SCHEDULER_ARGS="', 'EXTRA_SCHEDULER_ARGS="$MORE_ARGS ')


def break_env_missing(sb: RunningSandbox) -> Callable[[], None]:
    return move(env_path(sb, 0))


def break_sudo(sb: RunningSandbox) -> Callable[[], None]:
    rules = host_root(sb, 0) / "etc/sudoers.d/aurora-ops"
    text = rules.read_text()
    rules.write_text("aurora-ops ALL=(ALL) NOPASSWD: /usr/bin/systemctl *, /bin/systemctl *\n")
    return lambda: rules.write_text(text)


def break_log_dir(sb: RunningSandbox) -> Callable[[], None]:
    log_dir = Path(sb.cluster.path(sb.cluster.schedulers[1], "native_log_file_path") or "")
    return move(log_dir)


def break_mesos_log(sb: RunningSandbox) -> Callable[[], None]:
    return move(host_root(sb, 2) / "usr/local/bin/mesos-log")


CASES = [
    (break_client, "scheduler-2: no aurora client on PATH"),
    (break_env, "scheduler-3: "),
    (break_env_missing, "scheduler-1: cannot read "),
    (break_sudo, "scheduler-1: sudo -n (no password prompt) refuses `tee "),
    (break_log_dir, "scheduler-2: the log directory"),
    (break_mesos_log, "scheduler-3: 'mesos-log' (mesos_log in the cluster file) is not on PATH"),
]


async def test_each_gate_fails_preflight_with_nothing_changed_and_the_cluster_free(
    sandbox: RunningSandbox, store: Store
) -> None:
    cluster = sandbox.cluster
    engine = Engine(
        store, {"sandbox": cluster}, connect, timing=FAST, detect=detector, procedures=PROCEDURES
    )
    before = file_sums(cluster)
    leader = wait_for(lambda: sandbox.leaders("ACTIVE"), timeout=30)
    assert len(leader) == 1
    for breaker, expected in CASES:
        mend = breaker(sandbox)
        try:
            rid = await engine.start("sandbox", None, ALICE)
            await engine.advance(rid)
            rec = await engine.record(rid)
            step = rec.steps["prep.preflight"]
            assert step["status"] == "failed", (breaker.__name__, step)
            assert expected in step["summary"], (breaker.__name__, step["summary"])
            assert "nothing was changed" in step["summary"]
            assert rec.status == "failed", breaker.__name__
            assert await store.holder("sandbox") is None, breaker.__name__
            # Nothing changed: no step past preflight ran, the files and the leader are as they were.
            assert all(
                st["status"] == "pending"
                for sid, st in rec.steps.items()
                if sid != "prep.preflight"
            )
            assert sandbox.leaders("ACTIVE") == leader
        finally:
            mend()
        assert file_sums(cluster) == before
    # Mended, the same cluster passes preflight.
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "prep.stop") == "at prep.stop"
    await engine.abort(rid, BOB, revert=True)
    await engine.close()


async def test_a_missing_backup_lists_those_that_exist(
    sandbox: RunningSandbox, store: Store
) -> None:
    engine = Engine(
        store,
        {"sandbox": sandbox.cluster},
        connect,
        timing=FAST,
        detect=detector,
        procedures=PROCEDURES,
    )
    rid = await engine.start("sandbox", "scheduler-backup-2001-01-01-00-00", ALICE)
    await engine.advance(rid)
    rec = await engine.record(rid)
    summary = rec.steps["prep.preflight"]["summary"]
    assert (
        "backup scheduler-backup-2001-01-01-00-00 is on no scheduler (newest there: scheduler-backup-"
        in summary
    )
    assert await store.holder("sandbox") is None
    await engine.close()
