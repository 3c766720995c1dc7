"""Bad input and unavailable services get one line, never a traceback: `aurora-restore`
run as a process (`python -m bot.cli`), its exit status and stderr checked."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from runbook.store import Store
from tests.conftest import ROOT, RunningSandbox, free_port

pytestmark = pytest.mark.timeout(240)


def cli(
    *args: str, env: dict[str, str] | None = None, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=200,
    )


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def cluster_file(path: Path) -> Path:
    path.write_text(
        f"""
[clusters.west]
[clusters.west.approvers]
users = ["U0ALICE"]
console = ["alice", "bob"]
[[clusters.west.schedulers]]
host = "scheduler-1"
address = "127.0.0.1"
ssh_port = {free_port()}
"""
    )
    return path


def slack_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": "xoxb-one-line-test",
        "SLACK_SIGNING_SECRET": "one-line-secret",
        "AURORA_RESTORE_CLUSTERS": str(cluster_file(tmp_path / "c.toml")),
        "AURORA_RESTORE_DATA": str(tmp_path / "data"),
        "PORT": str(free_port()),
        **extra,
    }


def test_console_with_stdin_closed_at_a_prompt_leaves_the_restore_to_continue(
    sandbox: RunningSandbox, tmp_path: Path, redis_url: str
) -> None:
    env = {"REDIS_URL": redis_url, "AURORA_RESTORE_CLUSTERS": str(sandbox.dir / "clusters.toml")}
    first = cli("console", env=env)  # no --cluster: the file comes from the environment
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr
    line = one_line(first.stderr)
    assert line.startswith("aurora-restore console: stopped (end of input)"), line
    assert "run the same command again to continue" in line
    assert "prep.stop: [a]pprove" in first.stdout  # it stopped at the prompt
    rid = first.stdout.split("restore ", 1)[1].split(" ", 1)[0]
    # The restore stays as it was: running, prep.stop waiting; a second console continues it.
    again = cli("console", env=env)
    assert again.returncode == 1
    assert f"continuing restore {rid}" in again.stdout
    one_line(again.stderr)

    async def state() -> tuple[str, str]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            rec = await Store(client).load(rid)
            assert rec is not None
            return rec.status, rec.steps["prep.stop"]["status"]
        finally:
            await client.aclose()

    assert asyncio.run(state()) == ("running", "awaiting")


def test_console_without_a_cluster_file_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "AURORA_RESTORE_CLUSTERS": ""}
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "give --cluster FILE or set AURORA_RESTORE_CLUSTERS" in one_line(r.stderr)


def test_serve_with_redis_down_is_one_line(tmp_path: Path) -> None:
    r = cli("serve", env=slack_env(tmp_path, REDIS_URL="redis://:hunter2secret@127.0.0.1:1/0"))
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert line.startswith("aurora-restore serve: the store at 127.0.0.1:1 is unreachable"), line
    assert "hunter2secret" not in line


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "redis://127.0.0.1:99999/0"])
def test_serve_with_a_malformed_redis_url_is_one_line(tmp_path: Path, url: str) -> None:
    r = cli("serve", env=slack_env(tmp_path, REDIS_URL=url))
    assert r.returncode == 2
    assert one_line(r.stderr).startswith("aurora-restore serve: REDIS_URL is not a Redis URL: ")


def test_list_into_a_pipe_closed_early(tmp_path: Path, redis_url: str) -> None:
    async def many() -> None:
        client = aioredis.Redis.from_url(redis_url)
        store = Store(client)
        try:
            for i in range(400):
                await store.create(
                    f"r{i:011d}",
                    f"c{i}",
                    {"cluster": f"c{i}", "started_by_name": "alice", "plan": []},
                    {},
                    {"type": "restore_started"},
                )
        finally:
            await client.aclose()

    asyncio.run(many())
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "list", "--limit", "400"],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("restore")  # `| head -1`
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert err == ""


def test_socket_without_slack_logs_one_line_per_attempt(tmp_path: Path) -> None:
    env = slack_env(
        tmp_path,
        SLACK_APP_TOKEN="xapp-one-line",
        SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "socket"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if sum("cannot open a Socket Mode connection" in x for x in lines) >= 3:
                break
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()
    attempts = [x for x in lines if "cannot open a Socket Mode connection" in x]
    assert len(attempts) >= 3, lines
    assert not any("Traceback" in x or x.startswith(" ") for x in lines), lines
    # Backoff: the waits double.
    waits = [x.rsplit("trying again in ", 1)[1] for x in attempts[:3]]
    assert waits == ["1s", "2s", "4s"], waits
    # Bolt's "token will be unused" warning is gone.
    assert not any("will be unused" in x for x in lines), lines
