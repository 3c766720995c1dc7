"""The scheduled readiness check (bot.readiness_schedule): two bot processes (two
`build()`s over one Redis) against the sandbox and the Slack double, ticked with
simulated times: one check per period across both, posted on the first run, on a break
and on its repair, quiet while nothing changes and everything passes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import readiness_schedule, settings as bot_settings
from bot.readiness_schedule import ReadinessSchedule, digest, period_after
from bot.redis_server import EmbeddedRedis
from bot.slack_app import Bot, build, start_checking
from runbook.clusters import ClusterFileError, parse_clusters
from runbook.readiness import Check
from tests.conftest import RunningSandbox
from tests.slack_double import SlackDouble

pytestmark = pytest.mark.timeout(120)

CHANNEL = "C0READY"
HOUR = 3_600_000


def test_the_readiness_table_is_validated() -> None:
    base = {"schedulers": [{"host": "scheduler-1"}]}
    west = parse_clusters({"clusters": {"west": base}}, "c.toml")["west"]
    assert west.readiness is None
    ok = {**base, "readiness": {"channel": CHANNEL}}
    got = parse_clusters({"clusters": {"west": ok}}, "c.toml")["west"].readiness
    assert got is not None and got.every == "7d" and got.every_ms == 7 * 24 * HOUR
    for table, said in (
        ({"channel": "#ops"}, "readiness.channel: not a Slack channel id"),
        ({"channel": CHANNEL, "every": "weekly"}, "readiness.every: not a duration"),
        ({"channel": CHANNEL, "every": "0s"}, "must be longer than 0s"),
        ({"every": "1d"}, "readiness.channel: Field required"),
    ):
        with pytest.raises(ClusterFileError, match=said):
            parse_clusters({"clusters": {"west": {**base, "readiness": table}}}, "c.toml")
    assert period_after(None, HOUR) == 0
    assert period_after(5 * HOUR + 1, HOUR) == 6


def test_the_digest_is_what_the_table_shows() -> None:
    ok = [Check("room for the log archive", "s1", True, "12 GB free"), Check("x", "s2", False, "a")]
    same = [
        Check("room for the log archive", "s1", True, "11 GB free"),
        Check("x", "s2", False, "a"),
    ]
    assert digest(ok) == digest(same)
    newer = [Check("newest backup decodes (b-2)", "cluster", True)]
    assert digest([Check("newest backup decodes (b-1)", "cluster", True)]) == digest(newer)
    assert digest(ok) != digest([ok[0], Check("x", "s2", False, "b")])
    assert digest(ok) != digest([ok[0], Check("x", "s2", True, "a")])
    assert digest(ok) != digest([ok[0], Check("x", "s3", False, "a")])


class World:
    def __init__(self, double: SlackDouble, bots: list[Bot], sandbox: RunningSandbox) -> None:
        self.double = double
        self.bots = bots
        self.sandbox = sandbox
        self.schedules = [ReadinessSchedule(b.front) for b in bots]

    def posts(self) -> list[str]:
        return [m["text"] for m in self.double.messages(CHANNEL)]

    async def both(self, now: int) -> list[str]:
        """Both processes tick at `now`, at the same time: the clusters checked."""
        done = await asyncio.gather(
            *(b.front.call(s.tick(now)) for b, s in zip(self.bots, self.schedules, strict=True))
        )
        return [name for names in done for name in names]


@pytest.fixture
async def world(sandbox: RunningSandbox, tmp_path: Path) -> AsyncIterator[World]:
    clusters = tmp_path / "clusters.toml"
    clusters.write_text(
        (sandbox.dir / "clusters.toml").read_text()
        + f'\n[clusters.sandbox.readiness]\nchannel = "{CHANNEL}"\nevery = "1h"\n'
    )
    double = SlackDouble()
    api = await double.start()
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    settings = bot_settings.load(
        {
            "SLACK_BOT_TOKEN": double.token,
            "SLACK_SIGNING_SECRET": "readiness-secret",
            "SLACK_API_URL": api,
            "AURORA_RESTORE_CLUSTERS": str(clusters),
        }
    )
    bots = [build(settings, url, worker=name) for name in ("bot-a", "bot-b")]
    try:
        yield World(double, bots, sandbox)
    finally:
        for bot in bots:
            await bot.close()
        server.stop()
        await double.stop()


async def test_one_check_per_period_posted_on_first_run_break_and_repair(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []
    real = readiness_schedule.check_cluster

    async def counted(*args: Any, **kw: Any) -> Any:
        runs.append(1)
        return await real(*args, **kw)

    monkeypatch.setattr(readiness_schedule, "check_cluster", counted)
    t0 = 10_000 * HOUR

    # The first run: one check across both processes, posted although all pass.
    assert await world.both(t0) == ["sandbox"] and len(runs) == 1
    posts = world.posts()
    assert len(posts) == 1 and "0 fail" in posts[0] and "PASS env file understood" in posts[0]

    # Within the period: nothing runs.
    assert await world.both(t0 + HOUR - 1) == [] and len(runs) == 1

    # The next period, nothing changed and everything passes: checked once, quiet.
    assert await world.both(t0 + HOUR) == ["sandbox"] and len(runs) == 2
    assert len(world.posts()) == 1

    # A break between runs: the aurora client moved away on scheduler-2.
    paths = world.sandbox.info.hosts[1].paths
    client = paths.bin_dir / paths.admin_name
    aside = client.with_name(client.name + ".moved")
    client.rename(aside)
    assert await world.both(t0 + 2 * HOUR) == ["sandbox"] and len(runs) == 3
    posts = world.posts()
    assert len(posts) == 2
    assert "FAIL aurora client on PATH  scheduler-2" in posts[1] and "0 fail" not in posts[1]

    # Still broken, unchanged: a failure is posted every period.
    assert await world.both(t0 + 3 * HOUR) == ["sandbox"] and len(runs) == 4
    assert len(world.posts()) == 3

    # Repaired: posted once (the digest changed), then quiet again.
    aside.rename(client)
    assert await world.both(t0 + 4 * HOUR) == ["sandbox"] and len(runs) == 5
    posts = world.posts()
    assert len(posts) == 4 and "0 fail" in posts[3]
    assert await world.both(t0 + 5 * HOUR) == ["sandbox"] and len(runs) == 6
    assert len(world.posts()) == 4

    # A check that raises: one line with the reason, in the channel.
    async def broken(*args: Any, **kw: Any) -> Any:
        runs.append(1)
        raise RuntimeError("the bastion is down\nsecond line")

    monkeypatch.setattr(readiness_schedule, "check_cluster", broken)
    assert await world.both(t0 + 6 * HOUR) == ["sandbox"] and len(runs) == 7
    last = world.posts()[-1]
    assert last == (
        ":x: The scheduled readiness check of `sandbox` could not run:"
        " RuntimeError: the bastion is down"
    )
    assert len(world.posts()) == 5


async def test_the_loops_of_two_processes_run_each_period_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both processes' loops, running, with every = 1s and a check that always fails
    (so every run posts): each run's `last` (the store's clock, written by the winner)
    is a second or more after the previous one, whichever process ran it."""
    (tmp_path / "key").write_text("not a key\n")
    clusters = tmp_path / "clusters.toml"
    clusters.write_text(
        f"""
[clusters.west]
[clusters.west.ssh]
key = "{tmp_path / "key"}"
known_hosts = "{tmp_path / "key"}"
[clusters.west.readiness]
channel = "{CHANNEL}"
every = "1s"
[[clusters.west.schedulers]]
host = "scheduler-1"
address = "127.0.0.1"
"""
    )
    lasts: list[int] = []

    async def failing(cluster: Any, remote: Any, probe: Any, **kw: Any) -> list[Check]:
        for port in (remote, probe):
            close = getattr(port, "close", None)
            if close is not None:
                await close()
        return [Check("ssh reached, host key checked", "scheduler-1", False, "refused")]

    real_run = ReadinessSchedule.run

    async def run(self: ReadinessSchedule, cluster: Any) -> bool:
        lasts.append(int(await self.redis.get(readiness_schedule.last_key(cluster.name))))
        return await real_run(self, cluster)

    monkeypatch.setattr(readiness_schedule, "check_cluster", failing)
    monkeypatch.setattr(ReadinessSchedule, "run", run)
    double = SlackDouble()
    api = await double.start()
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    settings = bot_settings.load(
        {
            "SLACK_BOT_TOKEN": double.token,
            "SLACK_SIGNING_SECRET": "readiness-secret",
            "SLACK_API_URL": api,
            "AURORA_RESTORE_CLUSTERS": str(clusters),
        }
    )
    bots = [build(settings, url, worker=name) for name in ("bot-a", "bot-b")]
    loops = [start_checking(bot) for bot in bots]
    try:
        deadline = time.monotonic() + 30
        while len(double.messages(CHANNEL)) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        for loop in loops:
            loop.cancel()
        for bot in bots:
            await bot.close()
        server.stop()
        await double.stop()
    posts = [m["text"] for m in double.messages(CHANNEL)]
    assert len(posts) >= 4 and all("FAIL ssh reached" in p for p in posts), posts
    assert len(lasts) == len(posts)
    assert all(b - a >= 1000 for a, b in zip(lasts, lasts[1:], strict=False)), lasts
