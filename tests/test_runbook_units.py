"""Pure logic of the runbook: the procedure as data, command templates, the environment
file edits, the task listing parser, redaction."""

from __future__ import annotations

import json
import random
import re
import shlex
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from bot.blocks import MESSAGE_BUDGET, TOP_N, render_step
from runbook import envfile
from runbook.actions import StepContext
from runbook.clusters import parse_clusters
from runbook.commands import InvalidValue, backup_id, placeholders, render
from runbook.listing import ListingError, check_ids, parse_listing, summarize
from runbook.ports import HostResult, OnResult
from runbook.procedure import ONLINE, Risk
from runbook.redact import MASK, cap, redact
from runbook.store import RestoreRecord
from sandbox.backups import ACTIVE_STATES  # docs/aurora-notes.md §F5: print_recovery_tasks
from tests.slack_double import MAX_BLOCKS_MESSAGE, MAX_SECTION_TEXT, validate_blocks

RUNBOOK = Path(__file__).resolve().parents[1] / "docs/runbook.md"
# A row of a step table in docs/runbook.md: | id | risk | what it does | check |
STEP_ROW = re.compile(r"^\| ([a-z]+\.[a-z_]+) \| ([a-z-]+) \| (.+) \| ([^|]+) \|$", re.M)


def test_every_step_of_the_runbook_in_order() -> None:
    ids = [
        "prep.preflight",
        "prep.ack_backup",
        "prep.stop",
        "prep.block_traffic",
        "prep.admin_access",
        "prep.auth",
        "prep.disable",
        "prep.start",
        "log.stop",
        "log.archive",
        "log.wipe",
        "log.init",
        "log.start",
        "restore.leader",
        "restore.place",
        "restore.stage",
        "restore.review",
        "restore.commit",
        "restore.failover",
        "cleanup.revert",
        "cleanup.restart",
        "cleanup.verify",
        "cleanup.transcript",
    ]
    assert ONLINE.ids() == ids
    # The spec in the repository: its step tables name every step, in order, with the
    # risk and the check the procedure gives it, and no step the procedure lacks.
    rows = STEP_ROW.findall(RUNBOOK.read_text())
    assert [sid for sid, *_ in rows] == ids
    table = {sid: (risk, check.strip()) for sid, risk, _what, check in rows}
    assert len(table) == len(rows), "a step appears twice in docs/runbook.md"
    procedure = {s.id: (s.risk.value, s.check) for s in ONLINE}
    assert {sid: risk for sid, (risk, _) in table.items()} == {
        sid: risk for sid, (risk, _) in procedure.items()
    }
    assert table == procedure
    risks = {s.id: s.risk for s in ONLINE}
    assert risks["log.wipe"] is Risk.DESTRUCTIVE and risks["restore.commit"] is Risk.DESTRUCTIVE
    assert {s.id for s in ONLINE if s.condition} == {"prep.ack_backup", "prep.auth"}
    assert not next(s for s in ONLINE if s.id == "prep.ack_backup").skippable


def test_a_way_back_is_named_after_the_step_it_goes_to() -> None:
    """The card's button, the refusal and the console's prompt all say `rewind_label`:
    it must name the step the way back goes to."""
    ways = [s for s in ONLINE if s.rewind_to]
    assert [s.id for s in ways] == ["restore.commit"]
    for s in ways:
        assert s.rewind_to in ONLINE.ids()[: ONLINE.ids().index(s.id)], s.id
        assert s.rewind_label == f"Back to {s.rewind_to}", s.id


def test_templates_quote_every_value() -> None:
    t = "tar -czf {archive} -C {log_dir} . && echo ${HOME} {!service_stop}"
    assert placeholders(t) == {"archive", "log_dir", "!service_stop"}
    out = render(
        t,
        {"archive": "/a b.tgz", "log_dir": "/x;rm -rf /"},
        {"service_stop": "sudo systemctl stop s"},
    )
    assert out == "tar -czf '/a b.tgz' -C '/x;rm -rf /' . && echo ${HOME} sudo systemctl stop s"
    assert shlex.split(out)[2] == "/a b.tgz"
    with pytest.raises(KeyError):
        render("{missing}", {})


@pytest.mark.parametrize(
    "bad",
    [
        "scheduler-backup-2024-01-01",
        "scheduler-backup-2024-01-01-00-00;reboot",
        "$(reboot)",
        "../scheduler-backup-2024-01-01-00-00",
        "scheduler-backup-2024-01-01-00-00\n",
        "",
    ],
)
def test_backup_ids_are_validated(bad: str) -> None:
    with pytest.raises(InvalidValue):
        backup_id(bad)


def test_task_ids() -> None:
    """Typed task ids are checked for their form before the listing (runbook.listing)."""
    good = "www-data-prod-hello-0-1f2e"
    assert check_ids([good], {good}) == ([good], None)
    for bad in ("a b", "a,b", "-rf", "x;y"):
        assert check_ids([bad], {bad}) == ([], f"Not task ids: {bad}")


ENV = """# Debian
AURORA_HOME="/var/lib/aurora"
MESOS_MASTER="zk://${ZK_ENDPOINTS}/mesos"
LOGDB_FILE_PATH="${AURORA_HOME}/scheduler/db"
EXTRA_SCHEDULER_ARGS="-max_registration_delay=1mins -http_authentication_mechanism=BASIC"
"""


def test_disable_replaces_and_adds_each_flag_once() -> None:
    out = envfile.disable(ENV)
    assert envfile.check_disabled(out) == []
    assert envfile.disable(out) == out  # idempotent: never a duplicate
    values = envfile.parse(out)
    assert values["LOGDB_FILE_PATH"] == "/var/lib/aurora/scheduler/db"
    assert values["EXTRA_SCHEDULER_ARGS"].split() == [
        "-max_registration_delay=360mins",
        "-http_authentication_mechanism=BASIC",
        "-reconciliation_initial_delay=365days",
    ]
    assert out.startswith("# Debian\nAURORA_HOME=")  # the rest stays as it was
    assert envfile.check_disabled(ENV) != []


def test_auth_flag() -> None:
    assert envfile.has_auth_flag(ENV)
    dropped = envfile.drop_auth(ENV)
    assert not envfile.has_auth_flag(dropped)
    assert "-max_registration_delay=1mins" in dropped


def test_a_variable_assigned_twice_is_refused() -> None:
    with pytest.raises(envfile.EnvFileError, match="assigned twice"):
        envfile.disable(ENV + 'MESOS_MASTER="x"\n')


LISTING = """ INFO] Response from scheduler: OK (message: )
 INFO] Role\tJob\tShard\tStatus\tTask ID
 INFO] www-data\thello\t0\tRUNNING\twww-data-prod-hello-0-a
 INFO] www-data\thello\t1\tPENDING\twww-data-prod-hello-1-b
 INFO] ads\tbidder\t0\tRUNNING\tads-prod-bidder-0-c
"""


def test_listing_parser() -> None:
    tasks = parse_listing(LISTING)
    assert [t.task_id for t in tasks] == [
        "www-data-prod-hello-0-a",
        "www-data-prod-hello-1-b",
        "ads-prod-bidder-0-c",
    ]
    s = summarize(tasks)
    assert s["status"] == {"RUNNING": 2, "PENDING": 1}
    assert s["role"] == {"www-data": 2, "ads": 1}
    assert parse_listing(LISTING.splitlines()[0] + "\n" + LISTING.splitlines()[1]) == []
    with pytest.raises(ListingError):
        parse_listing(" INFO] Response from scheduler: ERROR (message: No backup loaded.)")


def staged_tasks(n: int, seed: int = 7) -> list[tuple[str, str, int, str, str]]:
    """`n` (role, job, shard, status, task id) rows, unevenly spread over roles and jobs."""
    rng = random.Random(seed)
    roles = [f"team-{i:02d}" if i % 3 else f"www-data-{i}" for i in range(40)]
    jobs = {r: [f"svc.{j}_{r[-2:]}" for j in range(1 + i % 7)] for i, r in enumerate(roles)}
    shards: Counter[tuple[str, str]] = Counter()
    rows = []
    for _ in range(n):
        role = rng.choices(roles, weights=range(1, len(roles) + 1))[0]
        job = rng.choice(jobs[role])
        status = rng.choices(ACTIVE_STATES, weights=(1, 1, 1, 5, 1, 1, 40, 3, 1, 1))[0]
        shard = shards[role, job]
        shards[role, job] += 1
        uid = uuid.UUID(int=rng.getrandbits(128), version=4)
        rows.append((role, job, shard, status, f"{role}-prod-{job}-{shard}-{uid}"))
    return rows


class ListingRemote:
    """The leader's side of `aurora_admin scheduler_print_recovery_tasks`: its stderr."""

    def __init__(self, stderr: str) -> None:
        self.stderr = stderr
        self.sent: list[dict[str, str]] = []

    async def run(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float | None = None,
        stdin: Mapping[str, bytes] | None = None,
        on_result: OnResult | None = None,
    ) -> dict[str, HostResult]:
        self.sent.append(dict(commands))
        return {h: HostResult(h, 0, "", self.stderr, 0.5) for h in commands}

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes:
        raise AssertionError(f"the review reads no file ({host}:{path})")

    async def close(self) -> None:
        pass


async def test_listing_of_ten_thousand_tasks_parses_and_fits_the_review_card() -> None:
    rows = staged_tasks(10_000)
    output = "\n".join(
        [
            " INFO] Response from scheduler: OK (message: )",
            " INFO] Role\tJob\tShard\tStatus\tTask ID",
            *(f" INFO] {r}\t{j}\t{s}\t{st}\t{t}" for r, j, s, st, t in rows),
        ]
    )
    tasks = parse_listing(output)
    assert [(t.role, t.job, t.shard, t.status, t.task_id) for t in tasks] == rows

    summary = summarize(tasks)
    assert summary == {
        "role": Counter(r[0] for r in rows),
        "job": Counter(f"{r[0]}/{r[1]}" for r in rows),
        "status": Counter(r[3] for r in rows),
    }
    for dimension, counts in summary.items():
        assert sum(counts.values()) == 10_000, dimension
        assert list(counts.values()) == sorted(counts.values(), reverse=True), dimension
    assert len(summary["role"]) == 40 and len(summary["status"]) == len(ACTIVE_STATES)
    assert len(summary["job"]) > TOP_N

    # The preview the engine stores as the `review` fact, from the leader's output.
    cluster = parse_clusters(
        {"clusters": {"west": {"schedulers": [{"host": f"sched{i}"} for i in (1, 2, 3)]}}}, "t"
    )["west"]
    remote = ListingRemote(output)

    async def learn(**_: Any) -> None:
        raise AssertionError("a preview learns nothing")

    ctx = StepContext(
        cluster=cluster,
        step=ONLINE.step("restore.review"),
        facts={"leader": "sched2"},
        remote=remote,
        probe=cast(Any, None),
        learn=learn,
    )
    review = await ctx.step.preview(ctx)  # type: ignore[misc]
    assert [list(c) for c in remote.sent] == [["sched2"]]
    assert "scheduler_print_recovery_tasks" in remote.sent[0]["sched2"]
    assert {"count", "summary", "listing"} <= set(review)
    assert review["count"] == 10_000 and review["summary"] == summary

    rec = RestoreRecord(
        rid="r10k",
        meta={"cluster": "west", "started_by": "U0123ABC", "plan": ONLINE.ids()},
        status="running",
        current="restore.review",
        steps={"restore.review": {"status": "awaiting", "attempt": 1}},
        data={"leader": "sched2", "review": review},
    )
    card = render_step(rec, cluster, "restore.review")
    assert validate_blocks(card.blocks) == []
    assert len(card.blocks) <= MAX_BLOCKS_MESSAGE
    sections = [b["text"]["text"] for b in card.blocks if b["type"] == "section"]
    assert all(len(t) <= MAX_SECTION_TEXT for t in sections)
    assert len(json.dumps(card.blocks, ensure_ascii=False)) <= MESSAGE_BUDGET
    preview = next(b["text"]["text"] for b in card.blocks if b["block_id"] == "card.preview")
    assert "*Staged tasks:* 10000" in preview
    top_status, top_count = next(iter(summary["status"].items()))
    assert f"`{top_status}` {top_count}" in preview
    assert f"(+{40 - TOP_N} more)" in preview  # roles beyond the top ten
    assert rows[-1][4] not in json.dumps(card.blocks)  # the ids go in the file, not the card

    # The file the bot attaches to the thread (bot.slack_front): a header, one task a line,
    # redacted on the way out (which must leave task ids alone).
    attached = "Role\tJob\tShard\tStatus\tTask ID\n" + review["listing"] + "\n"
    assert redact(attached) == attached
    lines = attached.splitlines()
    assert len(lines) == 1 + 10_000
    assert [line.split("\t")[-1] for line in lines[1:]] == [r[4] for r in rows]
    assert parse_listing(attached) == tasks


def test_redaction() -> None:
    text = (
        "token=xoxb-1234567890-abcdefghij password: hunter2 "
        "Authorization: Basic dXNlcjpwYXNz url=https://bob:s3cret@zk.example.com/x\n"
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    out = redact(text)
    for secret in ("xoxb-1234567890", "hunter2", "dXNlcjpwYXNz", "s3cret", "AAAA"):
        assert secret not in out
    assert out.count(MASK) >= 5
    assert redact("nothing secret here") == "nothing secret here"


def test_cap_keeps_the_tail() -> None:
    text = "x" * 100 + "END"
    out, cut = cap(text, 10)
    assert cut and out.endswith("xxxxxxxEND") and len(out.encode()) <= 10 + 20
    assert cap("short", 10) == ("short", False)


async def test_review_approved_without_a_listing_prints_it_first() -> None:
    """An approval may only record a listing someone could see: without one (the preview
    failed, or the bot died while deleting tasks), the step prints it and asks again."""
    cluster = parse_clusters(
        {"clusters": {"west": {"schedulers": [{"host": f"sched{i}"} for i in (1, 2)]}}}, "t"
    )["west"]
    output = " INFO] Role\tJob\tShard\tStatus\tTask ID\n INFO] www\thello\t0\tRUNNING\tt-0\n"
    remote = ListingRemote(output)
    facts: dict[str, Any] = {"leader": "sched2", "review": {"error": "no connection"}}

    async def learn(**values: Any) -> None:
        facts.update(values)

    ctx = StepContext(
        cluster=cluster,
        step=ONLINE.step("restore.review"),
        facts=facts,
        remote=remote,
        probe=cast(Any, None),
        learn=learn,
    )
    out = await ctx.step.run(ctx)
    assert not out.ok and out.summary == (
        "the listing (1 tasks) was printed again: review it, then Retry"
    )
    assert facts["review"]["count"] == 1 and "reviewed_count" not in facts
    out = await ctx.step.run(ctx)  # the Retry, once the card showed it
    assert out.ok and facts["reviewed_count"] == 1
    assert len(remote.sent) == 1  # printed once
