"""restore.leader: leader detection against the real sandbox, a real ZooKeeper and
loopback fakes (a second leader, a black hole, a closed ZooKeeper port)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from kazoo.client import KazooClient

from bot.leader import classify_log, detect_leader, render_table
from bot.probes import HttpVarsProbe
from bot.ssh import SshExecutor
from runbook.clusters import Cluster
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
