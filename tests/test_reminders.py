"""Waiting approvals: the pure rules of runbook/approvals.py, and the reminders of
bot/reminders.py posted by two bot processes (two `build()`s over one Redis) into the
restore's thread on the Slack double: exactly one reminder per interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import settings as bot_settings
from bot.redis_server import EmbeddedRedis
from bot.slack_app import Bot, build, start_reminding
from handlers.shapes import Origin
from runbook.approvals import (
    duration_text,
    expired,
    interval_number,
    reminder_due,
    waited_text,
    waiting_for,
)
from runbook.engine import Actor
from runbook.store import RestoreRecord
from tests.conftest import free_port
from tests.slack_double import SlackDouble

pytestmark = pytest.mark.timeout(120)

CHANNEL, TEAM = "C0OPS", "T0AURORA"
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
MIN = 60_000


# ------------------------------------------------------------------ the rules


def record(steps: dict[str, dict[str, Any]], status: str = "running") -> RestoreRecord:
    return RestoreRecord("r1", {"plan": list(steps), "cluster": "west"}, status, "", steps)


def test_waiting_for_takes_the_last_awaiting_event_of_each_waiting_step() -> None:
    rec = record(
        {
            "prep.stop": {"status": "succeeded", "updated_at": 5},
            "log.wipe": {"status": "awaiting", "updated_at": 999},
            "restore.commit": {"status": "awaiting", "updated_at": 777},
        }
    )
    events = [
        {"type": "awaiting_approval", "step": "prep.stop", "at": 1},
        {"type": "awaiting_approval", "step": "log.wipe", "at": 100},
        {"type": "refused", "step": "log.wipe", "at": 150},
        {"type": "awaiting_approval", "step": "log.wipe", "at": 200},
    ]
    assert waiting_for(rec, events) == [("log.wipe", 200), ("restore.commit", 777)]
    assert waiting_for(rec) == [("log.wipe", 999), ("restore.commit", 777)]
    assert waiting_for(record(rec.steps, status="aborted"), events) == []


def test_a_reminder_is_due_once_per_interval() -> None:
    since = 1_000_000
    assert not reminder_due(since + 10 * MIN - 1, since, None, 10 * MIN)
    assert reminder_due(since + 10 * MIN, since, None, 10 * MIN)
    assert not reminder_due(since + 15 * MIN, since, since + 10 * MIN, 10 * MIN)
    assert reminder_due(since + 20 * MIN, since, since + 10 * MIN, 10 * MIN)
    # A reminder from before the step asked again does not count.
    assert reminder_due(since + 10 * MIN, since, since - 1, 10 * MIN)
    assert interval_number(since + 25 * MIN, since, 10 * MIN) == 2
    assert interval_number(since - 1, since, 10 * MIN) == 0


def test_expiry_refuses_with_one_line_naming_the_setting() -> None:
    since = 1_000_000
    assert expired(since, since + 60 * MIN, 60 * MIN, "1h") is None
    assert expired(since, since + 72 * MIN, 60 * MIN, "1h") == (
        "this step has waited 1h 12m for approval (longer than approvals.expire_after = 1h): "
        "its checks run again and it asks again"
    )
    assert waited_text(since, since + 12 * MIN + 5000) == "waiting for approval for 12m"
    assert [duration_text(ms) for ms in (0, 45_000, 3_600_000, 90_000_000)] == [
        "0s",
        "45s",
        "1h",
        "1d 1h",
    ]


# ------------------------------------------------------------------ two bot processes


def placeholder(path: Path) -> Path:
    """A file that exists but is no SSH key or known host: the restore may start (the
    engine refuses one whose files are missing) and its first SSH step fails."""
    if not path.exists():
        path.write_text("not a key\n")
    return path


def cluster_file(path: Path, remind_after: str) -> Path:
    path.write_text(
        f"""
[clusters.west]
channels = ["{CHANNEL}"]
[clusters.west.ssh]
key = "{placeholder(path.parent / "no-key")}"
known_hosts = "{placeholder(path.parent / "known_hosts")}"
[clusters.west.approvals]
remind_after = "{remind_after}"
[clusters.west.approvers]
users = ["{ALICE}", "{BOB}"]
groups = ["aurora-oncall"]
[[clusters.west.schedulers]]
host = "scheduler-1"
address = "127.0.0.1"
ssh_port = {free_port()}
http_port = {free_port()}
"""
    )
    return path


class Bots:
    def __init__(self, double: SlackDouble, bots: list[Bot]) -> None:
        self.double = double
        self.bots = bots
        self.rid = ""
        self.root_ts = ""
        self.since = 0

    def reminders(self) -> list[str]:
        return [
            m["text"]
            for m in self.double.messages(CHANNEL, self.root_ts)
            if m["text"].startswith(":alarm_clock:")
        ]


async def two_bots(tmp_path: Path, remind_after: str) -> AsyncIterator[Bots]:
    double = SlackDouble()
    double.usergroup_handles = {"aurora-oncall": "S0ONCALL"}
    double.usergroups = {"S0ONCALL": [CAROL, ALICE]}
    api = await double.start()
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    settings = bot_settings.load(
        {
            "SLACK_BOT_TOKEN": double.token,
            "SLACK_SIGNING_SECRET": "reminders-secret",
            "SLACK_API_URL": api,
            "AURORA_RESTORE_CLUSTERS": str(cluster_file(tmp_path / "c.toml", remind_after)),
        }
    )
    bots = [build(settings, url, worker=name) for name in ("bot-a", "bot-b")]
    a = bots[0]
    try:
        env = Bots(double, bots)
        env.rid = await a.front.call(a.engine.start("west", None, Actor(ALICE)))
        where = Origin(team=TEAM, enterprise="", user=ALICE, channel=CHANNEL)
        env.root_ts = await a.front.call(a.front.open_thread(env.rid, where))
        # log.wipe (destructive) waits for approval.
        store = a.engine.store
        await a.front.call(
            store.transition(
                env.rid,
                "log.wipe",
                ("pending",),
                {"status": "awaiting"},
                {"type": "awaiting_approval", "risk": "destructive"},
            )
        )
        rec = await a.front.call(store.load(env.rid))
        events = await a.front.call(store.events(env.rid))
        assert rec is not None
        [(sid, env.since)] = waiting_for(rec, events)
        assert sid == "log.wipe"
        yield env
    finally:
        for bot in bots:
            await bot.close()
        server.stop()
        await double.stop()


@pytest.fixture
async def bots_1m(tmp_path: Path) -> AsyncIterator[Bots]:
    async for env in two_bots(tmp_path, "1m"):
        yield env


async def test_two_processes_post_one_reminder_per_interval(bots_1m: Bots) -> None:
    env = bots_1m
    a, b = env.bots

    async def both(now: int) -> int:
        posted = await asyncio.gather(
            a.front.call(a.reminders.tick(now)), b.front.call(b.reminders.tick(now))
        )
        return sum(posted)

    assert await both(env.since + MIN - 1) == 0
    assert await both(env.since + MIN) == 1
    assert await both(env.since + MIN + 30_000) == 0  # the same interval
    assert await both(env.since + 2 * MIN + 1) == 1
    texts = env.reminders()
    assert len(texts) == 2
    first = texts[0]
    assert "`log.wipe` has waited 1m for approval" in first
    for mention in (f"<@{ALICE}>", f"<@{BOB}>", "<!subteam^S0ONCALL>"):
        assert mention in first
    # Destructive: the second approver is anyone but the requester (Alice).
    second = first.split("someone other than", 1)[1]
    assert second.startswith(f" <@{ALICE}> approves it: ")
    named = second.split("approves it: ", 1)[1]
    assert f"<@{BOB}>" in named and f"<@{CAROL}>" in named and ALICE not in named


async def test_once_approved_nothing_more_is_posted(bots_1m: Bots) -> None:
    env = bots_1m
    a, b = env.bots
    await a.front.call(
        a.engine.store.transition(
            env.rid, "log.wipe", ("awaiting",), {"status": "skipped"}, {"type": "skipped"}
        )
    )
    for bot in (a, b):
        assert await bot.front.call(bot.reminders.tick(env.since + 5 * MIN)) == 0
    assert env.reminders() == []


@pytest.fixture
async def bots_1s(tmp_path: Path) -> AsyncIterator[Bots]:
    async for env in two_bots(tmp_path, "1s"):
        yield env


async def test_the_loops_of_two_processes_never_post_one_interval_twice(bots_1s: Bots) -> None:
    """Both processes' reminder loops, running: with remind_after = 1s each reminder
    says how many whole seconds the step has waited, which is its interval number, so a
    reminder posted twice for one interval would show the same text twice."""
    env = bots_1s
    loops = [start_reminding(bot) for bot in env.bots]
    try:
        deadline = time.monotonic() + 60
        while len(env.reminders()) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        for loop in loops:
            loop.cancel()
    texts = env.reminders()
    assert len(texts) >= 4, texts
    waited = [t.split("has waited ", 1)[1].split(" ", 1)[0] for t in texts]
    assert len(set(waited)) == len(waited), waited
