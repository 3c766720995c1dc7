"""The console and `make demo` end to end, as processes: the demo runs unattended to a
succeeded restore with its transcripts; a console killed with -9 mid-step is started
again and continues, the killed step reading `interrupted`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook.offline import OFFLINE
from runbook.procedure import ONLINE
from sandbox.layout import SandboxInfo
from tests.conftest import ROOT, RunningSandbox

pytestmark = pytest.mark.timeout(300)


def test_demo_runs_unattended_to_a_succeeded_restore(tmp_path: Path) -> None:
    # Without --out: the transcripts go to a fresh demo-out/TIME, printed at the end.
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--yes"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "REDIS_URL": "", "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "restore succeeded" in r.stdout
    where = re.search(
        r"^transcripts: (demo-out/\d{4}-\d\d-\d\dT[\d-]+Z)/transcript\.md, \.json, \.html$",
        r.stdout,
        re.M,
    )
    assert where, r.stdout[-500:]
    out = tmp_path / where.group(1)
    assert sorted(p.name for p in (tmp_path / "demo-out").iterdir()) == [out.name]
    # The commit's client error is expected, not a failure; every step says how long it took.
    assert re.search(
        r"^   · scheduler-\d +exit 1 \(expected: the commit shuts the scheduler down\)",
        r.stdout,
        re.M,
    ), r.stdout[-3000:]
    assert re.search(r"^   \(restore\.commit took \d+\.\ds\)$", r.stdout, re.M)
    assert re.search(r"^step \d+ of \d+ · restore\.commit · ", r.stdout, re.M)
    # The leader table (host by source) and the staged task summary, as the team sees them.
    table = re.search(
        r"✓ restore\.leader: leader: (\S+) \(agreed by logs, vars\)\n"
        r"((?:  scheduler-\d: .*\n){3})",
        r.stdout,
    )
    assert table, r.stdout[-3000:]
    assert f"  {table.group(1)}: logs leader, vars leader" in table.group(2)
    assert re.search(r"✓ prep\.preflight: .*aurora-admin on scheduler-\d lists \d+", r.stdout)
    backups = re.search(r"\nbackups, newest first:\n((?:  scheduler-backup-.*\n)+)", r.stdout)
    assert backups and " · 0." in backups.group(1).splitlines()[0]  # newest: minutes old
    assert "\nthe leader, by source:\n  scheduler-1: " in r.stdout
    staged = re.search(r"  staged tasks: (\d+)\n((?:    \S.*\n)+)", r.stdout)
    assert staged and int(staged.group(1)) > 0 and "RUNNING" in staged.group(2)
    doc = json.loads((out / "transcript.json").read_text())
    assert [s["id"] for s in doc["steps"]] == ONLINE.ids()
    statuses = {s["id"]: s["status"] for s in doc["steps"]}
    assert statuses["prep.block_traffic"] == "skipped"  # the plan suggests it
    assert statuses["prep.ack_backup"] == "not needed"  # the newest backup is fresh
    assert statuses["prep.auth"] == "not needed"
    others = {
        k: v
        for k, v in statuses.items()
        if k not in ("prep.block_traffic", "prep.ack_backup", "prep.auth")
    }
    assert set(others.values()) == {"succeeded"}, others
    assert doc["outcome"] == "succeeded"
    wipe = next(s for s in doc["steps"] if s["id"] == "log.wipe")
    assert wipe["approved_by"] == "bob" and doc["started_by"] == "alice"  # two-person rule
    for s in doc["steps"]:
        if s["status"] == "succeeded" and s["id"] not in ("prep.ack_backup", "cleanup.transcript"):
            assert s["events"], s["id"]
    assert 'data-step="restore.commit"' in (out / "transcript.html").read_text()
    md = (out / "transcript.md").read_text()
    assert "## restore.commit" in md and "outcome: **succeeded**" in md


def test_demo_on_aurora_022_walks_the_offline_procedure(tmp_path: Path) -> None:
    """`demo --aurora-version 0.22`: `auto` reads 0.22.0 on /vars and walks the offline
    (recovery-tool) procedure to a verified leader, every output line without a trace."""
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--yes", "--aurora-version", "0.22"]
        + ["--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "REDIS_URL": ""},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    assert "sandbox: 3 schedulers (Aurora 0.22)" in r.stdout
    assert re.search(r"^procedure: offline \(Aurora 0\.22\.0 ", r.stdout, re.M), r.stdout[:2000]
    doc = json.loads((out / "transcript.json").read_text())
    assert doc["procedure"] == "offline" and doc["procedure_version"] == "0.22.0"
    assert doc["outcome"] == "succeeded"
    assert [s["id"] for s in doc["steps"]] == OFFLINE.ids()


def test_console_killed_mid_step_continues_and_the_step_reads_interrupted(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    # prep.start hangs on one host, so the console is surely inside the step when killed.
    systemctl = sandbox.dir / "hosts/scheduler-1/usr/local/bin/systemctl"
    original = systemctl.read_text()
    systemctl.write_text(
        original.replace("exec ", 'if [ "$1" = start ]; then sleep 60; fi\nexec ', 1)
    )
    env = {**os.environ, "REDIS_URL": "", "AURORA_RESTORE_DATA": str(tmp_path / "data")}
    cmd = [
        sys.executable,
        "-m",
        "bot.cli",
        "console",
        "--cluster",
        str(sandbox.dir / "clusters.toml"),
        "--yes",
        "--out",
        str(tmp_path / "out"),
    ]
    first = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert first.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = first.stdout.readline()
        seen.append(line)
        if line.startswith("▶ running prep.start"):
            break
    else:
        first.kill()
        raise AssertionError("".join(seen))
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stdout.close()
    systemctl.write_text(original)

    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    out = second.stdout
    assert "continuing restore" in out, out[-3000:]
    assert "prep.start was interrupted" in out
    assert second.returncode == 0, out[-3000:] + second.stderr[-2000:]
    doc = json.loads((tmp_path / "out/transcript.json").read_text())
    start = next(s for s in doc["steps"] if s["id"] == "prep.start")
    types = [e["type"] for e in start["events"]]
    assert types.count("approved") == 1 and "interrupted" in types
    # Nothing before the killed step ran twice.
    for s in doc["steps"]:
        if s["id"] in ("prep.stop", "prep.admin_access", "prep.disable"):
            assert [e["type"] for e in s["events"]].count("approved") == 1


def demo(out: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`aurora-restore demo --out OUT`, attended, with its input closed: it stops at the
    first prompt."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--out", str(out)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "REDIS_URL": ""},
    )


def test_demo_continues_a_kept_restore_on_its_kept_sandbox_or_refuses(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = demo(out, tmp_path)
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr
    assert "stopped (end of input at a prompt)" in first.stderr
    started = re.search(r"^restore (\w+) of sandbox started by alice$", first.stdout, re.M)
    assert started, first.stdout[-2000:]
    rid = started.group(1)
    # Left as it was: a reset would remove this file.
    marker = out / "sandbox" / "left-by-the-first-run"
    marker.write_text("")
    ports = [(h.ssh_port, h.http_port) for h in SandboxInfo.load(out / "sandbox").hosts]

    second = demo(out, tmp_path)
    assert second.returncode == 1, second.stdout[-2000:] + second.stderr
    assert "(kept from the earlier run)" in second.stdout
    assert f"continuing restore {rid} of sandbox" in second.stdout
    assert "started by" not in second.stdout
    assert marker.exists()
    assert [(h.ssh_port, h.http_port) for h in SandboxInfo.load(out / "sandbox").hosts] == ports

    shutil.rmtree(out / "sandbox")
    third = demo(out, tmp_path)
    assert third.returncode == 2, third.stdout[-2000:] + third.stderr
    assert third.stderr.strip().splitlines() == [
        f"aurora-restore demo: refused: {out / 'data'} holds restore {rid} of an earlier "
        f"demo, but its sandbox {out / 'sandbox'} is gone: it cannot continue against a "
        f"new sandbox; remove {out} or use another --out"
    ]
    assert not (out / "sandbox").exists()  # no new sandbox was laid out
