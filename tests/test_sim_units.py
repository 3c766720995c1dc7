"""The Aurora simulation without the orchestrator: flag parsing, /vars, the replica, the
aurora_admin and mesos-log stand-ins, and scheduler processes started directly against a
hand-made sandbox.json (local election, and ZooKeeper when it is installed)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from sandbox import admin, election, replog
from sandbox.backups import (
    ACTIVE_STATES,
    backup_name,
    decode_snapshot,
    encode_snapshot,
    generate_cluster_tasks,
)
from sandbox.cluster import Options, SandboxError, build, cluster_toml
from sandbox.layout import BOGUS_MESOS_MASTER, HostInfo, SandboxInfo, host_address
from sandbox.scheduler import FlagError, advertised_host, format_vars, parse_flags, parse_time
from sandbox.service import host_environment, journal_prefix
from tests.conftest import ROOT, free_port, wait_for

pytestmark = pytest.mark.timeout(60)

BACKUP = "scheduler-backup-2024-05-01-10-00"


def startup_flags(
    info: SandboxInfo, host: HostInfo, master: str, zk: str = "127.0.0.1:2181"
) -> list[str]:
    """The flags Debian's aurora-scheduler-startup passes, env file values filled in."""
    p = host.paths
    return [
        f"-cluster_name={info.cluster}",
        f"-http_port={host.http_port}",
        "-native_log_quorum_size=1",
        f"-zk_endpoints={zk}",
        f"-mesos_master_address={master}",
        f"-serverset_path={info.serverset_path}",
        "-native_log_zk_group_path=/aurora/replicated-log",
        f"-native_log_file_path={p.log_dir}",
        f"-backup_dir={p.backup_dir}",
        "-thermos_executor_path=/usr/share/aurora/bin/thermos_executor.pex",
        "-thermos_executor_resources=",
        "-thermos_executor_flags=--announcer-ensemble 127.0.0.1:2181",
        "-allowed_container_types=MESOS,DOCKER",
    ]


# ------------------------------------------------------------------------------ flags


def test_flags_of_the_startup_script_parse_in_both_forms() -> None:
    info = SandboxInfo(dir="/x", hosts=[HostInfo("scheduler-1", "127.0.0.1", 1, 8081, "/x/h")])
    argv = startup_flags(info, info.hosts[0], BOGUS_MESOS_MASTER)
    argv += ["-max_registration_delay", "360mins", "-reconciliation_initial_delay=365days"]
    flags = parse_flags(argv)
    assert flags.http_port == 8081
    assert flags.mesos_master_address == BOGUS_MESOS_MASTER
    assert flags.max_registration_delay == 360 * 60
    assert flags.reconciliation_initial_delay == 365 * 86400
    assert flags.http_authentication_mechanism == "NONE"
    defaults = parse_flags(startup_flags(info, info.hosts[0], BOGUS_MESOS_MASTER))
    assert (defaults.max_registration_delay, defaults.reconciliation_initial_delay) == (60, 60)


def test_a_flag_given_twice_aborts() -> None:
    info = SandboxInfo(dir="/x", hosts=[HostInfo("scheduler-1", "127.0.0.1", 1, 8081, "/x/h")])
    argv = startup_flags(info, info.hosts[0], "zk://127.0.0.1:2181/mesos")
    with pytest.raises(FlagError, match=r"^Can only specify option -mesos_master_address once\.$"):
        parse_flags([*argv, f"-mesos_master_address={BOGUS_MESOS_MASTER}"])
    with pytest.raises(FlagError, match="Can only specify option -max_registration_delay once"):
        parse_flags([*argv, "-max_registration_delay=1mins", "-max_registration_delay", "2mins"])


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("360mins", 21600), ("365days", 31536000), ("1hrs", 3600), ("30secs", 30), ("5ms", 0.005)],
)
def test_valid_time_amounts(raw: str, seconds: float) -> None:
    assert parse_time("max_registration_delay", raw) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("360min", "one of [ns, us, ms, secs, mins, hrs, days]"),
        ("1hr", "one of [ns, us, ms, secs, mins, hrs, days]"),
        ("365d", "one of [ns, us, ms, secs, mins, hrs, days]"),
        ("1Day", "one of [ns, us, ms, secs, mins, hrs, days]"),
        ("1MINS", "one of [ns, us, ms, secs, mins, hrs, days]"),
        ("1.5hrs", "must be of the format 1ns, 2secs, etc."),
        ("360 mins", "must be of the format 1ns, 2secs, etc."),
        ("-1mins", "must be of the format 1ns, 2secs, etc."),
        ("", "must be of the format 1ns, 2secs, etc."),
    ],
)
def test_invalid_time_amounts(raw: str, error: str) -> None:
    with pytest.raises(FlagError) as exc:
        parse_time("reconciliation_initial_delay", raw)
    assert str(exc.value) == (
        f'"-reconciliation_initial_delay": couldn\'t convert "{raw}" to {error}'
    )


def test_unknown_missing_and_bad_enum_flags() -> None:
    info = SandboxInfo(dir="/x", hosts=[HostInfo("scheduler-1", "127.0.0.1", 1, 8081, "/x/h")])
    argv = startup_flags(info, info.hosts[0], BOGUS_MESOS_MASTER)
    with pytest.raises(FlagError, match="main parameter '-no_such_flag=1'"):
        parse_flags([*argv, "-no_such_flag=1"])
    with pytest.raises(FlagError, match=r"required: \[-mesos_master_address\]"):
        parse_flags([a for a in argv if not a.startswith("-mesos_master_address")])
    with pytest.raises(FlagError, match=r"Allowed values:\[NONE, BASIC, NEGOTIATE\]"):
        parse_flags([*argv, "-http_authentication_mechanism=KERBEROS"])
    with pytest.raises(FlagError, match="Expected a value after parameter -max_leading_duration"):
        parse_flags([*argv, "-max_leading_duration"])
    assert (
        parse_flags([*argv, "-http_authentication_mechanism=BASIC"]).http_authentication_mechanism
        == "BASIC"
    )


def test_scheduler_process_exits_1_on_a_duplicate_flag(tmp_path: Path) -> None:
    info = SandboxInfo(dir=str(tmp_path), hosts=[HostInfo("h", "127.0.0.1", 1, 1, str(tmp_path))])
    argv = startup_flags(info, info.hosts[0], BOGUS_MESOS_MASTER)
    r = subprocess.run(
        [sys.executable, "-m", "sandbox.scheduler", *argv, "-http_port=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SANDBOX_DIR": str(tmp_path)},
    )
    assert r.returncode == 1
    assert "Can only specify option -http_port once." in r.stderr
    assert r.stdout.startswith("Usage: ")


# ------------------------------------------------------------------------------ /vars


def test_vars_are_sorted_lines_without_a_trailing_newline() -> None:
    text = format_vars({"b_var": 2, "a_var": 1, "a": 0.5, "flag": True, "scheduler_x": 0})
    assert text == "a 0.5\na_var 1\nb_var 2\nflag 1\nscheduler_x 0"
    lines = text.split("\n")
    assert lines == sorted(lines) and not text.endswith("\n")


# ---------------------------------------------------------------------------- replog


def test_initialize_only_turns_an_empty_replica_into_voting(tmp_path: Path) -> None:
    log_dir = tmp_path / "db"
    assert replog.read(log_dir).status == "EMPTY"
    replog.initialize(log_dir, owner="aurora")
    replica = replog.read(log_dir)
    assert (replica.status, replica.owner, replica.position) == ("VOTING", "aurora", 0)
    with pytest.raises(replog.ReplicaNotEmpty, match="The log is not empty"):
        replog.initialize(log_dir, owner="aurora")
    replog.corrupt(log_dir)
    with pytest.raises(replog.ReplicaCorrupt, match="^Corruption: "):
        replog.read(log_dir)
    with pytest.raises(replog.ReplicaCorrupt):
        replog.initialize(log_dir, owner="aurora")


# ------------------------------------------------------------------ aurora_admin, units


def test_response_line_format() -> None:
    ok = {"responseCode": "OK", "details": []}
    assert admin.format_response(ok) == "Response from scheduler: OK (message: )"
    err = {"responseCode": "ERROR", "details": [{"message": "a"}, {"message": ""}, {}]}
    assert admin.format_response(err) == (
        "Response from scheduler: ERROR (message: a, Unknown error, Unknown error)"
    )


def test_clusters_json_list_or_dict_and_home_wins(tmp_path: Path) -> None:
    env = {"AURORA_CONFIG_ROOT": str(tmp_path / "etc"), "HOME": str(tmp_path / "home")}
    system, user = admin.cluster_files(env)
    assert system == tmp_path / "etc/clusters.json"
    assert user == tmp_path / "home/.aurora/clusters.json"
    assert admin.cluster_files({"HOME": "/h"})[0] == Path("/etc/aurora/clusters.json")
    system.parent.mkdir(parents=True)
    user.parent.mkdir(parents=True)
    system.write_text(
        json.dumps(
            [
                {"name": "sandbox", "zk": "127.0.0.1", "scheduler_zk_path": "/aurora/scheduler"},
                {"name": "other", "scheduler_uri": "http://o:1"},
                {"zk": "nameless"},
            ]
        )
    )
    user.write_text(json.dumps({"x": {"name": "sandbox", "scheduler_uri": "http://localhost:9"}}))
    clusters = admin.load_clusters([system, user])
    assert sorted(clusters) == ["other", "sandbox"]
    assert clusters["sandbox"] == {"name": "sandbox", "scheduler_uri": "http://localhost:9"}
    assert admin.load_clusters([tmp_path / "missing.json"]) == {}


def test_resolution_zk_wins_over_scheduler_uri(tmp_path: Path) -> None:
    info = SandboxInfo(dir=str(tmp_path), hosts=[HostInfo("s1", "127.0.0.9", 1, 81, str(tmp_path))])
    direct = {"name": "c", "scheduler_uri": "http://localhost:8081"}
    assert admin.resolve(direct, info) == admin.Endpoint(
        "http://localhost:8081", "http://localhost:8081/api"
    )
    both = {**direct, "zk": "127.0.0.1", "scheduler_zk_path": "/aurora/scheduler"}
    with pytest.raises(admin.CouldNotConnect, match="^No schedulers detected in c!$"):
        admin.resolve(both, info)  # nobody advertised in the local election
    member = election.member_json("s1", 81)
    info.election_dir.mkdir()
    (info.election_dir / election.MEMBER_FILE).write_bytes(election.encode_member(member))
    (info.election_dir / election.LEADER_FILE).write_text("s1\n")
    with pytest.raises(admin.CouldNotConnect):
        admin.resolve(both, info)  # the files alone mean nothing: nobody holds the lock


def test_a_cluster_with_neither_zk_nor_uri_is_a_value_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(admin.Exit):
        admin.resolve({"name": "c"}, None)
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith('ValueError: "cluster" does not specify zk or scheduler_uri\n')


def run_admin_main(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clusters: Any
) -> int:
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc/clusters.json").write_text(json.dumps(clusters))
    monkeypatch.setenv("AURORA_CONFIG_ROOT", str(tmp_path / "etc"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return admin.main(argv)


def test_admin_unknown_cluster_and_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clusters = [{"name": "a", "scheduler_uri": "http://x:1"}, {"name": "b", "zk": "h"}]
    rc = run_admin_main(["scheduler_list_backups", "nope"], tmp_path, monkeypatch, clusters)
    assert rc == 1
    assert capsys.readouterr().err == "FATAL] Unknown cluster: nope. Known clusters: a, b\n"
    rc = run_admin_main(
        ["scheduler_stage_recovery", "--bypass-leader-redirect", "a"],
        tmp_path,
        monkeypatch,
        clusters,
    )
    assert rc == 1
    assert capsys.readouterr().err == (
        "FATAL] usage: scheduler_stage_recovery cluster backup_id\n\n"
        "see the help subcommand for more details.\n"
    )
    rc = run_admin_main(["get_scheduler", "a"], tmp_path, monkeypatch, clusters)
    assert (rc, capsys.readouterr().out) == (0, "Found leading scheduler at: http://x:1\n")


def test_bypass_option_is_accepted_anywhere() -> None:
    for argv in (
        ["--bypass-leader-redirect", "scheduler_commit_recovery", "c"],
        ["scheduler_commit_recovery", "--bypass-leader-redirect", "c"],
        ["scheduler_commit_recovery", "c", "--bypass-leader-redirect"],
    ):
        assert admin.parse_args(argv) == admin.Invocation("scheduler_commit_recovery", ["c"], True)
    assert not admin.parse_args(["scheduler_commit_recovery", "c"]).bypass


def test_usage_strings_give_each_commands_arity() -> None:
    arities = {name: admin.arity(c) for name, c in admin.COMMANDS.items()}
    assert arities["scheduler_stage_recovery"] == 2
    assert arities["scheduler_delete_recovery_tasks"] == 2
    assert arities["scheduler_commit_recovery"] == 1
    assert arities["get_scheduler"] == 1


# ----------------------------------------------------------------------------- election


def test_candidate_and_member_nodes_sort_by_sequence() -> None:
    a = "_c_0b0c2f4e-9a53-4d4e-8c5c-2c9f0b3d1a10-lock-0000000012"
    b = "_c_7f7d1f5e-1b2c-4e1a-9d7e-5a1c2b3d4e5f-lock-0000000009"
    children = [a, "member_0000000011", b, "member_0000000003", "singleton_candidate_1"]
    assert election.candidates(children) == [b, a]
    assert election.members(children) == ["member_0000000003", "member_0000000011"]


async def test_local_election_is_trusted_only_while_the_lock_is_held(tmp_path: Path) -> None:
    one = election.LocalElection(tmp_path, "s1")
    two = election.LocalElection(tmp_path, "s2")
    await one.connect()
    await two.connect()
    assert election.local_leader(tmp_path) is None
    await one.campaign()
    assert election.local_leader(tmp_path) == "s1"
    assert election.local_member(tmp_path) is None  # not ACTIVE yet
    await one.advertise(election.member_json("s1", 81))
    assert election.local_member(tmp_path) == election.member_json("s1", 81)
    assert await two.member() == election.member_json("s1", 81)
    one.close()
    assert election.local_leader(tmp_path) is None
    assert election.local_member(tmp_path) is None
    await two.campaign()
    assert election.local_leader(tmp_path) == "s2"
    two.close()


# ---------------------------------------------------------------------------- mesos-log


def mesos_log(tmp_path: Path, *args: str, user: str = "aurora") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox.mesoslog", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SANDBOX_DIR": str(tmp_path / "sb"), "SANDBOX_USER": user},
    )


def test_mesos_log_initialize_and_its_refusals(tmp_path: Path) -> None:
    (tmp_path / "sb").mkdir()
    SandboxInfo(dir=str(tmp_path / "sb")).save()
    log_dir = tmp_path / "sb/hosts/h/db"

    r = mesos_log(tmp_path, "initialize")
    assert r.returncode == 1 and r.stderr.startswith("Missing required option --path\n")
    outside = tmp_path / "outside"
    r = mesos_log(tmp_path, "initialize", f"--path={outside}")
    assert r.returncode == 1 and "outside the sandbox" in r.stderr
    assert not outside.exists()
    r = mesos_log(tmp_path, "initialize", f"--path={tmp_path}/sb/../outside")
    assert r.returncode == 1 and not outside.exists()

    r = mesos_log(tmp_path, "initialize", f"--path={log_dir}", "--timeout=10secs", user="root")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert replog.read(log_dir).owner == "root"
    r = mesos_log(tmp_path, "initialize", f"--path={log_dir}", user="root")
    assert (r.returncode, r.stderr) == (1, "The log is not empty\n")

    replog.corrupt(log_dir)
    r = mesos_log(tmp_path, "initialize", f"--path={log_dir}")
    assert r.returncode == 1 and "Corruption: " in r.stderr

    r = mesos_log(tmp_path, "nosuch")
    assert r.returncode == 1 and r.stderr.startswith("Cannot find command 'nosuch'\n\nUsage: ")


# ------------------------------------------------------------------ scheduler processes


class Sim:
    """A hand-made sandbox of N hosts, schedulers started directly, aurora_admin run."""

    def __init__(self, root: Path, hosts: int, zk: str = "") -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.info = SandboxInfo(
            dir=str(root),
            zk_endpoints=zk,
            mesos_master=f"zk://{zk or '127.0.0.1:2181'}/mesos",
            hosts=[
                HostInfo(
                    f"scheduler-{i}",
                    host_address(40 + i),  # a loopback address of its own, as in a sandbox
                    0,
                    free_port(),
                    str(root / f"hosts/scheduler-{i}"),
                )
                for i in range(1, hosts + 1)
            ],
        )
        rng = random.Random(7)
        self.running = generate_cluster_tasks(rng, 40)
        self.logged = self.running[:30]  # what the log knows: 10 running tasks are unknown
        self.backup = self.running[5:35]
        for h in self.info.hosts:
            replog.create_with(h.paths.log_dir, self.logged, owner="aurora")
            h.paths.backup_dir.mkdir(parents=True)
            (h.paths.backup_dir / BACKUP).write_bytes(encode_snapshot(self.backup, datetime.now()))
            h.paths.scheduler_log.parent.mkdir(parents=True)
        self.info.tasks_file.parent.mkdir(parents=True)
        self.info.tasks_file.write_text(json.dumps([t.__dict__ for t in self.running]))
        self.info.killed_file.touch()
        self.info.save()

    def env(self, host: HostInfo) -> dict[str, str]:
        return {
            **os.environ,
            "SANDBOX_DIR": str(self.root),
            "SANDBOX_HOST": host.name,
            "SANDBOX_USER": "aurora",
            "AURORA_CONFIG_ROOT": str(host.paths.aurora_config_root),
            "HOME": str(host.paths.home),
        }

    def start(self, name: str, master: str, *extra: str) -> subprocess.Popen[bytes]:
        host = self.info.host(name)
        zk = self.info.zk_endpoints or "127.0.0.1:2181"
        with host.paths.scheduler_log.open("ab") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sandbox.scheduler",
                    *startup_flags(self.info, host, master, zk),
                    *extra,
                ],
                cwd=ROOT,
                env=self.env(host),
                stdout=out,
                stderr=out,
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return self.info.host(name).paths.scheduler_log.read_text()

    def vars(self, name: str) -> dict[str, str]:
        h = self.info.host(name)
        text = httpx.get(f"http://{h.address}:{h.http_port}/vars", timeout=2).text
        return dict(line.split(" ", 1) for line in text.split("\n"))

    def state(self, name: str) -> str:
        try:
            v = self.vars(name)
        except httpx.HTTPError:
            return "DOWN"
        return next(
            k.split("_", 2)[2]
            for k, x in v.items()
            if k.startswith("scheduler_lifecycle_") and x == "1"
        )

    def states(self) -> dict[str, str]:
        return {h.name: self.state(h.name) for h in self.info.hosts}

    def http(self, name: str, method: str, path: str, **kw: Any) -> httpx.Response:
        h = self.info.host(name)
        return httpx.request(method, f"http://{h.address}:{h.http_port}{path}", timeout=5, **kw)

    def write_clusters(self, name: str, entry: dict[str, Any]) -> None:
        p = self.info.host(name).paths
        p.aurora_config_root.mkdir(parents=True, exist_ok=True)
        p.clusters_json.write_text(json.dumps([{"name": "sandbox", **entry}]))

    def admin(self, name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sandbox.admin", *args],
            cwd=ROOT,
            env={**self.env(self.info.host(name)), **env},
            capture_output=True,
            text=True,
            timeout=30,
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    sims: list[Sim] = []

    def make(hosts: int = 2, zk: str = "", name: str = "sb") -> Sim:
        sim = Sim(tmp_path / name, hosts, zk)
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


def uri_entry(sim: Sim, name: str) -> dict[str, Any]:
    return {"scheduler_uri": f"http://localhost:{sim.info.host(name).http_port}"}


def test_disabled_schedulers_elect_one_leader_and_the_restore_commits(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim(2)
    for h in sim.info.hosts:
        sim.start(h.name, BOGUS_MESOS_MASTER, "-max_registration_delay=360mins")
    wait_for(
        lambda: (
            sorted(sim.states().values()) == ["LEADER_AWAITING_REGISTRATION", "STORAGE_PREPARED"]
        )
    )
    time.sleep(1.5)  # a disabled leader never registers
    states = sim.states()
    assert sorted(states.values()) == ["LEADER_AWAITING_REGISTRATION", "STORAGE_PREPARED"]
    leader = next(h for h, s in states.items() if s == "LEADER_AWAITING_REGISTRATION")
    follower = next(h for h in states if h != leader)
    # The candidate's data is the leader's IP address (no -hostname, no -ip).
    assert election.current_leader(sim.info) == sim.info.host(leader).address
    assert election.current_member(sim.info) is None  # nobody advertises while disabled
    assert "Elected as leading scheduler!" in sim.log(leader)
    assert sim.vars(leader)["framework_registered"] == "0"
    assert sim.vars(leader)["task_store_RUNNING"] == str(
        sum(t.status == "RUNNING" for t in sim.logged)
    )
    for name in states:
        assert sim.http(name, "GET", "/leaderhealth").status_code == 502
        assert sim.http(name, "POST", "/api", json={"method": "listBackups"}).status_code == 503
        sim.write_clusters(name, uri_entry(sim, name))
    bypass = "--bypass-leader-redirect"
    r = sim.admin(leader, "scheduler_list_backups", bypass, "sandbox")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"1 available backups:\n{BACKUP}\n"
    assert r.stderr == " INFO] Response from scheduler: OK (message: )\n"

    r = sim.admin(leader, "scheduler_stage_recovery", bypass, "sandbox", "scheduler-backup-nope")
    assert r.returncode == 1
    assert r.stderr == (
        " INFO] Response from scheduler: ERROR (message: Backup scheduler-backup-nope does not exist.)\n"
    )
    r = sim.admin(leader, "scheduler_stage_recovery", bypass, "sandbox", BACKUP)
    assert (r.returncode, r.stderr) == (0, " INFO] Response from scheduler: OK (message: )\n")
    r = sim.admin(leader, "scheduler_stage_recovery", bypass, "sandbox", BACKUP)
    assert r.returncode == 1 and "ERROR (message: Another backup is already loaded.)" in r.stderr
    # Aurora exports no gauge of a staged recovery: queryRecovery (below) tells.

    r = sim.admin(leader, bypass, "scheduler_print_recovery_tasks", "sandbox")
    lines = r.stderr.splitlines()
    assert lines[:2] == [
        " INFO] Response from scheduler: OK (message: )",
        " INFO] Role\tJob\tShard\tStatus\tTask ID",
    ]
    staged = [t for t in sim.backup if t.status in ACTIVE_STATES]
    t0 = staged[0]
    assert lines[2] == f" INFO] {t0.role}\t{t0.job}\t{t0.instance}\t{t0.status}\t{t0.task_id}"
    assert len(lines) == 2 + len(staged) and r.stdout == ""
    r = sim.admin(
        leader, "scheduler_delete_recovery_tasks", "sandbox", f"{t0.task_id},nonesuch", bypass
    )
    assert r.returncode == 0, r.stderr
    r = sim.admin(leader, "scheduler_print_recovery_tasks", bypass, "sandbox")
    assert len(r.stderr.splitlines()) == 2 + len(staged) - 1

    # On the follower: staging works, the commit only ever gets "Storage is not READY".
    assert (
        sim.admin(follower, "scheduler_stage_recovery", bypass, "sandbox", BACKUP).returncode == 0
    )
    r = sim.admin(
        follower, "scheduler_commit_recovery", bypass, "sandbox", AURORA_ADMIN_RPC_MAX_WAIT="0.5"
    )
    assert r.returncode == 1
    assert (
        " WARN] Connection error with scheduler: Storage is not READY, reconnecting..." in r.stderr
    )
    assert r.stderr.rstrip().endswith(
        "TimeoutError: Timed out attempting to issue commitRecovery to sandbox"
    )

    r = sim.admin(follower, "scheduler_unload_recovery", bypass, "sandbox")
    assert r.returncode == 0, r.stderr
    r = sim.admin(follower, "scheduler_print_recovery_tasks", bypass, "sandbox")
    assert r.returncode == 1 and "ERROR (message: No backup loaded.)" in r.stderr

    # Without the bypass the redirect filter answers 503: a transport error, not retried.
    r = sim.admin(leader, "scheduler_unload_recovery", "sandbox")
    assert r.returncode == 1 and "503 Server Error" in r.stderr and "NotRetriableError" in r.stderr

    r = sim.admin(leader, "scheduler_commit_recovery", bypass, "sandbox")
    assert r.returncode == 1
    last = r.stderr.rstrip().splitlines()[-1]
    assert last.startswith(
        "apache.aurora.client.api.scheduler_client.NotRetriableError: Transport error communicating with scheduler during non-idempotent operation: "
    )
    assert last.endswith(", not retrying")
    assert sim.procs[leader].wait(5) == 0
    assert "Committed recovery of backup" in sim.log(leader)
    expected = [t for t in sim.backup if t.task_id != t0.task_id]
    for h in sim.info.hosts:
        assert replog.read(h.paths.log_dir).tasks == expected, h.name
    # The follower takes over, replaying the committed snapshot.
    wait_for(lambda: sim.state(follower) == "LEADER_AWAITING_REGISTRATION")
    running = sum(t.status == "RUNNING" for t in expected)
    assert sim.vars(follower)["task_store_RUNNING"] == str(running)


def test_an_active_leader_advertises_redirects_and_kills_unknown_tasks(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim(2)
    master = sim.info.mesos_master
    for h in sim.info.hosts:
        sim.start(h.name, master, "-reconciliation_initial_delay=1secs")
    wait_for(lambda: sorted(sim.states().values()) == ["ACTIVE", "STORAGE_PREPARED"])
    states = sim.states()
    leader = next(h for h, s in states.items() if s == "ACTIVE")
    follower = next(h for h in states if h != leader)
    port = sim.info.host(leader).http_port
    address = sim.info.host(leader).address
    member = election.current_member(sim.info)
    assert member == election.member_json(address, port)
    raw = (sim.info.election_dir / election.MEMBER_FILE).read_text()
    assert raw == (
        f'{{"serviceEndpoint":{{"host":"{address}","port":{port}}},'
        f'"additionalEndpoints":{{"http":{{"host":"{address}","port":{port}}}}},"status":"ALIVE"}}'
    )
    assert sim.vars(leader)["framework_registered"] == "1"
    assert sim.http(leader, "GET", "/leaderhealth").status_code == 200
    assert sim.http(follower, "GET", "/leaderhealth").status_code == 503
    redirect = sim.http(follower, "POST", "/api", json={"method": "listBackups"})
    assert (redirect.status_code, redirect.headers["location"]) == (
        307,
        f"http://{address}:{port}/api",
    )
    j = sim.http(leader, "GET", "/vars.json").json()
    assert j["scheduler_lifecycle_ACTIVE"] == 1 and isinstance(j["jvm_uptime_secs"], int)

    # aurora_admin through the follower follows the redirect; in zk mode it finds the member.
    sim.write_clusters(follower, uri_entry(sim, follower))
    r = sim.admin(follower, "scheduler_backup_now", "sandbox")
    assert r.returncode == 0, r.stderr
    assert sim.vars(leader)["scheduler_backup_success"] == "1"
    sim.write_clusters(follower, {"zk": "127.0.0.1", "scheduler_zk_path": "/aurora/scheduler"})
    r = sim.admin(follower, "get_scheduler", "sandbox")
    assert r.stdout == f"Found leading scheduler at: http://{address}:{port}\n"

    # Reconciliation: the 10 running tasks the log does not know are killed.
    unknown = {t.task_id for t in sim.running} - {t.task_id for t in sim.logged}
    wait_for(lambda: sim.vars(leader)["sandbox_tasks_killed"] == "10")
    killed = [json.loads(line) for line in sim.info.killed_file.read_text().splitlines()]
    assert {k["task_id"] for k in killed} == unknown
    assert {k["host"] for k in killed} == {leader}
    left = {t["task_id"] for t in json.loads(sim.info.tasks_file.read_text())}
    assert left == {t.task_id for t in sim.logged}
    assert f"Killing task {sorted(unknown)[0]} unknown to the scheduler" in sim.log(leader)

    started = time.monotonic()
    sim.procs[leader].send_signal(signal.SIGTERM)
    assert sim.procs[leader].wait(5) == 0
    assert time.monotonic() - started < 1.0
    assert election.current_member(sim.info) is None
    wait_for(lambda: sim.state(follower) == "ACTIVE")


def test_broken_replicas_and_other_failures(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(4)
    h1, h2, h3, h4 = (h.name for h in sim.info.hosts)
    replog.corrupt(sim.info.host(h1).paths.log_dir)
    replog.create_with(sim.info.host(h2).paths.log_dir, [], owner="root")
    for f in sim.info.host(h3).paths.log_dir.iterdir():
        f.unlink()
    p1 = sim.start(h1, BOGUS_MESOS_MASTER)
    p2 = sim.start(h2, BOGUS_MESOS_MASTER)
    sim.start(h3, BOGUS_MESOS_MASTER)
    assert p1.wait(10) == 1 and "Corruption: " in sim.log(h1)
    assert p2.wait(10) == 1
    assert f"IO error: {sim.info.host(h2).paths.log_dir}/LOCK: Permission denied" in sim.log(h2)
    wait_for(
        lambda: "Replica in EMPTY status received a broadcasted recover request" in sim.log(h3)
    )
    assert sim.state(h3) == "PREPARING_STORAGE"
    # The only healthy one leads; with auth on, the client gets an AuthError; it dies for
    # want of a Mesos registration.
    p4 = sim.start(
        h4,
        BOGUS_MESOS_MASTER,
        "-max_registration_delay=3secs",
        "-http_authentication_mechanism=BASIC",
    )
    wait_for(lambda: sim.state(h4) == "LEADER_AWAITING_REGISTRATION")
    sim.write_clusters(h4, uri_entry(sim, h4))
    r = sim.admin(h4, "scheduler_list_backups", "--bypass-leader-redirect", "sandbox")
    assert r.returncode == 1
    assert r.stderr.rstrip().endswith(
        f"AuthError: 401 Client Error: Unauthorized for url: http://localhost:{sim.info.host(h4).http_port}/api"
    )
    assert p4.wait(10) == 1
    assert "Framework has not been registered within the tolerated delay." in sim.log(h4)


@pytest.mark.zookeeper
def test_zookeeper_candidates_and_member(zookeeper: str, make_sim: Callable[..., Sim]) -> None:
    from kazoo.client import KazooClient

    sim = make_sim(2, zk=zookeeper)
    for h in sim.info.hosts:
        sim.start(h.name, BOGUS_MESOS_MASTER)
    wait_for(
        lambda: (
            sorted(sim.states().values()) == ["LEADER_AWAITING_REGISTRATION", "STORAGE_PREPARED"]
        )
    )
    leader = next(h for h, s in sim.states().items() if s == "LEADER_AWAITING_REGISTRATION")
    assert sim.vars(leader)["zk_connection_state_CONNECTED"] == "1"
    zk = KazooClient(hosts=zookeeper)
    zk.start(timeout=10)
    try:
        path = sim.info.serverset_path
        children = zk.get_children(path)
        nodes = election.candidates(children)
        assert len(nodes) == 2 and not election.members(children)
        # No -hostname, no -ip: the candidate holds the host's IP address.
        address = sim.info.host(leader).address
        assert zk.get(f"{path}/{nodes[0]}")[0] == address.encode()
        assert election.current_leader(sim.info) == address
        assert election.current_member(sim.info) is None
        sim.stop()
        assert election.candidates(zk.get_children(path)) == []

        # -hostname wins over the address, in the candidate and in the member_ JSON.
        sim.start("scheduler-1", sim.info.mesos_master, "-hostname=sched1.example.com")
        wait_for(lambda: sim.state("scheduler-1") == "ACTIVE")
        assert election.current_leader(sim.info) == "sched1.example.com"
        port = sim.info.host("scheduler-1").http_port
        (member,) = election.members(zk.get_children(path))
        expected = election.member_json("sched1.example.com", port)
        assert zk.get(f"{path}/{member}")[0] == election.encode_member(expected)
        assert election.current_member(sim.info) == expected
        assert sim.http("scheduler-1", "GET", "/leaderhealth").status_code == 200
    finally:
        zk.stop()
        zk.close()


# ----------------------------------------------------------------- packaged-host shape


def built(tmp_path: Path, **kw: Any) -> SandboxInfo:
    """A one-host sandbox laid out (nothing runs)."""
    return build(Options(dir=tmp_path / "sb", schedulers=1, backups=kw.pop("backups", 0), **kw))


def startup_argv(info: SandboxInfo) -> list[str]:
    """What the host's aurora-scheduler-startup passes the scheduler, the env file sourced
    by bash as the unit does (the binary replaced by one that prints its argv)."""
    host = info.hosts[0]
    p = host.paths
    p.scheduler_binary.write_text("#!/bin/bash\nprintf '%s\\n' \"$@\"\n")
    r = subprocess.run(
        ["bash", str(p.startup_script)],
        env=host_environment(info, host, "aurora"),
        cwd=p.root,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_the_debian_env_file_has_the_packagings_shape_and_yields_the_expected_argv(
    tmp_path: Path,
) -> None:
    info = built(tmp_path)
    host = info.hosts[0]
    p = host.paths
    text = p.env_file.read_text()
    assert p.env_file == p.root / "etc/default/aurora-scheduler"
    assert text.startswith("#\n# Licensed under the Apache License, Version 2.0")
    assert "JAVA_OPTS='-Djava.library.path=/usr/local/lib'\n" in text
    assert 'MESOS_MASTER="zk://${ZK_ENDPOINTS}/mesos"\n' in text
    assert 'LOGDB_FILE_PATH="${AURORA_HOME}/scheduler/db"\n' in text
    extra = next(line for line in text.splitlines() if line.startswith("EXTRA_SCHEDULER_ARGS="))
    assert "$(" in extra and "-backup_interval 1hrs" in extra and "-hostname" not in extra
    aurora_home = p.root / "var/lib/aurora"
    assert startup_argv(info) == [
        "-cluster_name=sandbox",
        f"-http_port={host.http_port}",
        "-native_log_quorum_size=1",
        "-zk_endpoints=127.0.0.1:2181",
        "-mesos_master_address=zk://127.0.0.1:2181/mesos",
        "-serverset_path=/aurora/scheduler",
        "-native_log_zk_group_path=/aurora/replicated-log",
        f"-native_log_file_path={aurora_home}/scheduler/db",
        f"-backup_dir={aurora_home}/scheduler/backups",
        "-thermos_executor_path=/usr/share/aurora/bin/thermos_executor.pex",
        "-thermos_executor_resources=",
        "-thermos_executor_flags=--announcer-ensemble 127.0.0.1:2181",
        "-allowed_container_types=MESOS,DOCKER",
        f"-tier_config={aurora_home}/scheduler/tiers.json",
        "-serverset_endpoint_name=http",
        "-backup_interval",
        "1hrs",
        "-max_saved_backups=48",
        "-history_prune_threshold=2days",
        "-history_max_per_job_threshold=100",
    ]
    flags = parse_flags(startup_argv(info))  # every word is a flag the scheduler knows
    assert (flags.hostname, flags.ip, flags.serverset_endpoint_name) == (None, None, "http")
    # A Debian host has aurora-tools' aurora-admin only.
    assert (p.bin_dir / "aurora-admin").exists() and not (p.bin_dir / "aurora_admin").exists()


def test_advertise_hostname_adds_hostname_from_uname(tmp_path: Path) -> None:
    info = built(tmp_path, advertise="hostname")
    argv = startup_argv(info)
    assert argv[-1] == "-hostname=scheduler-1"
    assert parse_flags(argv).hostname == "scheduler-1"
    assert advertised_host(parse_flags(argv), info.hosts[0].address) == "scheduler-1"


def test_the_rpm_sysconfig_is_bash_arrays_passed_as_aurora_flags(tmp_path: Path) -> None:
    info = built(tmp_path, flavour="rpm")
    p = info.hosts[0].paths
    text = p.env_file.read_text()
    assert p.env_file == p.root / "etc/sysconfig/aurora-scheduler"
    assert "AURORA_FLAGS=(\n" in text and "JAVA_OPTS=(\n" in text
    assert "GLOG_v=0\n" in text and "LIBPROCESS_PORT=8083\n" in text
    assert "MESOS_MASTER" not in text and "EXTRA_SCHEDULER_ARGS" not in text
    assert p.startup_script.read_text().rstrip().endswith('"${AURORA_FLAGS[@]}"')
    argv = startup_argv(info)
    assert "-thermos_executor_flags=--announcer-ensemble 127.0.0.1:2181" in argv
    assert f"-native_log_file_path={p.log_dir}" in argv
    flags = parse_flags(argv)
    assert flags.mesos_master_address == "zk://127.0.0.1:2181/mesos"
    assert (p.bin_dir / "aurora_admin").exists() and not (p.bin_dir / "aurora-admin").exists()
    assert startup_argv(built(tmp_path / "h", flavour="rpm", advertise="hostname"))[-1] == (
        "-hostname=scheduler-1"
    )


def test_the_advertised_host_is_hostname_else_ip_else_the_address() -> None:
    info = SandboxInfo(dir="/x", hosts=[HostInfo("scheduler-1", "127.0.0.11", 1, 8081, "/x/h")])
    argv = startup_flags(info, info.hosts[0], BOGUS_MESOS_MASTER)
    assert advertised_host(parse_flags(argv), "127.0.0.11") == "127.0.0.11"
    assert advertised_host(parse_flags([*argv, "-ip=127.0.0.99"]), "127.0.0.11") == "127.0.0.99"
    both = parse_flags([*argv, "-ip=127.0.0.99", "-hostname=sched1"])
    assert advertised_host(both, "127.0.0.11") == "sched1"


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ("-backup_dir=/elsewhere", "Can only specify option -backup_dir once."),
        (
            "-max_registration_delay=360mins 365days",
            "Was passed main parameter '365days' but no main parameter was defined",
        ),
        ("-tier_config=/nonexistent/tiers.json", "File /nonexistent/tiers.json for -tier_config"),
    ],
)
def test_a_bad_word_in_extra_scheduler_args_aborts_the_real_start(
    tmp_path: Path, extra: str, error: str
) -> None:
    info = built(tmp_path)
    host = info.hosts[0]
    p = host.paths
    text = p.env_file.read_text()
    p.env_file.write_text(text.replace('EXTRA_SCHEDULER_ARGS="', f'EXTRA_SCHEDULER_ARGS="{extra} '))
    r = subprocess.run(
        ["bash", str(p.startup_script)],
        env=host_environment(info, host, "aurora"),
        cwd=p.root,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 1
    assert r.stdout.startswith("Usage: org.apache.aurora.scheduler.app.SchedulerMain")
    assert error in r.stderr


def test_backup_names_are_the_wall_time_in_the_hosts_zone(tmp_path: Path) -> None:
    zone = ZoneInfo("Asia/Kolkata")  # +05:30: no whole-hour offset hides a mistake
    info = built(tmp_path, tz="Asia/Kolkata", backups=4)
    files = list(info.hosts[0].paths.backup_dir.iterdir())
    assert files
    for f in files:
        taken = datetime.fromtimestamp(f.stat().st_mtime, UTC)
        assert f.name == backup_name(taken, zone)
        assert f.name == "scheduler-backup-" + taken.astimezone(zone).strftime("%Y-%m-%d-%H-%M")
    assert info.tz == "Asia/Kolkata"
    assert host_environment(info, info.hosts[0], "aurora")["TZ"] == "Asia/Kolkata"
    assert "TZ" not in host_environment(built(tmp_path / "plain"), info.hosts[0], "aurora")


def test_generated_state_holds_terminal_tasks_but_mesos_runs_only_active_ones(
    tmp_path: Path,
) -> None:
    info = built(tmp_path, backups=2)
    stored = replog.read(info.hosts[0].paths.log_dir).tasks
    counts = Counter(t.status for t in stored)
    assert all(counts[s] > 0 for s in ("FINISHED", "FAILED", "KILLED"))
    running = json.loads(info.tasks_file.read_text())
    assert {t["status"] for t in running} <= set(ACTIVE_STATES)
    assert len(running) == sum(counts[s] for s in ACTIVE_STATES)
    for backup in info.hosts[0].paths.backup_dir.iterdir():
        statuses = {t.status for t in decode_snapshot(backup.read_bytes())}
        assert {"FINISHED", "KILLED"} <= statuses


def test_bad_options_and_a_reused_dir_keeps_its_settings(tmp_path: Path) -> None:
    for kw, message in (
        ({"tz": "Mars/Olympus"}, "not a known IANA time zone"),
        ({"tz": "../etc/passwd"}, "not an IANA time zone name"),
        ({"flavour": "arch"}, "--flavour must be one of debian, rpm"),
        ({"advertise": "fqdn"}, "--advertise must be one of ip, hostname"),
    ):
        with pytest.raises(SandboxError, match=message):
            built(tmp_path / "bad", **kw)
        assert not (tmp_path / "bad").exists()
    info = built(tmp_path, flavour="rpm", advertise="hostname", tz="Europe/Paris", log_file=True)
    again = built(tmp_path)  # the defaults: what DIR holds is kept
    assert (again.flavour, again.advertise, again.tz, again.log_file) == (
        "rpm",
        "hostname",
        "Europe/Paris",
        True,
    )
    assert again.hosts[0].paths.env_file == info.hosts[0].paths.env_file
    with pytest.raises(SandboxError, match="--tz 'Europe/Paris', not 'Asia/Tokyo'"):
        built(tmp_path, tz="Asia/Tokyo")


def test_each_host_has_its_own_address_and_name(tmp_path: Path) -> None:
    info = build(Options(dir=tmp_path / "sb", schedulers=3, backups=0))
    assert [h.address for h in info.hosts] == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    h = info.hosts[1]
    env = host_environment(info, h, "aurora-ops")
    out = {}
    for cmd in ("uname -n", "hostname", "hostname -f", "hostname -s", "hostname -i", "uname -s"):
        r = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=5)
        out[cmd] = r.stdout.strip()
    r = subprocess.run(["bash", "-c", "uname -a"], env=env, capture_output=True, text=True)
    assert r.stdout.split()[:2] == ["Linux", "scheduler-2"]
    assert out == {
        "uname -n": "scheduler-2",
        "hostname": "scheduler-2",
        "hostname -f": "scheduler-2",
        "hostname -s": "scheduler-2",
        "hostname -i": "127.0.0.12",
        "uname -s": "Linux",
    }
    toml = cluster_toml(info)
    assert 'address = "127.0.0.12"' in toml
    assert "aurora_admin" not in toml and "scheduler_log" not in toml
    assert f'env_file = "{h.paths.root}/etc/default/aurora-scheduler"' in toml


# ------------------------------------------------------------------------ sudo, journal


def run_tool(
    info: SandboxInfo, module: str, *args: str, user: str = "aurora-ops"
) -> subprocess.CompletedProcess[str]:
    host = info.hosts[0]
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=host_environment(info, host, user),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_sudo_obeys_the_hosts_sudoers_file(tmp_path: Path) -> None:
    info = built(tmp_path)
    p = info.hosts[0].paths
    systemctl, mesos_log = p.bin_dir / "systemctl", p.bin_dir / "mesos-log"
    # The default: aurora-ops may run anything as anyone without a password.
    r = run_tool(info, "sandbox.sudo", "-n", "-l", "systemctl", "stop", "aurora-scheduler")
    assert (r.returncode, r.stdout) == (0, f"{systemctl} stop aurora-scheduler\n")
    r = run_tool(info, "sandbox.sudo", "-n", "-l")
    assert r.stdout == (
        "User aurora-ops may run the following commands on scheduler-1:\n    (ALL) NOPASSWD: ALL\n"
    )
    r = run_tool(info, "sandbox.sudo", "-n", "-u", "aurora", "bash", "-c", "echo $SANDBOX_USER")
    assert (r.returncode, r.stdout) == (0, "aurora\n")

    # A drill narrows the rules: systemctl on the unit as root, mesos-log as aurora only.
    p.sudoers.write_text(
        "# narrowed\n"
        f"aurora-ops ALL=(root) NOPASSWD: {systemctl} * aurora-scheduler\n"
        f"aurora-ops ALL=(aurora) NOPASSWD: {mesos_log} initialize --path=*\n"
        f"aurora-ops ALL=(root) {p.bin_dir}/journalctl\n"
    )
    allowed = run_tool(info, "sandbox.sudo", "-n", "-l", "systemctl", "restart", "aurora-scheduler")
    assert (allowed.returncode, allowed.stdout) == (0, f"{systemctl} restart aurora-scheduler\n")
    for args in (
        ("systemctl", "stop", "sshd"),  # another unit
        ("-u", "root", "mesos-log", "initialize", "--path=/x"),  # not as root
        ("-u", "aurora", "mesos-log", "cat"),
        ("cat", "/etc/shadow"),
    ):
        r = run_tool(info, "sandbox.sudo", "-n", "-l", *args)
        assert (r.returncode, r.stdout) == (1, ""), args
    r = run_tool(
        info, "sandbox.sudo", "-n", "-u", "aurora", "-l", "mesos-log", "initialize", "--path=/x"
    )
    assert (r.returncode, r.stdout) == (0, f"{mesos_log} initialize --path=/x\n")
    # Not allowed, or allowed only with a password: -n refuses at once.
    for args in (("cat", "/etc/hostname"), ("journalctl", "-u", "aurora-scheduler")):
        r = run_tool(info, "sandbox.sudo", "-n", *args)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", "sudo: a password is required\n")
    r = run_tool(info, "sandbox.sudo", "cat", "/etc/hostname")
    assert r.returncode == 1 and r.stderr.endswith("sudo: a password is required\n")
    assert "a terminal is required" in r.stderr
    r = run_tool(info, "sandbox.sudo", "-n", "-l")
    assert r.stdout.splitlines()[1:] == [
        f"    (root) NOPASSWD: {systemctl} * aurora-scheduler",
        f"    (aurora) NOPASSWD: {mesos_log} initialize --path=*",
        f"    (root) {p.bin_dir}/journalctl",
    ]
    # Root may run anything.
    r = run_tool(info, "sandbox.sudo", "-n", "-l", "cat", "/etc/hostname", user="root")
    assert r.returncode == 0
    r = run_tool(info, "sandbox.sudo", "-x", "true")
    assert r.returncode == 1 and "invalid option -- 'x'" in r.stderr


def test_journalctl_shows_the_units_lines_to_root_only(tmp_path: Path) -> None:
    info = built(tmp_path)
    journal = info.hosts[0].paths.journal
    journal.write_text(
        "".join(
            journal_prefix("scheduler-1", 4242, datetime(2026, 12, 1, 22, 0, i)) + f"line {i}\n"
            for i in range(5)
        )
    )
    # A user outside adm/systemd-journal sees nothing of the system journal: the hint.
    r = run_tool(info, "sandbox.journalctl", "-u", "aurora-scheduler", "--no-pager")
    assert (r.returncode, r.stdout) == (0, "-- No entries --\n")
    assert r.stderr.startswith("Hint: You are currently not seeing messages from other users")
    assert "Pass -q to turn off this notice." in r.stderr
    r = run_tool(info, "sandbox.journalctl", "-q", "-u", "aurora-scheduler")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    # Root (through sudo) sees the unit's lines.
    r = run_tool(info, "sandbox.journalctl", "-u", "aurora-scheduler", "-n", "2", user="root")
    assert r.stdout == (
        "Dec 01 22:00:03 scheduler-1 aurora-scheduler-startup[4242]: line 3\n"
        "Dec 01 22:00:04 scheduler-1 aurora-scheduler-startup[4242]: line 4\n"
    )
    r = run_tool(
        info,
        "sandbox.journalctl",
        "--unit=aurora-scheduler.service",
        "--lines=3",
        "-o",
        "cat",
        "--no-pager",
        user="root",
    )
    assert r.stdout == "line 2\nline 3\nline 4\n"
    r = run_tool(info, "sandbox.journalctl", "-u", "sshd", user="root")
    assert (r.returncode, r.stdout) == (0, "-- No entries --\n")
    r = run_tool(info, "sandbox.journalctl", "--bogus", user="root")
    assert (r.returncode, r.stderr) == (1, "journalctl: unrecognized option '--bogus'\n")
