"""The Aurora behaviour the procedure depends on, driven over SSH as an operator would:
a corrupt log, `mesos-log initialize` refusals, registration timeouts, the task kill on an
empty log, aurora_admin's errors and leader redirect, and the serverset in a real
ZooKeeper."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient

from tests.conftest import RunningSandbox, wait_for

pytestmark = pytest.mark.timeout(240)
HOSTS = ["scheduler-1", "scheduler-2", "scheduler-3"]


def run(sb: RunningSandbox, host: str, command: str, ok: bool = True) -> tuple[int, str, str]:
    r = sb.ssh(host, command)
    if ok:
        assert r.returncode == 0, (host, command, r.stdout, r.stderr)
    return r.returncode, r.stdout, r.stderr


def paths(sb: RunningSandbox, host: str) -> dict[str, str]:
    c = sb.cluster
    s = c.scheduler(host)
    return {
        f: shlex.quote(c.path(s, f) or "")
        for f in ("env_file", "native_log_file_path", "backup_dir", "admin_clusters_json")
    }


def on_all(sb: RunningSandbox, template: str) -> None:
    for h in HOSTS:
        run(sb, h, template.format(**paths(sb, h)))


JOURNAL = "sudo journalctl -u aurora-scheduler -o cat --no-pager"


def add_extra_args(extra: str, env_file: str) -> str:
    """A sed that appends words to Debian's EXTRA_SCHEDULER_ARGS, keeping the others."""
    return (
        f'sed -i \'s|^EXTRA_SCHEDULER_ARGS="\\(.*\\)"$|EXTRA_SCHEDULER_ARGS="\\1 {extra}"|\' '
        f"{env_file}"
    )


def set_env(sb: RunningSandbox, master: str | None, extra: str) -> None:
    for h in HOSTS:
        p = paths(sb, h)
        cmd = add_extra_args(extra, p["env_file"])
        if master:
            cmd += f" && sed -i 's|^MESOS_MASTER=.*|MESOS_MASTER=\"{master}\"|' {p['env_file']}"
        run(sb, h, cmd)


def reinit_logs(sb: RunningSandbox) -> None:
    on_all(sb, "sudo systemctl stop aurora-scheduler")
    on_all(sb, "find {native_log_file_path} -mindepth 1 -delete")
    on_all(sb, "sudo -u aurora mesos-log initialize --path={native_log_file_path}")


def direct_admin(sb: RunningSandbox, host: str) -> None:
    port = sb.cluster.http_port_of(sb.cluster.scheduler(host))
    entry = json.dumps([{"name": "sandbox", "scheduler_uri": f"http://localhost:{port}"}])
    run(sb, host, f"echo {shlex.quote(entry)} > {paths(sb, host)['admin_clusters_json']}")


def test_a_corrupt_log_keeps_schedulers_down_until_wiped_and_initialized(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    sb = make_sandbox("--corrupt-log")
    time.sleep(3)
    assert not sb.leaders("ACTIVE") and not sb.leaders("LEADER_AWAITING_REGISTRATION")
    _, out, _ = run(sb, "scheduler-1", "sudo systemctl status aurora-scheduler", ok=False)
    # mesos-log refuses a corrupt replica too: it must be wiped first.
    rc, _, err = run(
        sb,
        "scheduler-1",
        "sudo -u aurora mesos-log initialize --path={native_log_file_path}".format(
            **paths(sb, "scheduler-1")
        ),
        ok=False,
    )
    assert rc == 1 and "Corruption" in err
    reinit_logs(sb)
    on_all(sb, "sudo systemctl start aurora-scheduler")
    wait_for(lambda: len(sb.leaders("ACTIVE")) == 1, timeout=30)


def test_mesos_log_initialize_refuses_a_log_and_any_path_outside_the_sandbox(
    sandbox: RunningSandbox,
) -> None:
    p = paths(sandbox, "scheduler-2")
    rc, _, err = run(
        sandbox,
        "scheduler-2",
        f"sudo -u aurora mesos-log initialize --path={p['native_log_file_path']}",
        ok=False,
    )
    assert rc == 1 and "The log is not empty" in err
    rc, _, err = run(
        sandbox, "scheduler-2", "mesos-log initialize --path=/tmp/aurora-restore-outside", ok=False
    )
    assert rc == 1
    rc, _, err = run(sandbox, "scheduler-2", "mesos-log initialize", ok=False)
    assert rc == 1 and "Missing required option --path" in err


def test_a_log_initialized_as_root_keeps_the_scheduler_from_starting(
    sandbox: RunningSandbox,
) -> None:
    reinit_logs(sandbox)
    host = "scheduler-3"
    p = paths(sandbox, host)
    run(
        sandbox,
        host,
        f"find {p['native_log_file_path']} -mindepth 1 -delete && sudo mesos-log initialize --path={p['native_log_file_path']}",
    )
    on_all(sandbox, "sudo systemctl start aurora-scheduler")
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1, timeout=30)
    time.sleep(1.5)
    assert sandbox.states()[host] in ("DOWN", "DEAD", "IDLE", "PREPARING_STORAGE")
    _, log, _ = run(sandbox, host, f"{JOURNAL} -n 50")
    assert "Permission denied" in log


def test_disabled_leader_waits_then_dies_after_max_registration_delay(
    sandbox: RunningSandbox,
) -> None:
    on_all(sandbox, "sudo systemctl stop aurora-scheduler")
    set_env(
        sandbox,
        "zk://localhost:1111/mesos/master",
        "-max_registration_delay=3secs -reconciliation_initial_delay=365days",
    )
    on_all(sandbox, "sudo systemctl start aurora-scheduler")
    leader = wait_for(lambda: sandbox.leaders("LEADER_AWAITING_REGISTRATION"), timeout=20)[0]
    assert sandbox.vars(leader)["framework_registered"] == "0"
    assert not sandbox.leaders("ACTIVE")
    # It does not register, and kills itself after the delay; the unit starts it again.
    wait_for(lambda: sandbox.states()[leader] != "LEADER_AWAITING_REGISTRATION", timeout=15)
    _, log, _ = run(sandbox, leader, JOURNAL)
    assert "Framework has not been registered within the tolerated delay." in log


def test_a_flag_given_twice_aborts_the_start(sandbox: RunningSandbox) -> None:
    on_all(sandbox, "sudo systemctl stop aurora-scheduler")
    set_env(sandbox, None, "-mesos_master_address=zk://localhost:1111/mesos/master")
    run(sandbox, "scheduler-1", "sudo systemctl start aurora-scheduler")
    time.sleep(2)
    assert sandbox.states()["scheduler-1"] == "DOWN"
    _, log, _ = run(sandbox, "scheduler-1", JOURNAL)
    assert "Can only specify option -mesos_master_address once." in log


def test_an_active_leader_on_an_empty_log_kills_the_clusters_tasks(sandbox: RunningSandbox) -> None:
    running = json.loads(sandbox.info.tasks_file.read_text())
    assert len(running) > 100
    reinit_logs(sandbox)
    set_env(sandbox, None, "-reconciliation_initial_delay=1secs")
    on_all(sandbox, "sudo systemctl start aurora-scheduler")
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1, timeout=60)
    wait_for(lambda: json.loads(sandbox.info.tasks_file.read_text()) == [], timeout=60)
    killed = [json.loads(line) for line in sandbox.info.killed_file.read_text().splitlines()]
    assert {k["task_id"] for k in killed} == {t["task_id"] for t in running}
    leader = sandbox.leaders("ACTIVE")[0]
    assert int(sandbox.vars(leader)["sandbox_tasks_killed"]) == len(running)


def test_aurora_admin_errors_and_the_leader_redirect(sandbox: RunningSandbox) -> None:
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
    follower = next(h for h in HOSTS if h != leader)
    admin = "aurora-admin {verb} --bypass-leader-redirect sandbox"

    # Without --bypass-leader-redirect nothing is advertised: the scheduler answers 503.
    rc, _, err = run(sandbox, leader, "aurora-admin scheduler_list_backups sandbox", ok=False)
    assert rc == 1 and "Unknown error talking to" in err

    rc, out, err = run(sandbox, leader, admin.format(verb="scheduler_list_backups"))
    assert " INFO] Response from scheduler: OK" in err and "available backups:" in out
    rc, _, err = run(
        sandbox,
        leader,
        admin.format(verb="scheduler_stage_recovery") + " scheduler-backup-2000-01-01-00-00",
        ok=False,
    )
    assert rc == 1 and "Backup scheduler-backup-2000-01-01-00-00 does not exist." in err
    rc, _, err = run(sandbox, leader, admin.format(verb="scheduler_commit_recovery"), ok=False)
    assert rc == 1 and "No backup loaded." in err

    _, names, _ = run(sandbox, leader, f"ls {paths(sandbox, leader)['backup_dir']}")
    backup = sorted(names.split())[-1]
    run(sandbox, leader, admin.format(verb="scheduler_stage_recovery") + f" {backup}")
    rc, _, err = run(
        sandbox, leader, admin.format(verb="scheduler_stage_recovery") + f" {backup}", ok=False
    )
    assert rc == 1 and "Another backup is already loaded." in err
    _, _, err = run(sandbox, leader, admin.format(verb="scheduler_print_recovery_tasks"))
    assert " INFO] Role\tJob\tShard\tStatus\tTask ID" in err

    # A commit on a follower is refused: its storage is not READY.
    _, fnames, _ = run(sandbox, follower, f"ls {paths(sandbox, follower)['backup_dir']}")
    if fnames.split():
        run(
            sandbox,
            follower,
            admin.format(verb="scheduler_stage_recovery") + f" {sorted(fnames.split())[-1]}",
        )
        rc, _, err = run(
            sandbox,
            follower,
            "AURORA_ADMIN_RPC_MAX_WAIT=1 " + admin.format(verb="scheduler_commit_recovery"),
            ok=False,
        )
        assert rc == 1 and ("Storage is not READY" in err or "Timed out" in err)

    # A staged recovery lives only in memory: a restart drops it.
    run(sandbox, leader, "sudo systemctl restart aurora-scheduler")
    wait_for(
        lambda: sandbox.states()[leader] not in ("DOWN", "IDLE", "PREPARING_STORAGE"), timeout=20
    )
    new_leader = wait_for(lambda: sandbox.leaders("LEADER_AWAITING_REGISTRATION"), timeout=20)[0]
    if new_leader == leader:
        rc, _, err = run(
            sandbox, leader, admin.format(verb="scheduler_print_recovery_tasks"), ok=False
        )
        assert rc == 1 and "No backup loaded." in err


@pytest.mark.zookeeper
def test_the_serverset_lives_in_zookeeper(
    make_sandbox: Callable[..., RunningSandbox], zookeeper: str
) -> None:
    sb = make_sandbox("--zk", zookeeper)
    assert f'zk_endpoints = "{zookeeper}"' in (sb.dir / "clusters.toml").read_text()
    zk = KazooClient(hosts=zookeeper, timeout=10)
    zk.start(timeout=10)
    try:

        def children() -> list[str]:
            return sorted(zk.get_children("/aurora/scheduler"))

        wait_for(lambda: len(sb.leaders("ACTIVE")) == 1, timeout=30)
        leader = sb.leaders("ACTIVE")[0]
        candidates = [c for c in children() if "-lock-" in c]
        members = [c for c in children() if c.startswith("member_")]
        assert len(candidates) == 3 and len(members) == 1
        lowest = min(candidates, key=lambda c: c.rsplit("-", 1)[1])
        # The packages set neither -hostname nor -ip: the scheduler advertises its IP.
        address = sb.info.host(leader).address
        assert zk.get(f"/aurora/scheduler/{lowest}")[0].decode() == address
        data = json.loads(zk.get(f"/aurora/scheduler/{members[0]}")[0])
        port = sb.info.host(leader).http_port
        assert data == {
            "serviceEndpoint": {"host": address, "port": port},
            "additionalEndpoints": {"http": {"host": address, "port": port}},
            "status": "ALIVE",
        }
        # Disabled: candidates, and no member_ node at all.
        on_all(sb, "sudo systemctl stop aurora-scheduler")
        wait_for(lambda: children() == [], timeout=20)
        set_env(
            sb,
            "zk://localhost:1111/mesos/master",
            "-max_registration_delay=360mins -reconciliation_initial_delay=365days",
        )
        on_all(sb, "sudo systemctl start aurora-scheduler")
        leader = wait_for(lambda: sb.leaders("LEADER_AWAITING_REGISTRATION"), timeout=30)[0]
        time.sleep(1)
        kids = children()
        assert not [c for c in kids if c.startswith("member_")]
        lowest = min((c for c in kids if "-lock-" in c), key=lambda c: c.rsplit("-", 1)[1])
        assert zk.get(f"/aurora/scheduler/{lowest}")[0].decode() == sb.info.host(leader).address
    finally:
        zk.stop()
        zk.close()


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            "-mesos_master_address=zk://localhost:1111/mesos/master",
            "Can only specify option -mesos_master_address once.",
        ),
        (
            "-max_registration_delay=360mins 365days",
            "Was passed main parameter '365days' but no main parameter was defined in your arg class",
        ),
    ],
)
def test_a_bad_word_in_extra_scheduler_args_is_a_crash_loop_without_vars(
    sandbox: RunningSandbox, extra: str, error: str
) -> None:
    host = "scheduler-2"
    run(sandbox, host, "sudo systemctl stop aurora-scheduler")
    run(sandbox, host, add_extra_args(extra, paths(sandbox, host)["env_file"]))
    run(sandbox, host, "sudo systemctl start aurora-scheduler")
    # Type=simple: the unit is "active" as soon as the process forks, whatever follows.
    seen: set[str] = set()

    def aborted_three_times() -> bool:
        seen.add(sandbox.states()[host])
        _, log, _ = run(sandbox, host, JOURNAL)
        return log.count(error) >= 3  # started again and again (Restart=always)

    wait_for(aborted_three_times, timeout=30)
    assert seen == {"DOWN"}  # /vars never answered
    _, log, _ = run(sandbox, host, JOURNAL)
    assert "Usage: org.apache.aurora.scheduler.app.SchedulerMain [options]" in log
    assert "HTTP server listening" not in log.split(error)[1]
