"""Issue 13, the operator's night: a restore refused before anything exists when the SSH
files are missing; SSH connect errors that name SSH and host:port; the console's
decisions echoed with names, cards that say where they are, result lines that name their
command, the requester's own destructive approval refused before the confirm prompt;
and a sandbox that says when it stopped."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.console import Commands, Console
from bot.ssh import SshExecutor
from bot.view import step_view
from runbook.actions import Timing
from runbook.clusters import Cluster, load_clusters
from runbook.engine import Actor, Engine, Refused
from runbook.local_checks import local_problems
from runbook.ports import HostResult
from runbook.procedure import ONLINE
from runbook.procedures import PROCEDURES
from runbook.store import RestoreRecord, Store
from tests.conftest import ROOT, RunningSandbox, free_port

pytestmark = pytest.mark.timeout(120)

FAST = Timing(leader_wait=30, failover_wait=30, verify_wait=45, poll=0.3, vars_timeout=2)


def cluster_file(tmp_path: Path, key: Path, known_hosts: Path) -> Path:
    path = tmp_path / "clusters.toml"
    path.write_text(
        f"""
[clusters.west]
[clusters.west.ssh]
key = "{key}"
known_hosts = "{known_hosts}"
[clusters.west.approvers]
console = ["alice", "bob"]
[[clusters.west.schedulers]]
host = "scheduler-1"
address = "127.0.0.1"
ssh_port = {free_port()}
"""
    )
    return path


def west(tmp_path: Path, key: Path, known_hosts: Path) -> Cluster:
    return load_clusters(cluster_file(tmp_path, key, known_hosts))["west"]


def test_local_problems_name_the_field_and_the_file(tmp_path: Path) -> None:
    key, known = tmp_path / "id", tmp_path / "known_hosts"
    assert local_problems(west(tmp_path, key, known)) == f"ssh.key: {key}: no such file"
    key.write_text("a key\n")
    assert local_problems(west(tmp_path, key, known)) == (f"ssh.known_hosts: {known}: no such file")
    known.mkdir()
    assert local_problems(west(tmp_path, key, known)) == (
        f"ssh.known_hosts: {known}: is a directory, not a file"
    )
    known.rmdir()
    known.write_text("")
    assert local_problems(west(tmp_path, key, known)) is None


async def test_start_refuses_before_the_restore_or_the_lock_exists(
    tmp_path: Path, one_store: Store
) -> None:
    key, known = tmp_path / "id", tmp_path / "known_hosts"
    known.write_text("")
    cluster = west(tmp_path, key, known)
    connects: list[str] = []

    def connect(c: Cluster) -> tuple[object, object]:
        connects.append(c.name)
        raise AssertionError("nothing may connect")

    engine = Engine(one_store, {"west": cluster}, connect, procedures=PROCEDURES)  # type: ignore[arg-type]
    with pytest.raises(Refused) as refused:
        await engine.start("west", None, Actor("alice"))
    assert str(refused.value) == f"ssh.key: {key}: no such file"
    assert await one_store.restore_ids() == []
    assert await one_store.holder("west") is None
    assert connects == []
    await engine.close()


def test_the_console_says_the_missing_file_in_one_line(tmp_path: Path) -> None:
    key, known = tmp_path / "id", tmp_path / "known_hosts"
    key.write_text("a key\n")
    path = cluster_file(tmp_path, key, known)
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--cluster", str(path), "--yes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": "", "AURORA_RESTORE_DATA": str(tmp_path / "data")},
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        f"aurora-restore console: refused: ssh.known_hosts: {known}: no such file"
    ]
    assert "restore " not in r.stdout  # nothing was started


async def test_a_dead_ssh_port_reads_as_one_line_naming_ssh_and_host_port(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    text = (sandbox.dir / "clusters.toml").read_text()
    first = sandbox.info.hosts[0]
    dead = free_port()
    copy = tmp_path / "dead.toml"
    copy.write_text(text.replace(f"ssh_port = {first.ssh_port}\n", f"ssh_port = {dead}\n", 1))
    cluster = load_clusters(copy)["sandbox"]
    async with SshExecutor(cluster) as ssh:
        results = await ssh.run({first.name: "true", sandbox.info.hosts[1].name: "true"})
    assert results[first.name].error == f"ssh to {first.address}:{dead}: connection refused"
    assert results[first.name].exit_status is None
    assert results[sandbox.info.hosts[1].name].ok


class Script:
    """Answers the console's prompts in order, each prompt checked against what it must
    start with, so an unexpected prompt (a confirm that should not come) fails."""

    def __init__(self, answers: list[tuple[str, str]]) -> None:
        self.answers = answers
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.answers:
            raise AssertionError(f"no answer left for {prompt!r}")
        expected, answer = self.answers.pop(0)
        assert prompt.startswith(expected), (prompt, expected, self.prompts)
        return answer


async def test_console_echoes_who_decided_and_refuses_the_requesters_destructive_approval(
    sandbox: RunningSandbox, one_store: Store
) -> None:
    cluster = sandbox.cluster
    commands = Commands()
    engine = Engine(
        one_store, {cluster.name: cluster}, commands.connect, timing=FAST, procedures=PROCEDURES
    )
    script = Script(
        [
            ("prep.stop: [a]pprove, [s]kip", "a"),
            ("prep.block_traffic: ", "s bob"),
            ("reason: ", "no load balancer here"),
            ("prep.admin_access: ", "a"),
            ("prep.disable: ", "a"),
            ("prep.start: ", "a"),
            ("log.stop: ", "a"),
            ("log.archive: ", "a"),
            # alice started it: refused at once, no confirm prompt in between.
            ("log.wipe: ", "a"),
            ("log.wipe: ", "b bob"),
            ("revert every change made so far? [Y/n] ", "y"),
        ]
    )
    out = io.StringIO()
    console = Console(engine, cluster, me="alice", out=out, ask=script, commands=commands)
    try:
        rid = await console.run(None)
    finally:
        await engine.close()
    text = out.getvalue()
    assert script.answers == [], text[-3000:]
    assert not any("confirm" in p for p in script.prompts), script.prompts
    assert re.search(r"^step 2 of \d+ · prep\.stop · Stop all schedulers$", text, re.M), text
    assert re.search(r"^step \d+ of \d+ · log\.wipe · ", text, re.M)
    assert "\napproved by alice\n" in text
    assert "\nskipped by bob: no load balancer here\n" in text
    assert (
        "\nrefused: log.wipe is destructive: approving it needs an approver other than "
        "alice, who started the restore\n"
    ) in text
    assert re.search(r"\naborted by bob: restore \w+", text), text[-2000:]
    # Each host's result names its command; each finished step says how long it took.
    assert re.search(
        r"^   ✓ scheduler-\d +exit 0 +\d+\.\d\ds  \$ sudo systemctl stop aurora-scheduler$",
        text,
        re.M,
    ), text
    assert re.search(r"^   \(prep\.stop took \d+\.\ds\)$", text, re.M)
    # No Python reprs.
    for marker in ("{'", "HostResult(", "Outcome(", "None)"):
        assert marker not in text, marker
    events = await one_store.events(rid)
    by_type = {e["type"]: e for e in events}
    assert by_type["skipped"]["actor"] == "bob"
    assert [e["type"] for e in events if e.get("step") == "log.wipe"].count("approved") == 0


async def test_result_lines_expect_the_commits_client_failure_only(
    one_store: Store, tmp_path: Path
) -> None:
    key, known = tmp_path / "id", tmp_path / "known_hosts"
    cluster = west(tmp_path, key, known)
    engine = Engine(one_store, {"west": cluster}, Commands().connect, procedures=PROCEDURES)
    console = Console(engine, cluster, me="alice", out=io.StringIO())
    failed = HostResult("scheduler-1", 1, "", "transport error", 0.5)
    commit = console.result_line("restore.commit", failed)
    assert commit.startswith("   · scheduler-1")
    assert "exit 1 (expected: the commit shuts the scheduler down)" in commit
    assert "✗" not in commit
    stop = console.result_line("prep.stop", failed)
    assert stop.startswith("   ✗ scheduler-1") and "expected" not in stop
    ok = console.result_line("restore.commit", HostResult("scheduler-1", 0, "", "", 0.5))
    assert ok.startswith("   ✓ scheduler-1") and "expected" not in ok
    await engine.close()


async def test_a_failed_step_offers_skip_only_when_it_can_be_skipped(
    one_store: Store, tmp_path: Path
) -> None:
    cluster = west(tmp_path, tmp_path / "id", tmp_path / "known_hosts")
    engine = Engine(one_store, {"west": cluster}, Commands().connect, procedures=PROCEDURES)
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return ""  # no choice: nothing happens

    console = Console(engine, cluster, me="alice", out=io.StringIO(), ask=ask)
    for sid in ("restore.commit", "prep.stop"):
        for status in ("failed", "interrupted"):
            state = {"status": status, "summary": "x", "appears_finished": True}
            rec = RestoreRecord("nope", {"plan": [sid]}, "running", sid, {sid: state})
            card = step_view(rec, ONLINE, sid, cluster)
            assert await console.decide_failed("nope", card, "alice")
    assert all("[s]kip" not in p for p in prompts[:2]), prompts
    assert all("[s]kip" in p for p in prompts[2:]), prompts
    assert "[d]one" in prompts[1] and "[d]one" not in prompts[0]
    await engine.close()


def test_the_sandbox_says_when_it_stopped(sandbox: RunningSandbox) -> None:
    proc = sandbox.proc
    assert proc is not None and proc.stdout is not None
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(30) == 0
    lines = [line for line in rest.splitlines() if line.startswith("sandbox stopped")]
    assert len(lines) == 1, rest
    assert lines[0].startswith(f"sandbox stopped on SIGINT: {len(sandbox.info.hosts)} schedulers")
    assert str(sandbox.dir) in lines[0]
