"""Pure logic of the runbook: the procedure as data, command templates, the environment
file edits, the task listing parser, redaction."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from runbook import envfile
from runbook.commands import InvalidValue, backup_id, placeholders, render, task_id
from runbook.listing import ListingError, parse_listing, summarize
from runbook.procedure import ONLINE_PROCEDURE, Risk, step_ids
from runbook.redact import MASK, cap, redact

RUNBOOK = Path(__file__).resolve().parents[2] / "shared/docs/runbook.md"


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
    assert step_ids() == ids
    if RUNBOOK.exists():  # the spec, when shared/ is beside the checkout
        table_rows = re.findall(r"^\| ([a-z]+\.[a-z_]+) \| ([a-z-]+) \|", RUNBOOK.read_text(), re.M)
        assert [sid for sid, _ in table_rows] == ids
        assert {sid: risk for sid, risk in table_rows} == {
            s.id: s.risk.value for s in ONLINE_PROCEDURE
        }
    risks = {s.id: s.risk for s in ONLINE_PROCEDURE}
    assert risks["log.wipe"] is Risk.DESTRUCTIVE and risks["restore.commit"] is Risk.DESTRUCTIVE
    assert {s.id for s in ONLINE_PROCEDURE if s.condition} == {"prep.ack_backup", "prep.auth"}
    assert not next(s for s in ONLINE_PROCEDURE if s.id == "prep.ack_backup").skippable


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
    assert task_id("www-data-prod-hello-0-1f2e") == "www-data-prod-hello-0-1f2e"
    for bad in ("a b", "a,b", "-rf", "x;y"):
        with pytest.raises(InvalidValue):
            task_id(bad)


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
