"""The embedded store keeps everything it acknowledged: across a clean stop, a kill -9 of
the server, and a kill -9 of the bot process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from bot.redis_server import EmbeddedRedis, redis_url_from_env
from tests.conftest import ROOT
from tests.redis_servers import redis_url  # noqa: F401

pytestmark = pytest.mark.timeout(60)


def test_data_survives_a_stop_and_start(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        r = redis.Redis.from_url(server.start())
        r.set("k", "v")
        r.xadd("s", {"e": "1"})
        r.close()
    with EmbeddedRedis(tmp_path) as server:
        r = redis.Redis.from_url(server.start())
        assert r.get("k") == b"v" and r.xlen("s") == 1
        r.close()


def test_kill_9_of_the_server_loses_nothing_acknowledged(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    r = redis.Redis.from_url(server.start())
    for i in range(200):
        r.hset("h", str(i), i)
    r.close()
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    server.proc = None
    with EmbeddedRedis(tmp_path) as again:
        r = redis.Redis.from_url(again.start())
        assert r.hlen("h") == 200
        r.close()


BOT = """
import sys, time, redis
from pathlib import Path
from bot.redis_server import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1]))
r = redis.Redis.from_url(server.start())
for i in range(100):
    r.xadd("events", {"n": str(i)})
print("written", flush=True)
time.sleep(60)
"""


def test_kill_9_of_the_bot_loses_nothing(tmp_path: Path) -> None:
    bot = subprocess.Popen(
        [sys.executable, "-c", BOT, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert bot.stdout is not None
    assert bot.stdout.readline().strip() == "written"
    bot.send_signal(signal.SIGKILL)
    bot.wait()
    bot.stdout.close()
    with EmbeddedRedis(tmp_path) as server:
        r = redis.Redis.from_url(server.start())
        assert r.xlen("events") == 100
        r.close()


def test_redis_url_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:6379/0")
    url, server = redis_url_from_env(tmp_path)
    assert (url, server) == ("redis://example.invalid:6379/0", None)
    assert list(tmp_path.iterdir()) == []


async def test_streams_and_lua_on_both_servers(redis_url: str) -> None:  # noqa: F811
    r = aioredis.Redis.from_url(redis_url)
    await r.flushall()
    n = await r.eval(
        "redis.call('XADD', KEYS[1], '*', 'e', ARGV[1]); return redis.call('XLEN', KEYS[1])",
        1,
        "s",
        "x",
    )
    assert n == 1
    assert [f for _id, f in await r.xrange("s")] == [{b"e": b"x"}]
    await r.aclose()
