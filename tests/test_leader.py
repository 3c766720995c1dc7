"""restore.leader: leader detection against the real sandbox, a real ZooKeeper and
loopback fakes (a second leader, a black hole, a closed ZooKeeper port, election candidates
without a member_ node)."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from aiohttp import web
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from bot.leader import classify_log, detect_leader, render_table
from bot.probes import HttpVarsProbe
from bot.ssh import SshExecutor
from runbook.clusters import Cluster, Scheduler
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

    async def vars_server(self, state: str) -> int:
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
        await web.TCPSite(runner, "127.0.0.1", port).start()
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
        report = await detect_leader(cluster, probe, ssh, state="ACTIVE", log_path=SANDBOX_LOG)
        text = render_table(report)
        assert report.problems == [], text
        assert report.leader == active
        assert report.by_source == {"vars": active, "zookeeper": active, "logs": active}
        assert report.table[active] == {
            "vars": "leader",
            "zookeeper": "leader (member_)",
            "logs": "leader",
        }
        others = [h for h in report.table if h != active]
        assert all(report.table[h]["zookeeper"] == "candidate" for h in others)
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
        report = await detect_leader(cluster, probe, ssh, state="ACTIVE", log_path=SANDBOX_LOG)
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
    assert "unavailable" in render_table(report)


def _sequence(node: str) -> int:
    return int(node.rsplit("-", 1)[1])


@pytest.mark.zookeeper
async def test_disabled_sandbox_leader_from_candidates_only(
    make_sandbox: Callable[..., RunningSandbox], zookeeper: str, probe: HttpVarsProbe
) -> None:
    """Disabled schedulers never register, so never write `member_`: ZooKeeper's leader
    is the candidate with the lowest sequence (aurora.md §4.2)."""
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
            leader = zk.get(f"{cluster.serverset_path}/{lowest}")[0].decode()
            assert sb.leaders("LEADER_AWAITING_REGISTRATION") == [leader]

            report = await detect_leader(cluster, probe, ssh, log_path=SANDBOX_LOG)
        text = render_table(report)
        assert report.problems == [], text
        assert report.leader == leader
        assert report.by_source == {"vars": leader, "zookeeper": leader, "logs": leader}
        assert report.table[leader] == {"vars": "leader", "zookeeper": "leader", "logs": "leader"}
        for host in (h for h in report.table if h != leader):
            assert report.table[host] == {
                "vars": "follower (STORAGE_PREPARED)",
                "zookeeper": "candidate",
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
        text = render_table(report)
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
        assert report.problems == [], render_table(report)
        assert report.by_source == {"vars": "sched-2", "zookeeper": "sched-2"}
        assert report.table["sched-1"]["zookeeper"] == "candidate"
