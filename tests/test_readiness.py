"""`aurora-restore check` (runbook.readiness, bot.check) against the sandbox: a healthy
cluster passes and nothing changes; each `--break` is found, on the host it broke."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bot.check import check_cluster
from bot.probes import HttpVarsProbe
from bot.ssh import SshExecutor
from runbook.store import Store
from tests.conftest import ROOT, RunningSandbox
from tests.slack_double import slash_command_body
from tests.test_slack_app import CHANNEL, MALLORY, AppProcess, post, until, world

__all__ = ["world"]  # the Slack world fixture (tests/test_slack_app.py)

# What a check must never send: stop or start, an edit, a delete, a wipe, an archive.
FORBIDDEN = ("systemctl stop", "systemctl start", "tee", "-delete", "initialize", "tar -c")
# `sudo -n -l CMD` only asks sudo whether CMD is allowed: CMD does not run.
SUDO_ASK = re.compile(r"^sudo -n (-u \S+ )?-l ")


def _env(tmp: Path) -> dict[str, str]:
    """No store can be reached: check must not need one."""
    env = dict(os.environ)
    env.update(REDIS_URL="redis://127.0.0.1:1/0", AURORA_RESTORE_DATA=str(tmp / "no-store"))
    env.pop("AURORA_RESTORE_CLUSTERS", None)
    return env


def _check(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", *args],
        cwd=ROOT,
        env=_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _digests(sb: RunningSandbox) -> dict[str, str]:
    """sha256 of every file check could touch: env files, clusters.json, log, backups."""
    out = {}
    for h in sb.info.hosts:
        p = h.paths
        files = [p.env_file, p.clusters_json, p.sudoers]
        files += [f for d in (p.log_dir, p.backup_dir) for f in sorted(d.rglob("*")) if f.is_file()]
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


class Watched:
    """The real SSH remote, keeping every command it is asked to run."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.commands: list[str] = []

    async def run(self, commands: Mapping[str, str], **kw: Any) -> Any:
        self.commands += commands.values()
        return await self.inner.run(commands, **kw)

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes:
        data: bytes = await self.inner.read_file(host, path, timeout)
        return data

    async def close(self) -> None:
        await self.inner.close()


def _runs(command: str) -> list[str]:
    """The parts of a command that run something (not `sudo -n -l` questions)."""
    return [p for p in re.split(r";|&&|\|\|", command) if not SUDO_ASK.match(p.strip())]


def test_healthy_sandbox_passes_and_nothing_changes(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    sb = make_sandbox()
    before = _digests(sb)
    out = tmp_path / "report"
    res = _check(tmp_path, "--cluster", str(sb.dir / "clusters.toml"), "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert "PASS env file understood  scheduler-1" in lines
    assert "PASS sudo allows tee {env_file}  scheduler-2" in lines
    assert any(line.startswith("PASS newest backup decodes") for line in lines)
    assert not [line for line in lines if line.startswith("FAIL")]
    assert {f.name for f in out.iterdir()} == {"check.md", "check.json", "check.html"}
    assert "| PASS | env file understood | scheduler-1 |" in (out / "check.md").read_text()
    assert '"ok": true' in (out / "check.json").read_text()
    assert "<table>" in (out / "check.html").read_text()

    # The same in-process, watching every command sent.
    remote = Watched(SshExecutor(sb.cluster))
    rows = asyncio.run(check_cluster(sb.cluster, remote, HttpVarsProbe()))
    assert rows and all(r.ok for r in rows), [r.line() for r in rows if not r.ok]
    assert remote.commands
    sent = [part for c in remote.commands for part in _runs(c)]
    for word in FORBIDDEN:
        assert not [p for p in sent if word in p], word

    assert _digests(sb) == before
    assert sb.info.killed_file.read_text() == ""
    assert not (tmp_path / "no-store").exists()  # no embedded store: no restore, no lock
    assert sb.leaders("ACTIVE")  # the scheduler still leads

    res = _check(tmp_path, "--cluster", str(sb.dir / "clusters.toml"), "--name", "nosuch")
    assert res.returncode == 2 and "choose a cluster" in res.stderr


def test_a_022_cluster_is_checked_for_the_offline_procedure(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """`check` runs the preflight of the procedure a restore would follow now: on a 0.22
    cluster (auto, by /vars) the offline one, which also wants recovery-tool; with the
    tool gone from one host, the check fails naming it, and nothing changed."""
    sb = make_sandbox("--aurora-version", "0.22")
    res = _check(tmp_path, "--cluster", str(sb.dir / "clusters.toml"))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = asyncio.run(check_cluster(sb.cluster, SshExecutor(sb.cluster), HttpVarsProbe()))
    by_name = {r.name: r for r in rows}
    chosen = by_name["procedure chosen"]
    assert chosen.ok and chosen.cause.startswith("offline (Aurora 0.22.0)"), chosen
    assert by_name["offline.preflight passes"].ok
    before = _digests(sb)
    tool = sb.info.hosts[1].paths.recovery_tool
    tool.rename(tool.with_name("recovery-tool.gone"))
    res = _check(tmp_path, "--cluster", str(sb.dir / "clusters.toml"))
    assert res.returncode == 1, res.stdout + res.stderr
    failed = [line for line in res.stdout.splitlines() if line.startswith("FAIL")]
    assert [line for line in failed if "offline.preflight passes" in line], failed
    assert sb.info.hosts[1].name in res.stdout and "recovery-tool" in res.stdout
    assert _digests(sb) == before
    assert sb.leaders("ACTIVE")


def test_each_break_is_found_on_its_host(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    sb = make_sandbox("--schedulers", "4", "--break", "client,envfile,hostkey,quorum,backups,sudo")
    ready = "".join(sb.output)
    for said in (
        "envfile on scheduler-1",
        "client on scheduler-2",
        "sudo on scheduler-2",
        "quorum on scheduler-3",
        "hostkey on scheduler-4",
        "backups on every host",
    ):
        assert said in ready
    before = _digests(sb)
    res = _check(tmp_path, "--cluster", str(sb.dir / "clusters.toml"))
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()

    def failed(name: str, host: str, cause: str) -> None:
        head = f"FAIL {name}  {host}: "
        found = [line for line in lines if line.startswith(head)]
        assert found and cause in found[0], (head, cause, [x for x in lines if name in x])

    failed("ssh reached, host key checked", "scheduler-4", "does not match")
    failed("env file understood", "scheduler-1", "$MORE_ARGS")
    failed("aurora client on PATH", "scheduler-2", "no aurora client on PATH")
    failed("sudo allows tee {env_file}", "scheduler-2", "refuses `tee ")
    failed("quorum size the same and a majority", "scheduler-3", "differs")
    for host in ("scheduler-1", "scheduler-2", "scheduler-3"):
        failed("backups there", host, "(only temp_scheduler-backup-")
    failed("newest backup decodes", "cluster", "no backup")
    # What is not broken passes.
    assert "PASS aurora client on PATH  scheduler-1" in lines
    assert "PASS sudo allows tee {env_file}  scheduler-3" in lines
    assert "PASS env file understood  scheduler-2" in lines
    assert _digests(sb) == before


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[clusters.x]\nnot = 'a cluster'\n")
    res = _check(tmp_path, "--cluster", str(bad))
    assert res.returncode == 2 and res.stderr.startswith("aurora-restore check: error:")
    assert "Traceback" not in res.stderr
    res = _check(tmp_path, "--cluster", str(tmp_path / "missing.toml"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = _check(tmp_path)
    assert res.returncode == 2 and "no cluster file" in res.stderr


def test_unknown_break_is_refused(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox", "--dir", str(tmp_path / "sb")]
        + ["--break", "client,nosuch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert "--break nosuch: not a kind to break" in res.stderr


async def test_slack_check_posts_the_table_and_takes_no_lock(world: dict[str, Any]) -> None:
    """`/aurora-restore check sandbox` from any member: the table in the channel, no lock."""
    double = world["double"]
    app = await AppProcess(world["env"]).start()
    world["apps"].append(app)
    status, text, _ = await post(
        app.url, slash_command_body(text="check sandbox", user_id=MALLORY, channel_id=CHANNEL)
    )
    assert status == 200 and "read-only" in text
    posted = await until(
        lambda: [m for m in double.messages(channel=CHANNEL) if "Restore readiness" in m["text"]],
        timeout=120,
        what="the check's table",
    )
    assert (
        "0 fail" in posted[0]["text"]
        and "PASS env file understood  scheduler-1" in posted[0]["text"]
    )
    client = Redis.from_url(world["redis_url"])
    try:
        assert await Store(client).holder("sandbox") is None
    finally:
        await client.aclose()
    status, text, _ = await post(
        app.url, slash_command_body(text="check nosuch", user_id=MALLORY, channel_id=CHANNEL)
    )
    assert status == 200 and "Known clusters" in text


def test_quorum_row_names_the_odd_host_and_df_du_parse() -> None:
    from runbook.readiness import _df_free, _du_size, _guarded, _odd_quorum

    q = "-native_log_quorum_size"
    argvs = {"s1": [f"{q}=2"], "s2": [f"{q}=2"], "s3": [f"{q}=3"]}
    assert _odd_quorum(argvs, 3) == "s3"
    assert _odd_quorum({"s2": [q, "3"], "s3": [f"{q}=4"]}, 4) == "s3"  # tie: the majority wins
    assert _odd_quorum({"s1": [f"{q}=2"], "s2": [f"{q}=2"]}, 3) == "cluster"
    df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 100 40 60 40% /\n"
    assert _df_free(df) == 60 and _df_free("garbage") is None
    assert _du_size("1234\t/var/lib/aurora/scheduler/db\n") == 1234 and _du_size("") is None

    async def boom() -> list[Any]:
        raise ValueError("no such value")

    rows = asyncio.run(_guarded("backups", boom()))
    assert [r.line() for r in rows] == [
        "FAIL backups  cluster: cannot run: ValueError: no such value"
    ]
