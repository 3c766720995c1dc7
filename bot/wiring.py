"""The composition root: the one place that builds the engine and its adapters.

`serve`, `socket`, `console`, `put-back`, `demo`, the benchmarks and the tests all get
their engine here, so every front drives the same thing: the SSH remote (`bot.ssh`), the
/vars probe (`bot.probes`), the leader ports (`bot.leader`: detector and preflight's
sources check), the Mesos master (`bot.mesos`), the store over Redis (`runbook.store`)
and the retention the settings give. The engine itself opens nothing (runbook.ports).

A cluster's ports are made by `connect` when its restore first needs them and closed
when the restore ends or the engine closes (`Engine.release`, `Engine.close`). Among
them is the cluster's one ZooKeeper client (`ClusterProbe.zk`, a `bot.leader.ZkReader`):
it connects on the first read of the serverset (preflight's sources check, then every
poll of restore.leader and restore.failover), and is reused until the ports close,
instead of a kazoo session per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bot.leader import ZkReader, check_sources, detector
from bot.mesos import running_tasks
from bot.probes import HttpVarsProbe
from bot.redis_server import EmbeddedRedis
from bot.settings import Settings
from bot.ssh import SshExecutor
from runbook.actions import Timing
from runbook.choice import chooser
from runbook.clusters import Cluster
from runbook.engine import DEFAULT_RETENTION_SECONDS, Connect, Engine, MayApprove
from runbook.ports import LeaderReport, Remote, VarsProbe
from runbook.procedures import PROCEDURES
from runbook.step import Procedure
from runbook.store import Store

__all__ = [
    "ClusterProbe",
    "build_engine",
    "check_leader_sources",
    "connect",
    "detect_leader",
    "open_store",
    "store_url",
]


class ClusterProbe(HttpVarsProbe):
    """One cluster's /vars probe, which also holds the cluster's ZooKeeper client
    (None without `zk_endpoints`): both belong to the cluster's ports and close with
    them."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__()
        self.zk: ZkReader | None = None
        if cluster.zk_endpoints:
            self.zk = ZkReader(cluster.zk_endpoints, cluster.serverset_path)

    async def close(self) -> None:
        await super().close()
        if self.zk is not None:
            await asyncio.to_thread(self.zk.close)  # kazoo's stop joins its threads


def connect(cluster: Cluster) -> tuple[Remote, VarsProbe]:
    """A cluster's ports: SSH to its schedulers and their /vars (with its ZooKeeper)."""
    return SshExecutor(cluster), ClusterProbe(cluster)


def _zk_of(probe: VarsProbe) -> ZkReader | None:
    """The cluster's ZooKeeper client when the probe is ours; a probe handed in by a
    test (a recording fake) has none, and each read then opens and closes one."""
    return probe.zk if isinstance(probe, ClusterProbe) else None


async def detect_leader(
    cluster: Cluster, probe: VarsProbe, remote: Remote, state: str
) -> LeaderReport:
    """The engine's leader port: every configured source, ZooKeeper through the
    cluster's one client."""
    return await detector(cluster, probe, remote, state, zk=_zk_of(probe))


async def check_leader_sources(
    cluster: Cluster, probe: VarsProbe, remote: Remote
) -> dict[str, str | None]:
    """Preflight's port: whether each configured leader source can be read."""
    return await check_sources(cluster, probe, remote, zk=_zk_of(probe))


def build_engine(
    store: Store,
    clusters: dict[str, Cluster],
    *,
    settings: Settings | None = None,
    connect: Connect = connect,
    timing: Timing | None = None,
    may_approve: MayApprove | None = None,
    worker: str | None = None,
    lease_ms: int | None = None,
    procedures: Mapping[str, Procedure] | None = None,
) -> Engine:
    """The engine with every adapter: leader detection from every source, preflight's
    sources check, the Mesos master's tasks, and the settings' retention. `connect`
    makes a cluster's ports (tests hand in recording wrappers of this module's)."""
    extra: dict[str, Any] = {}
    if may_approve is not None:
        extra["may_approve"] = may_approve
    if worker:
        extra["worker"] = worker
    if lease_ms is not None:
        extra["lease_ms"] = lease_ms
    return Engine(
        store,
        clusters,
        connect,
        timing=timing or Timing(),
        detect=detect_leader,
        sources=check_leader_sources,
        mesos=running_tasks,
        procedures=procedures if procedures is not None else PROCEDURES,
        # Which procedure a new restore follows: the cluster file's, or by the version
        # its schedulers report on /vars (runbook.choice).
        choose=chooser(HttpVarsProbe),
        retention_seconds=(
            settings.retention_seconds if settings is not None else DEFAULT_RETENTION_SECONDS
        ),
        **extra,
    )


def store_url(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """REDIS_URL when set (nothing is started), else an embedded server in the data
    directory (the caller stops it)."""
    if settings.redis_url:
        return settings.redis_url, None
    server = EmbeddedRedis(settings.data_dir)
    return server.start(), server


@contextlib.asynccontextmanager
async def open_store(url: str) -> AsyncIterator[Store]:
    """A `Store` over a client of its own at `url`, closed on leaving."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        yield Store(client)
    finally:
        await client.aclose()
