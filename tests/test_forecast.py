"""runbook.forecast: the kills predicted from a backup and the master's listing are the
kills the sandbox's reconciliation actually makes; a damaged backup fails staging."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest

from bot.mesos import MesosTask, running_tasks
from runbook.forecast import forecast
from runbook.snapshot import BackupTask, SnapshotInfo, decode_file
from sandbox import replog
from sandbox.backups import backup_time, decode_snapshot, framework_id
from tests.conftest import RunningSandbox, wait_for
from tests.test_sandbox_aurora import HOSTS, direct_admin, on_all, paths, reinit_logs, run, set_env

pytestmark = pytest.mark.timeout(240)


def _backup(*tasks: tuple[str, str, str, str, str]) -> SnapshotInfo:
    return SnapshotInfo(
        taken_at=1.0,
        framework_id="fw",
        version="0.17.0",
        tasks=tuple(BackupTask(i, r, e, j, 0, s) for i, r, e, j, s in tasks),
    )


def test_forecast_groups_unknown_running_tasks_by_job() -> None:
    backup = _backup(
        ("a1", "www", "prod", "web", "RUNNING"),
        ("a2", "www", "prod", "web", "FINISHED"),
        ("b1", "ads", "prod", "bid", "PENDING"),
    )
    running = [
        MesosTask("a1", "TASK_RUNNING", "www", "prod", "web"),
        MesosTask("a2", "TASK_RUNNING", "www", "prod", "web"),  # terminal in the backup
        MesosTask("a3", "TASK_RUNNING", "www", "prod", "web"),
        MesosTask("b1", "TASK_STAGING", "ads", "prod", "bid"),
        MesosTask("n1", "TASK_RUNNING", "new", "prod", "svc"),
        MesosTask("n2", "TASK_RUNNING", "new", "prod", "svc"),
    ]
    f = forecast(backup, running)
    assert f.killed == {("new", "prod", "svc"): ("n1", "n2"), ("www", "prod", "web"): ("a2", "a3")}
    assert f.new_jobs == (("new", "prod", "svc"),)
    assert f.summary() == "approving kills 4 running tasks of 2 jobs (1 created since the backup)"
    lines = f.listing().splitlines()
    assert lines[0].split("\t") == [
        "role",
        "environment",
        "job",
        "task_id",
        "job_created_since_backup",
    ]
    assert lines[1:] == [
        "new\tprod\tsvc\tn1\tyes",
        "new\tprod\tsvc\tn2\tyes",
        "www\tprod\tweb\ta2\tno",
        "www\tprod\tweb\ta3\tno",
    ]
    assert forecast(backup, running[:1]).summary().startswith("approving kills no running task")


def _oldest_backup(sb: RunningSandbox) -> Path:
    found = []
    for h in HOSTS:
        d = Path(sb.cluster.path(sb.cluster.scheduler(h), "backup_dir") or "")
        found += [p for p in d.iterdir() if backup_time(p.name)]
    return min(found, key=lambda p: backup_time(p.name) or datetime.max)


def test_the_forecast_is_what_reconciliation_kills(sandbox: RunningSandbox) -> None:
    info = sandbox.info
    cluster = sandbox.cluster
    assert cluster.mesos_master is not None
    path = _oldest_backup(sandbox)
    backup = decode_file(path)
    assert backup.framework_id == framework_id(info.dir, info.cluster)
    assert abs(backup.taken_at - path.stat().st_mtime) < 1
    running = asyncio.run(running_tasks(cluster.mesos_master, backup.framework_id, 5.0))
    assert len(running) == len(json.loads(info.tasks_file.read_text()))
    predicted = forecast(backup, running)
    assert predicted.kill_count > 0

    # Start the schedulers with their normal flags on a log holding the backup's tasks.
    reinit_logs(sandbox)
    stored = decode_snapshot(path.read_bytes())
    for h in info.hosts:
        replog.append_snapshot(h.paths.log_dir, stored)
    set_env(sandbox, None, "-reconciliation_initial_delay=1secs")
    on_all(sandbox, "sudo systemctl start aurora-scheduler")
    leader = wait_for(lambda: sandbox.leaders("ACTIVE"), timeout=60)[0]
    wait_for(lambda: int(sandbox.vars(leader)["sandbox_tasks_killed"]) > 0, timeout=60)
    killed = [json.loads(x) for x in info.killed_file.read_text().splitlines()]
    observed = {k["task_id"] for k in killed}
    assert observed == {i for ids in predicted.killed.values() for i in ids}
    assert len(killed) == predicted.kill_count
    # And the master no longer lists them as running.
    after = asyncio.run(running_tasks(cluster.mesos_master, backup.framework_id, 5.0))
    assert not observed & {t.task_id for t in after}
    assert forecast(backup, after).kill_count == 0


def test_a_truncated_or_corrupt_backup_fails_staging_with_aurora_message(
    sandbox: RunningSandbox,
) -> None:
    on_all(sandbox, "sudo systemctl stop aurora-scheduler")
    set_env(
        sandbox,
        "zk://localhost:1111/mesos/master",
        "-max_registration_delay=360mins -reconciliation_initial_delay=365days",
    )
    for h in HOSTS:
        direct_admin(sandbox, h)
    on_all(sandbox, "sudo systemctl start aurora-scheduler")
    leader = wait_for(lambda: sandbox.leaders("LEADER_AWAITING_REGISTRATION"), timeout=20)[0]
    bdir = Path(sandbox.cluster.path(sandbox.cluster.scheduler(leader), "backup_dir") or "")
    good = max((p for p in bdir.iterdir() if backup_time(p.name)), key=lambda p: p.name)
    data = good.read_bytes()
    (bdir / "scheduler-backup-2001-01-01-00-00").write_bytes(data[: len(data) // 3])
    (bdir / "scheduler-backup-2001-01-01-00-01").write_bytes(b'{"format": "json"}\n')
    admin = "aurora-admin scheduler_stage_recovery --bypass-leader-redirect sandbox"
    rc, _, err = run(sandbox, leader, f"{admin} scheduler-backup-2001-01-01-00-00", ok=False)
    assert rc == 1
    assert "Failed to decode backup org.apache.thrift.transport.TTransportException" in err
    rc, _, err = run(sandbox, leader, f"{admin} scheduler-backup-2001-01-01-00-01", ok=False)
    assert rc == 1
    assert (
        "Failed to decode backup org.apache.thrift.protocol.TProtocolException: Unrecognized type 123"
        in err
    )
    # Nothing was staged; the good backup still stages.
    rc, _, err = run(
        sandbox,
        leader,
        "aurora-admin scheduler_print_recovery_tasks --bypass-leader-redirect sandbox",
        ok=False,
    )
    assert rc == 1 and "ERROR (message: No backup loaded.)" in err
    rc, _, err = run(sandbox, leader, f"{admin} {good.name}")
    assert " INFO] Response from scheduler: OK" in err
    assert paths(sandbox, leader)
