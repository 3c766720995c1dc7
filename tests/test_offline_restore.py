"""A whole offline restore (Aurora 0.22, `recovery-tool`) against the sandbox: the
console unattended, on Debian and RPM hosts. Every host's recovery-tool and aurora client
are wrapped to note each run, so the test sees from the hosts' side what ran, where and
when: recovery-tool on exactly one host, after every scheduler was stopped; no online
recovery command at all; no task killed beyond the forecast; one ACTIVE leader holding the
backup's tasks; every file sha256-identical afterwards."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runbook import snapshot
from runbook.actions import active_task_count
from tests.conftest import ROOT, RunningSandbox, wait_for
from tests.drive import file_sums, kills
from tests.test_packaged_hosts import console_yes

pytestmark = pytest.mark.timeout(400)

ONLINE_RECOVERY = ("scheduler_stage_recovery", "scheduler_commit_recovery", "_recovery_tasks")


def set_procedure(sandbox: RunningSandbox, name: str) -> None:
    """`procedure = NAME` in the sandbox's cluster file."""
    path = sandbox.dir / "clusters.toml"
    text = path.read_text()
    header = "[clusters.sandbox]\n"
    assert header in text
    path.write_text(text.replace(header, f'{header}procedure = "{name}"\n', 1))


def wrap_tools(sandbox: RunningSandbox) -> Path:
    """Replace each host's recovery-tool and aurora client by a wrapper that notes the
    time, the host and the arguments in DIR/runs.log, then runs the real one."""
    log = sandbox.dir / "runs.log"
    log.touch()
    for h in sandbox.info.hosts:
        p = h.paths
        for tool in (p.recovery_tool, p.bin_dir / p.admin_name):
            if not tool.exists():
                continue
            real = tool.with_name(tool.name + ".real")
            tool.rename(real)
            tool.write_text(
                "#!/bin/bash\n"
                f'echo "$(date +%s.%N) {h.name} {tool.name} $*" >> {shlex.quote(str(log))}\n'
                f'exec {shlex.quote(str(real))} "$@"\n'
            )
            tool.chmod(0o755)
    return log


def runs(log: Path) -> list[tuple[float, str, str, str]]:
    out = []
    for line in log.read_text().splitlines():
        at, host, tool, *args = line.split(" ")
        out.append((float(at), host, tool, " ".join(args)))
    return out


def backup_active(sandbox: RunningSandbox, doc: dict[str, Any]) -> int:
    """The active tasks of the backup the restore used, decoded from a host holding it."""
    for s in sandbox.cluster.schedulers:
        path = Path(sandbox.cluster.path(s, "backup_dir") or "") / doc["backup"]
        if path.exists():
            info = snapshot.decode(path.read_bytes())
            return sum(1 for t in info.tasks if t.status in snapshot.ACTIVE_STATES)
    raise AssertionError(f"no host holds {doc['backup']}")


def step_of(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in doc["steps"] if s["id"] == sid)


@pytest.mark.parametrize("flavour", ["debian", "rpm"])
def test_an_offline_console_restore(make_sandbox, tmp_path: Path, flavour: str) -> None:
    sandbox = make_sandbox("--aurora-version", "0.22", "--flavour", flavour)
    set_procedure(sandbox, "offline")
    log = wrap_tools(sandbox)
    before = file_sums(sandbox.cluster)
    out = tmp_path / "out"
    r = console_yes(sandbox, out)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-5000:]
    doc = json.loads((out / "transcript.json").read_text())
    assert doc["outcome"] == "succeeded"
    assert doc["procedure"] == "offline"
    assert doc["procedure_version"] == "0.22.0"
    assert 'procedure: offline (procedure = "offline" in the cluster file)' in r.stdout

    # recovery-tool ran once, on one host, and only after the stop step ended.
    tool_runs = [run for run in runs(log) if run[2] == "recovery-tool"]
    assert len(tool_runs) == 1, tool_runs
    at, host, _tool, args = tool_runs[0]
    assert "-from BACKUP -to LOG" in args and "-backup=" in args
    recover = step_of(doc, "offline.recover")
    assert list(recover["hosts"]) == [host]
    stopped = step_of(doc, "offline.stop")
    assert stopped["status"] == "succeeded"
    assert _epoch(stopped["ended_at"]) <= at
    # Nothing started between the stop and the tool: no step in between sent a start.
    between = [
        s for s in doc["steps"] if s["id"] in ("offline.archive", "offline.wipe", "offline.init")
    ]
    assert not any("start" in c for s in between for batch in s["commands"] for c in batch.values())

    # No online recovery command, from the hosts' side and from the bot's.
    admin = [run for run in runs(log) if run[2] != "recovery-tool"]
    assert not [a for a in admin if any(o in a[3] for o in ONLINE_RECOVERY)], admin
    sent = json.dumps([s["commands"] for s in doc["steps"]])
    assert not any(o in sent for o in ONLINE_RECOVERY)

    # One ACTIVE leader with the backup's active tasks; no kill beyond the forecast.
    leaders = wait_for(lambda: sandbox.leaders("ACTIVE"), timeout=30)
    assert len(leaders) == 1
    assert active_task_count(sandbox.vars(leaders[0])) == backup_active(sandbox, doc)
    recorded = kills(sandbox.dir)
    assert doc["kills"]["observed"] == doc["kills"]["predicted"] == len(recorded)
    time.sleep(2)  # a few reconciliation rounds later, still nothing more
    assert len(kills(sandbox.dir)) == len(recorded)
    assert file_sums(sandbox.cluster) == before
    # The unattended run skipped the optional review window; the transcript verifies.
    assert step_of(doc, "offline.review_disable")["status"] == "skipped"
    checked = subprocess.run(
        [sys.executable, "-m", "bot.cli", "verify-transcript", str(out / "transcript.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": ""},
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_an_offline_restore_from_a_fresh_backup_kills_no_task(make_sandbox, tmp_path: Path) -> None:
    """The acceptance's "no task killed": with a backup taken just before (aurora_admin
    scheduler_backup_now on the leader, as an operator does before a planned restore),
    the forecast is zero, and so are the kills, long after the leader reconciled."""
    sandbox = make_sandbox("--aurora-version", "0.22")
    set_procedure(sandbox, "offline")
    leader = wait_for(lambda: sandbox.leaders("ACTIVE"), timeout=30)[0]
    client = sandbox.info.hosts[0].paths.admin_name
    r = sandbox.ssh(leader, f"{client} scheduler_backup_now sandbox")
    assert r.returncode == 0, r.stdout + r.stderr
    before = file_sums(sandbox.cluster)
    out = tmp_path / "out"
    r = console_yes(sandbox, out)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-5000:]
    doc = json.loads((out / "transcript.json").read_text())
    assert doc["outcome"] == "succeeded" and doc["procedure"] == "offline"
    leaders = wait_for(lambda: sandbox.leaders("ACTIVE"), timeout=30)
    assert len(leaders) == 1
    assert active_task_count(sandbox.vars(leaders[0])) == backup_active(sandbox, doc) > 0
    assert doc["kills"]["predicted"] == doc["kills"]["observed"] == 0
    time.sleep(2)  # a few reconciliation rounds later, still nothing killed
    assert kills(sandbox.dir) == []
    assert file_sums(sandbox.cluster) == before


def test_a_rehydrate_host_without_the_backup_is_refused_at_preflight(
    make_sandbox, tmp_path: Path
) -> None:
    """`rehydrate` names a scheduler that does not hold the chosen backup (the newest is
    on every host but the last): preflight fails, before any stop, naming the holders."""
    sandbox = make_sandbox("--aurora-version", "0.22")
    set_procedure(sandbox, "offline")
    last = sandbox.info.hosts[-1].name
    path = sandbox.dir / "clusters.toml"
    path.write_text(
        path.read_text().replace(
            'procedure = "offline"\n', f'procedure = "offline"\nrehydrate = "{last}"\n', 1
        )
    )
    before = file_sums(sandbox.cluster)
    out = tmp_path / "out"
    r = console_yes(sandbox, out)
    assert r.returncode != 0
    assert f"{last} (rehydrate in the cluster file) does not hold the backup" in r.stdout
    doc = json.loads((out / "transcript.json").read_text())
    assert step_of(doc, "offline.stop")["status"] == "pending"
    assert len(sandbox.leaders("ACTIVE")) == 1  # nothing was stopped
    assert file_sums(sandbox.cluster) == before
