"""The Slack app's error boundary, through the real signed-request path: the app's aiohttp
handler (signature, shape), Bolt with its middleware and listeners, the work loop, a
real Redis and the Slack double checking every call. The engine is made to fail where a
bug would: after a listener's ack (the engine call raises), and before it (a read the
listener makes to answer in its ack).

* after the ack: the person who clicked gets an ephemeral message in the restore's
  thread, "Something went wrong (ref XXXX); nothing more was done; the bot log has the
  details"; the reference is in exactly one log line, which names the error's type, and
  neither the message nor the log carries a traceback or the error's secret;
* before the ack (Bolt's `@app.error`): one log line with a reference; the slash
  command's reply, or the modal's error, says the same sentence; nothing else is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot import settings as bot_settings
from bot.redis_server import EmbeddedRedis
from bot.slack_app import Bot, build, web_app
from bot.slack_front import SOMETHING_WRONG, slack_key
from runbook.store import Store
from tests.slack_double import (
    SlackDouble,
    block_actions_body,
    sign,
    slash_command_body,
    view_submission_body,
)
from tests.test_slack_fuzz import (
    ALICE,
    BOB,
    CHANNEL,
    TEAM,
    Captured,
    RecordingRemote,
    _drain,
    _wait,
    cluster_file,
)

pytestmark = pytest.mark.timeout(180)

SECRET = "boundary-signing-secret-0123456789ab"
SECRET_IN_ERROR = "hunter2-do-not-show"


class App:
    """The bot in this process, served by its own aiohttp handler."""

    def __init__(self, bot: Bot, client: TestClient, double: SlackDouble, log: Captured) -> None:
        self.bot = bot
        self.client = client
        self.double = double
        self.log = log
        self.store = Store(bot.redis)

    async def post(self, body: bytes) -> tuple[int, str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
        resp = await self.client.post("/slack/events", data=body, headers=headers)
        return resp.status, await resp.text()

    async def call(self, coro: Any) -> Any:
        return await self.bot.front.call(coro)

    def lines_with(self, text: str) -> list[str]:
        return [line for line in self.log.lines if text in line]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    double = SlackDouble()
    api = await double.start()
    server = EmbeddedRedis(tmp_path / "redis")
    redis_url = server.start()
    captured = Captured()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    settings = bot_settings.load(
        {
            "SLACK_BOT_TOKEN": double.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": api,
            "AURORA_RESTORE_CLUSTERS": str(cluster_file(tmp_path / "clusters.toml")),
        }
    )
    bot = build(settings, redis_url, remote=RecordingRemote())
    client = TestClient(TestServer(web_app(bot, SECRET), access_log=None))
    await client.start_server()
    try:
        yield App(bot, client, double, captured)
    finally:
        root.removeHandler(captured)
        root.setLevel(old_level)
        await client.close()
        await bot.close()
        await double.stop()
        server.stop()


async def started(app: App) -> tuple[str, str]:
    """A restore of west started by ALICE in CHANNEL, its work settled: (rid, root ts)."""
    status, _ = await app.post(slash_command_body(text="west", user_id=ALICE, channel_id=CHANNEL))
    assert status == 200
    rid = (await _wait(lambda: app.call(app.store.restore_ids()), what="the restore"))[0]
    root = await _wait(
        lambda: _async(app.double.messages(channel=CHANNEL)), what="the root message"
    )
    await _drain(app.bot)
    return str(rid), str(root[0]["ts"])


async def _async(value: Any) -> Any:
    return value


def reference(text: str) -> str:
    return text.split("(ref ")[1].split(")")[0]


def assert_one_log_line(app: App, ref: str, kind: str) -> None:
    lines = app.lines_with(f"ref {ref}")
    assert len(lines) == 1 and kind in lines[0], lines
    assert not any("Traceback" in line for line in app.log.lines)
    assert not app.lines_with(SECRET_IN_ERROR)


async def test_a_failure_after_the_ack_is_told_in_the_restores_thread(app: App) -> None:
    rid, root_ts = await started(app)
    events = await app.call(app.store.events(rid))
    calls: list[str] = []

    async def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append("retry")
        raise RuntimeError(f"the engine broke (password={SECRET_IN_ERROR})")

    app.bot.engine.retry = broken  # type: ignore[method-assign]
    body = block_actions_body(
        user_id=BOB,
        action_id="retry",
        value=json.dumps({"rid": rid, "sid": "any.step"}),
        channel_id=CHANNEL,
        thread_ts=root_ts,
    )
    status, text = await app.post(body)
    assert (status, text) == (200, "")  # acked at once, before the engine call
    told = await _wait(
        lambda: _async([e for e in app.double.ephemerals if "(ref " in e["text"]]),
        what="the person told",
    )
    await _drain(app.bot)
    assert calls == ["retry"]
    assert len(told) == 1
    message = told[0]
    ref = reference(message["text"])
    assert message["text"] == SOMETHING_WRONG.format(ref=ref)
    assert "nothing more was done; the bot log has the details" in message["text"]
    assert (message["user"], message["channel"], message["thread_ts"]) == (BOB, CHANNEL, root_ts)
    assert_one_log_line(app, ref, "RuntimeError")
    # Nothing more was done: no event, no thread line.
    assert await app.call(app.store.events(rid)) == events
    assert app.double.invalid == []


async def test_a_failure_before_the_ack_answers_the_modal_with_a_reference(app: App) -> None:
    rid, _ = await started(app)
    await app.call(app.bot.redis.hset(slack_key(rid), "view:V0MODAL9", BOB))
    store = app.bot.engine.store
    real_load = store.load

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError(f"the store broke (password={SECRET_IN_ERROR})")

    store.load = broken  # type: ignore[method-assign]
    try:
        status, text = await app.post(
            view_submission_body(
                user_id=BOB,
                callback_id="delete_tasks",
                private_metadata=json.dumps({"rid": rid}),
                view_id="V0MODAL9",
                state_values={"ids": {"ids": {"type": "plain_text_input", "value": "x-1"}}},
            )
        )
    finally:
        store.load = real_load  # type: ignore[method-assign]
    assert status == 200
    reply = json.loads(text)
    assert reply["response_action"] == "errors"
    ref = reference(reply["errors"]["ids"])
    assert reply["errors"]["ids"] == SOMETHING_WRONG.format(ref=ref)
    await _drain(app.bot)
    assert_one_log_line(app, ref, "ConnectionError")
    assert not [e for e in app.double.ephemerals if ref in e["text"]]  # told once, in the modal


async def test_a_failure_before_the_ack_answers_the_command_with_a_reference(app: App) -> None:
    await started(app)

    class Broken(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise KeyError(f"the cluster file broke (password={SECRET_IN_ERROR})")

    engine = app.bot.engine
    real = engine.clusters
    engine.clusters = Broken(real)
    try:
        body = slash_command_body(text="east", user_id=ALICE, channel_id=CHANNEL, team_id=TEAM)
        status, text = await app.post(body)
    finally:
        engine.clusters = real
    assert status == 200
    reply = json.loads(text)
    ref = reference(reply["text"])
    assert reply == {"response_type": "ephemeral", "text": SOMETHING_WRONG.format(ref=ref)}
    await asyncio.sleep(0)
    await _drain(app.bot)
    assert_one_log_line(app, ref, "KeyError")
    assert not [e for e in app.double.ephemerals if ref in e["text"]]
