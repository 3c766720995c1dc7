"""The composition root (bot.wiring), the settings read once, one ZooKeeper client per
restore, and the error tree: each adapter turns its library's real error, provoked
against a real server, into the runbook.errors class that says what failed."""

from __future__ import annotations

import logging
import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot import wiring
from bot.leader import ZkReader, detector
from bot.mesos import running_tasks
from bot.probes import HttpVarsProbe
from bot.settings import Settings, SettingsError
from bot.ssh import SshExecutor
from runbook import errors
from runbook.clusters import Cluster
from runbook.engine import Actor, Engine
from runbook.store import Store
from tests.conftest import ROOT, free_port
from tests.openssh import OpenSshServer, openssh_server

# ------------------------------------------------------------------ the environment

ENV_READ = re.compile(r"\bos\.environ\b|\bos\.getenv\b|\bgetenv\(|\bfrom os import [^\n]*environ")


def env_reads(root: Path) -> list[str]:
    """`file:line` of every read of the environment in runbook/, bot/ and handlers/,
    outside bot/settings.py (the sandbox, a simulated cluster, is exempt)."""
    found = []
    for package in ("runbook", "bot", "handlers"):
        for path in sorted((root / package).rglob("*.py")):
            if path.relative_to(root).as_posix() == "bot/settings.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if ENV_READ.search(line):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_only_the_settings_read_the_environment(tmp_path: Path) -> None:
    assert env_reads(ROOT) == []
    # The search finds what it looks for.
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot/x.py").write_text("import os\nA = os.environ.get('X')\nB = os.getenv('Y')\n")
    (tmp_path / "bot/settings.py").write_text("import os\nC = os.environ\n")
    assert env_reads(tmp_path) == [
        "bot/x.py:2: A = os.environ.get('X')",
        "bot/x.py:3: B = os.getenv('Y')",
    ]


def test_settings_are_read_once_and_handed_down(tmp_path: Path) -> None:
    env = {
        "AURORA_RESTORE_RETENTION": "2d",
        "AURORA_RESTORE_DATA": str(tmp_path / "data"),
        "AURORA_RESTORE_UPDATES_PER_MINUTE": "180",
        "AURORA_RESTORE_UPDATES_BURST": "1",
        "AURORA_RESTORE_CLUSTERS": "/etc/clusters.toml",
        "REDIS_URL": "redis://store:6379/0",
        "PORT": "eighty",  # only serve needs it: the console does not stop on it
    }
    s = Settings.from_env(env)
    assert (s.retention_seconds, s.data_dir, s.redis_url) == (
        2 * 86400,
        tmp_path / "data",
        "redis://store:6379/0",
    )
    assert (s.updates_per_minute, s.updates_burst, s.clusters_path) == (
        180.0,
        1,
        "/etc/clusters.toml",
    )
    engine = wiring.build_engine(Store(None), {}, settings=s)
    assert engine.retention_seconds == 2 * 86400
    assert Settings.from_env({}).retention_seconds == 90 * 86400
    with pytest.raises(SettingsError, match="^AURORA_RESTORE_UPDATES_BURST must be"):
        Settings.from_env({"AURORA_RESTORE_UPDATES_BURST": "many"})


def test_the_engine_gets_every_adapter() -> None:
    engine = wiring.build_engine(Store(None), {}, worker="w-1", lease_ms=1234)
    assert engine.detect is wiring.detect_leader
    assert engine.sources is wiring.check_leader_sources
    assert engine.mesos is running_tasks
    assert engine.connect is wiring.connect
    assert (engine.worker, engine.lease_ms) == ("w-1", 1234)


# ------------------------------------------------------------ one ZooKeeper client


def ssh_files(directory: Path) -> dict[str, str]:
    """A key and a known_hosts file that exist (no host is ever reached with them)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("id", "known_hosts"):
        (directory / name).write_text("unused\n")
    return {"key": str(directory / "id"), "known_hosts": str(directory / "known_hosts")}


def zk_cluster(zookeeper: str, path: str, directory: Path) -> Cluster:
    """One scheduler nobody runs (its /vars and SSH are closed ports) and a serverset in
    the real ZooKeeper; alice may start restores from the console."""
    return Cluster.model_validate(
        {
            "name": "zk",
            "aurora_name": "zk",
            "zk_endpoints": zookeeper,
            "serverset_path": path,
            "approvers": {"console": ["alice"]},
            "ssh": ssh_files(directory),
            "schedulers": [
                {
                    "host": "sched-1",
                    "address": "127.0.0.1",
                    "http_port": free_port(),
                    "ssh_port": free_port(),
                }
            ],
        }
    )


def sessions(zookeeper: str) -> set[str]:
    """The client sessions ZooKeeper holds now (its `cons` four-letter word)."""
    host, port = zookeeper.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"cons")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return set(re.findall(r"sid=(0x[0-9a-f]+)", b"".join(chunks).decode()))


@pytest.mark.zookeeper
async def test_one_zookeeper_client_across_polls(zookeeper: str, tmp_path: Path) -> None:
    cluster = zk_cluster(zookeeper, f"/aurora/scheduler/{uuid.uuid4()}", tmp_path)
    before = sessions(zookeeper)
    remote, probe = wiring.connect(cluster)
    seen: set[str] = set()
    try:
        for _ in range(4):
            report = await wiring.detect_leader(cluster, probe, remote, "ACTIVE")
            assert report.table["sched-1"]["zookeeper"] == "not in election"
            seen |= sessions(zookeeper) - before
        assert len(seen) == 1, seen
        assert await wiring.check_leader_sources(cluster, probe, None) == {  # type: ignore[arg-type]
            "vars": None,
            "zookeeper": None,
        }
        assert sessions(zookeeper) - before == seen  # preflight's check: the same client
    finally:
        await probe.close()
        await remote.close()
    assert not seen & sessions(zookeeper)  # closed with the ports

    # Without the cluster's client (the old way), every poll was a session of its own.
    plain = HttpVarsProbe()
    ids: set[int] = set()
    original = ZkReader._connect

    def counted(reader: ZkReader, timeout: float) -> object:
        client = original(reader, timeout)
        ids.add(id(client))
        return client

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ZkReader, "_connect", counted)
            for _ in range(3):
                await detector(cluster, plain, None, "ACTIVE")  # type: ignore[arg-type]
    finally:
        await plain.close()
    assert len(ids) == 3


@pytest.mark.zookeeper
async def test_the_zookeeper_client_closes_with_the_restore(
    zookeeper: str, one_store: Store, tmp_path: Path
) -> None:
    """A restore's ports, its ZooKeeper client among them, close when the restore ends
    (here: an abort) and when the engine closes; the next restore opens its own."""
    cluster = zk_cluster(zookeeper, f"/aurora/scheduler/{uuid.uuid4()}", tmp_path)
    engine = wiring.build_engine(one_store, {cluster.name: cluster})
    before = sessions(zookeeper)
    try:
        rid = await engine.start(cluster.name, None, Actor("alice"))
        # The engine's own way to a cluster's ports, as a step's context gets them.
        remote, probe = engine._ports(cluster)
        await wiring.check_leader_sources(cluster, probe, None)  # type: ignore[arg-type]
        first = sessions(zookeeper) - before
        assert len(first) == 1
        assert await engine.abort(rid, Actor("alice"), revert=False) == "aborted"
        assert not first & sessions(zookeeper)

        engine._ports(cluster)  # a later restore of the cluster: ports of its own
        assert engine._ports(cluster)[1] is not probe
        await wiring.check_leader_sources(cluster, engine._ports(cluster)[1], None)  # type: ignore[arg-type]
        second = sessions(zookeeper) - before
        assert len(second) == 1 and second != first
    finally:
        await engine.close()
    assert not (first | second) & sessions(zookeeper)


# ------------------------------------------------------------------ the error tree


def test_the_tree() -> None:
    for leaf, branch in [
        (errors.HostUnreachable, errors.RemoteError),
        (errors.AuthFailed, errors.RemoteError),
        (errors.HostKeyRejected, errors.RemoteError),
        (errors.CommandTimeout, errors.RemoteError),
        (errors.ZkUnavailable, errors.ElectionError),
        (errors.StoreScriptMissing, errors.StoreUnavailable),
    ]:
        assert issubclass(leaf, branch) and issubclass(branch, errors.RestoreError)
    from runbook import engine

    assert engine.Refused is errors.Refused
    e = errors.AuthFailed("sched-1", "permission denied", path="/etc/x")
    assert (str(e), e.reason) == ("sched-1: cannot read /etc/x: permission denied", e.reason)
    assert errors.reason_of(e) == "permission denied"
    assert errors.reason_of(KeyError()) == "KeyError"


@pytest.fixture
def openssh(tmp_path: Path) -> Iterator[OpenSshServer]:
    yield from openssh_server(tmp_path / "openssh")


async def test_ssh_errors_are_mapped(openssh: OpenSshServer, tmp_path: Path) -> None:
    cluster = openssh.cluster(command_timeout="1s")
    async with SshExecutor(cluster) as ssh:
        assert await ssh.read_file("openssh-1", "/etc/hostname") != b""
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)  # nobody writes: `cat` waits for ever
        with pytest.raises(errors.CommandTimeout, match="timed out after 1s"):
            await ssh.read_file("openssh-1", str(fifo), timeout=1)
        with pytest.raises(errors.RemoteError, match="No such file") as plain:
            await ssh.read_file("openssh-1", str(tmp_path / "nope"))
        assert type(plain.value) is errors.RemoteError
    openssh.authorized_keys.write_text("")  # the server no longer takes the key
    async with SshExecutor(cluster) as ssh:
        with pytest.raises(errors.AuthFailed, match="permission denied for") as denied:
            await ssh.read_file("openssh-1", "/etc/hostname")
        assert denied.value.host == "openssh-1"
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    async with SshExecutor(openssh.cluster(known_hosts=empty)) as ssh:
        with pytest.raises(errors.HostKeyRejected, match="is not in"):
            await ssh.read_file("openssh-1", "/etc/hostname")
    openssh.stop()  # a closed port
    async with SshExecutor(cluster) as ssh:
        with pytest.raises(errors.HostUnreachable, match="connection refused"):
            await ssh.read_file("openssh-1", "/etc/hostname")


async def test_httpx_errors_are_mapped() -> None:
    probe = HttpVarsProbe()
    port = free_port()  # nothing listens there
    try:
        with pytest.raises(errors.ProbeError, match="^unreachable: ConnectError$"):
            await probe.read("127.0.0.1", port, 2)
        assert await probe.vars({"sched-1": ("127.0.0.1", port)}, 2) == {
            "sched-1": "unreachable: ConnectError"
        }
    finally:
        await probe.close()
    master = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(errors.MesosUnavailable, match="ConnectError") as err:
        await running_tasks(master, "framework-1", timeout=2)
    assert isinstance(err.value, errors.RestoreError)


def test_kazoo_errors_are_mapped() -> None:
    hosts = f"127.0.0.1:{free_port()}"  # a ZooKeeper that is not running
    reader = ZkReader(hosts, "/aurora/scheduler")
    try:
        with pytest.raises(errors.ZkUnavailable, match=f"^no connection to {hosts} within 1s$"):
            reader.read(1.0)
    finally:
        reader.close()


async def test_redis_noscript_is_mapped(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.flushall()
        store = Store(client)
        assert await store.renew("r1", "s1", "w", 1000) is False  # a script: no such step
        await client.script_flush()  # the server forgets every script: loaded again, once
        assert await store.renew("r1", "s1", "w", 1000) is False

        class Forgetful:
            """The real server, made to forget each script right after loading it."""

            def __getattr__(self, name: str) -> object:
                return getattr(client, name)

            async def script_load(self, script: str) -> object:
                sha = await client.script_load(script)
                await client.script_flush()
                return sha

        with pytest.raises(errors.StoreScriptMissing, match="again right after loading it"):
            await Store(Forgetful()).renew("r1", "s1", "w", 1000)
    finally:
        await client.aclose()


# ------------------------------------------------------------------------ resume


async def test_resume_logs_each_restore_it_cannot_pick_up(
    one_store: Store, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    cluster = Cluster.model_validate(
        {
            "name": "west",
            "aurora_name": "west",
            "approvers": {"console": ["alice"]},
            "ssh": ssh_files(tmp_path),
            "schedulers": [{"host": "sched-1", "address": "127.0.0.1"}],
        }
    )
    first = wiring.build_engine(one_store, {"west": cluster})
    rid = await first.start("west", None, Actor("alice"))
    await first.close()
    # A bot restarted with a cluster file that no longer has the restore's cluster.
    restarted: Engine = wiring.build_engine(one_store, {})
    with caplog.at_level(logging.WARNING, logger="runbook.engine"):
        assert await restarted.resume() == [rid]
    lines = [r.getMessage() for r in caplog.records if r.name == "runbook.engine"]
    assert lines == [f"cannot resume restore {rid}: 'west'"]
    await restarted.close()
