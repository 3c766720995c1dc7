"""A restore on hosts shaped like Aurora's packages (see docs/aurora-notes.md): Debian's
env file with `$(...)`, `${VAR}` and two-word flags, only `aurora-admin`, the log in
journald, election data that is an IP address (or the `-hostname` given), a scheduler
time zone of its own; and the RPM flavour (`AURORA_FLAGS=(...)`, only `aurora_admin`).
Every gate that needs no change is checked in preflight, which then frees the cluster."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.leader import detector
from bot.wiring import connect
from runbook.actions import Timing, active_task_count
from runbook.engine import Engine
from runbook.procedures import PROCEDURES
from runbook.store import Store
from sandbox.backups import encode_snapshot, generate_cluster_tasks
from tests.conftest import ROOT, RunningSandbox
from tests.drive import ALICE, drive, file_sums, kills

pytestmark = pytest.mark.timeout(400)


@pytest.fixture
def store(one_store: Store) -> Store:
    """One kind of server is enough for these scenarios (see tests/conftest.py)."""
    return one_store


FAST = Timing(
    leader_wait=30, failover_wait=40, verify_wait=60, poll=0.3, vars_timeout=2, start_wait=40
)
# Two hours east of the bot (which runs in UTC here): POSIX signs are inverted.
SCHEDULER_TZ = "Etc/GMT-2"


def console_yes(
    sandbox: RunningSandbox, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "console",
            "--cluster",
            str(sandbox.dir / "clusters.toml"),
            "--yes",
            "--out",
            str(out),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=360,
        env={**os.environ, "REDIS_URL": "", "TZ": "UTC", "AURORA_RESTORE_DATA": str(out / "data")},
    )


def assert_restored(
    sandbox: RunningSandbox, out: Path, before: dict[str, str], r: subprocess.CompletedProcess[str]
) -> dict:
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert file_sums(sandbox.cluster) == before
    doc: dict = json.loads((out / "transcript.json").read_text())
    assert doc["outcome"] == "succeeded"
    # Only what the forecast said: the tasks started since the backup (none killed by
    # anything the restore did wrong).
    recorded = kills(sandbox.dir)
    assert doc["kills"]["predicted"] == doc["kills"]["observed"] == len(recorded)
    assert sorted(doc["kills"]["predicted_ids"]) == sorted(k["task_id"] for k in recorded)
    return doc


@pytest.mark.zookeeper
@pytest.mark.parametrize("advertise", ["ip", "hostname"])
def test_a_console_restore_on_debian_packaged_hosts(
    make_sandbox, zookeeper: str, tmp_path: Path, advertise: str
) -> None:
    sandbox = make_sandbox("--zk", zookeeper, "--tz", SCHEDULER_TZ, "--advertise", advertise)
    host = sandbox.cluster.schedulers[0]
    root = Path(sandbox.info.host(host.host).root)
    env = (root / "etc/default/aurora-scheduler").read_text()
    assert "$(" in env and "${" in env  # the packaging's shape, with a command substitution
    if advertise == "hostname":
        assert "-hostname=$(uname -n)" in env
    assert (root / "usr/local/bin/aurora-admin").exists()
    assert not (root / "usr/local/bin/aurora_admin").exists()
    assert not (root / "var/log/aurora/aurora-scheduler.log").exists()
    before = file_sums(sandbox.cluster)
    r = console_yes(sandbox, tmp_path / "out")
    assert_restored(sandbox, tmp_path / "out", before, r)
    # The leader was agreed by every source, ZooKeeper's IP (or host name) data included.
    assert "agreed by logs, vars, zookeeper" in r.stdout, r.stdout[-3000:]
    assert "aurora-admin on scheduler-" in r.stdout


def test_a_console_restore_on_rpm_packaged_hosts(make_sandbox, tmp_path: Path) -> None:
    sandbox = make_sandbox("--flavour", "rpm")
    s = sandbox.cluster.schedulers[0]
    env = Path(sandbox.cluster.path(s, "env_file") or "")
    assert env.name == "aurora-scheduler" and env.parent.name == "sysconfig"
    assert "AURORA_FLAGS=(" in env.read_text()
    before = file_sums(sandbox.cluster)
    r = console_yes(sandbox, tmp_path / "out")
    assert_restored(sandbox, tmp_path / "out", before, r)
    assert "aurora_admin on scheduler-" in r.stdout


async def test_the_backup_age_comes_from_the_zone_of_the_host_that_wrote_it(
    make_sandbox, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    sandbox = make_sandbox("--tz", SCHEDULER_TZ)
    # A backup written five hours ago by a scheduler two hours east of the bot: its name
    # reads three hours ago to a bot that ignores the zone.
    taken = datetime.now(UTC) - timedelta(hours=5)
    local = taken + timedelta(hours=2)
    name = f"scheduler-backup-{local:%Y-%m-%d-%H-%M}"
    s = sandbox.cluster.schedulers[0]
    backups = Path(sandbox.cluster.path(s, "backup_dir") or "")
    # A real backup of that time (its snapshot carries the true time), from the tasks
    # the cluster runs.
    tasks = generate_cluster_tasks(random.Random(7), count=20)
    (backups / name).write_bytes(encode_snapshot(tasks, taken))
    engine = Engine(
        store,
        {"sandbox": sandbox.cluster},
        connect,
        timing=FAST,
        detect=detector,
        procedures=PROCEDURES,
    )
    rid = await engine.start("sandbox", name, ALICE)
    await engine.advance(rid)
    rec = await engine.record(rid)
    assert rec.steps["prep.preflight"]["status"] == "succeeded", rec.steps["prep.preflight"]
    assert 4.9 * 3600 < rec.data["backup_age"] < 5.1 * 3600
    assert rec.data["backup_too_old"] is True
    assert rec.steps["prep.ack_backup"]["status"] == "awaiting"
    summary = rec.steps["prep.preflight"]["summary"]
    assert "UTC" in summary and "on the scheduler" in summary, summary
    await engine.close()
    monkeypatch.delenv("TZ")
    time.tzset()


def test_active_tasks_are_counted_from_the_active_states_only() -> None:
    v = {
        "task_store_RUNNING": "250",
        "task_store_PENDING": "20",
        "task_store_FINISHED": "1500",
        "task_store_KILLED": "200",
        "task_store_FAILED": "19",
        "task_store_LOST": "0",
        "scheduler_lifecycle_ACTIVE": "1",
    }
    assert active_task_count(v) == 270
    assert active_task_count({"scheduler_lifecycle_ACTIVE": "1"}) is None


async def test_a_started_scheduler_is_one_that_came_up(
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
    rid = await engine.start("sandbox", None, ALICE)
    assert await drive(engine, rid, "prep.start") == "at prep.start"
    # A word the scheduler refuses, as a bad edit would leave it: systemd still calls the
    # unit active (it forked), but the scheduler exits at once, again and again.
    s = sandbox.cluster.schedulers[1]
    env = Path(sandbox.cluster.path(s, "env_file") or "")
    text = env.read_text()
    env.write_text(text.replace('EXTRA_SCHEDULER_ARGS="', 'EXTRA_SCHEDULER_ARGS="-f) ', 1))
    out = await engine.approve(rid, "prep.start", ALICE)
    assert not out.ok
    assert f"{s.host} did not come up" in out.summary, out.summary
    assert "Was passed main parameter" in out.summary, out.summary
    env.write_text(text)
    await engine.abort(rid, ALICE, revert=True)
    await engine.close()
