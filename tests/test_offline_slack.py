"""A whole offline restore (Aurora 0.22, `recovery-tool`) driven only through Slack: a
real `aurora-restore serve`, signed requests, the Slack double, the 0.22 sandbox over SSH.
The cluster file says `procedure = "auto"`: the version on /vars picks the offline
procedure. recovery-tool runs once, on one host; no online recovery command runs; one
ACTIVE leader; the files are as they were; the transcripts land in the thread."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.redis_server import EmbeddedRedis
from runbook.store import Store
from tests.conftest import RunningSandbox
from tests.drive import file_sums, kills
from tests.slack_double import SlackDouble, slash_command_body
from tests.test_offline_restore import ONLINE_RECOVERY, runs, wrap_tools
from tests.test_slack_app import ALICE, BOB, CHANNEL, SECRET, AppProcess, Thread, post, until

pytestmark = pytest.mark.timeout(400)

OFFLINE_ORDER = [
    "offline.stop",
    "offline.archive",
    "offline.wipe",
    "offline.init",
    "offline.choose",
    "offline.recover",
    "offline.start_rehydrated",
    "offline.start_quorum",
    "offline.start_rest",
]
DESTRUCTIVE = {"offline.wipe", "offline.recover"}


@pytest.fixture
async def world22(make_sandbox, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    sandbox = make_sandbox("--aurora-version", "0.22")
    text = (sandbox.dir / "clusters.toml").read_text()
    clusters = tmp_path / "clusters.toml"
    clusters.write_text(text.replace("users = []", f'users = ["{ALICE}", "{BOB}"]'))
    double = SlackDouble()
    api = await double.start()
    store_server = EmbeddedRedis(tmp_path / "redis")
    redis_url = store_server.start()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api,
        "REDIS_URL": redis_url,
        "AURORA_RESTORE_CLUSTERS": str(clusters),
        "APP_LOG": str(tmp_path / "app.log"),
    }
    apps: list[AppProcess] = []
    try:
        yield {
            "double": double,
            "env": env,
            "apps": apps,
            "redis_url": redis_url,
            "sandbox": sandbox,
        }
    finally:
        for a in apps:
            await a.stop(signal.SIGKILL)
        await double.stop()
        store_server.stop()


async def test_an_offline_restore_driven_only_by_slack(world22: dict[str, Any]) -> None:
    double: SlackDouble = world22["double"]
    sandbox: RunningSandbox = world22["sandbox"]
    from tests.conftest import wait_for

    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1, timeout=60)
    log = wrap_tools(sandbox)
    before = file_sums(sandbox.cluster)
    app = await AppProcess(world22["env"]).start()
    world22["apps"].append(app)

    async def send(body: bytes) -> str:
        status, text, _took = await post(app.url, body)
        assert status == 200, text
        return text

    await send(slash_command_body(text="sandbox", user_id=ALICE, channel_id=CHANNEL))
    root = await until(
        lambda: [
            m
            for m in double.messages(channel=CHANNEL)
            if "Aurora restore" in json.dumps(m.get("blocks"))
        ],
        what="root message",
    )
    root_ts = root[0]["ts"]
    redis = aioredis.Redis.from_url(world22["redis_url"])
    store = Store(redis)
    rid = (await store.restore_ids())[0]
    rec = await store.load(rid)
    assert rec is not None and rec.meta["procedure"] == "offline"
    assert rec.meta["procedure_version"] == "0.22.0"

    async def steps() -> str:
        r = await store.load(rid)
        return str(
            {k: (v["status"], v.get("summary", "")) for k, v in r.steps.items()} if r else None
        )

    thread = Thread(double, root_ts, send, describe=steps)
    for sid in OFFLINE_ORDER:
        if sid == "offline.start_rehydrated":
            # The optional review window: skipped through the modal, as a team in a hurry.
            await thread.skip("offline.review_disable", ALICE, "no review this time")
        await thread.approve(sid, BOB if sid in DESTRUCTIVE else ALICE)

    for _ in range(900):
        rec = await store.load(rid)
        assert rec is not None
        if rec.status != "running":
            break
        await asyncio.sleep(0.2)
    assert rec is not None and rec.status == "succeeded", await steps()

    tool_runs = [r for r in runs(log) if r[2] == "recovery-tool"]
    assert len(tool_runs) == 1 and tool_runs[0][1] == rec.data["rehydrate"]
    assert not [r for r in runs(log) if any(o in r[3] for o in ONLINE_RECOVERY)]
    assert len(sandbox.leaders("ACTIVE")) == 1
    assert (
        rec.data["kills_observed"]["observed"]
        == rec.data["kills"]["predicted"]
        == len(kills(sandbox.dir))
    )
    assert file_sums(sandbox.cluster) == before
    await until(
        lambda: (
            len(
                [
                    f
                    for f in double.files
                    if f.thread_ts == root_ts and f.name.startswith("aurora-restore-")
                ]
            )
            >= 3
        ),
        timeout=30,
        what="transcripts",
    )
    doc = json.loads(
        next(f for f in double.files if f.name == f"aurora-restore-{rid}.json").content
    )
    assert doc["procedure"] == "offline" and doc["procedure_version"] == "0.22.0"
    skipped = [s for s in rec.meta["plan"] if rec.steps[s]["status"] == "skipped"]
    assert "offline.review_disable" in skipped
    assert double.invalid == []
    await redis.aclose()
