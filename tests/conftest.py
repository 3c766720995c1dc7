"""Shared fixtures: a running sandbox (as a real `aurora-restore sandbox` process), a real
ZooKeeper server (Debian's `zookeeper` package), and small helpers to drive them from
outside, the way the bot does."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.wiring import open_store
from runbook.clusters import Cluster, load_clusters
from runbook.store import Store
from sandbox.layout import SandboxInfo

# Every test module gets the `redis_url` fixture (the embedded store and Debian's redis-server).
pytest_plugins = ["tests.redis_servers"]

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the settings of the shell that runs it: every AURORA_RESTORE_*,
    REDIS_URL and SLACK_* variable is cleared (a test sets what it needs)."""
    for name in list(os.environ):
        if name.startswith(("AURORA_RESTORE_", "SLACK_")) or name == "REDIS_URL":
            monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; return its value, or fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {predicate!r} (last error: {last_exc!r})"
    )


class RunningSandbox:
    """`aurora-restore sandbox --dir DIR ...` as a child process (`launcher`: the module
    and words before `--dir`; tests.sandbox_runner runs `python -m sandbox` instead)."""

    launcher: tuple[str, ...] = ("bot.cli", "sandbox")
    ready_timeout = 10.0

    def __init__(self, directory: Path, *args: str) -> None:
        self.dir = directory
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self, timeout: float | None = None) -> RunningSandbox:
        timeout = self.ready_timeout if timeout is None else timeout
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.launcher, "--dir", str(self.dir), *self.args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith("ready"):
                self.ready_after = time.monotonic() - self.started_at
                return self
        self.stop()
        raise AssertionError("sandbox did not become ready:\n" + "".join(self.output))

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    @property
    def info(self) -> SandboxInfo:
        return SandboxInfo.load(self.dir)

    @property
    def cluster(self) -> Cluster:
        return load_clusters(self.dir / "clusters.toml")["sandbox"]

    def vars(self, host: str) -> dict[str, str]:
        h = self.info.host(host)
        text = httpx.get(f"http://{h.address}:{h.http_port}/vars", timeout=2).text
        return dict(line.split(" ", 1) for line in text.splitlines())

    def states(self) -> dict[str, str]:
        """Each host's lifecycle state from /vars ('DOWN' when it does not answer)."""
        out = {}
        for h in self.info.hosts:
            try:
                v = self.vars(h.name)
                out[h.name] = next(
                    k.removeprefix("scheduler_lifecycle_")
                    for k, val in v.items()
                    if k.startswith("scheduler_lifecycle_") and val == "1"
                )
            except (httpx.HTTPError, StopIteration):
                out[h.name] = "DOWN"
        return out

    def leaders(self, state: str) -> list[str]:
        return [h for h, s in self.states().items() if s == state]

    def ssh(self, host: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command with the real OpenSSH client and only DIR/ssh_config."""
        return subprocess.run(
            ["ssh", "-F", str(self.dir / "ssh_config"), host, command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def sandbox_pids(self) -> list[int]:
        """Processes whose environment names this sandbox (schedulers, commands)."""
        marker = f"SANDBOX_DIR={self.dir}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
        return pids


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[Callable[..., RunningSandbox]]:
    started: list[RunningSandbox] = []

    def make(*args: str, directory: Path | None = None) -> RunningSandbox:
        sb = RunningSandbox(directory or tmp_path / "sandbox", "--restart-sec", "0.5", *args)
        started.append(sb.start())
        return sb

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    return make_sandbox()


def _zookeeper_classpath() -> str | None:
    jars = Path("/usr/share/java")
    if not (jars / "zookeeper.jar").exists() or not shutil.which("java"):
        return None
    return f"{jars}/*"


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ZooKeeper server (Debian's package) on a free loopback port."""
    classpath = _zookeeper_classpath()
    if classpath is None:
        if IN_CI:
            pytest.fail(
                "ZooKeeper is not installed (apt-get install zookeeper); .ci/run installs it"
            )
        pytest.skip("ZooKeeper is not installed (apt-get install zookeeper)")
    data = tmp_path_factory.mktemp("zookeeper")
    port = free_port()
    cfg = data / "zoo.cfg"
    cfg.write_text(
        f"tickTime=500\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "admin.enableServer=false\n4lw.commands.whitelist=ruok,cons\nmaxSessionTimeout=20000\n"
        "minSessionTimeout=1000\n"
    )
    log = (data / "zookeeper.out").open("w")
    proc = subprocess.Popen(
        [
            "java",
            "-Xmx256m",
            "-cp",
            classpath,
            f"-Dzookeeper.log.dir={data}",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(cfg),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ruok() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"ruok")
            return s.recv(16) == b"imok"

    try:
        wait_for(ruok, timeout=30, interval=0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    """A `Store` on an empty server, once for each kind of server (see redis_url)."""
    async with open_store(redis_url) as s:
        await s.redis.flushall()
        yield s


@pytest.fixture
async def one_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A `Store` on the embedded server only (what the bot runs without REDIS_URL): for the
    long scenario tests, where the kind of server does not matter; the store's own tests
    and the engine's rules run on both kinds (`store`)."""
    from bot.redis_server import EmbeddedRedis

    with EmbeddedRedis(tmp_path / "valkey-one") as server:
        async with open_store(server.start()) as s:
            yield s
