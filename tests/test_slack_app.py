"""The Slack app end to end: real `aurora-restore serve` processes, real signed HTTP
requests, a local double of the Slack Web API that checks every payload, the sandbox
over real SSH, and one Redis shared by two app processes behind a "load balancer"."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bot.redis_server import EmbeddedRedis
from runbook.store import Store
from tests.conftest import ROOT, RunningSandbox, free_port
from tests.slack_double import (
    SlackDouble,
    block_actions_body,
    sign,
    slash_command_body,
    view_submission_body,
)

pytestmark = pytest.mark.timeout(300)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0OPS"
ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"


class AppProcess:
    """`aurora-restore serve` as a child process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.proc: asyncio.subprocess.Process | None = None
        # The apps' logs are kept (APP_LOG names the file): tests read them.
        self.log_path = env.get("APP_LOG")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def start(self) -> AppProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL if not self.log_path else asyncio.subprocess.PIPE,
        )
        if self.log_path and self.proc.stderr is not None:
            self._log_task = asyncio.ensure_future(self._keep_log(self.proc.stderr))
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    r = await client.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                    if r.status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the app did not start")

    async def _keep_log(self, stream: asyncio.StreamReader) -> None:
        assert self.log_path
        while line := await stream.readline():
            with open(self.log_path, "ab") as f:
                f.write(line)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
            await self.proc.wait()


async def post(
    url: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    signed: bool = True,
) -> tuple[int, str, float]:
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    if signed:
        h.update(sign(SECRET, body, timestamp))
    h.update(headers or {})
    t0 = time.monotonic()
    async with httpx.AsyncClient() as client:
        r = await client.post(url, content=body, headers=h, timeout=10)
    return r.status_code, r.text, time.monotonic() - t0


async def until(predicate: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def buttons(
    double: SlackDouble, root_ts: str, action_id: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    found = []
    for m in double.messages(channel=CHANNEL, thread_ts=root_ts):
        for b in m.get("blocks") or []:
            if b.get("type") == "actions":
                for e in b.get("elements", []):
                    if e.get("action_id") == action_id:
                        found.append((m, json.loads(e["value"])))
    return found


class Thread:
    """One restore's thread in the double, and what a person does in it: clicks on the
    cards and the skip modal, sent through `send` (to one app, or to several in turn)."""

    def __init__(
        self,
        double: SlackDouble,
        root_ts: str,
        send: Callable[[bytes], Awaitable[Any]],
        describe: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.double = double
        self.root_ts = root_ts
        self.send = send
        self.describe = describe  # what to say when a card does not come

    def click(
        self, action: str, message: dict[str, Any], value: dict[str, Any] | str, user: str
    ) -> bytes:
        return block_actions_body(
            user_id=user,
            action_id=action,
            value=value if isinstance(value, str) else json.dumps(value),
            channel_id=CHANNEL,
            message_ts=message["ts"],
            thread_ts=self.root_ts,
            message=message,
        )

    async def card(
        self, sid: str, action: str = "approve", timeout: float = 90
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The card of `sid` once it offers `action`, and that button's value."""
        try:
            found = await until(
                lambda: [
                    x for x in buttons(self.double, self.root_ts, action) if x[1]["sid"] == sid
                ],
                timeout=timeout,
                what=f"{sid} card with {action}",
            )
        except AssertionError:
            more = await self.describe() if self.describe else ""
            raise AssertionError(
                f"no {action} on the {sid} card: {more}; invalid {self.double.invalid}"
            ) from None
        return found[0]

    async def approve(self, sid: str, user: str) -> None:
        msg, value = await self.card(sid)
        await self.send(self.click("approve", msg, value, user))

    async def skip(self, sid: str, user: str, reason: str) -> None:
        msg, value = await self.card(sid, "skip")
        views = len(self.double.views)
        await self.send(self.click("skip", msg, value, user))
        await until(lambda: len(self.double.views) > views, what="skip modal")
        view = list(self.double.views.values())[-1]
        assert view["callback_id"] == "skip_reason"
        await self.send(
            view_submission_body(
                user_id=user,
                view_id=view["id"],
                callback_id="skip_reason",
                private_metadata=view["private_metadata"],
                state_values={"reason": {"reason": {"type": "plain_text_input", "value": reason}}},
            )
        )


@pytest.fixture
async def world(sandbox: RunningSandbox, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    text = (sandbox.dir / "clusters.toml").read_text()
    text = text.replace("users = []", f'users = ["{ALICE}", "{BOB}"]').replace(
        "groups = []", 'groups = ["aurora-oncall"]'
    )
    clusters = tmp_path / "clusters.toml"
    clusters.write_text(text)
    double = SlackDouble()
    api = await double.start()
    double.usergroups = {"S0ONCALL": [CAROL]}
    double.usergroup_handles = {"aurora-oncall": "S0ONCALL"}
    store_server = EmbeddedRedis(tmp_path / "redis")
    redis_url = store_server.start()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": double.token if hasattr(double, "token") else "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api,
        "REDIS_URL": redis_url,
        "AURORA_RESTORE_CLUSTERS": str(clusters),
        "APP_LOG": str(tmp_path / "app.log"),
        # Each process paces its updates at 3 a second after a burst of 1: two processes
        # stay under the 10 a second the double allows.
        "AURORA_RESTORE_UPDATES_PER_MINUTE": "180",
        "AURORA_RESTORE_UPDATES_BURST": "1",
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


async def test_signatures_and_bad_input(world: dict[str, Any]) -> None:
    double: SlackDouble = world["double"]
    app = await AppProcess(world["env"]).start()
    world["apps"].append(app)
    body = slash_command_body(text="sandbox", user_id=ALICE, channel_id=CHANNEL)
    stale = int(time.time()) - 6 * 60
    assert (await post(app.url, body, timestamp=stale))[0] == 401
    assert (await post(app.url, body, signed=False))[0] == 401
    forged = {
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=" + "0" * 64,
    }
    assert (await post(app.url, body, signed=False, headers=forged))[0] == 401
    await asyncio.sleep(0.5)
    assert double.calls_to("chat.postMessage") == []

    status, text, took = await post(
        app.url, slash_command_body(text="", user_id=ALICE, channel_id=CHANNEL)
    )
    assert status == 200 and "/aurora-restore" in json.loads(text)["text"]
    status, text, _ = await post(
        app.url, slash_command_body(text="nope", user_id=ALICE, channel_id=CHANNEL)
    )
    reply = json.loads(text)
    assert (
        reply["response_type"] == "ephemeral"
        and "Unknown cluster" in reply["text"]
        and "`sandbox`" in reply["text"]
    )
    status, text, _ = await post(
        app.url,
        slash_command_body(
            text="sandbox scheduler-backup-x;reboot", user_id=ALICE, channel_id=CHANNEL
        ),
    )
    assert "is not a backup id" in json.loads(text)["text"]
    await asyncio.sleep(0.5)
    assert double.calls_to("chat.postMessage") == []
    store = Store(aioredis.Redis.from_url(world["redis_url"]))
    assert await store.restore_ids() == []
    await store.redis.aclose()


async def test_a_whole_restore_driven_only_by_slack(world: dict[str, Any]) -> None:
    double: SlackDouble = world["double"]
    sandbox: RunningSandbox = world["sandbox"]
    # Two app processes share one Redis; requests alternate between them.
    apps = [await AppProcess(world["env"]).start(), await AppProcess(world["env"]).start()]
    world["apps"].extend(apps)
    turn = 0

    def next_app() -> AppProcess:
        nonlocal turn
        turn += 1
        return apps[turn % 2]

    acks: list[float] = []

    async def send(body: bytes, headers: dict[str, str] | None = None) -> str:
        status, text, took = await post(next_app().url, body, headers=headers)
        assert status == 200, text
        acks.append(took)
        return text

    # Secrets in command output (file names the preflight lists) must reach no message,
    # file or log line.
    for s in sandbox.cluster.schedulers:
        d = Path(sandbox.cluster.path(s, "backup_dir") or "")
        (d / "password=hunter2").write_text("")
        (d / "token=xoxb-1234567890-abcdefghij").write_text("")
    double.rate_limit("chat.update", per_second=10)
    # Slack is briefly unwell: rate limited, then a server error. Nothing is lost.
    double.fail_next("chat.postMessage", status=429, retry_after=1, times=1)
    double.fail_next("chat.update", status=500, times=2)
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
    # A second start is refused with a link to the thread.
    await send(slash_command_body(text="sandbox", user_id=BOB, channel_id=CHANNEL))
    await until(
        lambda: any("already has a restore running" in json.dumps(e) for e in double.ephemerals),
        what="busy",
    )

    redis = aioredis.Redis.from_url(world["redis_url"])
    store = Store(redis)
    rid = (await store.restore_ids())[0]

    async def step_status(sid: str) -> str:
        rec = await store.load(rid)
        assert rec is not None
        return str(rec.steps[sid]["status"])

    async def steps() -> str:
        rec = await store.load(rid)
        return str(
            {k: (v["status"], v.get("summary", "")) for k, v in rec.steps.items()} if rec else None
        )

    thread = Thread(double, root_ts, send, describe=steps)
    awaiting, click = thread.card, thread.click

    # A non-approver's click: an ephemeral refusal, nothing changes.
    msg, value = await awaiting("prep.stop")
    await send(click("approve", msg, value, MALLORY))
    await until(
        lambda: any("not an approver" in json.dumps(e) for e in double.ephemerals), what="refusal"
    )
    assert await step_status("prep.stop") == "awaiting"

    # The same request delivered three times (Slack's redelivery): one run.
    body = click("approve", msg, value, ALICE)
    await send(body)
    await send(body, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    await send(body, headers={"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"})

    # prep.block_traffic: skipped, through the modal.
    await thread.skip("prep.block_traffic", BOB, "no firewall in the sandbox")

    approver = {"log.wipe": BOB, "restore.commit": CAROL}
    restarted = False
    for sid in [
        "prep.admin_access",
        "prep.disable",
        "prep.start",
        "log.stop",
        "log.archive",
        "log.wipe",
        "log.init",
        "log.start",
        "restore.place",
        "restore.stage",
        "restore.review",
        "restore.commit",
        "cleanup.revert",
        "cleanup.restart",
    ]:
        msg, value = await awaiting(sid)
        if sid == "log.wipe":
            # The requester may not approve a destructive step.
            await send(click("approve", msg, value, ALICE))
            await until(
                lambda: any("other than" in json.dumps(e) for e in double.ephemerals),
                what="two-person refusal",
            )
            assert await step_status("log.wipe") == "awaiting"
            # Two approvers at the same instant: one run.
            await asyncio.gather(
                post(apps[0].url, click("approve", msg, value, BOB)),
                post(apps[1].url, click("approve", msg, value, CAROL)),
            )
            continue
        if sid == "log.init" and not restarted:
            # A bot process dies and comes back mid-restore: the thread carries on.
            await apps[0].stop(signal.SIGKILL)
            apps[0] = await AppProcess(world["env"]).start()
            world["apps"].append(apps[0])
            restarted = True
        await send(click("approve", msg, value, approver.get(sid, ALICE)))

    rec = None
    for _ in range(900):
        rec = await store.load(rid)
        assert rec is not None
        if rec.status != "running":
            break
        await asyncio.sleep(0.2)
    assert rec is not None and rec.status == "succeeded", {
        k: v["status"] for k, v in rec.steps.items()
    }

    events = await store.events(rid)
    for sid in rec.meta["plan"]:
        started = [
            e for e in events if e.get("step") == sid and e["type"] in ("approved", "started")
        ]
        assert len(started) <= 1, (sid, started)
        results = [e for e in events if e.get("step") == sid and e["type"] == "host_result"]
        # One result per command sent, per host: nothing ran twice.
        sent = rec.steps[sid].get("commands") or []
        assert len(results) == sum(len(batch) for batch in sent), sid
    wipe_results = [e for e in events if e.get("step") == "log.wipe" and e["type"] == "host_result"]
    assert len(wipe_results) == 3
    # Every approval shows in the thread, naming the person.
    thread_text = json.dumps(double.messages(channel=CHANNEL, thread_ts=root_ts))
    assert f"<@{ALICE}> approved" in thread_text and f"<@{CAROL}> approved" in thread_text
    wipe = rec.steps["log.wipe"]
    assert wipe["approved_by"] in (BOB, CAROL)  # one of the two simultaneous clicks
    assert f"<@{wipe['approved_by']}> approved" in thread_text
    assert "skipped" in thread_text and "no firewall in the sandbox" in thread_text
    await until(
        lambda: "succeeded" in json.dumps(double.message(CHANNEL, root_ts)),
        timeout=20,
        what="root shows succeeded",
    )
    # The transcript lands in the thread by itself at the end, and the root offers an export.
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
    listing = [
        f for f in double.files if f.thread_ts == root_ts and f.name == f"staged-tasks-{rid}.tsv"
    ]
    assert len(listing) == 1 and listing[0].text.count("\n") == rec.data["review"]["count"] + 1
    names = sorted(
        f.name
        for f in double.files
        if f.thread_ts == root_ts and f.name.startswith("aurora-restore-")
    )
    assert names == [
        f"aurora-restore-{rid}.html",
        f"aurora-restore-{rid}.json",
        f"aurora-restore-{rid}.md",
    ]
    assert '"action_id": "export"' in json.dumps(double.message(CHANNEL, root_ts))
    assert double.invalid == []
    everything = json.dumps(double.calls) + "".join(
        f.content.decode(errors="replace") for f in double.files
    )
    everything += "".join(Path(a.log_path).read_text() for a in apps if a.log_path)
    assert "[REDACTED]" in everything
    for secret in ("hunter2", "xoxb-1234567890-abcdefghij"):
        assert secret not in everything
    statuses = [r[1] for r in double.responses]
    assert statuses.count(429) == 1 and statuses.count(500) == 2  # and yet nothing was lost
    assert double.throttled == [
        (m, p) for m, p in double.throttled if m != "chat.update"
    ]  # updates were paced
    assert max(acks) < 3.0, max(acks)
    states = sandbox.states()
    assert sorted(states.values()).count("ACTIVE") == 1
    await redis.aclose()


async def test_status_and_abort_with_revert(world: dict[str, Any]) -> None:
    double: SlackDouble = world["double"]
    sandbox: RunningSandbox = world["sandbox"]
    app = await AppProcess(world["env"]).start()
    world["apps"].append(app)
    before = {p: p.read_bytes() for p in sandbox.dir.glob("hosts/*/etc/default/aurora-scheduler")}
    await post(app.url, slash_command_body(text="sandbox", user_id=ALICE, channel_id=CHANNEL))
    root = await until(lambda: double.messages(channel=CHANNEL), what="root")
    root_ts = root[0]["ts"]

    async def send(body: bytes) -> None:
        await post(app.url, body)

    thread = Thread(double, root_ts, send)
    await thread.approve("prep.stop", ALICE)
    await thread.skip("prep.block_traffic", BOB, "drill")
    for sid in ("prep.admin_access", "prep.disable"):
        await thread.approve(sid, ALICE)
    await until(
        lambda: [x for x in buttons(double, root_ts, "approve") if x[1]["sid"] == "prep.start"],
        what="prep.start",
    )
    assert any(p.read_bytes() != b for p, b in before.items())  # disabled

    status, text, _ = await post(
        app.url, slash_command_body(text="status", user_id=BOB, channel_id=CHANNEL)
    )
    assert status == 200
    await until(
        lambda: any(
            "prep.start" in json.dumps(e) and "sandbox" in json.dumps(e) for e in double.ephemerals
        ),
        what="status",
    )

    views_before = len(double.views)
    await post(app.url, slash_command_body(text="abort sandbox", user_id=BOB, channel_id=CHANNEL))
    await until(lambda: len(double.views) > views_before, what="abort modal")
    view = list(double.views.values())[-1]
    assert view["callback_id"] == "abort_restore"
    await post(
        app.url,
        view_submission_body(
            user_id=BOB,
            view_id=view["id"],
            callback_id="abort_restore",
            private_metadata=view["private_metadata"],
            state_values={
                "revert": {"revert": {"type": "radio_buttons", "selected_option": {"value": "yes"}}}
            },
        ),
    )
    redis = aioredis.Redis.from_url(world["redis_url"])
    store = Store(redis)
    rid = (await store.restore_ids())[0]
    for _ in range(300):
        rec = await store.load(rid)
        if rec is not None and rec.status == "reverted":
            break  # "aborted" comes first, while the revert runs
        await asyncio.sleep(0.2)
    assert rec is not None and rec.status == "reverted"
    assert {p: p.read_bytes() for p in before} == before  # every file back, byte for byte
    await until(
        lambda: (
            "aborted the restore and reverted"
            in json.dumps(double.messages(channel=CHANNEL, thread_ts=root_ts))
        ),
        what="line",
    )
    assert await store.holder("sandbox") is None
    assert double.invalid == []
    await redis.aclose()
