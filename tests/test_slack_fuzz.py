"""A seeded fuzz of the Slack app over HTTP: slash commands, block actions and view
submissions, signed and unsigned, well-formed and not, against the real app (its aiohttp
handler, Bolt, the work loop, a real Redis, the Slack double).

The bulk goes through aiohttp's test client (in process, the same handler and app); a
slice goes over a real socket. A restore of `west` is running (started in CHANNEL by an
approver, its preflight failed: the recording remote fails every command), so every
request meets a live restore. The fuzz never sends an approver's request from the
restore's own workspace and channel: whatever else it sends must change nothing on the
schedulers. It prints the number of requests, 5xx answers, tracebacks in the log and
commands sent to hosts, and asserts 0, 0, 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot import settings as bot_settings
from bot.redis_server import EmbeddedRedis
from bot.slack_app import build, web_app
from handlers.shapes import ACTIONS, VIEWS
from runbook.clusters import Cluster
from runbook.ports import HostResult, OnResult
from runbook.store import Store
from tests.conftest import free_port
from tests.slack_double import SlackDouble, sign, slash_command_body

pytestmark = pytest.mark.timeout(240)

SEED = 20261201
IN_PROCESS = 10_000
OVER_SOCKET = 600
SECRET = "fuzz-signing-secret-0123456789abcdef"
CHANNEL, ELSEWHERE = "C0OPS", "C0ELSEWHERE"
TEAM, EVIL_TEAM = "T0AURORA", "T0EVIL"
ALICE, BOB, MALLORY = "U0ALICE", "U0BOB", "U0MALLORY"
STEPS = ["prep.preflight", "prep.stop", "log.wipe", "restore.commit", "cleanup.verify", "nope"]


class RecordingRemote:
    """Stands in for SSH and /vars: records every command and fails it."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []

    def __call__(self, cluster: Cluster) -> tuple[Any, Any]:
        return self, self

    async def run(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float | None = None,
        stdin: Mapping[str, bytes] | None = None,
        on_result: OnResult | None = None,
    ) -> dict[str, HostResult]:
        out = {}
        for host, command in commands.items():
            self.commands.append((host, command))
            out[host] = HostResult(host, None, "", "", 0.0, "unreachable (fuzz)")
            if on_result is not None:
                maybe = on_result(out[host])
                if asyncio.iscoroutine(maybe):
                    await maybe
        return out

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes:
        self.commands.append((host, f"read {path}"))
        raise OSError(f"{host}: unreachable (fuzz)")

    async def vars(
        self, endpoints: Mapping[str, tuple[str, int]], timeout: float
    ) -> dict[str, dict[str, str] | str]:
        return {host: "unreachable (fuzz)" for host in endpoints}

    async def close(self) -> None:
        return None


class Captured(logging.Handler):
    """Every log record at INFO and above, formatted (with its traceback, if any)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def placeholder(path: Path) -> Path:
    """A file that exists but is no SSH key or known host: the restore may start (the
    engine refuses one whose files are missing) and its first SSH step fails."""
    if not path.exists():
        path.write_text("not a key\n")
    return path


def cluster_file(path: Path) -> Path:
    text = ""
    for name, channels in (("west", CHANNEL), ("east", "C0NOWHERE")):
        text += f"""
[clusters.{name}]
channels = ["{channels}"]
[clusters.{name}.ssh]
key = "{placeholder(path.parent / "no-key")}"
known_hosts = "{placeholder(path.parent / "known_hosts")}"
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


# ------------------------------------------------------------------ what the fuzz sends


class Fuzz:
    def __init__(self, rng: random.Random, rid: str, root_ts: str) -> None:
        self.rng = rng
        self.rid = rid
        self.root_ts = root_ts

    def junk(self, depth: int = 0) -> Any:
        r = self.rng
        choice = r.randrange(12)
        if choice == 0:
            return None
        if choice == 1:
            return r.randint(-(2**40), 2**40)
        if choice == 2:
            return r.random() * 1e6
        if choice == 3:
            return r.choice([True, False])
        if choice == 4 and depth < 3:
            return [self.junk(depth + 1) for _ in range(r.randrange(4))]
        if choice == 5 and depth < 3:
            return {self.text(8): self.junk(depth + 1) for _ in range(r.randrange(4))}
        if choice == 6:
            return "".join(chr(r.randrange(0x20, 0x2FFF)) for _ in range(r.randrange(40)))
        if choice == 7:
            return r.choice(["", " ", "\n", "$(reboot)", "; rm -rf /", "`id`", "../../etc"])
        if choice == 8:
            return "x" * r.choice([300, 5000, 70_000])
        if choice == 9:
            return json.dumps({"rid": self.rid, "sid": r.choice(STEPS)})
        return self.text(r.randrange(1, 30))

    def text(self, n: int) -> str:
        alphabet = "abcXYZ019_-.:/ {}[]\"'=&%+"
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def place(self) -> tuple[str, str, str]:
        """(team, channel, user): never an approver in the restore's own team and channel."""
        r = self.rng
        team = r.choice([TEAM, TEAM, EVIL_TEAM])
        channel = r.choice([CHANNEL, CHANNEL, ELSEWHERE, "D0ALICE", "G0GROUP"])
        if team == TEAM and channel == CHANNEL:
            user = r.choice([MALLORY, "U0FZ" + str(r.randrange(999))])
        else:
            user = r.choice([ALICE, BOB, MALLORY])
        return team, channel, user

    def rid_value(self) -> str:
        r = self.rng
        rid = r.choice([self.rid, self.rid, "0" * 12, self.text(12)])
        if r.random() < 0.1:
            return str(self.junk())
        return json.dumps({"rid": rid, "sid": r.choice(STEPS)})

    def slash(self) -> dict[str, Any]:
        r = self.rng
        team, channel, user = self.place()
        words = r.choice(
            [
                ["west"],
                ["east"],
                ["west", "scheduler-backup-2026-11-27-01-30"],
                ["west", "scheduler-backup-x;reboot"],
                ["status"],
                ["status", "west"],
                ["abort"],
                ["abort", "west"],
                ["export"],
                ["export", self.rid],
                ["export", self.text(10)],
                ["help"],
                [self.text(r.randrange(1, 20))],
                ["payload"],
            ]
        )
        return {
            "token": "x",
            "team_id": team,
            "team_domain": "t",
            "channel_id": channel,
            "channel_name": "directmessage" if channel.startswith("D") else "ops",
            "user_id": user,
            "user_name": "u",
            "command": r.choice(["/aurora-restore"] * 9 + ["/other"]),
            "text": " ".join(words),
            "api_app_id": "A0AURORA",
            "response_url": "https://hooks.slack.com/commands/x",
            "trigger_id": f"{time.time():.0f}.{r.randrange(10**9)}.abc",
        }

    def action(self) -> dict[str, Any]:
        r = self.rng
        team, channel, user = self.place()
        action_id = r.choice([*ACTIONS, *ACTIONS, "other"])
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": "actions",
            "type": "button",
            "action_ts": f"{time.time() + r.random():.6f}",
        }
        if action_id == "choose_backup":
            action["block_id"] = f"backup.{r.choice([self.rid, self.text(5)])}"
            action["type"] = "static_select"
            action["selected_option"] = {"value": r.choice(["scheduler-backup-x", self.text(9)])}
        else:
            action["value"] = self.rid_value()
        return {
            "type": "block_actions",
            "user": {"id": user, "username": "u", "team_id": team},
            "api_app_id": "A0AURORA",
            "container": {
                "type": "message",
                "message_ts": self.root_ts,
                "channel_id": channel,
                "thread_ts": self.root_ts,
            },
            "trigger_id": f"{time.time():.0f}.{r.randrange(10**9)}.abc",
            "team": {"id": team, "domain": "t"},
            "enterprise": r.choice([None, None, None, {"id": "E0EVIL"}]),
            "channel": {"id": channel, "name": "ops"},
            "actions": [action],
        }

    def view(self) -> dict[str, Any]:
        r = self.rng
        team, _, user = self.place()
        callback = r.choice([*VIEWS, "other"])
        meta = {"rid": r.choice([self.rid, self.text(12)]), "sid": r.choice(STEPS)}
        values = r.choice(
            [
                {"reason": {"reason": {"type": "plain_text_input", "value": self.text(20)}}},
                {"ids": {"ids": {"type": "plain_text_input", "value": self.text(30)}}},
                {
                    "revert": {
                        "revert": {"type": "radio_buttons", "selected_option": {"value": "yes"}}
                    }
                },
            ]
        )
        return {
            "type": "view_submission",
            "team": {"id": team},
            "user": {"id": user, "team_id": team},
            "trigger_id": "t",
            "view": {
                "id": f"V{r.randrange(100):08d}",
                "hash": f"{r.randrange(10**6)}.x",
                "callback_id": callback,
                "private_metadata": json.dumps(meta) if r.random() < 0.9 else self.text(9),
                "state": {"values": values},
            },
        }

    def mutate(self, obj: Any, depth: int = 0) -> Any:
        """Replace, drop or add one thing somewhere in `obj`."""
        r = self.rng
        if not isinstance(obj, dict) or not obj or depth > 4:
            return self.junk()
        obj = dict(obj)
        key = r.choice(list(obj))
        what = r.randrange(4)
        if what == 0:
            del obj[key]
        elif what == 1:
            obj[self.text(6)] = self.junk()
        elif isinstance(obj[key], list) and obj[key]:
            obj[key] = [self.mutate(obj[key][0], depth + 1), *obj[key][1:]]
        else:
            obj[key] = self.mutate(obj[key], depth + 1)
        return obj

    def request(self) -> tuple[bytes, dict[str, str]]:
        """One request: its body and headers."""
        r = self.rng
        kind = r.randrange(10)
        if kind < 4:
            body = self.wellformed()
        elif kind < 7:
            body = self.mutated()
        else:
            body = self.garbage()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        signing = r.randrange(10)
        if signing < 6:
            headers.update(sign(SECRET, body))
        elif signing == 6:
            headers.update(sign("not-the-secret", body))
        elif signing == 7:
            headers.update(sign(SECRET, body, int(time.time()) - 301))
        elif signing == 8:
            headers["X-Slack-Request-Timestamp"] = r.choice(["x", "1e3", "-5", "", "9" * 30])
            headers["X-Slack-Signature"] = sign(SECRET, body)["X-Slack-Signature"]
        if r.random() < 0.2:
            headers["X-Slack-Retry-Num"] = r.choice(["1", "2", "x"])
        return body, headers

    def encode(self, obj: Any) -> bytes:
        if isinstance(obj, dict) and "command" in obj:
            return urllib.parse.urlencode({k: str(v) for k, v in obj.items()}).encode()
        return urllib.parse.urlencode({"payload": json.dumps(obj)}).encode()

    def wellformed(self) -> bytes:
        kind = self.rng.randrange(3)
        return self.encode([self.slash, self.action, self.view][kind]())

    def mutated(self) -> bytes:
        kind = self.rng.randrange(3)
        return self.encode(self.mutate([self.slash, self.action, self.view][kind]()))

    def garbage(self) -> bytes:
        r = self.rng
        kind = r.randrange(8)
        if kind == 0:
            return bytes(r.randrange(256) for _ in range(r.randrange(200)))
        if kind == 1:
            return b"payload=" + urllib.parse.quote(json.dumps(self.junk())).encode()
        if kind == 2:
            return b"payload=" + b"%5B" * r.randrange(1, 3000)
        if kind == 3:
            return b"payload=%7B%22type%22%3A" + bytes([r.randrange(256)])
        if kind == 4:
            return json.dumps(self.action()).encode()
        if kind == 5:
            return b"&".join(self.text(5).encode() for _ in range(r.randrange(1, 80)))
        if kind == 6:
            return b"ssl_check=1&token=x"
        return self.encode(self.slash())[: r.randrange(1, 60)]


# ------------------------------------------------------------------ the run


async def test_fuzz_changes_nothing_and_never_fails(tmp_path: Path) -> None:
    double = SlackDouble()
    api = await double.start()
    server = EmbeddedRedis(tmp_path / "redis")
    redis_url = server.start()
    captured = Captured()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    remote = RecordingRemote()
    settings = bot_settings.load(
        {
            "SLACK_BOT_TOKEN": double.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": api,
            "AURORA_RESTORE_CLUSTERS": str(cluster_file(tmp_path / "clusters.toml")),
        }
    )
    bot = build(settings, redis_url, remote=remote)
    # The test's own server: acknowledged writes need not reach the disk.
    await bot.front.call(bot.redis.config_set("appendfsync", "no"))
    store = Store(bot.redis)
    client = TestClient(TestServer(web_app(bot, SECRET), access_log=None))
    await client.start_server()
    runner = web.AppRunner(web_app(bot, SECRET), access_log=None)
    statuses: list[int] = []
    replies: list[str] = []  # what the acks said (slash commands answer in them)
    try:
        # A restore of west, started by an approver in its channel.
        body = slash_command_body(text="west", user_id=ALICE, channel_id=CHANNEL, team_id=TEAM)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
        assert (await client.post("/slack/events", data=body, headers=headers)).status == 200
        rid = await _wait(lambda: bot.front.call(store.restore_ids()), what="the restore")
        rid = rid[0]

        async def preflight_failed() -> bool:
            rec = await bot.front.call(store.load(rid))
            return rec is not None and rec.steps["prep.preflight"]["status"] == "failed"

        await _wait(preflight_failed, what="the preflight to fail")
        root_ts = double.messages(channel=CHANNEL)[0]["ts"]
        await _drain(bot)
        sent_before = len(remote.commands)
        events_before = await bot.front.call(store.events(rid))

        fuzz = Fuzz(random.Random(SEED), rid, root_ts)

        async def send_in_process(n: int) -> None:
            for _ in range(n):
                body, headers = fuzz.request()
                resp = await client.post("/slack/events", data=body, headers=headers)
                replies.append(await resp.text())
                statuses.append(resp.status)

        await asyncio.gather(*(send_in_process(IN_PROCESS // 8) for _ in range(8)))

        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def send_over_socket(n: int) -> None:
                for _ in range(n):
                    body, headers = fuzz.request()
                    r = await http.post("/slack/events", content=body, headers=headers)
                    statuses.append(r.status_code)

            await asyncio.gather(*(send_over_socket(OVER_SOCKET // 4) for _ in range(4)))
        await _drain(bot)

        server_errors = sum(1 for s in statuses if s >= 500)
        tracebacks = sum(1 for line in captured.lines if "Traceback" in line)
        sent = len(remote.commands) - sent_before
        answered = {s: statuses.count(s) for s in sorted(set(statuses))}
        print(
            f"\nfuzz: {len(statuses)} requests ({answered}), {server_errors} 5xx answers, "
            f"{tracebacks} tracebacks in the log, {sent} commands sent to hosts"
        )
        assert len(statuses) == IN_PROCESS + OVER_SOCKET
        # Every kind of answer was met: the fuzz reached the listeners, and was refused.
        assert {200, 400, 401} <= set(answered)
        assert (server_errors, tracebacks, sent) == (0, 0, 0), [
            line for line in captured.lines if "Traceback" in line or "ERROR" in line
        ][:5]
        rec = await bot.front.call(store.load(rid))
        # A failed preflight ended the restore (and freed the cluster): it stays so.
        assert rec is not None and rec.status == "failed"
        assert await bot.front.call(store.holder("west")) is None
        # Only refusals and exports were written: no step moved.
        events = await bot.front.call(store.events(rid))
        assert [e["type"] for e in events] == [e["type"] for e in events_before]
        assert double.invalid == []
        # The listeners were reached, and refused for each reason.
        told = [e["text"] for e in double.ephemerals] + replies
        for reason in (
            "lives in <#",
            "answers only in its own workspace",
            "is not an approver for west",
            "starts only in",
            "not in a direct message",
            "No restore is running in this channel",
        ):
            assert any(reason in t for t in told), reason
    finally:
        root.removeHandler(captured)
        root.setLevel(old_level)
        await runner.cleanup()
        await client.close()
        await bot.close()
        await double.stop()
        server.stop()


async def _wait(read: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await read()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _drain(bot: Any, timeout: float = 60) -> None:
    """Until the work after the acks (refusals, lines, exports) is done."""
    deadline = time.monotonic() + timeout
    while bot.front.tasks and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not bot.front.tasks, f"{len(bot.front.tasks)} background tasks still running"
