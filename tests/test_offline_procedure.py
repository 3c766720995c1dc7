"""The offline procedure as data, and its commands as rendered: what a host told us is
validated before it reaches a shell, recovery-tool gets exactly its flags, the start
order is in the data (nothing starts in the empty-log window, the rehydrated scheduler
before any blank one), and no online recovery command is part of it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.probes import parse_metrics
from runbook import commands as cmd, offline
from runbook.actions import StepContext, host_values, render_for, verbatim
from runbook.clusters import parse_clusters
from runbook.offline import OFFLINE, RECOVER, target_hosts, tool_values, zk_endpoints
from runbook.step import Risk, Role, Targets

HOSTS = ["s1.example", "s2.example", "s3.example"]


def cluster(**extra: Any) -> Any:
    raw = {
        "aurora_name": "west",
        "schedulers": [{"host": h} for h in HOSTS],
        "native_log_file_path": "/var/lib/aurora/scheduler/db",
        "backup_dir": "/var/lib/aurora/scheduler/backups",
        "env_file": "/etc/default/aurora-scheduler",
        **extra,
    }
    return parse_clusters({"clusters": {"west": raw}}, "c.toml")["west"]


BACKUP = "scheduler-backup-2026-12-01-11-00"


def facts(**extra: Any) -> dict[str, Any]:
    tool = {
        "recovery_tool": "/usr/share/aurora/bin/recovery-tool",
        "zk_group": "/aurora/replicated-log",
        "zk_endpoints": "zk1.example:2181,10.0.0.2:2181",
    }
    return {
        "backup": BACKUP,
        "archive_stamp": "20261201-120000",
        "paths": {h: {"flavour": "debian"} for h in HOSTS},
        "tool_values": {h: dict(tool) for h in HOSTS},
        "quorum_size": 2,
        "scheduler_count": 3,
        "rehydrate": "s2.example",
        **extra,
    }


def test_recovery_tool_gets_exactly_its_flags() -> None:
    c = cluster()
    line = cmd.render(RECOVER, host_values(c, c.scheduler("s2.example"), facts()))
    assert line == (
        "sudo -n -u aurora /usr/share/aurora/bin/recovery-tool -from BACKUP -to LOG "
        f"-backup=/var/lib/aurora/scheduler/backups/{BACKUP} "
        "-native_log_file_path=/var/lib/aurora/scheduler/db "
        "-native_log_zk_group_path=/aurora/replicated-log "
        "-zk_endpoints=zk1.example:2181,10.0.0.2:2181 -native_log_quorum_size=1"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("zk_group", "/aurora/log; touch /tmp/owned"),
        ("zk_group", "relative/path"),
        ("zk_group", "/aurora/../etc"),
        ("zk_endpoints", "zk1:2181 -backup=/etc/shadow"),
        ("zk_endpoints", "zk1:2181;id"),
        ("zk_endpoints", "zk1:99999"),
        ("zk_endpoints", "$(id):2181"),
        ("recovery_tool", "/usr/bin/env bash"),
        ("recovery_tool", "recovery-tool"),
    ],
)
def test_values_read_from_a_host_are_validated_before_any_shell(field: str, value: str) -> None:
    c = cluster()
    f = facts()
    f["tool_values"]["s2.example"][field] = value
    with pytest.raises(cmd.InvalidValue):
        tool_values(c, c.scheduler("s2.example"), f)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("localhost:2181", True),
        ("zk1.example:2181,zk2.example:2182", True),
        ("127.0.0.1:2181", True),
        ("", False),
        ("zk1", False),
        ("zk1:", False),
        ("zk1:0", False),
        (":2181", False),
        ("zk1:2181,", False),
    ],
)
def test_zk_endpoints(text: str, ok: bool) -> None:
    if ok:
        assert zk_endpoints(text) == text
    else:
        with pytest.raises(cmd.InvalidValue):
            zk_endpoints(text)


@pytest.mark.parametrize(
    ("quorum", "rehydrate", "quorum_hosts", "rest"),
    [
        (2, "s2.example", ["s1.example"], ["s3.example"]),
        (2, "s1.example", ["s2.example"], ["s3.example"]),
        (3, "s3.example", ["s1.example", "s2.example"], []),
        (1, "s1.example", [], ["s2.example", "s3.example"]),
    ],
)
def test_start_order_targets(
    quorum: int, rehydrate: str, quorum_hosts: list[str], rest: list[str]
) -> None:
    c = cluster()
    f = facts(quorum_size=quorum, rehydrate=rehydrate)
    assert target_hosts(c, Targets.REHYDRATED, f) == [rehydrate]
    assert target_hosts(c, Targets.QUORUM, f) == quorum_hosts
    assert target_hosts(c, Targets.REST, f) == rest
    assert target_hosts(c, Targets.REVIEWERS, f) == [rehydrate, *quorum_hosts]
    assert offline.has_blank_quorum(f) is bool(quorum_hosts)
    assert offline.has_rest(f) is bool(rest)


def test_nothing_is_targeted_before_the_choice() -> None:
    c = cluster()
    f = facts(rehydrate=None)
    for t in (Targets.REHYDRATED, Targets.QUORUM, Targets.REST, Targets.REVIEWERS):
        assert target_hosts(c, t, f) == []


def test_every_template_renders_with_what_preflight_learns() -> None:
    """Each command and read of every step renders on each of its hosts: a value a
    template needs and preflight does not learn would leave it out of the plan."""
    c = cluster()
    f = facts()
    for step in OFFLINE:
        ctx = StepContext(c, step, f, None, None, _learn)  # type: ignore[arg-type]
        for template in (*step.commands, *step.reads):
            if template.startswith("GET "):
                continue
            for h in ctx.targets():
                cmd.render(template, host_values(c, c.scheduler(h), f), verbatim(c, f, h))


async def _learn(**_values: Any) -> None:
    return None


def test_the_start_order_is_in_the_data() -> None:
    steps = list(OFFLINE)
    index = {s.id: i for i, s in enumerate(steps)}
    wipe = [s for s in steps if s.empties_log]
    fill = [s for s in steps if s.fills_log]
    assert len(wipe) == 1 and len(fill) == 1
    assert wipe[0].risk is Risk.DESTRUCTIVE and fill[0].risk is Risk.DESTRUCTIVE
    assert fill[0].targets is Targets.REHYDRATED
    starts = [
        s for s in steps if "{!service_start}" in " ".join(s.commands) and s.phase != offline.REVIEW
    ]
    assert [s.targets for s in starts] == [Targets.REHYDRATED, Targets.QUORUM, Targets.REST]
    # The review window starts only disabled schedulers, the rehydrated one first, after
    # the tool, and only once every file is disabled.
    (review_start,) = [s for s in steps if s.targets is Targets.REVIEWERS]
    assert index[review_start.id] > index[fill[0].id]
    assert review_start.precondition is offline.review_ready
    assert review_start.condition is offline.review_was_disabled
    for s in starts:
        # refused by the engine while the log is empty, and after the tool only
        assert s.needs_real_log
        assert index[s.id] > index[fill[0].id] > index[wipe[0].id]
    # Every blank start waits for the rehydrated one; the first start for all to be down.
    assert starts[0].precondition is offline.all_down
    assert all(s.precondition is offline.rehydrated_up for s in starts[1:])
    assert fill[0].precondition is offline.all_down


def test_roles_and_no_online_recovery_command() -> None:
    steps = list(OFFLINE)
    assert steps[0].role is Role.PREFLIGHT and steps[0].fail_ends_restore
    assert [s.role for s in steps[-2:]] == [Role.VERIFY, Role.TRANSCRIPT]
    assert all(s.id.startswith("offline.") for s in steps)
    text = " ".join(c for s in steps for c in (*s.commands, *s.reads))
    for online in ("scheduler_stage_recovery", "scheduler_commit_recovery", "_recovery_tasks"):
        assert online not in text
    # Only the optional review window edits files (unattended runs skip it), and when it
    # did, putting them back cannot be skipped.
    writers = [s for s in steps if "tee" in " ".join(s.commands)]
    assert {s.phase for s in writers} == {offline.REVIEW}
    disable, put_back = writers
    assert disable.suggest_skip and disable.skippable
    assert not put_back.skippable and put_back.condition is offline.review_was_disabled
    assert put_back.file_edits is not None and disable.file_edits is not None
    # Each step that changes something can tell after an interruption whether it ran.
    for s in steps:
        if s.risk is not Risk.READ_ONLY and s.targets is not Targets.BOT:
            assert s.verify is not None, s.id


def test_libprocess_script_reads_the_packaged_default(tmp_path: Path) -> None:
    """The packaged Debian default sets LIBPROCESS_PORT=8083 and leaves LIBPROCESS_IP
    commented out; evaluated as the startup script does, in a clean environment."""
    env = tmp_path / "aurora-scheduler"
    env.write_text(
        "GLOG_v=0\nLIBPROCESS_PORT=8083\n#LIBPROCESS_IP=127.0.0.1\n"
        'JAVA_OPTS="-Djava.library.path=/usr/local/lib"\necho chatty\n'
    )
    out = subprocess.run(
        ["bash", "-c", offline.LIBPROCESS_SCRIPT, "_", str(env)],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LIBPROCESS_PORT": "1"},
    )
    assert out.stdout == b"\x008083\x00"
    env.write_text("LIBPROCESS_IP=10.1.2.3\nPORT=9\nLIBPROCESS_PORT=$((PORT+8000))\n")
    out = subprocess.run(
        ["bash", "-c", offline.LIBPROCESS_SCRIPT, "_", str(env)], capture_output=True, check=True
    )
    assert out.stdout == b"10.1.2.3\x008009\x00"


def test_libprocess_command_quotes_the_env_file() -> None:
    c = cluster(env_file="/etc/default/aurora-scheduler")
    ctx = StepContext(c, OFFLINE.steps[0], facts(), None, None, _learn)  # type: ignore[arg-type]
    rendered = render_for(ctx, offline.LIBPROCESS_NOW, ["s1.example"])["s1.example"]
    assert rendered.endswith(" _ /etc/default/aurora-scheduler")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"log/recovered": 1, "log/ensemble_size": 3}',
            {"log/recovered": 1.0, "log/ensemble_size": 3.0},
        ),
        ('{"log/recovered": 0.0, "system/load": "x", "flag": true}', {"log/recovered": 0.0}),
        ("[1, 2]", "the metrics snapshot is not a JSON object"),
        ("<html>", "the metrics snapshot is not JSON"),
    ],
)
def test_parse_metrics(text: str, expected: object) -> None:
    assert parse_metrics(text) == expected


def test_the_root_message_names_the_procedure_and_its_version() -> None:
    from bot.blocks import root_message
    from runbook.store import RestoreRecord

    plan = OFFLINE.ids()
    rec = RestoreRecord(
        rid="r1",
        meta={
            "cluster": "west",
            "started_by": "U0ALICE",
            "plan": plan,
            "started_at": 1,
            "procedure": "offline",
            "procedure_version": "0.22.0",
        },
        status="running",
        current=plan[0],
        steps={sid: {"status": "pending", "attempt": 0} for sid in plan},
        data={},
    )
    text = str(root_message(rec, cluster()))
    assert "offline procedure for Aurora 0.22.0" in text
    assert "Write the backup into the rehydrated scheduler" in text  # its own steps
