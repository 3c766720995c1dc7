"""Leader detection over 5 and 50 fake schedulers on loopback, one of them black-holed.

    .venv/bin/python benchmarks/leader.py [--zk HOST:PORT]

The fakes are the tests' (`tests.test_leader.Fakes`): each serves /vars from an
in-process aiohttp app; the black hole accepts and never answers. The wall time should
be close to one vars timeout, not one per host.

With `--zk` (a ZooKeeper you run, e.g. Debian's on loopback), also: polls of a serverset
whose candidates hold IP addresses (so every scheduler's name is resolved), each poll
opening its own client against one `ZkReader` kept across the polls. Name resolution
is bounded by the ZooKeeper timeout (3s): a resolver that drops queries costs up to that.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.leader import ZkReader, detect_leader  # noqa: E402
from bot.probes import HttpVarsProbe  # noqa: E402
from tests.test_leader import Fakes, fake_cluster  # noqa: E402

TIMEOUT = 1.0
POLLS = 10


async def vars_only(fakes: Fakes, probe: HttpVarsProbe) -> None:
    hole = await fakes.black_hole()
    for n in (5, 50):
        ports = {"sched-1": await fakes.vars_server("LEADER_AWAITING_REGISTRATION")}
        for i in range(2, n):
            ports[f"sched-{i}"] = await fakes.vars_server("STORAGE_PREPARED")
        ports[f"sched-{n}"] = hole
        cluster = fake_cluster(ports)
        for _ in range(3):
            started = time.perf_counter()
            report = await detect_leader(cluster, probe, vars_timeout=TIMEOUT)
            took = time.perf_counter() - started
            assert report.leader == "sched-1", report.problems
            print(
                f"{n:3d} schedulers (1 black-holed): {took:.3f}s "
                f"= {took / TIMEOUT:.2f} x the {TIMEOUT:g}s vars timeout"
            )


async def with_zookeeper(fakes: Fakes, probe: HttpVarsProbe, hosts: str) -> None:
    from kazoo.client import KazooClient

    n = 50
    ports = {"sched-1": await fakes.vars_server("LEADER_AWAITING_REGISTRATION")}
    for i in range(2, n + 1):
        ports[f"sched-{i}"] = await fakes.vars_server("STORAGE_PREPARED")
    zk = KazooClient(hosts=hosts, timeout=5)
    zk.start(timeout=5)
    try:
        # Candidates holding the host names (nothing to resolve), then IP addresses: the
        # fakes all share 127.0.0.1, so 10.0.0.x matches none of them and ZooKeeper
        # abstains, after every name was resolved (and failed to).
        for kind, datum in (("names", "sched-{}"), ("IPs", "10.0.0.{}")):
            path = f"/leader-benchmark/{uuid.uuid4()}"
            for i in range(1, n + 1):
                zk.create(
                    f"{path}/_c_{uuid.uuid4()}-lock-",
                    datum.format(i).encode(),
                    ephemeral=True,
                    sequence=True,
                    makepath=True,
                )
            cluster = fake_cluster(ports, zk=hosts).model_copy(update={"serverset_path": path})
            reader = ZkReader(hosts, path)
            try:
                for label, kwargs in (("a client per poll", {}), ("one ZkReader", {"zk": reader})):
                    started = time.perf_counter()
                    for _ in range(POLLS):
                        report = await detect_leader(cluster, probe, **kwargs)
                        assert report.leader == "sched-1", report.problems
                    took = (time.perf_counter() - started) / POLLS
                    print(
                        f"{n} schedulers, {n} candidates holding {kind}, {label}: {took:.3f}s a poll"
                    )
            finally:
                reader.close()
    finally:
        zk.delete("/leader-benchmark", recursive=True)
        zk.stop()
        zk.close()


async def main(zk_hosts: str | None) -> None:
    fakes = Fakes()
    probe = HttpVarsProbe()
    try:
        await vars_only(fakes, probe)
        if zk_hosts:
            await with_zookeeper(fakes, probe, zk_hosts)
    finally:
        await probe.close()
        await fakes.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zk", metavar="HOST:PORT", help="a ZooKeeper to poll too")
    asyncio.run(main(parser.parse_args().zk))
