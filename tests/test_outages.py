"""No step stays `running` for ever, and no click is lost silently, when a part dies: a
worker killed mid-step is swept by another living process; Redis away for ten seconds
mid-step loses nothing the hosts did; the embedded store killed is restarted on its AOF;
and while the store is away the bot says so (on /healthz and to whoever clicks).

Everything is real: the sandbox over SSH, Debian's `redis-server` (stopped and started
again on its AOF here), the bundled valkey-server, `aurora-restore serve` processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bot.redis_server import EmbeddedRedis, ping, send_shutdown
from bot.wiring import connect
from runbook.engine import Engine
from runbook.procedures import PROCEDURES
from runbook.store import Store, restore_key
from tests.conftest import ROOT, RunningSandbox, free_port, wait_for
from tests.slack_double import SlackDouble, slash_command_body
from tests.test_engine import ALICE, FAST, WORKER, make_engine, status
from tests.test_slack_app import CHANNEL, SECRET, AppProcess, Thread, post, until

pytestmark = pytest.mark.timeout(240)

HOSTS = ["scheduler-1", "scheduler-2", "scheduler-3"]
QUICK_START = replace(FAST, start_wait=20)


class RedisProcess:
    """Debian's redis-server on a loopback port, with its AOF fsynced on every write,
    that a test stops (SHUTDOWN) and starts again on the same data and port."""

    def __init__(self, data: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.data = data
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        data.mkdir(parents=True, exist_ok=True)

    def start(self) -> RedisProcess:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data),
             "--daemonize", "no", "--logfile", str(self.data / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: ping(self.url), timeout=10, interval=0.02)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None and not send_shutdown(self.url):
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "own-redis").start()
    try:
        yield server
    finally:
        server.stop()


def patch_systemctl(
    sandbox: RunningSandbox, host: str, verb: str, seconds: int
) -> Callable[[], None]:
    """Make `systemctl <verb>` on one host sleep first (as test_engine makes start hang);
    returns what puts the original back."""
    sched = next(s for s in sandbox.cluster.schedulers if s.host == host)
    env = Path(sandbox.cluster.path(sched, "env_file") or "")
    systemctl = env.parent.parent.parent / "usr/local/bin/systemctl"
    original = systemctl.read_text()
    systemctl.write_text(
        original.replace("exec ", f'if [ "$1" = {verb} ]; then sleep {seconds}; fi\nexec ', 1)
    )
    return lambda: systemctl.write_text(original)


def store_lines(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "runbook.store" and words in r.getMessage()
    ]


# -- a: a worker killed mid-step, swept by another living process ----------------------


async def test_a_worker_killed_mid_step_is_swept_by_another_process(
    sandbox: RunningSandbox, store: Store, redis_url: str
) -> None:
    """Nobody calls `recover`: the other engine's sweep finds the expired lease."""
    unpatch = patch_systemctl(sandbox, "scheduler-1", "start", 30)
    # The check of prep.start waits up to start_wait for the hung host: not 3 minutes here.
    other = Engine(
        store,
        {"sandbox": sandbox.cluster},
        connect,
        timing=QUICK_START,
        lease_ms=3000,
        procedures=PROCEDURES,
    )
    sweeping = asyncio.create_task(other.sweep_forever())
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(sandbox.dir / "clusters.toml"), redis_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        rid = proc.stdout.readline().strip()
        for _ in range(100):
            if await status(other, rid, "prep.start") == "running":
                break
            await asyncio.sleep(0.1)
        assert await status(other, rid, "prep.start") == "running"
        # The worker is alive and renews its lease: the sweeps leave its step alone.
        await asyncio.sleep(3)
        assert await status(other, rid, "prep.start") == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    unpatch()

    async def step() -> dict[str, Any]:
        return dict((await other.record(rid)).steps["prep.start"])

    # The worker's lease is 2 s and the sweep runs every 1.5 s.
    for _ in range(200):
        if (await step())["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert (await step())["status"] == "interrupted"
    # Then its check runs (it waits for the hung host, up to start_wait).
    for _ in range(600):
        if "appears_finished" in await step():
            break
        await asyncio.sleep(0.1)
    assert "appears_finished" in await step()
    events = [e["type"] for e in await store.events(rid) if e.get("step") == "prep.start"]
    assert events.count("interrupted") == 1 and "checked" in events
    out = await other.retry(rid, "prep.start", ALICE)
    assert out.ok, out.summary
    assert await status(other, rid, "prep.start") == "succeeded"
    sweeping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeping
    await other.close()


# -- b: Redis away for ten seconds while a step runs -----------------------------------


async def test_redis_away_mid_step_loses_no_host_result(
    sandbox: RunningSandbox,
    own_redis: RedisProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every host's `systemctl stop` finishes while Redis is down; once it is back (on
    its AOF) every result is recorded and the step succeeds, though its lease ran out
    meanwhile and both this process and another one sweep expired leases."""
    caplog.set_level(logging.WARNING)
    client = aioredis.Redis.from_url(own_redis.url)
    store = Store(client)
    engine = make_engine(store, sandbox.cluster)
    other_client = aioredis.Redis.from_url(own_redis.url)
    other = make_engine(Store(other_client), sandbox.cluster)
    sweepers = [asyncio.create_task(e.sweep_forever()) for e in (engine, other)]
    rid = await engine.start("sandbox", None, ALICE)
    await engine.advance(rid)
    assert await status(engine, rid, "prep.stop") == "awaiting"
    for host in HOSTS:
        patch_systemctl(sandbox, host, "stop", 3)
    approving = asyncio.create_task(engine.approve(rid, "prep.stop", ALICE))
    for _ in range(100):
        if await status(engine, rid, "prep.stop") == "running":
            break
        await asyncio.sleep(0.05)
    assert await status(engine, rid, "prep.stop") == "running"
    own_redis.stop()
    await asyncio.sleep(10)  # the outage: the commands end meanwhile, the lease runs out
    assert not approving.done()
    assert sandbox.states() == {h: "DOWN" for h in HOSTS}
    own_redis.start()
    out = await approving
    assert out.ok, out.summary
    for task in sweepers:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await status(engine, rid, "prep.stop") == "succeeded"
    events = [e for e in await store.events(rid) if e.get("step") == "prep.stop"]
    assert sorted(e["host"] for e in events if e["type"] == "host_result") == HOSTS
    assert [e["type"] for e in events].count("interrupted") == 0
    outputs = await store.step_outputs(rid, "prep.stop", 1, HOSTS)
    assert sorted(outputs) == HOSTS and all(o["exit_status"] == 0 for o in outputs.values())
    assert len(store_lines(caplog, "unreachable")) == 1
    assert len(store_lines(caplog, "back after")) == 1
    for e in (engine, other):
        await e.close()
    await client.aclose()
    await other_client.aclose()


# -- c: the embedded store killed while in use -----------------------------------------


async def test_the_embedded_store_killed_is_restarted_on_its_aof(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = EmbeddedRedis(tmp_path / "store")
    url = server.start()
    client = aioredis.Redis.from_url(url)
    store = Store(client)
    store.outage_wait = 30  # a store that never comes back fails the test sooner
    acked: list[int] = []

    async def write(n: int) -> None:
        for i in range(len(acked), len(acked) + n):
            await store.set_data("r1", **{f"k{i}": i})
            acked.append(i)

    try:
        await write(100)
        killed = server.pid
        assert killed is not None
        writing = asyncio.create_task(write(200))
        while len(acked) < 150:
            await asyncio.sleep(0)
        os.kill(killed, signal.SIGKILL)  # mid-stream: some writes are in flight
        await writing  # the client reconnects; the writes wait for the restarted server
        assert len(acked) == 300
        assert server.restarts == 1 and server.pid != killed and server.url == url
        assert ping(url)
        stored = await client.hgetall(restore_key("r1"))
        assert sorted(int(json.loads(v)) for v in stored.values()) == list(range(300))
        restarts = [r.getMessage() for r in caplog.records if r.name == "bot.redis_server"]
        assert len(restarts) == 1 and f"pid {killed}" in restarts[0]
        assert "signal 9" in restarts[0] and "restarted it" in restarts[0]
    finally:
        await client.aclose()
        server.stop()
    assert not ping(url)  # a stop is not a death: nothing restarts it


# -- the click path and /healthz while the store is away --------------------------------


@pytest.fixture
async def app_on_own_redis(
    sandbox: RunningSandbox, own_redis: RedisProcess, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    text = (sandbox.dir / "clusters.toml").read_text()
    clusters = tmp_path / "clusters.toml"
    clusters.write_text(text.replace("users = []", 'users = ["U0ALICE", "U0BOB"]'))
    double = SlackDouble()
    api = await double.start()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api,
        "REDIS_URL": own_redis.url,
        "AURORA_RESTORE_CLUSTERS": str(clusters),
        "APP_LOG": str(tmp_path / "app.log"),
    }
    app = AppProcess(env)
    try:
        await app.start()
        yield {"app": app, "double": double, "log": tmp_path / "app.log"}
    finally:
        await app.stop(signal.SIGKILL)
        await double.stop()


async def healthz(app: AppProcess) -> int:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{app.port}/healthz", timeout=20)
        return r.status_code


async def test_while_the_store_is_away_clicks_are_refused_and_healthz_says_503(
    app_on_own_redis: dict[str, Any], own_redis: RedisProcess
) -> None:
    app: AppProcess = app_on_own_redis["app"]
    double: SlackDouble = app_on_own_redis["double"]

    async def send(body: bytes) -> None:
        code, text, _ = await post(app.url, body)
        assert code == 200, text

    await send(slash_command_body(text="sandbox", user_id="U0ALICE", channel_id=CHANNEL))
    root = await until(
        lambda: [
            m
            for m in double.messages(channel=CHANNEL)
            if "Aurora restore" in json.dumps(m.get("blocks"))
        ],
        what="root message",
    )
    thread = Thread(double, root[0]["ts"], send)
    msg, value = await thread.card("prep.stop")
    assert await healthz(app) == 200

    own_redis.stop()
    assert await healthz(app) == 503
    for user in ("U0ALICE", "U0BOB"):  # two clicks, one outage
        await send(thread.click("approve", msg, value, user))
    refusals = await until(
        lambda: [e for e in double.ephemerals if "cannot reach its store" in e["text"]][1:],
        what="two refusals",
    )
    assert {e["user"] for e in refusals} <= {"U0ALICE", "U0BOB"}
    assert "nothing was done" in refusals[0]["text"]

    own_redis.start()
    assert await healthz(app) == 200
    client = aioredis.Redis.from_url(own_redis.url)
    store = Store(client)
    rid = (await store.restore_ids())[0]
    rec = await store.load(rid)
    assert rec is not None and rec.steps["prep.stop"]["status"] == "awaiting"
    assert "approved" not in [e["type"] for e in await store.events(rid)]
    await client.aclose()
    log = Path(app_on_own_redis["log"]).read_text()
    assert log.count("clicks are refused until it is back") == 1
