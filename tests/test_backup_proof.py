"""Before the point of no return: the backup proven at preflight (a truncated one stops
the restore before anything is stopped), the kills forecast from the Mesos master and
then observed after the failover (equal to what the sandbox records), and the quorum
size checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.mesos import running_tasks
from bot.wiring import connect
from runbook.actions import Timing
from runbook.engine import Engine
from runbook.procedures import PROCEDURES
from runbook.store import Store
from tests.conftest import RunningSandbox, wait_for
from tests.drive import ALICE, file_sums, kills
from tests.test_empty_log_window import fast_reconciliation
from tests.test_packaged_hosts import console_yes

pytestmark = pytest.mark.timeout(400)


@pytest.fixture
def store(one_store: Store) -> Store:
    """One kind of server is enough for these scenarios (see tests/conftest.py)."""
    return one_store


def newest_backup(sandbox: RunningSandbox) -> tuple[str, list[Path]]:
    names: dict[str, list[Path]] = {}
    for s in sandbox.cluster.schedulers:
        for p in Path(sandbox.cluster.path(s, "backup_dir") or "").iterdir():
            names.setdefault(p.name, []).append(p)
    newest = max(names)
    return newest, names[newest]


def test_a_truncated_newest_backup_stops_the_restore_before_anything_changes(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1, timeout=30)
    name, copies = newest_backup(sandbox)
    for p in copies:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    before = file_sums(sandbox.cluster)
    r = console_yes(sandbox, tmp_path / "out")
    assert r.returncode != 0
    assert "is not a backup the scheduler can stage: truncated" in r.stdout, r.stdout[-3000:]
    assert "▶ running prep.stop" not in r.stdout
    assert file_sums(sandbox.cluster) == before
    assert len(sandbox.leaders("ACTIVE")) == 1  # nothing was stopped
    assert kills(sandbox.dir) == []
    doc = json.loads((tmp_path / "out/transcript.json").read_text())
    assert doc["outcome"] == "failed"


def test_the_kills_of_an_older_backup_are_forecast_and_observed(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    fast_reconciliation(sandbox)
    names = sorted(
        {
            p.name
            for s in sandbox.cluster.schedulers
            for p in Path(sandbox.cluster.path(s, "backup_dir") or "").iterdir()
        }
    )
    older = names[0]  # days old: tasks started since will be killed
    r = console_yes(sandbox, tmp_path / "out", "--backup", older)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    doc = json.loads((tmp_path / "out/transcript.json").read_text())
    recorded = kills(sandbox.dir)
    assert recorded, "an older backup kills the tasks started since"
    assert doc["kills"]["predicted"] == doc["kills"]["observed"] == len(recorded)
    assert sorted(doc["kills"]["observed_ids"]) == sorted(k["task_id"] for k in recorded)
    # The commit's approval line says what approving it kills.
    line = re.search(r"approved by bob \(approving kills (\d+) running tasks of \d+ jobs", r.stdout)
    assert line and int(line.group(1)) == len(recorded), r.stdout[-3000:]


async def test_a_quorum_size_that_is_not_a_majority_is_refused(
    sandbox: RunningSandbox, store: Store
) -> None:
    for s in sandbox.cluster.schedulers[:1]:
        env = Path(sandbox.cluster.path(s, "env_file") or "")
        text = env.read_text()
        assert re.search(r"^QUORUM_SIZE=\S+$", text, re.M)
        env.write_text(re.sub(r"^QUORUM_SIZE=\S+$", "QUORUM_SIZE=1", text, flags=re.M))
    engine = Engine(
        store,
        {"sandbox": sandbox.cluster},
        connect,
        timing=Timing(poll=0.3),
        mesos=running_tasks,
        procedures=PROCEDURES,
    )
    rid = await engine.start("sandbox", None, ALICE)
    await engine.advance(rid)
    rec = await engine.record(rid)
    summary = rec.steps["prep.preflight"]["summary"]
    assert rec.status == "failed"
    assert (
        "-native_log_quorum_size differs between the schedulers (scheduler-1 1, scheduler-2 2"
        in summary
    )
    assert await store.holder("sandbox") is None
    await engine.close()
