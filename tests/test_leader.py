"""restore.leader: leader detection against the real sandbox, a real ZooKeeper and
loopback fakes (a second leader, a black hole, a closed ZooKeeper port, election candidates
without a member_ node)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from bot.leader import (
    ZkReader,
    ZkUnavailable,
    ZkView,
    check_sources,
    classify_log,
    detect_leader,
    interpret,
    log_command,
)
from bot.probes import HttpVarsProbe
from bot.ssh import SshExecutor
from runbook.actions import table_rows
from runbook.clusters import Cluster, Scheduler
from runbook.ports import HostResult
from tests.conftest import RunningSandbox, free_port, wait_for

SANDBOX_LOG = "var/log/aurora/aurora-scheduler.log"


@pytest.fixture
async def probe() -> AsyncIterator[HttpVarsProbe]:
    p = HttpVarsProbe()
    yield p
    await p.close()


class Fakes:
    """In-process fake schedulers on loopback: /vars servers and black holes."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []
        self.servers: list[asyncio.Server] = []
        self.held: list[asyncio.StreamWriter] = []

    async def vars_server(self, state: str, address: str = "127.0.0.1") -> int:
        body = "\n".join(
            f"scheduler_lifecycle_{s} {int(s == state)}"
            for s in ("IDLE", "STORAGE_PREPARED", "LEADER_AWAITING_REGISTRATION", "ACTIVE")
        )

        async def handler(_: web.Request) -> web.Response:
            return web.Response(text=body)

        app = web.Application()
        app.router.add_get("/vars", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, address, port).start()
        self.runners.append(runner)
        return port

    async def black_hole(self) -> int:
        async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.held.append(writer)  # accepts, reads nothing, answers never

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        for w in self.held:
            w.close()
        for s in self.servers:
            s.close()
            await s.wait_closed()
        for r in self.runners:
            await r.cleanup()


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    f = Fakes()
    yield f
    await f.close()


def fake_cluster(ports: dict[str, int], zk: str | None = None) -> Cluster:
    return Cluster.model_validate(
        {
            "name": "fake",
            "aurora_name": "fake",
            "zk_endpoints": zk,
            "schedulers": [
                {"host": h, "address": "127.0.0.1", "http_port": p} for h, p in ports.items()
            ],
        }
    )


def test_classify_log() -> None:
    start = "I0101 SchedulerLifecycle: SchedulerLifecycle state machine transition IDLE -> PREPARING_STORAGE"
    elected = "I0101 SchedulerLifecycle: Elected as leading scheduler!"
    dead = "I0101 SchedulerLifecycle: SchedulerLifecycle state machine transition ACTIVE -> DEAD"
    assert classify_log("") == "unknown"
    assert classify_log(start) == "follower"
    assert classify_log(f"{start}\n{elected}") == "leader"
    assert classify_log(f"{start}\n{elected}\n{dead}\nI Shutdown complete.") == "stopped"
    assert classify_log(f"{elected}\n{dead}\n{start}") == "follower"


@pytest.mark.zookeeper
async def test_sources_agree_then_disagree_then_none(
    make_sandbox: Callable[..., RunningSandbox], zookeeper: str, probe: HttpVarsProbe
) -> None:
    sb = make_sandbox("--zk", zookeeper)
    cluster = sb.cluster
    await asyncio.to_thread(wait_for, lambda: len(sb.leaders("ACTIVE")) == 1, 30)
    active = sb.leaders("ACTIVE")[0]
    async with SshExecutor(cluster) as ssh:
        report = await detect_leader(cluster, probe, ssh, state="ACTIVE")
        text = table_rows(report.table)
        assert report.problems == [], text
        assert report.leader == active
        assert report.by_source == {"vars": active, "zookeeper": active, "logs": active}
        assert report.table[active] == {
            "vars": "leader",
            # member_ and candidates hold the advertised host: the IP address.
            "zookeeper": f"leader (member_ {cluster.scheduler(active).connect_address})",
            "logs": "leader",
        }
        others = [h for h in report.table if h != active]
        assert all(
            report.table[h]["zookeeper"] == f"candidate ({cluster.scheduler(h).connect_address})"
            for h in others
        )
        assert all(report.table[h]["logs"] == "follower" for h in others)
        assert active in text and "zookeeper" in text

        # A serverset of our own in which another host advertised itself.
        path = f"/leader-test/{uuid.uuid4()}"
        zk = KazooClient(hosts=zookeeper, timeout=5)
        zk.start(timeout=5)
        try:
            other = others[0]
            zk.create(
                f"{path}/member_",
                f'{{"serviceEndpoint":{{"host":"{other}","port":1}},"status":"ALIVE"}}'.encode(),
                sequence=True,
                makepath=True,
            )
            moved = cluster.model_copy(update={"serverset_path": path})
            report = await detect_leader(moved, probe, state="ACTIVE")
            assert report.leader is None
            assert report.by_source == {"vars": active, "zookeeper": other}
            assert report.problems == [f"/vars names {active}, ZooKeeper names {other}"]
        finally:
            zk.delete("/leader-test", recursive=True)
            zk.stop()
            zk.close()

        # Everything stopped: nobody leads, the logs say so too.
        results = await ssh.run(
            {s.host: "sudo systemctl stop aurora-scheduler" for s in cluster.schedulers}
        )
        assert all(r.ok for r in results.values()), results
        await asyncio.to_thread(wait_for, lambda: set(sb.states().values()) == {"DOWN"}, 20)
        report = await detect_leader(cluster, probe, ssh, state="ACTIVE")
        assert report.leader is None
        assert report.by_source == {"vars": None, "zookeeper": None, "logs": None}
        assert all(row["vars"].startswith("down:") for row in report.table.values())
        assert all(row["logs"] == "stopped" for row in report.table.values())
        assert "no leader" in report.problems


async def test_two_leaders_in_vars(fakes: Fakes, probe: HttpVarsProbe) -> None:
    ports = {
        "sched-1": await fakes.vars_server("LEADER_AWAITING_REGISTRATION"),
        "sched-2": await fakes.vars_server("STORAGE_PREPARED"),
        "sched-3": await fakes.vars_server("LEADER_AWAITING_REGISTRATION"),
    }
    report = await detect_leader(fake_cluster(ports), probe)
    assert report.leader is None
    assert report.by_source == {"vars": None}
    assert report.problems[0] == "2 leaders in /vars: sched-1, sched-3"
    assert report.table["sched-2"] == {"vars": "follower (STORAGE_PREPARED)"}


async def test_black_holed_scheduler_costs_one_timeout(fakes: Fakes, probe: HttpVarsProbe) -> None:
    ports = {
        "sched-1": await fakes.vars_server("LEADER_AWAITING_REGISTRATION"),
        "sched-2": await fakes.black_hole(),
        "sched-3": await fakes.vars_server("STORAGE_PREPARED"),
        "sched-4": free_port(),  # nothing listens
    }
    started = time.monotonic()
    report = await detect_leader(fake_cluster(ports), probe, vars_timeout=1.0)
    took = time.monotonic() - started
    assert took < 1.5, took
    assert report.leader == "sched-1" and report.problems == []
    assert report.table["sched-2"]["vars"] == "down: no answer within 1s"
    assert report.table["sched-4"]["vars"].startswith("down: unreachable")


async def test_zookeeper_down_is_reported_without_hanging(
    fakes: Fakes, probe: HttpVarsProbe
) -> None:
    ports = {"sched-1": await fakes.vars_server("LEADER_AWAITING_REGISTRATION")}
    cluster = fake_cluster(ports, zk=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    report = await detect_leader(cluster, probe, zk_timeout=1.0)
    took = time.monotonic() - started
    assert took < 2.5, took
    assert report.leader is None
    assert report.by_source == {"vars": "sched-1", "zookeeper": None}
    assert report.table["sched-1"]["zookeeper"].startswith("unavailable:")
    assert report.problems[0].startswith("ZooKeeper unavailable:")
    assert "unavailable" in table_rows(report.table)


def _sequence(node: str) -> int:
    return int(node.rsplit("-", 1)[1])


@pytest.mark.zookeeper
async def test_disabled_sandbox_leader_from_candidates_only(
    make_sandbox: Callable[..., RunningSandbox], zookeeper: str, probe: HttpVarsProbe
) -> None:
    """Disabled schedulers never register, so never write `member_`: ZooKeeper's leader
    is the candidate with the lowest sequence (docs/aurora-notes.md §F4)."""
    sb = make_sandbox("--zk", zookeeper)
    cluster = sb.cluster
    # As prep.disable leaves the env file: a Mesos master nobody runs, no deadline near.
    disable = (
        "sed -i -e 's|^MESOS_MASTER=.*|MESOS_MASTER=\"zk://localhost:1111/mesos/master\"|' "
        "-e 's|^EXTRA_SCHEDULER_ARGS=.*|EXTRA_SCHEDULER_ARGS=\""
        "-max_registration_delay=360mins -reconciliation_initial_delay=365days\"|' -- "
    )
    zk = KazooClient(hosts=zookeeper, timeout=5)
    zk.start(timeout=5)
    try:

        def children() -> list[str]:
            try:
                return list(zk.get_children(cluster.serverset_path))
            except NoNodeError:  # no scheduler has campaigned yet
                return []

        async with SshExecutor(cluster) as ssh:

            async def on_all(command: Callable[[Scheduler], str]) -> None:
                results = await ssh.run({s.host: command(s) for s in cluster.schedulers})
                assert all(r.ok for r in results.values()), results

            await on_all(lambda _: "sudo systemctl stop aurora-scheduler")
            await asyncio.to_thread(wait_for, lambda: children() == [], 20)
            await on_all(lambda s: disable + shlex.quote(cluster.path(s, "env_file") or ""))
            await on_all(lambda _: "sudo systemctl start aurora-scheduler")

            def settled() -> bool:
                # A follower shows STORAGE_PREPARED a moment before its candidate exists.
                states = sorted(sb.states().values())
                return len([n for n in children() if "-lock-" in n]) == 3 and states == [
                    "LEADER_AWAITING_REGISTRATION",
                    *["STORAGE_PREPARED"] * 2,
                ]

            await asyncio.to_thread(wait_for, settled, 30)
            nodes = children()
            assert not [n for n in nodes if n.startswith("member_")], nodes
            lock_nodes = [n for n in nodes if "-lock-" in n]
            lowest = min(lock_nodes, key=_sequence)
            # The candidate's data is the scheduler's advertised host: its IP address.
            datum = zk.get(f"{cluster.serverset_path}/{lowest}")[0].decode()
            leader = next(s.host for s in cluster.schedulers if s.connect_address == datum)
            assert sb.leaders("LEADER_AWAITING_REGISTRATION") == [leader]

            report = await detect_leader(cluster, probe, ssh)
        text = table_rows(report.table)
        assert report.problems == [], text
        assert report.leader == leader
        assert report.by_source == {"vars": leader, "zookeeper": leader, "logs": leader}
        assert report.table[leader] == {
            "vars": "leader",
            "zookeeper": f"leader ({datum})",
            "logs": "leader",
        }
        for host in (h for h in report.table if h != leader):
            address = cluster.scheduler(host).connect_address
            assert report.table[host] == {
                "vars": "follower (STORAGE_PREPARED)",
                "zookeeper": f"candidate ({address})",
                "logs": "follower",
            }
        assert "member_" not in text
    finally:
        zk.stop()
        zk.close()


@contextlib.contextmanager
def election(zookeeper: str) -> Iterator[tuple[KazooClient, str]]:
    """A fresh serverset path in the real ZooKeeper, and a client to write candidates."""
    path = f"/candidates/{uuid.uuid4()}"
    zk = KazooClient(hosts=zookeeper, timeout=5)
    zk.start(timeout=5)
    try:
        yield zk, path
    finally:
        zk.delete(path, recursive=True)
        zk.stop()
        zk.close()


def candidate(zk: KazooClient, path: str, prefix: str, host: str) -> str:
    """An ephemeral sequential candidate node holding `host`; returns its name."""
    node: str = zk.create(
        f"{path}/{prefix}", host.encode(), ephemeral=True, sequence=True, makepath=True
    )
    return node.rsplit("/", 1)[1]


@pytest.mark.zookeeper
async def test_lowest_sequence_leads_whatever_the_names(
    fakes: Fakes, probe: HttpVarsProbe, zookeeper: str
) -> None:
    """Candidate names sort by their uuid, not their sequence: only the sequence counts."""
    ports = {
        "sched-1": await fakes.vars_server("STORAGE_PREPARED"),
        "sched-2": await fakes.vars_server("LEADER_AWAITING_REGISTRATION"),
        "sched-3": await fakes.vars_server("STORAGE_PREPARED"),
    }
    with election(zookeeper) as (zk, path):
        cluster = fake_cluster(ports, zk=zookeeper).model_copy(update={"serverset_path": path})
        # Created in this order (sequences 0, 1, 2): by name, sched-1's node comes first,
        # sched-2's (the lowest sequence) last.
        created: dict[str, str] = {}
        for host, digit in (("sched-2", "f"), ("sched-1", "0"), ("sched-3", "8")):
            fake_uuid = "-".join(digit * n for n in (8, 4, 4, 4, 12))
            created[host] = candidate(zk, path, f"_c_{fake_uuid}-lock-", host)
        names = sorted(zk.get_children(path))
        assert names == [created["sched-1"], created["sched-3"], created["sched-2"]]
        assert min(names, key=_sequence) == created["sched-2"]

        report = await detect_leader(cluster, probe)
        text = table_rows(report.table)
        assert report.problems == [], text
        assert report.leader == "sched-2"
        assert report.by_source == {"vars": "sched-2", "zookeeper": "sched-2"}
        assert {h: row["zookeeper"] for h, row in report.table.items()} == {
            "sched-1": "candidate",
            "sched-2": "leader",
            "sched-3": "candidate",
        }

        # The leader's session ends: the next sequence (sched-1's) leads in ZooKeeper,
        # while /vars still names sched-2, so no leader is agreed.
        zk.delete(f"{path}/{created['sched-2']}")
        report = await detect_leader(cluster, probe)
        assert report.leader is None
        assert report.by_source == {"vars": "sched-2", "zookeeper": "sched-1"}
        assert report.table["sched-2"]["zookeeper"] == "not in election"
        assert report.problems == ["/vars names sched-2, ZooKeeper names sched-1"]


@pytest.mark.zookeeper
async def test_legacy_singleton_candidates_are_read_too(
    fakes: Fakes, probe: HttpVarsProbe, zookeeper: str
) -> None:
    """The pre-Curator client (-zk_use_curator=false, up to 0.18) names its candidates
    `singleton_candidate_<seq>`: the lowest sequence leads there too."""
    ports = {
        "sched-1": await fakes.vars_server("STORAGE_PREPARED"),
        "sched-2": await fakes.vars_server("LEADER_AWAITING_REGISTRATION"),
    }
    with election(zookeeper) as (zk, path):
        cluster = fake_cluster(ports, zk=zookeeper).model_copy(update={"serverset_path": path})
        for host in ("sched-2", "sched-1"):
            candidate(zk, path, "singleton_candidate_", host)
        report = await detect_leader(cluster, probe)
        assert report.problems == [], table_rows(report.table)
        assert report.by_source == {"vars": "sched-2", "zookeeper": "sched-2"}
        assert report.table["sched-1"]["zookeeper"] == "candidate"


# ------------------------------------------- advertised addresses, journald, preflight
#
# What packaged hosts really show: election candidates and member_ nodes holding the
# advertised IP address (apache/aurora JettyServerModule.java, CuratorSingletonService.java
# `leaderSelector.setId(endpoint.getHostName())`), and a log only journald has.

SUDO = """#!/bin/bash
# Stand-in for `sudo -n CMD...`: refuses without -n; asks for a password when the host
# directory holds `sudo-needs-password`.
[ "$1" = -n ] || { echo "sudo: this stand-in only runs sudo -n" >&2; exit 1; }
shift
if [ -e sudo-needs-password ]; then echo "sudo: a password is required" >&2; exit 1; fi
exec "$@"
"""

JOURNALCTL = r"""#!/bin/bash
# Stand-in for `journalctl -u UNIT -n N --no-pager -o cat`: the unit's journal is
# journal/UNIT in `short` format (`Dec 01 22:17:00 host ident[pid]: message`); -o cat
# prints the messages alone. With `not-in-adm` in the host directory it shows nothing but
# the hint real journalctl gives a user outside adm/systemd-journal (on the stream the
# file names), exit 0.
unit= lines=10 output=short
while [ $# -gt 0 ]; do
  case $1 in
    -u) unit=${2%.service}; shift ;;
    -n) lines=$2; shift ;;
    -o) output=$2; shift ;;
    --no-pager) ;;
    *) echo "journalctl: unrecognized option '$1'" >&2; exit 1 ;;
  esac
  shift
done
if [ -e not-in-adm ]; then
  hint="Hint: You are currently not seeing messages from other users and the system.
      Users in groups 'adm', 'systemd-journal' can see all messages.
      Pass -q to turn off this notice."
  if [ "$(cat not-in-adm)" = stdout ]; then echo "$hint"; else echo "$hint" >&2; fi
  echo "-- No entries --"
  exit 0
fi
[ -f "journal/$unit" ] || { echo "-- No entries --"; exit 0; }
if [ "$output" = cat ]; then
  tail -n "$lines" -- "journal/$unit" | sed -E 's/^[A-Z][a-z]{2} [0-9]{2} [0-9:]{8} [^ ]+ [^:]+: //'
else
  tail -n "$lines" -- "journal/$unit"
fi
"""


class LocalRemote:
    """Each host's command run by bash on this machine, as SSH runs it on the host: in
    the host's own directory, with stand-ins for sudo and journalctl first on PATH."""

    def __init__(self, root: Path, hosts: list[str]) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for name, text in (("sudo", SUDO), ("journalctl", JOURNALCTL)):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        for h in hosts:
            self.home(h).mkdir(parents=True, exist_ok=True)
        self.commands: dict[str, str] = {}

    def home(self, host: str) -> Path:
        return self.root / "hosts" / host

    def journal(self, host: str, unit: str, lines: list[str]) -> None:
        (self.home(host) / "journal").mkdir(exist_ok=True)
        (self.home(host) / "journal" / unit).write_text("\n".join(lines) + "\n")

    async def run(
        self, commands: Mapping[str, str], *, timeout: float | None = None
    ) -> dict[str, HostResult]:
        self.commands = dict(commands)

        async def one(host: str, command: str) -> HostResult:
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                command,
                cwd=self.home(host),
                env={**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}"},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
            return HostResult(
                host, proc.returncode, out.decode(), err.decode(), time.monotonic() - started
            )

        done = await asyncio.gather(*(one(h, c) for h, c in commands.items()))
        return {r.host: r for r in done}


def short(host: str, message: str, ident: str = "aurora-scheduler-startup[4242]") -> str:
    """A journald `short` line around a logback line (src/main/resources/logback.xml:
    `%.-1level%date{MMdd HH:mm:ss.SSS} [%thread, %logger{0}] %message`)."""
    return f"Dec 01 22:17:00 {host} {ident}: {message}"


def logback(level: str, logger: str, message: str, thread: str = "main") -> str:
    return f"{level}1201 22:17:00.123 [{thread}, {logger}] {message} "


def transition(old: str, new: str, refused: bool = False) -> str:
    """commons/.../util/StateMachine.java logTransitions()."""
    tail = " (not allowed)" if refused else ""
    return logback(
        "I", "StateMachine", f"SchedulerLifecycle state machine transition {old} -> {new}{tail}"
    )


# SchedulerLifecycle.java: what a scheduler logs as it starts, leads and dies.
STARTING = [
    transition("IDLE", "PREPARING_STORAGE"),
    transition("PREPARING_STORAGE", "STORAGE_PREPARED"),
]
LEADING = [
    *STARTING,
    transition("STORAGE_PREPARED", "LEADER_AWAITING_REGISTRATION"),
    logback("I", "SchedulerLifecycle", "Elected as leading scheduler!"),
]


def addressed_cluster(
    ports: dict[str, int], addresses: dict[str, str], zk: str, path: str, **extra: Any
) -> Cluster:
    """Schedulers with an address each (127.0.0.x: every one of them is loopback)."""
    return Cluster.model_validate(
        {
            "name": "fake",
            "aurora_name": "fake",
            "zk_endpoints": zk,
            "serverset_path": path,
            "schedulers": [
                {"host": h, "address": addresses[h], "http_port": p} for h, p in ports.items()
            ],
            **extra,
        }
    )


def test_classify_log_journald_and_logback_lines() -> None:
    """With or without the journald prefix; a refused transition changes nothing; a
    transition into ACTIVE leads even when the election line has left the tail."""
    elected = LEADING[-1]
    assert classify_log("\n".join(short("s1", x) for x in LEADING)) == "leader"
    assert classify_log("\n".join(LEADING)) == "leader"
    refused = transition("ACTIVE", "STORAGE_PREPARED", refused=True)
    assert classify_log("\n".join([elected, short("s1", refused)])) == "leader"
    assert classify_log(transition("LEADER_AWAITING_REGISTRATION", "ACTIVE")) == "leader"
    lost = logback("E", "SchedulerLifecycle", "Lost leadership, committing suicide.")
    assert classify_log("\n".join([elected, short("s1", lost)])) == "follower"
    dead = short("s1", transition("ACTIVE", "DEAD"))
    assert classify_log("\n".join([elected, lost, dead])) == "stopped"
    assert classify_log("\n".join([elected, dead, *STARTING])) == "follower"
    assert classify_log("-- No entries --") == "unknown"


def test_log_command_quotes_and_prefers_the_file() -> None:
    cluster = Cluster.model_validate(
        {
            "name": "c",
            "aurora_name": "c",
            "scheduler_unit": "aurora-scheduler.service",
            "schedulers": [
                {"host": "s1"},
                {"host": "s2", "scheduler_log": "/var/log/upstart/aurora-scheduler.log"},
            ],
        }
    )
    s1, s2 = cluster.schedulers
    assert cluster.scheduler_log is None
    assert log_command(cluster, s1, 50) == (
        "sudo -n journalctl -u aurora-scheduler.service -n 50 --no-pager -o cat"
    )
    assert log_command(cluster, s2, 50) == "tail -n 50 -- /var/log/upstart/aurora-scheduler.log"
    with pytest.raises(ValueError, match="scheduler_unit"):
        Cluster.model_validate(
            {
                **cluster.model_dump(),
                "scheduler_unit": "aurora; reboot",
                "schedulers": [{"host": "s"}],
            }
        )


@pytest.mark.zookeeper
async def test_candidates_holding_addresses_match_by_address(
    fakes: Fakes, probe: HttpVarsProbe, zookeeper: str
) -> None:
    """The packaged case: candidates hold each scheduler's IP, its `address`."""
    addresses = {"sched-1": "127.0.0.2", "sched-2": "127.0.0.3", "sched-3": "127.0.0.4"}
    states = {"sched-1": "STORAGE_PREPARED", "sched-2": "LEADER_AWAITING_REGISTRATION"}
    states["sched-3"] = "STORAGE_PREPARED"
    ports = {h: await fakes.vars_server(states[h], addresses[h]) for h in addresses}
    with election(zookeeper) as (zk, path):
        cluster = addressed_cluster(ports, addresses, zookeeper, path)
        for host in ("sched-2", "sched-3", "sched-1"):  # sched-2 lowest
            candidate(zk, path, f"_c_{uuid.uuid4()}-lock-", addresses[host])
        report = await detect_leader(cluster, probe)
        text = table_rows(report.table)
        assert report.problems == [], text
        assert report.abstained == {}
        assert report.leader == "sched-2"
        assert report.by_source == {"vars": "sched-2", "zookeeper": "sched-2"}
        assert {h: row["zookeeper"] for h, row in report.table.items()} == {
            "sched-1": "candidate (127.0.0.2)",
            "sched-2": "leader (127.0.0.3)",
            "sched-3": "candidate (127.0.0.4)",
        }
        assert "leader (127.0.0.3)" in text


@pytest.mark.zookeeper
async def test_member_holding_an_address(
    fakes: Fakes, probe: HttpVarsProbe, zookeeper: str
) -> None:
    """An ACTIVE leader's member_ JSON carries the same advertised host: its IP."""
    addresses = {"sched-1": "127.0.0.2", "sched-2": "127.0.0.3"}
    ports = {
        "sched-1": await fakes.vars_server("STORAGE_PREPARED", addresses["sched-1"]),
        "sched-2": await fakes.vars_server("ACTIVE", addresses["sched-2"]),
    }
    with election(zookeeper) as (zk, path):
        cluster = addressed_cluster(ports, addresses, zookeeper, path)
        candidate(zk, path, f"_c_{uuid.uuid4()}-lock-", "127.0.0.2")  # a stale lowest
        candidate(zk, path, f"_c_{uuid.uuid4()}-lock-", "127.0.0.3")
        member = '{"serviceEndpoint":{"host":"127.0.0.3","port":8081},"status":"ALIVE"}'
        candidate(zk, path, "member_", member)
        report = await detect_leader(cluster, probe, state="ACTIVE")
        assert report.problems == [], table_rows(report.table)
        assert report.by_source == {"vars": "sched-2", "zookeeper": "sched-2"}
        assert report.table["sched-2"]["zookeeper"] == "leader (member_ 127.0.0.3)"
        assert report.table["sched-1"]["zookeeper"] == "candidate (127.0.0.2)"


@pytest.mark.zookeeper
async def test_candidate_matched_by_resolving_the_host(
    fakes: Fakes, probe: HttpVarsProbe, zookeeper: str
) -> None:
    """`localhost` resolves to 127.0.0.1, which neither scheduler has as its address."""
    addresses = {"localhost": "127.0.0.5", "sched-2": "127.0.0.6"}
    ports = {
        "localhost": await fakes.vars_server("LEADER_AWAITING_REGISTRATION", "127.0.0.5"),
        "sched-2": await fakes.vars_server("STORAGE_PREPARED", "127.0.0.6"),
    }
    with election(zookeeper) as (zk, path):
        cluster = addressed_cluster(ports, addresses, zookeeper, path)
        candidate(zk, path, "singleton_candidate_", "127.0.0.1")
        candidate(zk, path, "singleton_candidate_", "127.0.0.6")
        report = await detect_leader(cluster, probe)
        assert report.problems == [], table_rows(report.table)
        assert report.by_source == {"vars": "localhost", "zookeeper": "localhost"}
        assert report.table["localhost"]["zookeeper"] == "leader (127.0.0.1)"
        assert report.table["sched-2"]["zookeeper"] == "candidate (127.0.0.6)"


@pytest.mark.zookeeper
async def test_identical_candidates_abstain_and_the_others_agree(
    fakes: Fakes, probe: HttpVarsProbe, zookeeper: str, tmp_path: Path
) -> None:
    """Debian's getLocalHost() gives 127.0.1.1 on every host: ZooKeeper cannot tell the
    schedulers apart and abstains; /vars and the journal still agree. A datum that
    matches no scheduler abstains too."""
    addresses = {"sched-1": "127.0.0.2", "sched-2": "127.0.0.3", "sched-3": "127.0.0.4"}
    ports = {
        h: await fakes.vars_server(
            "LEADER_AWAITING_REGISTRATION" if h == "sched-3" else "STORAGE_PREPARED", a
        )
        for h, a in addresses.items()
    }
    remote = LocalRemote(tmp_path, list(addresses))
    for host in addresses:
        lines = LEADING if host == "sched-3" else STARTING
        remote.journal(host, "aurora-scheduler", [short(host, x) for x in lines])
    with election(zookeeper) as (zk, path):
        cluster = addressed_cluster(ports, addresses, zookeeper, path)
        nodes = [candidate(zk, path, f"_c_{uuid.uuid4()}-lock-", "127.0.1.1") for _ in range(3)]
        report = await detect_leader(cluster, probe, remote)
        text = table_rows(report.table)
        assert report.problems == [], text
        assert report.leader == "sched-3"
        assert report.by_source == {"vars": "sched-3", "zookeeper": None, "logs": "sched-3"}
        reason = "cannot tell: every candidate is 127.0.1.1"
        assert report.abstained == {"zookeeper": reason}
        assert all(row["zookeeper"] == reason for row in report.table.values())
        assert report.table["sched-3"]["logs"] == "leader"
        assert f"zookeeper {reason}" in text

        for node in nodes:
            zk.delete(f"{path}/{node}")
        candidate(zk, path, f"_c_{uuid.uuid4()}-lock-", "192.0.2.7")
        report = await detect_leader(cluster, probe, remote)
        reason = "cannot tell: 192.0.2.7 matches no scheduler in the cluster file"
        assert report.problems == [], table_rows(report.table)
        assert report.leader == "sched-3"
        assert report.abstained == {"zookeeper": reason}
        assert report.table["sched-1"]["zookeeper"] == reason


async def test_journal_is_the_default_log(
    fakes: Fakes, probe: HttpVarsProbe, tmp_path: Path
) -> None:
    """No scheduler_log: the unit's journal, through `sudo -n journalctl`."""
    ports = {
        "sched-1": await fakes.vars_server("STORAGE_PREPARED"),
        "sched-2": await fakes.vars_server("LEADER_AWAITING_REGISTRATION"),
    }
    remote = LocalRemote(tmp_path, list(ports))
    remote.journal("sched-1", "aurora-scheduler", [short("sched-1", x) for x in STARTING])
    remote.journal("sched-2", "aurora-scheduler", [short("sched-2", x) for x in LEADING])
    report = await detect_leader(fake_cluster(ports), probe, remote)
    assert report.problems == [], table_rows(report.table)
    assert report.by_source == {"vars": "sched-2", "logs": "sched-2"}
    assert {h: row["logs"] for h, row in report.table.items()} == {
        "sched-1": "follower",
        "sched-2": "leader",
    }
    assert remote.commands["sched-1"].startswith("sudo -n journalctl -u aurora-scheduler ")


async def test_journal_permission_hint_and_sudo_password_are_unreadable(
    fakes: Fakes, probe: HttpVarsProbe, tmp_path: Path
) -> None:
    """Exit 0 with journalctl's hint (on either stream) is no log; neither is sudo's
    password prompt. With no host readable, the logs are a problem."""
    ports = {h: await fakes.vars_server("STORAGE_PREPARED") for h in ("s1", "s2", "s3")}
    ports["s4"] = await fakes.vars_server("LEADER_AWAITING_REGISTRATION")
    remote = LocalRemote(tmp_path, list(ports))
    for host in ports:
        remote.journal(host, "aurora-scheduler", [short(host, x) for x in LEADING])
    (remote.home("s1") / "not-in-adm").write_text("stderr")
    (remote.home("s2") / "not-in-adm").write_text("stdout")
    (remote.home("s3") / "sudo-needs-password").touch()
    (remote.home("s4") / "sudo-needs-password").touch()
    report = await detect_leader(fake_cluster(ports), probe, remote)
    hint = (
        "unreadable: Hint: You are currently not seeing messages from other users and the system."
    )
    assert {h: row["logs"] for h, row in report.table.items()} == {
        "s1": hint,
        "s2": hint,
        "s3": "unreadable: sudo: a password is required",
        "s4": "unreadable: sudo: a password is required",
    }
    assert report.leader is None
    assert "the logs unavailable: no host's log could be read" in report.problems


async def test_scheduler_log_set_reads_the_file(
    fakes: Fakes, probe: HttpVarsProbe, tmp_path: Path
) -> None:
    """Without scheduler_log, the journal; with the cluster's (upstart's, say) that file
    is tailed instead, and a scheduler's own wins over the cluster's."""
    ports = {
        "sched-1": await fakes.vars_server("LEADER_AWAITING_REGISTRATION"),
        "sched-2": await fakes.vars_server("STORAGE_PREPARED"),
    }
    remote = LocalRemote(tmp_path, list(ports))
    remote.journal("sched-1", "aurora-scheduler", LEADING)  # sched-2's journal is empty
    report = await detect_leader(fake_cluster(ports), probe, remote)
    assert report.problems == [], table_rows(report.table)
    assert {h: row["logs"] for h, row in report.table.items()} == {
        "sched-1": "leader",
        "sched-2": "unknown",
    }
    assert all("journalctl" in c for c in remote.commands.values())

    upstart = tmp_path / "upstart" / "aurora-scheduler.log"
    upstart.parent.mkdir()
    upstart.write_text("\n".join(["noise"] * 300 + LEADING) + "\n")
    own = tmp_path / "own.log"
    own.write_text("\n".join(STARTING) + "\n")
    cluster = Cluster.model_validate(
        {
            **fake_cluster(ports).model_dump(),
            "scheduler_log": str(upstart),
            "schedulers": [
                {"host": "sched-1", "address": "127.0.0.1", "http_port": ports["sched-1"]},
                {
                    "host": "sched-2",
                    "address": "127.0.0.1",
                    "http_port": ports["sched-2"],
                    "scheduler_log": str(own),
                },
            ],
        }
    )
    report = await detect_leader(cluster, probe, remote)
    assert report.problems == [], table_rows(report.table)
    assert report.by_source == {"vars": "sched-1", "logs": "sched-1"}
    assert {h: row["logs"] for h, row in report.table.items()} == {
        "sched-1": "leader",
        "sched-2": "follower",
    }
    assert remote.commands == {
        "sched-1": f"tail -n 200 -- {upstart}",
        "sched-2": f"tail -n 200 -- {own}",
    }


@pytest.mark.zookeeper
async def test_one_reader_across_polls(fakes: Fakes, probe: HttpVarsProbe, zookeeper: str) -> None:
    """A ZkReader keeps its connection between reads, sees what changed, and closes."""
    ports = {"sched-1": await fakes.vars_server("LEADER_AWAITING_REGISTRATION")}
    with election(zookeeper) as (zk, path):
        cluster = fake_cluster(ports, zk=zookeeper).model_copy(update={"serverset_path": path})
        reader = ZkReader(zookeeper, path)
        try:
            report = await detect_leader(cluster, probe, zk=reader)
            assert report.by_source == {"vars": "sched-1", "zookeeper": None}
            assert report.table["sched-1"]["zookeeper"] == "not in election"
            session = reader.session_id
            assert session is not None
            candidate(zk, path, f"_c_{uuid.uuid4()}-lock-", "sched-1")
            report = await detect_leader(cluster, probe, zk=reader)
            assert report.problems == [], table_rows(report.table)
            assert report.by_source == {"vars": "sched-1", "zookeeper": "sched-1"}
            assert reader.session_id == session
        finally:
            reader.close()
        assert reader.session_id is None


async def test_reader_of_a_closed_port_is_unavailable() -> None:
    hosts = f"127.0.0.1:{free_port()}"
    reader = ZkReader(hosts, "/aurora/scheduler")
    try:
        with pytest.raises(ZkUnavailable, match=f"^no connection to {hosts} within 1s$"):
            await asyncio.to_thread(reader.read, 1.0)
    finally:
        reader.close()


async def test_check_sources(fakes: Fakes, probe: HttpVarsProbe, tmp_path: Path) -> None:
    """Before the first stop: /vars needs only well-formed endpoints (nothing answers
    here), ZooKeeper must answer, and one host's log must be readable."""
    ports = {"sched-1": free_port(), "sched-2": free_port()}
    cluster = fake_cluster(ports, zk=f"127.0.0.1:{free_port()}")
    remote = LocalRemote(tmp_path, list(ports))
    for host in ports:
        (remote.home(host) / "sudo-needs-password").touch()
    got = await check_sources(cluster, probe, remote, zk_timeout=1.0)
    assert got == {
        "vars": None,
        "zookeeper": f"ZooKeeper unavailable: no connection to {cluster.zk_endpoints} within 1s",
        "logs": "no host's log readable (sched-1: sudo: a password is required)",
    }
    (remote.home("sched-2") / "sudo-needs-password").unlink()
    no_zk = cluster.model_copy(update={"zk_endpoints": None})
    assert await check_sources(no_zk, probe, remote) == {"vars": None, "logs": None}


def test_data_that_match_several_schedulers_cannot_tell() -> None:
    """Matching without ZooKeeper: the sandbox's way (every address 127.0.0.1) makes an
    address datum ambiguous; a name still tells; so does an address a host resolves to."""
    cluster = fake_cluster({"s1": 1, "s2": 2, "s3": 3})
    resolved = {"s3": frozenset({"10.0.0.3"})}
    ambiguous = interpret(ZkView("127.0.0.1", "candidate", ["127.0.0.1", "s2"]), cluster, {})
    reason = "cannot tell: 127.0.0.1 matches s1, s2, s3"
    assert (ambiguous.leader, ambiguous.cannot_tell) == (None, reason)
    assert ambiguous.cells == {"s1": reason, "s2": "candidate", "s3": reason}
    assert ambiguous.candidates == [("127.0.0.1", None), ("s2", "s2")]

    two = interpret(ZkView("S2", "candidate", ["S2", "s1", "s2."]), cluster, {})
    assert two.cannot_tell == "cannot tell: 2 candidates are S2"

    told = interpret(ZkView("10.0.0.3", "member", ["s1", "10.0.0.3"]), cluster, resolved)
    assert (told.leader, told.cannot_tell) == ("s3", None)
    assert told.cells == {
        "s1": "candidate",
        "s2": "not in election",
        "s3": "leader (member_ 10.0.0.3)",
    }
    assert told.candidates == [("s1", "s1"), ("10.0.0.3", "s3")]
