"""The harness the ack benchmarks share (benchmarks/ack_latency.py, ack_hostile.py).

`AckRig` starts the sandbox (3 hosts), the Slack double and the embedded store, writes a
cluster file with the sandbox's cluster under N names (`c00`, `c01`, ...; each started
from its own channel `C00NN`), runs `aurora-restore serve` against them, and waits for
/healthz. `clicks` sends signed bodies, `CONCURRENCY` at a time, and returns each ack's
latency; `pct` is a percentile in milliseconds.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx
import redis.asyncio as aioredis

from bot.redis_server import EmbeddedRedis
from runbook.store import Store
from tests.conftest import RunningSandbox, free_port
from tests.slack_double import sign, slash_command_body

SECRET = "benchmark-signing-secret"
CONCURRENCY = 10
SERVERS = str(Path(__file__).resolve().parent / "_servers.py")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] * 1000


async def clicks(client: httpx.AsyncClient, url: str, bodies: list[bytes]) -> list[float]:
    sem = asyncio.Semaphore(CONCURRENCY)
    out: list[float] = []

    async def one(body: bytes) -> None:
        async with sem:
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
            t0 = time.perf_counter()
            r = await client.post(url, content=body, headers=headers)
            out.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text

    await asyncio.gather(*(one(b) for b in bodies))
    return out


def spawn(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """A helper process of benchmarks/_servers.py; returns it and its first line."""
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def many_clusters(sandbox_dir: Path, n: int, edit: Callable[[str], str] | None = None) -> str:
    """The sandbox's cluster file with U0ALICE as approver, under `n` names; `edit`
    changes the cluster's text first."""
    text = (sandbox_dir / "clusters.toml").read_text().replace("users = []", 'users = ["U0ALICE"]')
    if edit is not None:
        text = edit(text)
    body = text.split("\n", 2)[2]
    return "\n".join(body.replace("clusters.sandbox", f"clusters.c{i:02d}") for i in range(n))


def channel_of_cluster(name: str) -> str:
    """Cluster cNN is started in channel C00NN (actions are bound to that channel)."""
    return f"C{int(name[1:]):04d}"


class AckRig:
    """The sandbox, the Slack double, the store and `aurora-restore serve` over `n`
    clusters, for the length of an `async with`."""

    def __init__(self, n: int, edit: Callable[[Path, str], str] | None = None) -> None:
        self.n = n
        self.edit = edit
        self.procs: list[subprocess.Popen[str]] = []
        self._tmp = tempfile.TemporaryDirectory()
        self.base = Path(self._tmp.name)

    async def __aenter__(self) -> AckRig:
        self.sandbox = RunningSandbox(self.base / "sandbox", "--restart-sec", "0.5").start()
        self.embedded = EmbeddedRedis(self.base / "redis")
        try:
            double, self.api = spawn(SERVERS, "double", "0")
            self.procs.append(double)
            edit = self.edit
            text = many_clusters(
                self.sandbox.dir, self.n, (lambda t: edit(self.base, t)) if edit else None
            )
            (self.base / "clusters.toml").write_text(text)
            self.port = free_port()
            self.redis_url = self.embedded.start()
            env = {
                **os.environ,
                "SLACK_BOT_TOKEN": "xoxb-test-token",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": self.api,
                "REDIS_URL": self.redis_url,
                "PORT": str(self.port),
                "AURORA_RESTORE_CLUSTERS": str(self.base / "clusters.toml"),
            }
            bot = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.procs.append(bot)
            self.url = f"http://127.0.0.1:{self.port}/slack/events"
            self.redis = aioredis.Redis.from_url(self.redis_url)
            self.store = Store(self.redis)
            self.client = httpx.AsyncClient(timeout=60)
            await self._healthy()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _healthy(self) -> None:
        for _ in range(200):
            try:
                health = await self.client.get(f"http://127.0.0.1:{self.port}/healthz")
                if health.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)

    async def start_restores(self) -> list[float]:
        """One signed slash command per cluster, each from the cluster's channel."""
        starts = [
            slash_command_body(
                text=f"c{i:02d}", user_id="U0ALICE", channel_id=channel_of_cluster(f"c{i:02d}")
            )
            for i in range(self.n)
        ]
        return await clicks(self.client, self.url, starts)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if hasattr(self, "client"):
            await self.client.aclose()
        if hasattr(self, "redis"):
            await self.redis.aclose()
        for p in self.procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.embedded.stop()
        self.sandbox.stop()
        self._tmp.cleanup()
