"""Every command of the runbook (docs/runbook.md), run by hand over OpenSSH with
only DIR/ssh_config, in order, against the sandbox: it must end with an ACTIVE leader
holding the backup's tasks, every file put back byte for byte, and nothing outside DIR
touched."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runbook.clusters import Cluster
from sandbox.backups import ACTIVE_STATES, ALL_STATES, backup_time, decode_snapshot
from tests.conftest import RunningSandbox, wait_for

pytestmark = pytest.mark.timeout(240)

DISABLE_ARGS = "-max_registration_delay=360mins -reconciliation_initial_delay=365days"
# Debian's aurora-tools installs the client as aurora-admin (docs/aurora-notes.md §F8).
ADMIN = "aurora-admin"


def on_all(
    sb: RunningSandbox, command: dict[str, str], stdin: dict[str, bytes] | None = None
) -> dict[str, subprocess.CompletedProcess[bytes]]:
    """Run each host's command at once over OpenSSH; fail on a non-zero exit."""

    def one(host: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ssh", "-F", str(sb.dir / "ssh_config"), host, command[host]],
            input=(stdin or {}).get(host, b""),
            capture_output=True,
            timeout=120,
        )

    with ThreadPoolExecutor(len(command)) as pool:
        results = dict(zip(command, pool.map(one, command), strict=True))
    for host, r in results.items():
        assert r.returncode == 0, (host, command[host], r.stderr.decode())
    return results


def each(cluster: Cluster, template: str, **paths: str) -> dict[str, str]:
    """A command per scheduler, with that scheduler's paths shell-quoted into it."""
    out = {}
    for s in cluster.schedulers:
        values = {k: shlex.quote(cluster.path(s, v) or "") for k, v in paths.items()}
        values["http_port"] = str(cluster.http_port_of(s))
        out[s.host] = template.format(**values)
    return out


def snapshot_outside(base: Path, sandbox_dir: Path) -> dict[str, float]:
    """mtime of everything under base except the sandbox dir itself."""
    seen = {}
    for p in base.rglob("*"):
        if p == sandbox_dir or sandbox_dir in p.parents:
            continue
        seen[str(p)] = p.stat().st_mtime
    return seen


SYSTEM_PATHS = [
    "/etc/default/aurora-scheduler",
    "/etc/aurora/clusters.json",
    "/var/lib/aurora",
    "/usr/bin/aurora-scheduler-startup",
]


def test_the_whole_runbook_by_hand(sandbox: RunningSandbox, tmp_path: Path) -> None:
    cluster = sandbox.cluster
    hosts = [s.host for s in cluster.schedulers]
    system_before = {p: Path(p).exists() for p in SYSTEM_PATHS}
    outside_before = snapshot_outside(tmp_path.parent, sandbox.dir)
    wait_for(lambda: len(sandbox.leaders("ACTIVE")) == 1)

    # prep.preflight: keep every host's env file and clusters.json as the originals.
    originals = on_all(sandbox, each(cluster, "cat {env}", env="env_file"))
    originals_json = on_all(sandbox, each(cluster, "cat {cj}", cj="admin_clusters_json"))
    sha_env = {h: hashlib.sha256(r.stdout).hexdigest() for h, r in originals.items()}
    sha_json = {h: hashlib.sha256(r.stdout).hexdigest() for h, r in originals_json.items()}
    listings = on_all(sandbox, each(cluster, "ls -1 {bd}", bd="backup_dir"))
    holders: dict[str, list[str]] = {}
    for host, r in listings.items():
        for name in r.stdout.decode().split():
            holders.setdefault(name, []).append(host)
    backup = max(holders, key=lambda n: backup_time(n) or 0)  # the newest
    assert backup_time(backup) is not None

    # prep.stop
    on_all(sandbox, {h: cluster.service.stop for h in hosts})
    r = on_all(sandbox, {h: cluster.service.is_active + " || true" for h in hosts})
    assert {x.stdout.strip() for x in r.values()} == {b"inactive"}

    # prep.admin_access: aurora_admin straight at the local scheduler, no zk.
    for s in cluster.schedulers:
        entry = [
            {
                "name": cluster.aurora_name,
                "scheduler_uri": f"http://localhost:{cluster.http_port_of(s)}",
                "auth_mechanism": "UNAUTHENTICATED",
            }
        ]
        on_all(
            sandbox,
            {s.host: f"cat > {shlex.quote(cluster.path(s, 'admin_clusters_json') or '')}"},
            stdin={s.host: json.dumps(entry).encode()},
        )

    # prep.disable: the three values, each once; EXTRA_SCHEDULER_ARGS keeps its words.
    extra_before = on_all(
        sandbox, each(cluster, "grep ^EXTRA_SCHEDULER_ARGS= {env}", env="env_file")
    )
    on_all(
        sandbox,
        each(
            cluster,
            "sed -i -e 's|^MESOS_MASTER=.*|MESOS_MASTER=\"zk://localhost:1111/mesos/master\"|' "
            '-e \'s|^EXTRA_SCHEDULER_ARGS="\\(.*\\)"$|'
            f'EXTRA_SCHEDULER_ARGS="\\1 {DISABLE_ARGS}"|\' {{env}} && '
            "grep -c -- -max_registration_delay= {env}",
            env="env_file",
        ),
    )
    extra_after = on_all(
        sandbox, each(cluster, "grep ^EXTRA_SCHEDULER_ARGS= {env}", env="env_file")
    )
    for h in hosts:
        before = extra_before[h].stdout.decode().strip().removesuffix('"')
        assert extra_after[h].stdout.decode().strip() == f'{before} {DISABLE_ARGS}"'

    # prep.start
    on_all(sandbox, {h: cluster.service.start for h in hosts})
    wait_for(lambda: len(sandbox.leaders("LEADER_AWAITING_REGISTRATION")) == 1)

    # log.stop, log.archive, log.wipe, log.init, log.start
    on_all(sandbox, {h: cluster.service.stop for h in hosts})
    on_all(
        sandbox,
        each(
            cluster,
            "tar -czf {log}.$(date +%Y%m%d%H%M%S).tar.gz -C {log} . && ls {log}.*.tar.gz",
            log="native_log_file_path",
        ),
    )
    on_all(
        sandbox,
        each(
            cluster,
            'find {log} -mindepth 1 -delete && test -z "$(ls -A {log})"',
            log="native_log_file_path",
        ),
    )
    on_all(
        sandbox,
        each(
            cluster,
            f"sudo -u {cluster.scheduler_user} {cluster.mesos_log} initialize --path={{log}}",
            log="native_log_file_path",
        ),
    )
    on_all(sandbox, {h: cluster.service.start for h in hosts})

    # restore.leader: every scheduler answers, exactly one is the leader.
    def one_leader_all_up() -> list[str]:
        states = sandbox.states()
        up = all(s in ("STORAGE_PREPARED", "LEADER_AWAITING_REGISTRATION") for s in states.values())
        leaders = [h for h, s in states.items() if s == "LEADER_AWAITING_REGISTRATION"]
        return leaders if up and len(leaders) == 1 else []

    leader = wait_for(one_leader_all_up)[0]
    others = [h for h in hosts if h != leader]
    assert all(
        sandbox.vars(h)["scheduler_lifecycle_LEADER_AWAITING_REGISTRATION"] == "0" for h in others
    )
    ls = cluster.scheduler(leader)

    # restore.place: copy the backup to the leader when it lacks it; compare sha256.
    src = next(h for h in holders[backup])
    src_path = f"{cluster.path(cluster.scheduler(src), 'backup_dir')}/{backup}"
    dst_path = f"{cluster.path(ls, 'backup_dir')}/{backup}"
    data = on_all(sandbox, {src: f"cat {shlex.quote(src_path)}"})[src].stdout
    if leader not in holders[backup]:
        on_all(sandbox, {leader: f"cat > {shlex.quote(dst_path)}"}, stdin={leader: data})
    sums = on_all(sandbox, {leader: f"sha256sum {shlex.quote(dst_path)}"})
    assert sums[leader].stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    stored_tasks = decode_snapshot(data)
    backup_tasks = [t for t in stored_tasks if t.status in ACTIVE_STATES]
    assert len(stored_tasks) > len(backup_tasks)  # a real backup holds terminal tasks too

    admin = f"{ADMIN} {{verb}} --bypass-leader-redirect {cluster.aurora_name}"
    # restore.stage
    r = on_all(sandbox, {leader: admin.format(verb="scheduler_stage_recovery") + f" {backup}"})
    assert b" INFO] Response from scheduler: OK" in r[leader].stderr
    # restore.review
    r = on_all(sandbox, {leader: admin.format(verb="scheduler_print_recovery_tasks")})
    rows = [line for line in r[leader].stderr.decode().splitlines() if line.startswith(" INFO] ")][
        1:
    ]
    assert rows[0] == " INFO] Role\tJob\tShard\tStatus\tTask ID"
    assert len(rows) - 1 == len(backup_tasks)
    # restore.commit: the client may see a transport error although the commit worked.
    commit = subprocess.run(
        [
            "ssh",
            "-F",
            str(sandbox.dir / "ssh_config"),
            leader,
            admin.format(verb="scheduler_commit_recovery"),
        ],
        capture_output=True,
        timeout=120,
    )
    assert commit.returncode in (0, 1), commit.stderr
    # restore.failover: the old leader went down, a leader comes back.
    wait_for(
        lambda: (
            sandbox.states()[leader]
            in ("DOWN", "DEAD", "IDLE", "PREPARING_STORAGE", "STORAGE_PREPARED")
        ),
        timeout=15,
    )
    wait_for(lambda: len(sandbox.leaders("LEADER_AWAITING_REGISTRATION")) == 1, timeout=30)

    # cleanup.revert: every file back, byte for byte.
    on_all(
        sandbox,
        each(cluster, "cat > {env}", env="env_file"),
        stdin={h: r.stdout for h, r in originals.items()},
    )
    on_all(
        sandbox,
        each(cluster, "cat > {cj}", cj="admin_clusters_json"),
        stdin={h: r.stdout for h, r in originals_json.items()},
    )
    after_env = on_all(sandbox, each(cluster, "sha256sum {env}", env="env_file"))
    after_json = on_all(sandbox, each(cluster, "sha256sum {cj}", cj="admin_clusters_json"))
    assert {h: r.stdout.split()[0].decode() for h, r in after_env.items()} == sha_env
    assert {h: r.stdout.split()[0].decode() for h, r in after_json.items()} == sha_json

    # cleanup.restart: followers first, the leader last.
    current = sandbox.leaders("LEADER_AWAITING_REGISTRATION")[0]
    for h in [h for h in hosts if h != current] + [current]:
        on_all(sandbox, {h: "sudo systemctl restart aurora-scheduler"})

    # cleanup.verify: an ACTIVE leader holding the backup's tasks.
    active = wait_for(lambda: sandbox.leaders("ACTIVE"), timeout=30)
    assert len(active) == 1
    v = sandbox.vars(active[0])
    expected = Counter(t.status for t in backup_tasks)
    for status in ACTIVE_STATES:
        assert int(v.get(f"task_store_{status}", "0")) == expected.get(status, 0), status
    # Every ScheduleStatus has its gauge, the terminal ones counting the backup's history.
    everything = Counter(t.status for t in stored_tasks)
    assert {s: int(v[f"task_store_{s}"]) for s in ALL_STATES} == {
        s: everything.get(s, 0) for s in ALL_STATES
    }
    assert all(everything[s] > 0 for s in ("FINISHED", "FAILED", "KILLED"))

    # Nothing outside DIR was touched.
    assert {p: Path(p).exists() for p in SYSTEM_PATHS} == system_before
    assert snapshot_outside(tmp_path.parent, sandbox.dir) == outside_before
