"""Who may do what, from where, and what a request must be: real `aurora-restore serve`
processes, real signed (and unsigned, forged, malformed) HTTP requests, the Slack double.

Each test is one finding of a review that attacked running `serve` processes:

* an action is taken only from the restore's workspace (team, enterprise) and its
  thread's channel; status, abort and export see only the restores of the channel asked
  from; anything else is refused ephemerally and changes nothing;
* restores start only in channels (no DMs, no group DMs) and, when the cluster file
  names `channels`, only there;
* a first delivery that carries `X-Slack-Retry-Num: 1` is handled; a replayed request
  (the same delivery) is acked and dropped; an export of a state already posted is not
  posted again;
* an unsigned body of any shape answers 401 before it is parsed; a signed malformed one
  400 with one log line; never a 5xx, never a traceback;
* a failure after the ack is told to the person, with a reference, in one log line.

The sandbox-free tests use a cluster whose scheduler does not answer (nothing listens on
its SSH port): its preflight fails, the restore waits for a person, and nothing else runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bot.redis_server import EmbeddedRedis
from runbook.store import Store
from tests.conftest import free_port
from tests.slack_double import (
    SlackDouble,
    block_actions_body,
    sign,
    slash_command_body,
    view_submission_body,
)
from tests.test_slack_app import (  # noqa: F401  (world is a fixture)
    ALICE,
    BOB,
    CHANNEL,
    MALLORY,
    SECRET,
    AppProcess,
    Thread,
    post,
    until,
    world,
)

pytestmark = pytest.mark.timeout(300)

ELSEWHERE = "C0ELSEWHERE"
TEAM = "T0AURORA"
EVIL_TEAM = "T0EVIL"


def placeholder(path: Path) -> Path:
    """A file that exists but is no SSH key or known host: the restore may start (the
    engine refuses one whose files are missing) and its first SSH step fails."""
    if not path.exists():
        path.write_text("not a key\n")
    return path


def lone_cluster_file(path: Path) -> Path:
    """Two clusters whose one scheduler does not answer; `west` may start only in CHANNEL."""
    text = ""
    for name, channels in (("west", f'["{CHANNEL}", "C0WARROOM"]'), ("east", None)):
        text += f"""
[clusters.{name}]
{f"channels = {channels}" if channels else ""}
[clusters.{name}.ssh]
key = "{placeholder(path.parent / "no-key")}"
known_hosts = "{placeholder(path.parent / "known_hosts")}"
connect_timeout = "2s"
[clusters.{name}.approvers]
users = ["{ALICE}", "{BOB}"]
[[clusters.{name}.schedulers]]
host = "scheduler-1"
address = "127.0.0.1"
ssh_port = {free_port()}
http_port = {free_port()}
"""
    path.write_text(text)
    return path


@pytest.fixture
async def lone(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    double = SlackDouble()
    api = await double.start()
    store_server = EmbeddedRedis(tmp_path / "redis")
    redis_url = store_server.start()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": double.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api,
        "REDIS_URL": redis_url,
        "AURORA_RESTORE_CLUSTERS": str(lone_cluster_file(tmp_path / "clusters.toml")),
        "APP_LOG": str(tmp_path / "app.log"),
    }
    app = await AppProcess(env).start()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        yield {"double": double, "app": app, "store": Store(redis), "log": tmp_path / "app.log"}
    finally:
        await app.stop(signal.SIGKILL)
        await redis.aclose()
        await double.stop()
        store_server.stop()


def ephemeral_with(double: SlackDouble, text: str, user: str | None = None) -> list[Any]:
    return [
        e for e in double.ephemerals if text in e["text"] and (user is None or e["user"] == user)
    ]


def log_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


# ------------------------------------------------------------------ malformed requests


def raw_post_headers(body: bytes, *, signed: bool, timestamp: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signed:
        headers.update(sign(SECRET, body))
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    return headers


MALFORMED: list[tuple[str, bytes]] = [
    ("payload not JSON", b"payload=%7Bnot+json"),
    ("not UTF-8", b"payload=\xff\xfe\xfa"),
    ("payload a JSON list", b"payload=" + urllib.parse.quote(json.dumps([1, 2])).encode()),
    ("payload nested too deep", b"payload=" + b"%5B" * 5000),
    (
        "a block action without user",
        b"payload=" + urllib.parse.quote('{"type":"block_actions"}').encode(),
    ),
    ("a slash command without channel", b"command=%2Faurora-restore&user_id=U0ALICE&text=status"),
    ("not a form", b"a&b&&c=d=e"),
    ("a JSON body", b'{"type":"event_callback","event":{}}'),
    (
        "a view of another app",
        b"payload="
        + urllib.parse.quote(
            json.dumps(
                {
                    "type": "view_submission",
                    "team": {"id": TEAM},
                    "user": {"id": ALICE},
                    "view": {"id": "V1", "callback_id": "other"},
                }
            )
        ).encode(),
    ),
]


async def test_unsigned_and_malformed_bodies_never_give_a_server_error(
    lone: dict[str, Any],
) -> None:
    app: AppProcess = lone["app"]

    async with httpx.AsyncClient() as client:

        async def send(body: bytes, headers: dict[str, str]) -> int:
            r = await client.post(app.url, content=body, headers=headers, timeout=10)
            return r.status_code

        for what, body in MALFORMED:
            assert await send(body, raw_post_headers(body, signed=False)) == 401, what
            forged = raw_post_headers(body, signed=False)
            forged.update(
                {
                    "X-Slack-Request-Timestamp": str(int(time.time())),
                    "X-Slack-Signature": "v0=" + "ab" * 32,
                }
            )
            assert await send(body, forged) == 401, what
        good = slash_command_body(text="status", user_id=ALICE, channel_id=CHANNEL)
        for timestamp in ("soon", "1e9", "-1", "12.5", "9" * 40, ""):
            headers = raw_post_headers(good, signed=True, timestamp=timestamp)
            assert await send(good, headers) == 401, timestamp
        assert await send(b"x" * (2 * 1024 * 1024), raw_post_headers(b"", signed=False)) == 413
        before = log_text(lone["log"]).count("refused a malformed request (400)")
        for what, body in MALFORMED:
            assert await send(body, raw_post_headers(body, signed=True)) == 400, what
    await asyncio.sleep(0.3)
    log = log_text(lone["log"])
    assert log.count("refused a malformed request (400)") - before == len(MALFORMED)
    assert "Traceback" not in log
    assert lone["double"].calls_to("chat.postMessage") == []
    assert await lone["store"].restore_ids() == []


# ------------------------------------------------------------------ where restores start


async def test_restores_start_only_in_channels(lone: dict[str, Any]) -> None:
    app: AppProcess = lone["app"]
    double: SlackDouble = lone["double"]
    store: Store = lone["store"]
    for cluster, channel, name, reason in [
        ("east", "D0ALICE", "directmessage", "not in a direct message"),
        ("east", "C0SOMEWHERE", "directmessage", "not in a direct message"),
        ("east", "G0GROUPDM", "mpdm-alice--bob-1", "not in a direct message"),
        ("west", ELSEWHERE, "random", f"starts only in <#{CHANNEL}>, <#C0WARROOM>"),
        ("west", "D0BOB", "directmessage", "not in a direct message"),
    ]:
        status, text, _ = await post(
            app.url,
            slash_command_body(text=cluster, user_id=ALICE, channel_id=channel, channel_name=name),
        )
        assert status == 200 and reason in json.loads(text)["text"], (cluster, channel, text)
    await asyncio.sleep(0.5)
    assert await store.restore_ids() == []
    assert double.calls_to("chat.postMessage") == []
    # Where it may: it starts (its preflight then fails: the scheduler does not answer).
    status, text, _ = await post(
        app.url, slash_command_body(text="west", user_id=ALICE, channel_id=CHANNEL)
    )
    assert "Starting a restore of `west`" in json.loads(text)["text"]
    await until(lambda: double.messages(channel=CHANNEL), what="root message")
    assert len(await store.restore_ids()) == 1


# ------------------------------------------------------------------ failures after the ack


async def test_a_failure_after_the_ack_is_told_to_the_person(lone: dict[str, Any]) -> None:
    app: AppProcess = lone["app"]
    double: SlackDouble = lone["double"]
    await post(app.url, slash_command_body(text="west", user_id=ALICE, channel_id=CHANNEL))
    root = await until(lambda: double.messages(channel=CHANNEL), what="root message")
    rid = (await lone["store"].restore_ids())[0]
    # Slack fails the modal the click asks for: the listener fails after its ack.
    double.fail_next("views.open", status=200, error="internal_error")
    status, _, _ = await post(
        app.url,
        block_actions_body(
            user_id=BOB,
            action_id="abort",
            value=json.dumps({"rid": rid}),
            channel_id=CHANNEL,
            message_ts=root[0]["ts"],
        ),
    )
    assert status == 200
    told = await until(
        lambda: ephemeral_with(double, "Something went wrong (ref ", BOB), what="told"
    )
    ref = told[0]["text"].split("(ref ")[1].split(")")[0]
    assert "nothing more was done" in told[0]["text"]
    await until(lambda: f"ref {ref}" in log_text(lone["log"]), what="the log line")
    log = log_text(lone["log"])
    assert len([line for line in log.splitlines() if f"ref {ref}" in line]) == 1
    assert "Traceback" not in log
    rec = await lone["store"].load(rid)
    # Nothing more was done: not aborted (its preflight, which cannot reach the
    # scheduler, may have ended it as failed meanwhile).
    assert rec is not None and rec.status in ("running", "failed")
    assert "aborted" not in [e["type"] for e in await lone["store"].events(rid)]


# ------------------------------------------------------------------ bound to the thread


async def _restore_waiting_for_prep_stop(
    world: dict[str, Any],  # noqa: F811
) -> tuple[AppProcess, Thread, Store, str]:
    double: SlackDouble = world["double"]
    app = await AppProcess(world["env"]).start()
    world["apps"].append(app)
    await post(app.url, slash_command_body(text="sandbox", user_id=ALICE, channel_id=CHANNEL))
    root = await until(lambda: double.messages(channel=CHANNEL), what="root message")

    async def send(body: bytes) -> None:
        assert (await post(app.url, body))[0] == 200

    thread = Thread(double, root[0]["ts"], send)
    store = Store(aioredis.Redis.from_url(world["redis_url"]))
    rid = (await store.restore_ids())[0]
    await thread.card("prep.stop")
    return app, thread, store, rid


async def test_actions_only_from_the_restores_workspace_and_channel(
    world: dict[str, Any],  # noqa: F811
) -> None:
    double: SlackDouble = world["double"]
    app, thread, store, rid = await _restore_waiting_for_prep_stop(world)
    msg, value = await thread.card("prep.stop")
    before = await store.events(rid)

    def click(action: str, val: dict[str, Any], **kw: Any) -> bytes:
        fields: dict[str, Any] = {"user_id": ALICE, "channel_id": CHANNEL, **kw}
        return block_actions_body(
            action_id=action, value=json.dumps(val), message_ts=msg["ts"], **fields
        )

    # The approver's approval, from another channel and from another workspace.
    await thread.send(click("approve", value, channel_id=ELSEWHERE))
    await until(lambda: ephemeral_with(double, f"lives in <#{CHANNEL}>", ALICE), what="channel")
    # From another workspace the request is refused before any listener (the bot's own
    # workspace comes from auth.test); nobody there can be told with this bot's token.
    status, text, _ = await post(app.url, click("approve", value, team_id=EVIL_TEAM))
    assert status == 200 and "answers only in its own workspace" in text
    # The modals, from elsewhere: none opens.
    views = len(double.views)
    await thread.send(click("skip", value, channel_id=ELSEWHERE))
    status, text, _ = await post(app.url, click("abort", {"rid": rid}, team_id=EVIL_TEAM))
    assert status == 200 and "answers only in its own workspace" in text
    await until(lambda: len(ephemeral_with(double, "nothing was done", ALICE)) >= 2, what="2")
    # A modal submission the bot did not open for this person: refused in the modal.
    reply = json.loads(
        (
            await post(
                app.url,
                view_submission_body(
                    user_id=ALICE,
                    view_id="V0FORGED",
                    callback_id="abort_restore",
                    private_metadata=json.dumps({"rid": rid}),
                    state_values={
                        "revert": {
                            "revert": {"type": "radio_buttons", "selected_option": {"value": "no"}}
                        }
                    },
                ),
            )
        )[1]
    )
    assert reply["response_action"] == "errors"
    assert "not opened for you" in reply["errors"]["revert"]
    # Slash commands that name a restore, from elsewhere: they do not see it.
    for text, said in [
        ("status", "No restore is running in this channel."),
        ("abort sandbox", "No restore is running in this channel for `sandbox`."),
        (f"export {rid}", f"Restore `{rid}` lives in <#{CHANNEL}>"),
        ("export", "No restore of this channel to export"),
    ]:
        await post(app.url, slash_command_body(text=text, user_id=BOB, channel_id=ELSEWHERE))
        await until(lambda s=said: ephemeral_with(double, s, BOB), what=text)
    # From another workspace, even in the restore's channel: refused before any listener.
    status, text, _ = await post(
        app.url,
        slash_command_body(text="status", user_id=BOB, channel_id=CHANNEL, team_id=EVIL_TEAM),
    )
    assert status == 200 and "answers only in its own workspace" in text
    await asyncio.sleep(0.5)
    assert len(double.views) == views
    assert await store.events(rid) == before  # nothing changed
    rec = await store.load(rid)
    assert rec is not None and rec.steps["prep.stop"]["status"] == "awaiting"
    # From the thread itself, the same click works, and status sees the restore.
    await thread.send(click("approve", value))
    await thread.card("prep.block_traffic", "skip")
    await post(app.url, slash_command_body(text="status", user_id=BOB, channel_id=CHANNEL))
    await until(lambda: ephemeral_with(double, f"restore `{rid}`", BOB), what="status here")
    assert double.invalid == []
    await store.redis.aclose()


# ------------------------------------------------------------------ redeliveries


async def test_redeliveries_are_known_by_what_they_carry(
    world: dict[str, Any],  # noqa: F811
) -> None:
    double: SlackDouble = world["double"]
    app, thread, store, rid = await _restore_waiting_for_prep_stop(world)
    msg, value = await thread.card("prep.stop")
    # The first delivery of this click carries X-Slack-Retry-Num: 1 (Slack's first
    # attempt timed out before reaching us): it is handled.
    body = thread.click("approve", msg, value, ALICE)
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await post(app.url, body, headers=retry))[0] == 200
    await thread.card("prep.block_traffic", "skip")
    rec = await store.load(rid)
    assert rec is not None and rec.steps["prep.stop"]["approved_by"] == ALICE
    # The same delivery again (a replay): acked, dropped, no refusal either.
    refusals = len(double.ephemerals)
    for _ in range(3):
        assert (await post(app.url, body, headers=retry))[0] == 200
    events = await store.events(rid)
    assert len([e for e in events if e["type"] == "approved"]) == 1

    # Abort: the transcript lands in the thread; then exports of that same state.
    await post(app.url, slash_command_body(text="abort sandbox", user_id=BOB, channel_id=CHANNEL))
    view = await until(
        lambda: [v for v in double.views.values() if v["callback_id"] == "abort_restore"],
        what="abort modal",
    )
    await post(
        app.url,
        view_submission_body(
            user_id=BOB,
            view_id=view[0]["id"],
            callback_id="abort_restore",
            private_metadata=view[0]["private_metadata"],
            state_values={
                "revert": {"revert": {"type": "radio_buttons", "selected_option": {"value": "no"}}}
            },
        ),
    )

    def transcripts() -> list[Any]:
        return [f for f in double.files if f.name.startswith("aurora-restore-")]

    await until(lambda: len(transcripts()) >= 3, what="the transcript")
    rec = await store.load(rid)
    assert rec is not None and rec.status == "aborted"
    # The first click on Export posts (if the state moved on since) or says it is there.
    export = block_actions_body(
        user_id=BOB, action_id="export", value=json.dumps({"rid": rid}), channel_id=CHANNEL
    )
    await post(app.url, export)
    await until(
        lambda: len(transcripts()) >= 6 or ephemeral_with(double, "already posted above"),
        what="the first export",
    )
    await asyncio.sleep(0.5)
    posted = len(transcripts())
    said = len(ephemeral_with(double, "already posted above"))
    for _ in range(50):  # the same click, replayed
        assert (await post(app.url, export))[0] == 200
    for _ in range(5):  # five more clicks
        fresh = block_actions_body(
            user_id=BOB, action_id="export", value=json.dumps({"rid": rid}), channel_id=CHANNEL
        )
        assert (await post(app.url, fresh))[0] == 200
    await until(
        lambda: len(ephemeral_with(double, "already posted above")) >= said + 5, what="told"
    )
    await asyncio.sleep(0.5)
    assert len(ephemeral_with(double, "already posted above")) == said + 5
    assert len(transcripts()) == posted <= 6
    assert refusals <= len(double.ephemerals)
    await store.redis.aclose()


# ------------------------------------------------------------------ the cluster file


def test_cluster_channels_are_slack_channel_ids(tmp_path: Path) -> None:
    from runbook.access import start_refusal
    from runbook.clusters import ClusterFileError, load_clusters

    path = lone_cluster_file(tmp_path / "clusters.toml")
    west = load_clusters(path)["west"]
    assert west.channels == [CHANNEL, "C0WARROOM"]
    assert load_clusters(path)["east"].channels is None
    assert start_refusal(west, CHANNEL) is None
    assert start_refusal(west, "G0PRIVATE") is not None
    for bad in ("#ops", "c0ops", "D0ALICE", "C0", "C0OPS; reboot"):
        path.write_text(path.read_text().replace(f'"{CHANNEL}"', json.dumps(bad), 1))
        with pytest.raises(ClusterFileError, match=r"cluster 'west': channels\[0\]: not a Slack"):
            load_clusters(path)
        path = lone_cluster_file(tmp_path / "clusters.toml")
