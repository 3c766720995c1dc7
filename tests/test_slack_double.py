"""Tests for the Slack Web API double, driven through slack_sdk's real AsyncWebClient."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.slack_double import (
    SlackDouble,
    block_actions_body,
    post_signed,
    sign,
    slash_command_body,
    validate_blocks,
    view_submission_body,
)

CHANNEL = "C0OPS"


@pytest.fixture
async def double() -> AsyncIterator[SlackDouble]:
    async with SlackDouble() as d:
        yield d


@pytest.fixture
async def client(double: SlackDouble) -> AsyncIterator[AsyncWebClient]:
    c = AsyncWebClient(token=double.token, base_url=double.base_url)
    yield c
    if c.session is not None:
        await c.session.close()


def section(text: str, block_id: str | None = None) -> dict:
    block: dict = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    return block


def button(action_id: str, text: str = "Go", value: str = "v", **extra: object) -> dict:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
        **extra,
    }


def complex_message() -> list[dict]:
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Restore aurora-west"}},
        section("*Step 3/7*: stop the schedulers", block_id="step"),
        {
            "type": "section",
            "block_id": "facts",
            "fields": [{"type": "mrkdwn", "text": f"*k{i}*\nv{i}"} for i in range(10)],
        },
        {"type": "divider"},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"c{i}"} for i in range(10)],
        },
        {
            "type": "actions",
            "block_id": "approve-3",
            "elements": [
                button("approve", "Approve", "step-3", style="primary"),
                button(
                    "abort",
                    "Abort",
                    "step-3",
                    style="danger",
                    confirm={
                        "title": {"type": "plain_text", "text": "Abort the restore?"},
                        "text": {"type": "mrkdwn", "text": "x" * 300},
                        "confirm": {"type": "plain_text", "text": "Abort"},
                        "deny": {"type": "plain_text", "text": "Keep going"},
                    },
                ),
            ],
        },
    ]


async def test_post_and_update_round_trip(double: SlackDouble, client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    assert auth["user_id"] == double.bot_user_id

    parent = await client.chat_postMessage(channel=CHANNEL, text="restore started")
    reply1 = await client.chat_postMessage(
        channel=CHANNEL, text="step 1", blocks=[section("step 1")], thread_ts=parent["ts"]
    )
    reply2 = await client.chat_postMessage(channel=CHANNEL, text="step 2", thread_ts=parent["ts"])
    assert parent["ts"] < reply1["ts"] < reply2["ts"]
    assert parent["ts"].startswith("1700000000.")
    assert reply1["message"]["thread_ts"] == parent["ts"]

    updated = await client.chat_update(
        channel=CHANNEL, ts=reply1["ts"], text="step 1 done", blocks=[section("done")]
    )
    assert updated["ts"] == reply1["ts"]
    assert updated["message"]["blocks"] == [section("done")]

    thread = double.messages(channel=CHANNEL, thread_ts=parent["ts"])
    assert [m["text"] for m in thread] == ["restore started", "step 1 done", "step 2"]
    assert len(double.messages()) == 3
    assert len(double.calls_to("chat.update")) == 1
    assert double.calls_to("chat.update")[0]["ts"] == reply1["ts"]

    # text without blocks removes the blocks, as Slack does
    await client.chat_update(channel=CHANNEL, ts=reply1["ts"], text="plain")
    assert double.message(CHANNEL, reply1["ts"])["blocks"] == []

    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"

    eph = await client.chat_postEphemeral(channel=CHANNEL, user="U1", text="only you")
    assert eph["message_ts"] and double.ephemerals[0]["user"] == "U1"

    link = await client.chat_getPermalink(channel=CHANNEL, message_ts=reply2["ts"])
    assert CHANNEL in link["permalink"] and f"thread_ts={parent['ts']}" in link["permalink"]
    assert double.invalid == []


async def test_auth_errors(double: SlackDouble) -> None:
    bad = AsyncWebClient(token="xoxb-wrong", base_url=double.base_url)
    with pytest.raises(SlackApiError) as err:
        await bad.chat_postMessage(channel=CHANNEL, text="hi")
    assert err.value.response["error"] == "invalid_auth"
    assert double.messages() == []


@pytest.mark.parametrize(
    "blocks, fragment",
    [
        ([section(f"s{i}") for i in range(51)], "51 blocks"),
        ([section("x" * 3001)], "section text longer than 3000"),
        ([{"type": "actions", "elements": [button("a"), button("a")]}], "duplicate action_id"),
        ([section("a", "same"), section("b", "same")], "duplicate block_id"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "header"),
        ([{"type": "actions", "elements": [button("a", "t" * 76)]}], "button text"),
        ([{"type": "actions", "elements": [button("a", value="v" * 2001)]}], "button value"),
        ([{"type": "actions", "elements": [button("a" * 256)]}], "action_id longer"),
        ([section("x", "b" * 256)], "block_id longer"),
        (
            [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
            "context elements",
        ),
        ([{"type": "actions", "elements": [button(f"a{i}") for i in range(26)]}], "actions elem"),
        (
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
            "more than 10 fields",
        ),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}], "fields[0]"),
        ([{"type": "actions", "elements": [button("a", style="secondary")]}], "style"),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        button(
                            "a",
                            confirm={
                                "title": {"type": "plain_text", "text": "t"},
                                "text": {"type": "plain_text", "text": "t"},
                                "confirm": {"type": "plain_text", "text": "c" * 31},
                                "deny": {"type": "plain_text", "text": "d"},
                            },
                        )
                    ],
                }
            ],
            "confirm confirm",
        ),
        ([{"type": "no_such_block"}], "unknown block type"),
    ],
)
async def test_invalid_blocks_rejected(
    double: SlackDouble, client: AsyncWebClient, blocks: list[dict], fragment: str
) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks)
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "invalid_blocks"
    assert any(fragment in e for e in err.value.response["errors"]), err.value.response["errors"]
    assert len(double.invalid) == 1 and double.invalid[0][0] == "chat.postMessage"
    assert double.messages() == []


async def test_invalid_blocks_on_update_and_ephemeral(
    double: SlackDouble, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="t", blocks=[section("ok")])
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.chat_update(
            channel=CHANNEL, ts=posted["ts"], text="t", blocks=[section("x" * 3001)]
        )
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.chat_postEphemeral(
            channel=CHANNEL, user="U1", text="t", blocks=[section(str(i)) for i in range(51)]
        )
    with pytest.raises(SlackApiError, match="msg_too_long"):
        await client.chat_postMessage(channel=CHANNEL, text="x" * 40_001)
    assert [m for m, _, _ in double.invalid] == [
        "chat.update",
        "chat.postEphemeral",
        "chat.postMessage",
    ]
    assert double.message(CHANNEL, posted["ts"])["blocks"] == [section("ok")]


async def test_valid_complex_message_passes(double: SlackDouble, client: AsyncWebClient) -> None:
    blocks = complex_message() + [section(f"s{i}") for i in range(50 - len(complex_message()))]
    assert len(blocks) == 50
    assert validate_blocks(blocks) == []
    await client.chat_postMessage(channel=CHANNEL, text="x" * 40_000, blocks=blocks)
    assert double.invalid == []
    assert double.messages()[0]["blocks"] == blocks


async def test_views_open_and_update(double: SlackDouble, client: AsyncWebClient) -> None:
    view = {
        "type": "modal",
        "callback_id": "restore-confirm",
        "title": {"type": "plain_text", "text": "Confirm restore"},
        "submit": {"type": "plain_text", "text": "Restore"},
        "private_metadata": json.dumps({"cluster": "west"}),
        "blocks": [
            section("Pick a backup"),
            {
                "type": "input",
                "block_id": "backup",
                "label": {"type": "plain_text", "text": "Backup"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            },
        ],
    }
    opened = await client.views_open(trigger_id="123.456.abc", view=view)
    view_id = opened["view"]["id"]
    with pytest.raises(SlackApiError, match="trigger_exchanged"):
        await client.views_open(trigger_id="123.456.abc", view=view)

    modal_101 = {**view, "blocks": [section(str(i)) for i in range(101)]}
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.views_open(trigger_id="t2", view=modal_101)
    modal_100 = {**view, "blocks": [section(str(i)) for i in range(100)]}
    await client.views_update(view_id=view_id, view=modal_100)
    long_title = {**view, "title": {"type": "plain_text", "text": "t" * 25}}
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.views_update(view_id=view_id, view=long_title)
    with pytest.raises(SlackApiError, match="not_found"):
        await client.views_update(view_id="V404", view=view)
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        await client.api_call("views.open", json={"view": view})
    assert len(double.invalid) == 2
    assert double.views[view_id]["blocks"] == modal_100["blocks"]


async def test_rate_limited_then_retry_succeeds(
    double: SlackDouble, client: AsyncWebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="v1")
    double.fail_next("chat.update", status=429, retry_after=1)

    with pytest.raises(SlackApiError) as err:  # no retry handler: the 429 surfaces
        await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="v2")
    assert err.value.response.status_code == 429
    assert err.value.response["error"] == "ratelimited"
    assert err.value.response.headers["Retry-After"] == "1"

    double.fail_next("chat.update", status=429, retry_after=1)
    monkeypatch.setattr("random.random", lambda: 0.0)  # the handler's jitter
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    started = time.monotonic()
    response = await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="v3")
    assert response["ok"]
    assert time.monotonic() - started >= 1.0  # it waited Retry-After
    assert len(double.calls_to("chat.update")) == 3
    assert len(double.throttled) == 2
    assert double.message(CHANNEL, posted["ts"])["text"] == "v3"


async def test_server_error_injection(double: SlackDouble, client: AsyncWebClient) -> None:
    double.fail_next("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="x")
    assert err.value.response.status_code == 500

    double.fail_next("chat.postMessage", status=503, times=1)
    client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=1))
    assert (await client.chat_postMessage(channel=CHANNEL, text="x"))["ok"]
    assert len(double.calls_to("chat.postMessage")) == 3
    assert len(double.messages()) == 1


async def test_sliding_window_rate_limit(double: SlackDouble, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="v")
    double.rate_limit("chat.update", per_second=2)
    results = []
    for i in range(3):
        try:
            await client.chat_update(channel=CHANNEL, ts=posted["ts"], text=f"v{i}")
            results.append("ok")
        except SlackApiError as exc:
            results.append(exc.response["error"])
    assert results == ["ok", "ok", "ratelimited"]
    await asyncio.sleep(1.05)
    await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="later")
    assert double.message(CHANNEL, posted["ts"])["text"] == "later"


async def test_files_upload_v2_into_thread(double: SlackDouble, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="restore log follows")
    content = "line 1\nline 2 \u2713\n" * 100
    response = await client.files_upload_v2(
        content=content,
        filename="restore.log",
        title="Restore log",
        channel=CHANNEL,
        thread_ts=parent["ts"],
        initial_comment="full log",
    )
    assert response["file"]["name"] == "restore.log"
    assert [m for m, _ in double.calls if m.startswith("files") or m == "upload"] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    [stored] = double.files
    assert stored.id == response["file"]["id"]
    assert (stored.name, stored.title) == ("restore.log", "Restore log")
    assert stored.text == content
    assert (stored.channel, stored.thread_ts) == (CHANNEL, parent["ts"])
    assert stored.initial_comment == "full log"

    with pytest.raises(SlackApiError, match="file_not_found"):
        await client.files_completeUploadExternal(files=[{"id": "F404"}], channel_id=CHANNEL)


async def test_upload_url_accepts_multipart(double: SlackDouble, client: AsyncWebClient) -> None:
    url = await client.files_getUploadURLExternal(filename="a.txt", length=3)
    async with aiohttp.ClientSession() as session:
        data = aiohttp.FormData()
        data.add_field("file", b"abc", filename="a.txt")
        async with session.post(url["upload_url"], data=data) as res:
            assert res.status == 200
    done = await client.files_completeUploadExternal(files=[{"id": url["file_id"]}])
    assert done["files"][0]["id"] == url["file_id"]
    assert double.uploads[url["file_id"]].content == b"abc"


async def test_usergroups_and_users(double: SlackDouble, client: AsyncWebClient) -> None:
    double.usergroups = {"S123": ["U1", "U2"]}
    double.usergroup_handles = {"aurora-oncall": "S123", "empty-team": "S999"}
    double.add_user("U1", "alice", "Alice A")

    members = await client.usergroups_users_list(usergroup="S123")
    assert members["users"] == ["U1", "U2"]
    groups = await client.usergroups_list(include_users=True)
    by_handle = {g["handle"]: g for g in groups["usergroups"]}
    assert by_handle["aurora-oncall"]["id"] == "S123"
    assert by_handle["aurora-oncall"]["users"] == ["U1", "U2"]
    assert by_handle["empty-team"]["user_count"] == 0
    with pytest.raises(SlackApiError, match="no_such_subteam"):
        await client.usergroups_users_list(usergroup="S404")

    user = await client.users_info(user="U1")
    assert user["user"]["real_name"] == "Alice A"
    with pytest.raises(SlackApiError, match="user_not_found"):
        await client.users_info(user="U404")


def test_sign_matches_slack_sdk_verifier() -> None:
    secret = "shhh"
    body = slash_command_body(text="west", user_id="U1")
    now = int(time.time())
    headers = sign(secret, body, now)
    verifier = SignatureVerifier(secret)
    assert verifier.is_valid_request(body, headers)
    assert headers["X-Slack-Signature"] == verifier.generate_signature(
        timestamp=str(now), body=body
    )
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    assert not verifier.is_valid_request(body, sign(secret, body, now - 600))


def test_payload_builders_shapes() -> None:
    cmd = dict(urllib.parse.parse_qsl(slash_command_body(text="restore west").decode()))
    assert cmd["command"] == "/aurora-restore" and cmd["text"] == "restore west"
    assert cmd["trigger_id"] and cmd["response_url"].startswith("https://hooks.slack.com/commands/")

    raw = block_actions_body(
        action_id="approve", value="step-3", message_ts="1.2", thread_ts="1.1", user_id="U9"
    )
    payload = json.loads(dict(urllib.parse.parse_qsl(raw.decode()))["payload"])
    assert payload["type"] == "block_actions"
    assert payload["actions"][0]["action_id"] == "approve"
    assert payload["container"]["message_ts"] == "1.2"
    assert payload["message"]["thread_ts"] == "1.1" and payload["user"]["id"] == "U9"

    raw = view_submission_body(
        callback_id="cb", private_metadata="m", state_values={"b": {"a": {"value": "x"}}}
    )
    payload = json.loads(dict(urllib.parse.parse_qsl(raw.decode()))["payload"])
    assert payload["view"]["callback_id"] == "cb"
    assert payload["view"]["state"]["values"]["b"]["a"]["value"] == "x"


async def test_signed_requests_reach_a_bolt_app(double: SlackDouble) -> None:
    """End to end: a real AsyncApp on the double, receiving signed HTTP requests."""
    secret = "bolt-secret"
    bolt_client = AsyncWebClient(token=double.token, base_url=double.base_url)
    app = AsyncApp(client=bolt_client, signing_secret=secret)
    seen: list[tuple[str, str | None]] = []

    @app.command("/aurora-restore")
    async def on_command(ack, command, client):  # type: ignore[no-untyped-def]
        await ack()
        await client.chat_postMessage(channel=command["channel_id"], text=command["text"])

    @app.action("approve")
    async def on_approve(ack, body, context):  # type: ignore[no-untyped-def]
        await ack()
        seen.append((body["actions"][0]["value"], context.thread_ts))

    @app.view("restore-confirm")
    async def on_submit(ack, view):  # type: ignore[no-untyped-def]
        await ack()
        seen.append((view["private_metadata"], None))

    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/slack/events"
    try:
        status, _ = await post_signed(url, secret, slash_command_body(text="west"))
        assert status == 200
        status, _ = await post_signed(url, secret, slash_command_body(), int(time.time()) - 600)
        assert status == 401
        status, _ = await post_signed(
            url,
            secret,
            block_actions_body(action_id="approve", value="ok", message_ts="1.2", thread_ts="1.1"),
        )
        assert status == 200
        body = view_submission_body(callback_id="restore-confirm", private_metadata="meta")
        status, _ = await post_signed(url, secret, body)
        assert status == 200
        for _ in range(100):
            if double.messages() and len(seen) == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await runner.cleanup()
        if bolt_client.session is not None:
            await bolt_client.session.close()
    assert [m["text"] for m in double.messages(channel="C0OPS")] == ["west"]
    assert sorted(seen, key=str) == sorted([("ok", "1.1"), ("meta", None)], key=str)
