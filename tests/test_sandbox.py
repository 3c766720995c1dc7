"""The sandbox driven from outside, as the bot and an operator drive it: the CLI, SSH
(OpenSSH and asyncssh), `/vars`, the service stand-in, confinement to DIR, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncssh
import httpx
import pytest

from runbook.clusters import load_clusters
from sandbox.backups import ALL_STATES, backup_name, backup_time
from sandbox.layout import host_address, inside
from tests.conftest import ROOT, RunningSandbox, wait_for
from tests.sandbox_runner import module_sandboxes

pytestmark = pytest.mark.timeout(180)


def test_ready_writes_cluster_file_and_ssh_config(sandbox: RunningSandbox) -> None:
    assert sandbox.ready_after < 10
    out = "".join(sandbox.output)
    assert str(sandbox.dir / "clusters.toml") in out
    assert str(sandbox.dir / "ssh_config") in out
    cluster = sandbox.cluster
    assert [s.host for s in cluster.schedulers] == ["scheduler-1", "scheduler-2", "scheduler-3"]
    assert cluster.aurora_name == "sandbox"
    assert cluster.approvers.console == ["alice", "bob"]
    # Every path the cluster file names lies inside DIR.
    for s in cluster.schedulers:
        for field in ("env_file", "native_log_file_path", "backup_dir", "admin_clusters_json"):
            path = cluster.path(s, field)
            assert path is not None and inside(path, sandbox.dir), (field, path)
            assert Path(path).exists()
    assert inside(cluster.ssh.key_path, sandbox.dir)
    assert inside(cluster.ssh.known_hosts_path, sandbox.dir)


def test_openssh_stops_and_starts_every_scheduler_with_the_cluster_files_commands(
    sandbox: RunningSandbox,
) -> None:
    cluster = sandbox.cluster
    hosts = [s.host for s in cluster.schedulers]
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1)
    for host in hosts:
        r = sandbox.ssh(host, cluster.service.stop)
        assert r.returncode == 0, r.stderr
    for host in hosts:
        r = sandbox.ssh(host, cluster.service.is_active)
        assert (r.returncode, r.stdout.strip()) == (3, "inactive")
    assert set(sandbox.states().values()) == {"DOWN"}
    for host in hosts:
        r = sandbox.ssh(host, cluster.service.start)
        assert r.returncode == 0, r.stderr
    for host in hosts:
        r = sandbox.ssh(host, cluster.service.is_active)
        assert (r.returncode, r.stdout.strip()) == (0, "active")
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1)
    states = sandbox.states()
    assert sorted(states.values()) == ["ACTIVE", "STORAGE_PREPARED", "STORAGE_PREPARED"]


def test_changing_the_service_needs_sudo(sandbox: RunningSandbox) -> None:
    r = sandbox.ssh("scheduler-1", "systemctl stop aurora-scheduler")
    assert r.returncode == 1
    assert "Interactive authentication required" in r.stderr
    r = sandbox.ssh("scheduler-1", "sudo systemctl stop nonesuch")
    assert r.returncode == 5 and "Unit nonesuch.service not found" in r.stderr


def test_vars_text_format_and_json(sandbox: RunningSandbox) -> None:
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1)
    h = sandbox.info.hosts[0]
    r = httpx.get(f"http://{h.address}:{h.http_port}/vars", timeout=2)
    assert r.headers["content-type"].startswith("text/plain")
    lines = r.text.split("\n")
    assert not r.text.endswith("\n")
    assert lines == sorted(lines)
    names = [line.split(" ")[0] for line in lines]
    for state in (
        "IDLE",
        "PREPARING_STORAGE",
        "STORAGE_PREPARED",
        "LEADER_AWAITING_REGISTRATION",
        "ACTIVE",
        "DEAD",
    ):
        assert f"scheduler_lifecycle_{state}" in names
    lifecycle = [line for line in lines if line.startswith("scheduler_lifecycle_")]
    assert sum(int(line.split(" ")[1]) for line in lifecycle) == 1
    j = httpx.get(f"http://{h.address}:{h.http_port}/vars.json", timeout=2).json()
    assert set(j) == set(names)


def test_exec_runs_a_real_shell_in_the_hosts_tree(sandbox: RunningSandbox) -> None:
    h = sandbox.info.hosts[1]
    r = sandbox.ssh(h.name, "pwd; echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == f"{h.root}\nout\n"
    assert r.stderr == "err\n"
    cluster = sandbox.cluster
    backup_dir = cluster.path(cluster.scheduler(h.name), "backup_dir")
    r = sandbox.ssh(h.name, f"ls {backup_dir} | head -1 | xargs -I{{}} sha256sum {backup_dir}/{{}}")
    assert r.returncode == 0 and len(r.stdout.split()[0]) == 64
    for tool in ("sudo", "systemctl", "journalctl", "mesos-log", "aurora-admin", "uname"):
        r = sandbox.ssh(h.name, f"command -v {tool}")
        assert r.stdout.strip() == f"{h.root}/usr/local/bin/{tool}", tool
    # A Debian host has aurora-tools' hyphenated client only.
    r = sandbox.ssh(h.name, "command -v aurora_admin")
    assert (r.returncode, r.stdout) == (1, "")
    r = sandbox.ssh(h.name, "df -P . | tail -1 | wc -l; tar --version | head -1")
    assert r.returncode == 0


async def test_asyncssh_checks_host_keys(sandbox: RunningSandbox, tmp_path: Path) -> None:
    cluster = sandbox.cluster
    s = cluster.schedulers[0]
    conn = await asyncssh.connect(
        s.connect_address,
        s.ssh_port,
        username=cluster.ssh.user,
        client_keys=[str(cluster.ssh.key_path)],
        known_hosts=str(cluster.ssh.known_hosts_path),
    )
    async with conn:
        result = await conn.run("cat", input="hello\n", check=False)
        assert (result.exit_status, result.stdout) == (0, "hello\n")
        results = await asyncio.gather(*(conn.run(f"sleep 0.5; echo {i}") for i in range(5)))
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(5)]
    # A known_hosts that lacks this host's key: the connection is refused.
    other = tmp_path / "known_hosts"
    other.write_text("")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await asyncssh.connect(
            s.connect_address,
            s.ssh_port,
            username=cluster.ssh.user,
            client_keys=[str(cluster.ssh.key_path)],
            known_hosts=str(other),
        )
    # Another user, or no key: refused.
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            s.connect_address,
            s.ssh_port,
            username="root",
            client_keys=[str(cluster.ssh.key_path)],
            known_hosts=str(cluster.ssh.known_hosts_path),
        )


async def test_a_command_dies_with_its_connection(sandbox: RunningSandbox) -> None:
    cluster = sandbox.cluster
    s = cluster.schedulers[0]
    marker = sandbox.dir / "hosts" / s.host / "tmp" / "still-running"
    conn = await asyncssh.connect(
        s.connect_address,
        s.ssh_port,
        username=cluster.ssh.user,
        client_keys=[str(cluster.ssh.key_path)],
        known_hosts=str(cluster.ssh.known_hosts_path),
    )
    proc = await conn.create_process(f"sleep 2; touch {marker}")
    await asyncio.sleep(0.3)
    proc.close()
    conn.close()
    await conn.wait_closed()
    await asyncio.sleep(2.5)
    assert not marker.exists()


def test_host_key_is_stable_across_restarts(make_sandbox: Callable[..., RunningSandbox]) -> None:
    first = make_sandbox()
    keys = (first.dir / "known_hosts").read_text()
    assert first.stop() == 0
    second = make_sandbox(directory=first.dir)
    assert (second.dir / "known_hosts").read_text() == keys
    r = second.ssh("scheduler-2", "true")
    assert r.returncode == 0, r.stderr


def test_sigterm_stops_everything(sandbox: RunningSandbox) -> None:
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1)
    assert sandbox.sandbox_pids(), "the schedulers run with SANDBOX_DIR set"
    ports = [(h.address, h.ssh_port) for h in sandbox.info.hosts]
    assert sandbox.stop() == 0
    wait_for(lambda: not sandbox.sandbox_pids(), timeout=5)
    for address, port in ports:
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=1).close()


def test_a_scheduler_that_dies_is_restarted_unless_stopped(sandbox: RunningSandbox) -> None:
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1)
    host = sandbox.info.hosts[2]
    r = sandbox.ssh(host.name, "sudo systemctl status aurora-scheduler")
    pid = int(r.stdout.split("Main PID: ")[1].split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: sandbox.states()[host.name] == "DOWN", timeout=5)
    wait_for(lambda: sandbox.states()[host.name] in ("STORAGE_PREPARED", "ACTIVE"), timeout=15)
    assert sandbox.ssh(host.name, "sudo systemctl stop aurora-scheduler").returncode == 0
    time.sleep(1.5)  # three times RestartSec: a stopped unit stays down
    assert sandbox.states()[host.name] == "DOWN"


def _run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bad_input_one_clear_line_and_nonzero_exit(tmp_path: Path) -> None:
    r = _run_cli("--dir", str(tmp_path / "a"), "--schedulers", "0")
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0
    assert "--schedulers must be at least 1" in r.stderr
    assert not (tmp_path / "a").exists()

    with socket.socket() as busy:
        busy.bind((host_address(0), 0))  # scheduler-1's own address
        busy.listen()
        port = busy.getsockname()[1]
        r = _run_cli("--dir", str(tmp_path / "b"), "--port-base", str(port))
        assert r.returncode != 0
        assert r.stderr.strip() == (
            f"aurora-restore sandbox: error: port {port} on {host_address(0)} is in use"
        )

    blocker = tmp_path / "file"
    blocker.write_text("")
    r = _run_cli("--dir", str(blocker / "sub"))
    assert r.returncode != 0 and "cannot write to" in r.stderr
    assert r.stderr.strip().count("\n") == 0

    r = _run_cli("--dir", str(tmp_path / "c d"))
    assert r.returncode != 0 and "use a path of letters" in r.stderr


def test_a_directory_without_write_permission(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="sandbox-perm-"))
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        cmd = [sys.executable, "-m", "bot.cli", "sandbox", "--dir", str(locked / "sb")]
        if os.geteuid() == 0:
            # root ignores permission bits: run the command as nobody, as an operator would be.
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
        r = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "HOME": str(base)},
        )
        assert r.returncode != 0
        assert "cannot write to" in r.stderr and "Permission denied" in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_cluster_file_loads_back(sandbox: RunningSandbox) -> None:
    clusters = load_clusters(sandbox.dir / "clusters.toml")
    assert list(clusters) == ["sandbox"]


@pytest.fixture
def make_module_sandbox(tmp_path: Path) -> Iterator[Callable[..., RunningSandbox]]:
    with module_sandboxes(tmp_path) as make:
        yield make


def test_a_debian_host_advertises_its_ip_and_logs_to_the_journal(sandbox: RunningSandbox) -> None:
    leader = wait_for(lambda: sandbox.leaders("ACTIVE"))[0]
    address = sandbox.info.host(leader).address
    election = sandbox.info.election_dir
    assert (election / "leader").read_text().strip() == address
    member = json.loads((election / "member.json").read_text())
    assert member["serviceEndpoint"]["host"] == address
    assert member["additionalEndpoints"]["http"]["host"] == address
    # Every task_store gauge, terminal ones included and counting the history.
    v = sandbox.vars(leader)
    assert {k for k in v if k.startswith("task_store_")} == {f"task_store_{s}" for s in ALL_STATES}
    assert all(int(v[f"task_store_{s}"]) > 0 for s in ("FINISHED", "FAILED", "KILLED", "RUNNING"))
    # No log file: the journal, which only root reads.
    root = sandbox.info.host(leader).paths.root
    assert not (root / "var/log/aurora/aurora-scheduler.log").exists()
    r = sandbox.ssh(leader, "journalctl -u aurora-scheduler -n 20 --no-pager")
    assert (r.returncode, r.stdout) == (0, "-- No entries --\n")
    assert r.stderr.startswith("Hint: You are currently not seeing messages from other users")
    r = sandbox.ssh(leader, "sudo journalctl -u aurora-scheduler -n 200 --no-pager")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines and all(
        re.match(rf"^\w{{3}} \d\d \d\d:\d\d:\d\d {leader} aurora-scheduler-startup\[\d+\]: ", x)
        for x in lines
    ), lines[:3]
    assert any(x.endswith("Elected as leading scheduler!") for x in lines)
    r = sandbox.ssh(leader, "sudo journalctl -u aurora-scheduler -o cat --no-pager")
    cat = r.stdout.splitlines()
    assert len(cat) >= len(lines) and all(re.match(r"^[IWE]\d{4} ", x) for x in cat), cat[:3]
    assert "scheduler_log" not in (sandbox.dir / "clusters.toml").read_text()


def test_sudo_answers_per_rule_over_ssh(sandbox: RunningSandbox) -> None:
    host = sandbox.info.hosts[0]
    systemctl = f"{host.paths.bin_dir}/systemctl"
    r = sandbox.ssh(host.name, "sudo -n -l systemctl stop aurora-scheduler")
    assert (r.returncode, r.stdout) == (0, f"{systemctl} stop aurora-scheduler\n")
    # A drill takes the journal away: only the unit's systemctl verbs remain.
    rule = f"aurora-ops ALL=(root) NOPASSWD: {systemctl} * aurora-scheduler"
    r = sandbox.ssh(host.name, f"echo {shlex.quote(rule)} > etc/sudoers.d/aurora-ops")
    assert r.returncode == 0
    r = sandbox.ssh(host.name, "sudo -n -l systemctl stop aurora-scheduler")
    assert (r.returncode, r.stdout) == (0, f"{systemctl} stop aurora-scheduler\n")
    r = sandbox.ssh(host.name, "sudo -n -l journalctl -u aurora-scheduler")
    assert (r.returncode, r.stdout) == (1, "")
    r = sandbox.ssh(host.name, "sudo -n journalctl -u aurora-scheduler")
    assert (r.returncode, r.stderr) == (1, "sudo: a password is required\n")
    r = sandbox.ssh(host.name, "sudo -n systemctl is-active aurora-scheduler")
    assert (r.returncode, r.stdout) == (0, "active\n")


def test_an_rpm_host_advertising_its_name_in_its_own_zone_with_a_log_file(
    make_module_sandbox: Callable[..., RunningSandbox],
) -> None:
    zone = ZoneInfo("Asia/Kolkata")
    sb = make_module_sandbox(
        "--flavour", "rpm", "--advertise", "hostname", "--tz", "Asia/Kolkata", "--log-file"
    )
    cluster = sb.cluster
    toml = (sb.dir / "clusters.toml").read_text()
    assert "aurora_admin" not in toml
    for s in cluster.schedulers:
        root = sb.info.host(s.host).paths.root
        assert cluster.path(s, "env_file") == f"{root}/etc/sysconfig/aurora-scheduler"
        assert cluster.path(s, "scheduler_log") == f"{root}/var/log/aurora/aurora-scheduler.log"
    leader = wait_for(lambda: sb.leaders("ACTIVE"), timeout=30)[0]
    assert (sb.info.election_dir / "leader").read_text().strip() == leader
    member = json.loads((sb.info.election_dir / "member.json").read_text())
    assert member["serviceEndpoint"] == {"host": leader, "port": sb.info.host(leader).http_port}
    r = sb.ssh(leader, "command -v aurora_admin; command -v aurora-admin; date +%Z; echo $TZ")
    assert r.stdout.splitlines() == [
        f"{sb.info.host(leader).paths.bin_dir}/aurora_admin",
        "IST",
        "Asia/Kolkata",
    ]
    log = sb.ssh(leader, "cat var/log/aurora/aurora-scheduler.log").stdout
    assert "Elected as leading scheduler!" in log
    assert not (sb.info.host(leader).paths.journal).exists()
    # Backups, generated and written by the scheduler, are named in the hosts' zone.
    backup_dir = sb.info.host(leader).paths.backup_dir
    before = datetime.now(zone).replace(second=0, microsecond=0, tzinfo=None)
    r = sb.ssh(leader, "aurora_admin scheduler_backup_now sandbox")
    assert r.returncode == 0, r.stderr
    after = datetime.now(zone).replace(tzinfo=None)
    names = {p.name for p in backup_dir.iterdir()}
    new = [n for n in names if before <= (backup_time(n) or datetime.min) <= after]
    assert len(new) == 1, (names, before, after)
    for h in sb.info.hosts:
        for p in h.paths.backup_dir.iterdir():
            if p.name not in new:
                taken = datetime.fromtimestamp(p.stat().st_mtime, UTC)
                assert p.name == backup_name(taken, zone)
