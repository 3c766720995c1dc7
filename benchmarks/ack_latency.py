"""Ack latency of button clicks: the bot with 20 restores in progress, against a bare Bolt
app that only acks, on the same machine in the same run.

Starts the sandbox (3 hosts), a local double of the Slack Web API, the embedded store,
and `aurora-restore serve` with 20 clusters (the same sandbox hosts under 20 names).
Starts 20 restores with signed slash commands and waits until each waits for its first
approval. Then sends 200 signed `block_actions` clicks, 10 at a time: approvals by a
user who is not an approver (refused, with an ephemeral message and a thread line: the
full path after the ack) and, with `--approvals N`, N real approvals that run
`prep.stop` over SSH while the other clicks arrive. The bare app gets the same 200
clicks. Prints p50 and p99 of each.

    .venv/bin/python benchmarks/ack_latency.py

Target: p99 under 100 ms and within 1.5x of the bare app. Prints figures; not a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bot.redis_server import EmbeddedRedis  # noqa: E402
from runbook.procedure import ONLINE, Risk  # noqa: E402
from runbook.store import Store  # noqa: E402
from tests.conftest import RunningSandbox, free_port  # noqa: E402
from tests.slack_double import block_actions_body, sign, slash_command_body  # noqa: E402

# The first step a person approves (the first changing step with no condition), and
# not by id.
FIRST_APPROVAL = next(s.id for s in ONLINE if s.risk is Risk.MUTATING and s.condition is None)

SECRET = "benchmark-signing-secret"
RESTORES = 20
CLICKS = 200
CONCURRENCY = 10
# Real approvals among the clicks: each runs prep.stop over SSH on the sandbox, which
# shares this machine's two cores with everything else (`--approvals N`, default 0).
APPROVALS = int(sys.argv[sys.argv.index("--approvals") + 1]) if "--approvals" in sys.argv else 0


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
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


async def main() -> None:
    here = str(Path(__file__).resolve().parent / "_servers.py")
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        sandbox = RunningSandbox(base / "sandbox", "--restart-sec", "0.5").start()
        store = EmbeddedRedis(base / "redis")
        try:
            double, api = spawn(here, "double", "0")
            procs.append(double)
            text = (
                (sandbox.dir / "clusters.toml")
                .read_text()
                .replace("users = []", 'users = ["U0ALICE"]')
            )
            body = text.split("\n", 2)[2]
            many = "\n".join(
                body.replace("clusters.sandbox", f"clusters.c{i:02d}") for i in range(RESTORES)
            )
            (base / "clusters.toml").write_text(many)
            port, bare_port = free_port(), free_port()
            redis_url = store.start()
            env = {
                **os.environ,
                "SLACK_BOT_TOKEN": "xoxb-test-token",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": api,
                "REDIS_URL": redis_url,
                "PORT": str(port),
                "AURORA_RESTORE_CLUSTERS": str(base / "clusters.toml"),
            }
            bot = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(bot)
            bare, _ = spawn(here, "bare", str(bare_port), api, SECRET)
            procs.append(bare)
            url = f"http://127.0.0.1:{port}/slack/events"
            bare_url = f"http://127.0.0.1:{bare_port}/slack/events"
            r = aioredis.Redis.from_url(redis_url)
            st = Store(r)
            async with httpx.AsyncClient(timeout=10) as client:
                for _ in range(200):
                    try:
                        if (
                            await client.get(f"http://127.0.0.1:{port}/healthz")
                        ).status_code == 200:
                            break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.05)
                starts = [
                    slash_command_body(text=f"c{i:02d}", user_id="U0ALICE", channel_id=f"C{i:04d}")
                    for i in range(RESTORES)
                ]
                await clicks(client, url, starts)

                async def waiting() -> list[str]:
                    out = []
                    for rid in await st.restore_ids():
                        rec = await st.load(rid)
                        if rec and rec.steps[FIRST_APPROVAL]["status"] == "awaiting":
                            out.append(rid)
                    return out

                async def channel_of(rid: str) -> str:
                    # Cluster cNN was started in channel C00NN: a click comes from there
                    # (actions are bound to the restore's channel).
                    rec = await st.load(rid)
                    assert rec is not None
                    return f"C{int(rec.meta['cluster'][1:]):04d}"

                deadline = time.monotonic() + 120
                while len(await waiting()) < RESTORES and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                rids = await waiting()
                bodies = []
                channels = {rid: await channel_of(rid) for rid in rids}
                for i in range(CLICKS):
                    rid = rids[i % len(rids)]
                    user = "U0ALICE" if i < min(APPROVALS, len(rids)) else "U0MALLORY"
                    value = json.dumps({"rid": rid, "sid": FIRST_APPROVAL})
                    bodies.append(
                        block_actions_body(
                            user_id=user,
                            action_id="approve",
                            value=value,
                            channel_id=channels[rid],
                            message_ts="1700000000.000200",
                            thread_ts="1700000000.000100",
                        )
                    )
                bot_times = await clicks(client, url, bodies)
                bare_times = await clicks(client, bare_url, bodies)
            await r.aclose()
            print(
                f"{RESTORES} restores in progress ({len(rids)} waiting at the first click), {CLICKS} clicks "
                f"({APPROVALS} real approvals running SSH steps), {CONCURRENCY} at a time"
            )
            print(f"{'app':<28}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
            for name, t in (
                ("aurora-restore serve", bot_times),
                ("bare Bolt app (ack only)", bare_times),
            ):
                print(f"{name:<28}{pct(t, 50):>10.1f}{pct(t, 99):>10.1f}{max(t) * 1000:>10.1f}")
            ratio = pct(bot_times, 99) / max(pct(bare_times, 99), 1e-6)
            print(
                f"p99 ratio {ratio:.2f}x (target <= 1.5x); p99 under 100 ms: {pct(bot_times, 99) < 100}"
            )
        finally:
            for p in procs:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            store.stop()
            sandbox.stop()


if __name__ == "__main__":
    asyncio.run(main())
