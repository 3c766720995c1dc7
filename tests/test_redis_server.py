"""The embedded store keeps everything it acknowledged: across a clean stop, a kill -9 of
the server, and a kill -9 of the bot process that started it; one server per data dir;
and Streams and Lua work on both servers the bot supports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from bot.redis_server import EmbeddedRedis, _is_valkey, ping
from bot.settings import Settings
from bot.wiring import store_url
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(60)


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _is_valkey(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_data_survives_a_stop_and_start(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        url = server.start()
        assert url == f"unix://{tmp_path.resolve()}/valkey.sock"
        assert server.start() == url  # idempotent
        r = redis.Redis.from_url(url)
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        assert r.config_get("appendfsync") == {"appendfsync": "always"}
        assert r.config_get("save") == {"save": ""}
        assert r.config_get("port") == {"port": "0"}
        assert (tmp_path / "valkey.sock").stat().st_mode & 0o777 == 0o700
        assert server.pid is not None and os.getsid(server.pid) != os.getsid(0)
        r.set("k", "v")
        r.xadd("s", {"e": "1"})
        r.close()
    assert not (tmp_path / "valkey.sock").exists() and not (tmp_path / "valkey.pid").exists()
    with EmbeddedRedis(tmp_path) as server:
        r = redis.Redis.from_url(server.start())
        assert r.get("k") == b"v"
        assert [f for _id, f in r.xrange("s")] == [{b"e": b"1"}]
        r.close()


async def test_kill_9_of_the_server_loses_nothing_acknowledged(tmp_path: Path) -> None:
    # Unsupervised, as when the bot that owned it is gone too (supervision: test_outages).
    server = EmbeddedRedis(tmp_path, supervise=False)
    r = aioredis.Redis.from_url(server.start())
    for i in range(200):
        await r.hset("h", str(i), i)
        await r.xadd("s", {"n": str(i)})
    await r.aclose()
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    # A killed server leaves its pidfile and socket behind: start() clears them.
    assert (tmp_path / "valkey.pid").exists() and (tmp_path / "valkey.sock").exists()
    server.stop()
    with EmbeddedRedis(tmp_path) as again:
        r = aioredis.Redis.from_url(again.start())
        assert not again.reused
        assert await r.hlen("h") == 200
        assert await r.xlen("s") == 200
        await r.aclose()


BOT = """
import os, sys, time, redis
from pathlib import Path
from bot.redis_server import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1]))
r = redis.Redis.from_url(server.start())
for i in range(100):
    r.xadd("events", {"n": str(i)})
r.set("approval", "alice")
print("written", server.pid, flush=True)
time.sleep(60)
"""


def test_kill_9_of_the_bot_loses_nothing(tmp_path: Path) -> None:
    """The acceptance: state survives the bot being killed (kill -9) and restarted."""
    bot = subprocess.Popen(
        [sys.executable, "-c", BOT, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert bot.stdout is not None
    word, pid = bot.stdout.readline().split()
    assert word == "written"
    bot.kill()
    bot.wait()
    bot.stdout.close()
    if not _gone(int(pid)):
        os.kill(int(pid), signal.SIGKILL)
        pytest.fail("the embedded server outlived the bot (PR_SET_PDEATHSIG)")
    with EmbeddedRedis(tmp_path) as server:
        r = redis.Redis.from_url(server.start())
        assert server.pid != int(pid) and not server.reused
        assert r.xlen("events") == 100
        assert r.get("approval") == b"alice"
        r.close()


def test_a_running_server_on_the_data_dir_is_reused_not_doubled(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as first:
        url = first.start()
        second = EmbeddedRedis(tmp_path)
        assert second.start() == url
        assert second.reused and second.pid == first.pid
        second.stop()  # not its server: left running
        assert ping(url)
        r = redis.Redis.from_url(url)
        assert r.ping()
        r.close()
    assert not ping(url)


def test_a_server_started_from_a_worker_thread_outlives_the_thread(tmp_path: Path) -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* exits, so it is not set there.
    server = EmbeddedRedis(tmp_path)
    thread = threading.Thread(target=server.start)
    thread.start()
    thread.join()
    try:
        time.sleep(0.1)
        assert ping(server.url)
    finally:
        server.stop()


def test_a_pidfile_naming_another_process_is_stale(tmp_path: Path) -> None:
    (tmp_path / "valkey.pid").write_text(f"{os.getpid()}\n")
    (tmp_path / "valkey.addr").write_text(f"unix://{tmp_path}/valkey.sock\n")
    (tmp_path / "valkey.sock").write_text("")
    with EmbeddedRedis(tmp_path) as server:
        assert ping(server.start()) and not server.reused


def test_a_server_that_cannot_start_is_an_error_saying_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("bot.redis_server.valkey_binary", lambda: Path("/bin/false"))
    with pytest.raises(RuntimeError, match="exited with 1 while starting"):
        EmbeddedRedis(tmp_path).start()


def test_a_data_dir_too_deep_for_a_unix_socket_uses_loopback(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep) as server:
        url = server.start()
        assert url.startswith("redis://127.0.0.1:")
        r = redis.Redis.from_url(url)
        r.set("k", "v")
        r.close()
    assert not (deep / "valkey.sock").exists()
    with EmbeddedRedis(deep) as server:
        r = redis.Redis.from_url(server.start())
        assert r.get("k") == b"v"
        r.close()


def test_redis_url_wins(tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://example.invalid:6379/0", "AURORA_RESTORE_DATA": str(tmp_path)}
    url, server = store_url(Settings.from_env(env))
    assert (url, server) == ("redis://example.invalid:6379/0", None)
    assert list(tmp_path.iterdir()) == []


def test_no_redis_url_starts_the_embedded_server(tmp_path: Path) -> None:
    url, server = store_url(Settings.from_env({"AURORA_RESTORE_DATA": str(tmp_path / "data")}))
    assert server is not None
    try:
        assert url.startswith("unix://") and ping(url)
    finally:
        server.stop()


async def test_streams_and_lua_on_both_servers(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url)
    try:
        script = (
            "redis.call('XADD', KEYS[1], '*', 'e', ARGV[1]); return redis.call('XLEN', KEYS[1])"
        )
        assert await r.eval(script, 1, "s", "x") == 1
        assert [f for _id, f in await r.xrange("s")] == [{b"e": b"x"}]
        await r.xgroup_create("s", "g", id="0")
        got = await r.xreadgroup("g", "c", {"s": ">"})
        assert [f for _id, f in got[0][1]] == [{b"e": b"x"}]
    finally:
        await r.aclose()
