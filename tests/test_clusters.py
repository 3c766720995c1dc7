"""The cluster file: the documented example loads, defaults apply, and every error names
the file, the cluster and the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from runbook.clusters import ClusterFileError, load_clusters, parse_duration

EXAMPLE = """
[clusters.west]
aurora_name = "west"
http_port = 8081
env_file = "/etc/default/aurora-scheduler"
native_log_file_path = "/var/lib/aurora/scheduler/db"
backup_dir = "/var/lib/aurora/scheduler/backups"
admin_clusters_json = "/etc/aurora/clusters.json"
aurora_admin = "aurora_admin"
scheduler_user = "aurora"
mesos_log = "mesos-log"
max_backup_age = "4h"
zk_endpoints = "zk1:2181,zk2:2181"
serverset_path = "/aurora/scheduler"
two_person_rule = true

[clusters.west.service]
stop = "sudo systemctl stop aurora-scheduler"
start = "sudo systemctl start aurora-scheduler"
is_active = "systemctl is-active aurora-scheduler"

[clusters.west.ssh]
user = "aurora-ops"
key = "~/.ssh/aurora_restore"
known_hosts = "~/.ssh/known_hosts"
connect_timeout = "10s"
command_timeout = "5m"

[clusters.west.approvers]
users = ["U0123ABCD"]
groups = ["aurora-oncall"]
console = ["alice", "bob"]

[[clusters.west.schedulers]]
host = "sched1.west.example.com"
ssh_port = 22
http_port = 8081

[[clusters.west.schedulers]]
host = "sched2.west.example.com"
backup_dir = "/srv/aurora/backups"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clusters.toml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path: Path) -> None:
    west = load_clusters(write(tmp_path, EXAMPLE))["west"]
    assert west.aurora_name == "west"
    assert west.max_backup_age_delta == timedelta(hours=4)
    assert west.approvers.groups == ["aurora-oncall"]
    one, two = west.schedulers
    assert west.http_port_of(one) == 8081
    # A scheduler's own path wins over the cluster's.
    assert west.path(one, "backup_dir") == "/var/lib/aurora/scheduler/backups"
    assert west.path(two, "backup_dir") == "/srv/aurora/backups"
    assert one.connect_address == "sched1.west.example.com"


def test_defaults(tmp_path: Path) -> None:
    c = load_clusters(write(tmp_path, '[[clusters.east.schedulers]]\nhost = "s1"\n'))["east"]
    assert c.aurora_name == "east"
    assert c.http_port == 8081
    assert c.env_file is None  # found by preflight: Debian's path, else the RPM's
    assert c.aurora_admin is None  # found by preflight: aurora-admin, else aurora_admin
    assert c.scheduler_log is None and c.scheduler_unit == "aurora-scheduler"  # journald
    assert c.start_wait == "3m"
    assert c.native_log_file_path is None  # read from the env file
    assert c.service.stop == "sudo systemctl stop aurora-scheduler"
    assert c.two_person_rule is True
    assert c.zk_endpoints is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[clusters.west.schedulers]]\nhost = "sched 2"\n',
            "cluster 'west': schedulers[0].host: not a valid host name: 'sched 2'",
        ),
        (
            '[clusters.west]\nmax_backup_age = "4 hours"\n[[clusters.west.schedulers]]\nhost = "a"\n',
            "cluster 'west': max_backup_age: not a duration like 10s, 5m, 4h or 2d",
        ),
        (
            '[clusters.west]\nbackup_dir = "/var/$(reboot)"\n[[clusters.west.schedulers]]\nhost = "a"\n',
            "cluster 'west': backup_dir: an absolute path",
        ),
        (
            '[clusters.west]\nbakup_dir = "/x"\n[[clusters.west.schedulers]]\nhost = "a"\n',
            "cluster 'west': bakup_dir: Extra inputs are not permitted",
        ),
        ("[clusters.west]\n", "cluster 'west': schedulers: Field required"),
        (
            '[clusters.west.ssh]\nuser = "root; rm -rf /"\n[[clusters.west.schedulers]]\nhost = "a"\n',
            "cluster 'west': ssh.user: not a valid user name",
        ),
        (
            '[[clusters."we st".schedulers]]\nhost = "a"\n',
            "cluster 'we st': the cluster name must be",
        ),
        ("[clusters.west\n", "not valid TOML"),
        ("", "no [clusters.<name>] table"),
    ],
)
def test_errors_name_file_cluster_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ClusterFileError) as err:
        load_clusters(path)
    assert str(err.value).startswith(str(path) + ": ")
    assert message in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ClusterFileError, match="no such file"):
        load_clusters(tmp_path / "nope.toml")


def test_durations() -> None:
    assert parse_duration("10s") == timedelta(seconds=10)
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration("2d") == timedelta(days=2)
    for bad in ("", "5", "1.5h", "4 h", "-1m", "3w"):
        with pytest.raises(ValueError):
            parse_duration(bad)


S = '[[clusters.west.schedulers]]\nhost = "a"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[clusters.west]\ntwo_person_rule = "off"\n' + S,
            "cluster 'west': two_person_rule: expected true or false (unquoted), not the string 'off'",
        ),
        (
            "[clusters.west]\ntwo_person_rule = 0\n" + S,
            "cluster 'west': two_person_rule: expected true or false (unquoted), not 0",
        ),
        (
            '[clusters.west]\nhttp_port = "39527"\n' + S,
            "cluster 'west': http_port: expected a whole number (unquoted), not the string '39527'",
        ),
        (
            "[clusters.west]\nhttp_port = true\n" + S,
            "cluster 'west': http_port: expected a whole number (unquoted), not True",
        ),
        (
            '[[clusters.west.schedulers]]\nhost = "a"\nssh_port = "22"\n',
            "cluster 'west': schedulers[0].ssh_port: expected a whole number (unquoted), not the string '22'",
        ),
        (
            "[clusters.west]\nmax_backup_age = 4\n" + S,
            "cluster 'west': max_backup_age: expected a quoted string, not 4",
        ),
        (
            '[clusters.west.approvals]\nremind_after = "10 min"\n' + S,
            "cluster 'west': approvals.remind_after: not a duration like 10s, 5m, 4h or 2d: '10 min'",
        ),
        (
            '[clusters.west.approvals]\nexpire = "1h"\n' + S,
            "cluster 'west': approvals.expire: Extra inputs are not permitted",
        ),
        (
            '[clusters.west]\napprovers = "U1"\n' + S,
            "cluster 'west': approvers: expected a table, not the string 'U1'",
        ),
    ],
)
def test_types_are_strict(tmp_path: Path, text: str, message: str) -> None:
    """A quoted value is a mistake, not a spelling: "off" must not turn the rule off."""
    with pytest.raises(ClusterFileError) as err:
        load_clusters(write(tmp_path, text))
    assert str(err.value) == f"{tmp_path / 'clusters.toml'}: {message}"


def test_approvals_durations(tmp_path: Path) -> None:
    c = load_clusters(write(tmp_path, S))["west"]
    assert (c.approvals.remind_after, c.approvals.expire_after) == ("10m", "1h")
    text = '[clusters.west.approvals]\nremind_after = "30s"\nexpire_after = "2h"\n' + S
    c = load_clusters(write(tmp_path, text))["west"]
    assert (c.approvals.remind_after_ms, c.approvals.expire_after_ms) == (30_000, 7_200_000)
    t = load_clusters(write(tmp_path, "[clusters.west]\ntwo_person_rule = false\n" + S))
    assert t["west"].two_person_rule is False
