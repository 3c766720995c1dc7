"""The sandbox as Aurora 0.22, driven by hand over OpenSSH with only DIR/ssh_config: the
offline restore of rel/0.22.0 docs/operations/backup-restore.md (stop all, wipe,
`mesos-log initialize`, recovery-tool on one host, start it with enough blank ones for a
quorum), the refusals of recovery-tool, `log/recovered` on /metrics/snapshot at each
host's LIBPROCESS_PORT, and the danger the offline procedure must avoid: a quorum of
blank replicas started first elects a leader over an empty log. Both packagings."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sandbox.backups import ALL_STATES, backup_time, decode_snapshot
from tests.conftest import RunningSandbox, wait_for

pytestmark = pytest.mark.timeout(240)

FLAVOURS = ("debian", "rpm")
ZK_GROUP = "/aurora/replicated-log"
CORRUPT = "scheduler-backup-2001-01-01-00-00"


def ssh(sb: RunningSandbox, host: str, command: str) -> subprocess.CompletedProcess[str]:
    return sb.ssh(host, command, timeout=120)


def ok(sb: RunningSandbox, host: str, command: str) -> str:
    r = ssh(sb, host, command)
    assert r.returncode == 0, (host, command, r.stdout, r.stderr)
    return r.stdout


def on_all(sb: RunningSandbox, hosts: list[str], command: Callable[[str], str]) -> None:
    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(lambda h: ok(sb, h, command(h)), hosts))


def log_dir(sb: RunningSandbox, host: str) -> str:
    return str(sb.info.host(host).paths.log_dir)


def tool(sb: RunningSandbox, host: str) -> str:
    return str(sb.info.host(host).paths.recovery_tool)


def recovery_tool(sb: RunningSandbox, host: str, backup: str, *extra: str) -> str:
    """The command of the docs, run as the scheduler's user, with the host's values."""
    h = sb.info.host(host)
    args = [
        "sudo",
        "-n",
        "-u",
        "aurora",
        tool(sb, host),
        "-from",
        "BACKUP",
        "-to",
        "LOG",
        f"-backup={h.paths.backup_dir / backup}",
        f"-native_log_file_path={h.paths.log_dir}",
        f"-native_log_zk_group_path={ZK_GROUP}",
        "-zk_endpoints=127.0.0.1:2181",
        *extra,
    ]
    return shlex.join(args)


def libprocess_port(sb: RunningSandbox, host: str) -> int:
    """LIBPROCESS_PORT as the host's env file sets it (read over SSH)."""
    env = sb.info.host(host).paths.env_file
    line = ok(sb, host, f"grep ^LIBPROCESS_PORT= {shlex.quote(str(env))}").strip()
    return int(line.removeprefix("LIBPROCESS_PORT="))


def recovered(sb: RunningSandbox, host: str) -> float | None:
    """`log/recovered` from the host's /metrics/snapshot; None when nothing answers."""
    address = sb.info.host(host).address
    try:
        r = httpx.get(f"http://{address}:{libprocess_port(sb, host)}/metrics/snapshot", timeout=2)
    except httpx.HTTPError:
        return None
    value: float = r.json()["log/recovered"]
    return value


def task_counts(sb: RunningSandbox, host: str) -> Counter[str]:
    v = sb.vars(host)
    return Counter(
        {s: int(v[f"task_store_{s}"]) for s in ALL_STATES if v[f"task_store_{s}"] != "0"}
    )


def newest_backup(sb: RunningSandbox, host: str) -> str:
    names = ok(sb, host, f"ls -1 {shlex.quote(str(sb.info.host(host).paths.backup_dir))}")
    return max((n for n in names.split() if backup_time(n)), key=lambda n: backup_time(n) or 0)


def wipe_and_initialize(sb: RunningSandbox, hosts: list[str]) -> None:
    """Stop every scheduler, empty every log directory, `mesos-log initialize` it as
    the scheduler's user: blank replicas everywhere."""
    on_all(sb, hosts, lambda h: "sudo -n systemctl stop aurora-scheduler")
    wait_for(lambda: set(sb.states().values()) == {"DOWN"})
    on_all(sb, hosts, lambda h: f"find {shlex.quote(log_dir(sb, h))} -mindepth 1 -delete")
    on_all(
        sb,
        hosts,
        lambda h: f"sudo -n -u aurora mesos-log initialize --path={shlex.quote(log_dir(sb, h))}",
    )


def start(sb: RunningSandbox, hosts: list[str]) -> None:
    on_all(sb, hosts, lambda h: "sudo -n systemctl start aurora-scheduler")


def leader(sb: RunningSandbox) -> str:
    """The one leader (awaiting registration or active), once there is one."""

    def leaders() -> list[str]:
        return [
            h for h, s in sb.states().items() if s in ("LEADER_AWAITING_REGISTRATION", "ACTIVE")
        ]

    found = wait_for(leaders, timeout=40)
    assert len(found) == 1, sb.states()
    return str(found[0])


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[Callable[..., RunningSandbox]]:
    """conftest's make_sandbox, with room to start on a loaded machine."""
    started: list[RunningSandbox] = []

    def make(*args: str) -> RunningSandbox:
        sb = RunningSandbox(tmp_path / "sandbox", "--restart-sec", "0.5", *args)
        started.append(sb.start(timeout=60))
        return sb

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture(params=FLAVOURS)
def sb22(
    request: pytest.FixtureRequest, make_sandbox: Callable[..., RunningSandbox]
) -> RunningSandbox:
    return make_sandbox("--aurora-version", "0.22", "--flavour", request.param)


def test_a_022_host_reports_its_version_metrics_and_has_the_tool(sb22: RunningSandbox) -> None:
    hosts = [h.name for h in sb22.info.hosts]
    lead = sb22.info.host(leader(sb22))
    # Staging a missing backup names its path (0.20+), not its name.
    r = httpx.post(
        f"http://{lead.address}:{lead.http_port}/api",
        json={"method": "stageRecovery", "args": {"backupId": CORRUPT}},
        headers={"Bypass-Leader-Redirect": "true"},
        timeout=5,
    )
    assert r.json()["details"] == [
        {"message": f"Backup {lead.paths.backup_dir / CORRUPT} does not exist."}
    ]
    ports = set()
    for h in hosts:
        assert sb22.vars(h)["build.version"] == "0.22.0"
        assert "scheduler_recovery_staged" not in sb22.vars(h)
        ports.add(libprocess_port(sb22, h))
        # A replica holding the log is recovered as soon as its process opened it.
        assert wait_for(lambda h=h: recovered(sb22, h) == 1)
        # The tool is where the package installs it, not on PATH.
        ok(sb22, h, f"test -x {shlex.quote(tool(sb22, h))}")
        assert ssh(sb22, h, "command -v recovery-tool").returncode != 0
    assert len(ports) == len(hosts) and 8083 not in ports  # a free port per host
    where = "usr/lib/aurora/bin" if sb22.info.flavour == "rpm" else "usr/share/aurora/bin"
    assert tool(sb22, hosts[0]).endswith(f"{where}/recovery-tool")
    # A running scheduler holds its replica: the tool cannot open it.
    r = ssh(sb22, hosts[0], recovery_tool(sb22, hosts[0], newest_backup(sb22, hosts[0])))
    assert r.returncode == 1
    assert f"IO error: lock {log_dir(sb22, hosts[0])}/LOCK: already held by process" in r.stderr


def test_offline_restore_by_hand(sb22: RunningSandbox) -> None:
    hosts = [h.name for h in sb22.info.hosts]
    first, second, third = hosts
    leader(sb22)
    backup = newest_backup(sb22, first)
    bdir = sb22.info.host(first).paths.backup_dir
    expected = Counter(t.status for t in decode_snapshot((bdir / backup).read_bytes()))
    assert expected
    wipe_and_initialize(sb22, hosts)
    assert recovered(sb22, first) is None  # nothing answers while it is stopped

    # A corrupt backup is refused as staging refuses it, and writes nothing.
    ok(sb22, first, f"printf 'garbage' > {shlex.quote(str(bdir / CORRUPT))}")
    r = ssh(sb22, first, recovery_tool(sb22, first, CORRUPT))
    assert r.returncode == 1
    assert "Failed to decode backup org.apache.thrift" in r.stderr, r.stderr
    # A missing one, too.
    r = ssh(sb22, first, recovery_tool(sb22, first, "scheduler-backup-2001-01-01-00-01"))
    assert r.returncode == 1 and "does not exist." in r.stderr
    # The log's writer needs its quorum: the others are stopped.
    r = ssh(sb22, first, recovery_tool(sb22, first, backup, "-native_log_quorum_size=2"))
    assert r.returncode == 1 and "Failed to obtain a log writer: 1 of the 2" in r.stderr

    r = ssh(sb22, first, recovery_tool(sb22, first, backup))
    assert r.returncode == 0, r.stderr
    assert "Ensuring recovery destination is empty" in r.stderr
    assert "Recovery finished" in r.stderr
    # Once rehydrated, the log is no longer empty: a second run is refused.
    r = ssh(sb22, first, recovery_tool(sb22, first, backup))
    assert r.returncode == 1
    assert (
        'Exception in thread "main" java.lang.IllegalStateException: '
        "Refusing to recover into non-empty persistence" in r.stderr
    )

    # The rehydrated host with quorum-1 blank ones: a leader with the backup's tasks.
    start(sb22, [first, second])
    lead = leader(sb22)
    assert task_counts(sb22, lead) == expected
    assert wait_for(lambda: recovered(sb22, second) == 1)
    assert recovered(sb22, first) == 1
    assert recovered(sb22, third) is None
    # The remaining blank one catches up from the quorum up.
    start(sb22, [third])
    assert wait_for(lambda: recovered(sb22, third) == 1)
    wait_for(lambda: sb22.states()[third] == "STORAGE_PREPARED")
    assert task_counts(sb22, third) == expected


def test_a_blank_quorum_started_first_leads_over_an_empty_log(sb22: RunningSandbox) -> None:
    hosts = [h.name for h in sb22.info.hosts]
    first, second, third = hosts
    leader(sb22)
    backup = newest_backup(sb22, first)
    wipe_and_initialize(sb22, hosts)
    r = ssh(sb22, first, recovery_tool(sb22, first, backup))
    assert r.returncode == 0, r.stderr

    # Blank replicas alone: one waits for its quorum, recovered 0, no leader.
    start(sb22, [second])
    wait_for(lambda: recovered(sb22, second) == 0)
    assert sb22.states()[second] == "STORAGE_PREPARED"
    # A second blank one makes a quorum: a leader over the EMPTY log.
    start(sb22, [third])
    lead = leader(sb22)
    assert lead in (second, third)
    assert task_counts(sb22, lead) == Counter()
    assert wait_for(lambda: recovered(sb22, second) == 1 and recovered(sb22, third) == 1)


def test_recovery_tool_run_as_root_leaves_a_log_the_scheduler_cannot_open(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    sb = make_sandbox("--aurora-version", "0.22", "--schedulers", "1")
    host = sb.info.hosts[0].name
    leader(sb)
    backup = newest_backup(sb, host)
    wipe_and_initialize(sb, [host])
    r = ssh(sb, host, recovery_tool(sb, host, backup).replace("sudo -n -u aurora", "sudo -n"))
    assert r.returncode == 0, r.stderr
    start(sb, [host])
    journal = shlex.quote(str(sb.info.host(host).paths.journal))

    def refused() -> bool:
        return "LOCK: Permission denied" in ok(sb, host, f"cat {journal}")

    wait_for(refused)
    assert sb.states()[host] == "DOWN" or recovered(sb, host) != 1


def test_bad_flags_are_one_error_and_change_nothing(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    sb = make_sandbox("--aurora-version", "0.22", "--schedulers", "1")
    host = sb.info.hosts[0].name
    leader(sb)
    before = (Path(log_dir(sb, host)) / "000003.log").read_bytes()
    base = f"sudo -n -u aurora {shlex.quote(tool(sb, host))}"
    cases = {
        "-from BACKUP": "The following options are required: [-to], [-zk_endpoints]",
        "-from DISK -to LOG -zk_endpoints=x:1": "Invalid value for -from parameter",
        "-from BACKUP -from BACKUP": "Can only specify option -from once.",
        "-from BACKUP -to LOG -zk_endpoints=x:1 -nope=1": "Was passed main parameter '-nope=1'",
        "-from BACKUP -to LOG -zk_endpoints=x:1 -backup=/etc/passwd "
        "-native_log_file_path=/tmp/x": "lies outside the sandbox directory",
    }
    for args, message in cases.items():
        r = ssh(sb, host, f"{base} {args}")
        assert r.returncode == 1 and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert (Path(log_dir(sb, host)) / "000003.log").read_bytes() == before


def test_a_017_sandbox_has_no_recovery_tool(make_sandbox: Callable[..., RunningSandbox]) -> None:
    sb = make_sandbox("--schedulers", "1")
    host = sb.info.hosts[0]
    assert sb.info.aurora_version == "0.17" and host.libprocess_port == 0
    leader(sb)
    assert sb.vars(host.name)["build.version"] == "0.17.0"
    for where in ("usr/share/aurora/bin", "usr/lib/aurora/bin"):
        assert not (Path(host.root) / where / "recovery-tool").exists()
    assert ssh(sb, host.name, "command -v recovery-tool").returncode != 0
    # The packaging's LIBPROCESS_PORT stays, and nothing of the sandbox serves it.
    assert libprocess_port(sb, host.name) == 8083
    info = json.loads((sb.dir / "sandbox.json").read_text())
    assert info["aurora_version"] == "0.17"


def test_a_bad_aurora_version_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "sandbox",
            "--dir",
            str(tmp_path),
            "--aurora-version",
            "0.18",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert r.returncode == 2
    assert "invalid choice: '0.18'" in r.stderr and "Traceback" not in r.stderr


def test_a_wiped_but_uninitialised_log_is_refused_and_never_recovers(
    make_sandbox: Callable[..., RunningSandbox],
) -> None:
    sb = make_sandbox("--aurora-version", "0.22", "--schedulers", "1", "--flavour", "rpm")
    host = sb.info.hosts[0].name
    leader(sb)
    backup = newest_backup(sb, host)
    ok(sb, host, "sudo -n systemctl stop aurora-scheduler")
    wait_for(lambda: sb.states()[host] == "DOWN")
    ok(sb, host, f"find {shlex.quote(log_dir(sb, host))} -mindepth 1 -delete")
    # No `mesos-log initialize`: the tool cannot write into an EMPTY replica...
    r = ssh(sb, host, recovery_tool(sb, host, backup))
    assert r.returncode == 1 and "is in EMPTY status" in r.stderr, r.stderr
    assert not any(Path(log_dir(sb, host)).iterdir())
    # ...and a scheduler started on it waits, never recovered, never leading.
    start(sb, [host])
    wait_for(lambda: sb.states()[host] == "PREPARING_STORAGE")
    assert wait_for(lambda: recovered(sb, host) == 0)
