"""runbook.envfile: edits on the raw text of the scheduler's environment file.

The static tests compare whole texts (every byte outside the edited flags must stay); the
REAL BASH tests source the files before and after an edit with `bash`, the way the packaged
startup scripts do (argv_script), and compare the scheduler's argv word for word.
"""

from __future__ import annotations

import difflib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from runbook import envfile
from runbook.envfile import BOGUS_MASTER, EnvFileError

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="needs bash")

# docs/aurora-notes.md §F8: apache/aurora-packaging specs/debian/aurora-scheduler.default
DEBIAN_DEFAULT = """\
GLOG_v=0
LIBPROCESS_PORT=8083
#LIBPROCESS_IP=127.0.0.1
JAVA_OPTS='-Djava.library.path=/usr/local/lib'
AURORA_HOME="/var/lib/aurora"
CLUSTER_NAME="example"
HTTP_PORT=8081
QUORUM_SIZE=1
ZK_ENDPOINTS="127.0.0.1:2181"
MESOS_MASTER="zk://${ZK_ENDPOINTS}/mesos"
ZK_SERVERSET_PATH="/aurora/scheduler"
ZK_LOGDB_PATH="/aurora/replicated-log"
LOGDB_FILE_PATH="${AURORA_HOME}/scheduler/db"
BACKUP_DIR="${AURORA_HOME}/scheduler/backups"
THERMOS_EXECUTOR_PATH="/usr/share/aurora/bin/thermos_executor.pex"
THERMOS_EXECUTOR_RESOURCES=""
THERMOS_EXECUTOR_FLAGS="--announcer-ensemble 127.0.0.1:2181"
ALLOWED_CONTAINER_TYPES="MESOS,DOCKER"
EXTRA_SCHEDULER_ARGS=""
"""

# A site's file: a license header, ${VAR}s, and EXTRA_SCHEDULER_ARGS holding flags with
# $(...), ${...}, backticks, a `-flag value` pair, a line continuation and a comment.
SITE = """\
#
# Licensed to the Apache Software Foundation (ASF) under one or more contributor
# license agreements.  See the NOTICE file distributed with this work.
#
GLOG_v=0
LIBPROCESS_PORT=8083
JAVA_OPTS='-Djava.library.path=/usr/local/lib -Xmx4g "-Dq=$(not run)"'
AURORA_HOME="/var/lib/aurora"
CLUSTER_NAME=west
HTTP_PORT=8081
QUORUM_SIZE=3
ENDPOINT=http
ZK_ENDPOINTS="zk1:2181,zk2:2181,zk3:2181"
MESOS_MASTER="zk://${ZK_ENDPOINTS}/mesos"
ZK_SERVERSET_PATH="/aurora/scheduler"
LOGDB_FILE_PATH="${AURORA_HOME}/scheduler/db"
BACKUP_DIR="$AURORA_HOME/scheduler/backups"
EXTRA_SCHEDULER_ARGS="-hostname=$(hostname -f) -serverset_endpoint_name=${ENDPOINT} \\
  -stamp=`echo tick` -max_registration_delay 1mins -http_authentication_mechanism=BASIC \\
  -allow_docker_parameters"   # site flags: ask ops before changing
# end
"""

# docs/aurora-notes.md §F8: apache/aurora-packaging specs/rpm/aurora.sysconfig, one line
RPM_ONE_LINE = """\
GLOG_v=0
LIBPROCESS_PORT=8083
JAVA_OPTS=(-server -Djava.library.path='/usr/lib;/usr/lib64')
AURORA_FLAGS=(-cluster_name='example' -http_port=8081 -mesos_master_address='zk://127.0.0.1:2181/mesos' -zk_endpoints='127.0.0.1:2181' -serverset_path='/aurora/scheduler' -allowed_container_types='DOCKER,MESOS' -native_log_quorum_size='1' -native_log_zk_group_path='/aurora/replicated-log' -native_log_file_path='/var/lib/aurora/scheduler/db' -backup_dir='/var/lib/aurora/scheduler/backups' -thermos_executor_path='/usr/bin/thermos_executor' -thermos_executor_flags='--announcer-ensemble 127.0.0.1:2181' -http_authentication_mechanism=BASIC)
"""

RPM_MULTI_LINE = """\
# /etc/sysconfig/aurora-scheduler
GLOG_v=0
ZK="zk1:2181,zk2:2181"
AURORA_FLAGS=(
  -cluster_name='example'
  -http_port=8081
  # the masters
  -mesos_master_address="zk://${ZK}/mesos"
  -zk_endpoints="$ZK"
  -native_log_quorum_size 2
  -native_log_file_path=/var/lib/aurora/scheduler/db
  -backup_dir '/var/lib/aurora/scheduler/backups'
  -http_authentication_mechanism BASIC   # behind the proxy
  -max_registration_delay 1mins
  -thermos_executor_flags='--announcer-ensemble 127.0.0.1:2181'
)
"""


def _diff(a: str, b: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(a.splitlines(True), b.splitlines(True), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


# --------------------------------------------------------------------------- Debian


def test_the_debian_default_file() -> None:
    assert envfile.flavour(DEBIAN_DEFAULT) == "debian"
    assert envfile.check_editable(DEBIAN_DEFAULT) == []
    out = envfile.disable(DEBIAN_DEFAULT)
    assert _diff(DEBIAN_DEFAULT, out) == [
        '-MESOS_MASTER="zk://${ZK_ENDPOINTS}/mesos"\n',
        f'+MESOS_MASTER="{BOGUS_MASTER}"\n',
        '-EXTRA_SCHEDULER_ARGS=""\n',
        '+EXTRA_SCHEDULER_ARGS="-max_registration_delay=360mins -reconciliation_initial_delay=365days"\n',
    ]
    assert envfile.check_disabled(out) == []
    assert envfile.check_disabled(DEBIAN_DEFAULT) != []
    assert envfile.disable(out) == out
    assert envfile.drop_auth(DEBIAN_DEFAULT) == DEBIAN_DEFAULT
    assert not envfile.has_auth_flag(DEBIAN_DEFAULT)
    assert envfile.settings(DEBIAN_DEFAULT) == {
        "log_dir": "/var/lib/aurora/scheduler/db",
        "backup_dir": "/var/lib/aurora/scheduler/backups",
        "quorum": "1",
    }


def test_a_site_file_changes_only_the_edited_flags() -> None:
    assert envfile.check_editable(SITE) == []
    out = envfile.disable(SITE)
    expected = (
        SITE.replace('MESOS_MASTER="zk://${ZK_ENDPOINTS}/mesos"', f'MESOS_MASTER="{BOGUS_MASTER}"')
        .replace("-max_registration_delay 1mins", "-max_registration_delay 360mins")
        .replace(
            '-allow_docker_parameters"',
            '-allow_docker_parameters -reconciliation_initial_delay=365days"',
        )
    )
    assert out == expected
    assert envfile.check_disabled(out) == []
    assert envfile.disable(out) == out

    dropped = envfile.drop_auth(SITE)
    assert dropped == SITE.replace(" -http_authentication_mechanism=BASIC", "")
    assert envfile.has_auth_flag(SITE) and not envfile.has_auth_flag(dropped)
    assert envfile.drop_auth(dropped) == dropped


def test_parse_expands_known_variables_and_leaves_out_the_rest() -> None:
    values = envfile.parse(SITE)
    assert values["LOGDB_FILE_PATH"] == "/var/lib/aurora/scheduler/db"
    assert values["BACKUP_DIR"] == "/var/lib/aurora/scheduler/backups"
    assert values["MESOS_MASTER"] == "zk://zk1:2181,zk2:2181,zk3:2181/mesos"
    assert values["JAVA_OPTS"] == '-Djava.library.path=/usr/local/lib -Xmx4g "-Dq=$(not run)"'
    assert "EXTRA_SCHEDULER_ARGS" not in values  # holds $(...) and backticks
    assert envfile.settings(SITE) == {
        "log_dir": "/var/lib/aurora/scheduler/db",
        "backup_dir": "/var/lib/aurora/scheduler/backups",
        "quorum": "3",
    }
    text = (
        'A="/a"\nB="${HOSTNAME}/x"\nC=$(date)\nD=`date`\nE="$A/e"\nF=$((1+1))\n'
        "export G=\"$A/g\"\nif true; then H=1; fi\nH=2\nI='$A'\nJ=${A:-x}\n"
    )
    assert envfile.parse(text) == {"A": "/a", "E": "/a/e", "G": "/a/g", "I": "$A"}
    # what a sourced file assigns is not in this text
    assert envfile.parse('A=1\n. /etc/default/other\nB="$A"\nC=3\n') == {"C": "3"}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # -f=v replaced where it stands; the other flag added inside the quotes
        (
            'EXTRA_SCHEDULER_ARGS="-a -max_registration_delay=1mins -b"',
            'EXTRA_SCHEDULER_ARGS="-a -max_registration_delay=360mins -b -reconciliation_initial_delay=365days"',
        ),
        # -f v replaced (the value word only)
        (
            "EXTRA_SCHEDULER_ARGS='-reconciliation_initial_delay 5mins -max_registration_delay 2mins'\n",
            "EXTRA_SCHEDULER_ARGS='-reconciliation_initial_delay 365days -max_registration_delay 360mins'\n",
        ),
        # a bare flag (no value) gets one
        (
            'EXTRA_SCHEDULER_ARGS="-max_registration_delay -b"',
            'EXTRA_SCHEDULER_ARGS="-max_registration_delay=360mins -b -reconciliation_initial_delay=365days"',
        ),
        # an unquoted single plain word becomes a double-quoted value
        (
            "EXTRA_SCHEDULER_ARGS=-a=1\n",
            'EXTRA_SCHEDULER_ARGS="-a=1 -max_registration_delay=360mins -reconciliation_initial_delay=365days"\n',
        ),
        (
            "EXTRA_SCHEDULER_ARGS=",
            'EXTRA_SCHEDULER_ARGS="-max_registration_delay=360mins -reconciliation_initial_delay=365days"',
        ),
        # a value spread over quotes: the word is edited in each part, the quotes kept
        (
            'EXTRA_SCHEDULER_ARGS="-a -max_registration_delay="\'1mins\'" -b"',
            'EXTRA_SCHEDULER_ARGS="-a -max_registration_delay="\'360mins\'" -b -reconciliation_initial_delay=365days"',
        ),
        # single-quoted backticks stay single-quoted (inert)
        (
            "EXTRA_SCHEDULER_ARGS='-x=a`pwned`b'",
            "EXTRA_SCHEDULER_ARGS='-x=a`pwned`b -max_registration_delay=360mins -reconciliation_initial_delay=365days'",
        ),
        # no EXTRA_SCHEDULER_ARGS: a line is added, the missing trailing newline kept missing
        (
            "X=1",
            'X=1\nEXTRA_SCHEDULER_ARGS="-max_registration_delay=360mins -reconciliation_initial_delay=365days"',
        ),
    ],
)
def test_disable_edits_extra_scheduler_args_in_place(before: str, after: str) -> None:
    master = "MESOS_MASTER='zk://h:2181/mesos'\n"
    out = envfile.disable(master + before)
    assert out == f"MESOS_MASTER='{BOGUS_MASTER}'\n" + after
    assert envfile.check_disabled(out) == []
    assert envfile.disable(out) == out


@pytest.mark.parametrize(
    ("value", "style"),
    [
        ('"zk://${ZK}/mesos"', f'"{BOGUS_MASTER}"'),
        ("'zk://h/mesos'", f"'{BOGUS_MASTER}'"),
        ("zk://h/mesos", BOGUS_MASTER),
        ("$(cat /etc/mesos/zk)", BOGUS_MASTER),
        ('zk://"h"/mesos', f'"{BOGUS_MASTER}"'),
    ],
)
def test_mesos_master_keeps_its_quote_style(value: str, style: str) -> None:
    text = f'# c\nMESOS_MASTER={value}  # the masters\nEXTRA_SCHEDULER_ARGS="-max_registration_delay=360mins -reconciliation_initial_delay=365days"\n'
    assert envfile.disable(text) == text.replace(f"MESOS_MASTER={value}", f"MESOS_MASTER={style}")


def test_a_missing_mesos_master_is_added() -> None:
    out = envfile.disable('EXTRA_SCHEDULER_ARGS=""\n')
    assert out.endswith(f'\nMESOS_MASTER="{BOGUS_MASTER}"\n')
    assert envfile.check_disabled(out) == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('"-a -http_authentication_mechanism=BASIC -b"', '"-a -b"'),
        ('"-http_authentication_mechanism=BASIC -b"', '"-b"'),
        ('"-a -http_authentication_mechanism BASIC"', '"-a"'),
        ("'-http_authentication_mechanism=NEGOTIATE'", "''"),
        ('"-a\n  -http_authentication_mechanism=BASIC\n  -b"', '"-a\n  -b"'),
        ('"-a \\\n  -http_authentication_mechanism BASIC \\\n  -b"', '"-a \\\n  -b"'),
        (
            '"-http_authentication_mechanism=A -x -http_authentication_mechanism=B"',
            '"-x"',
        ),
    ],
)
def test_drop_auth_removes_the_flag_and_its_separating_whitespace(before: str, after: str) -> None:
    text = f"MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS={before}\n# tail\n"
    out = envfile.drop_auth(text)
    assert out == f"MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS={after}\n# tail\n"
    assert not envfile.has_auth_flag(out)


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        (
            'MESOS_MASTER=x\n\nEXTRA_SCHEDULER_ARGS="-max_registration_delay=$DELAY"\n',
            3,
            "-max_registration_delay=$DELAY holds an expansion",
        ),
        (
            'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a \\\n $OTHER_ARGS"\n',
            3,
            "$OTHER_ARGS could expand to a flag",
        ),
        ('MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-${NAME}=1mins"\n', 2, "could expand to a flag"),
        (
            'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a $(cat /etc/flags)"\n',
            2,
            "could expand to a flag",
        ),
        (
            'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-max_registration_delay `cat d`"\n',
            2,
            "holds an expansion",
        ),
        ("MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS=-a=$X\n", 2, "the value is not quoted"),
        ('MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a "$X\n', 2, "$X could expand to a flag"),
        ("MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS=\"-a\"'-b'-c\n", 2, "the value is not quoted"),
        (
            'MESOS_MASTER=x\nif [ -f /x ]; then\n  EXTRA_SCHEDULER_ARGS="-a"\nfi\n',
            3,
            "inside an if",
        ),
        (
            'MESOS_MASTER=x\nf() {\n  EXTRA_SCHEDULER_ARGS="-a"\n}\n',
            3,
            "inside a { } block or function",
        ),
        ('MESOS_MASTER=x\nexport EXTRA_SCHEDULER_ARGS="-a"\n', 2, "inside export"),
        ('MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a"\nEXTRA_SCHEDULER_ARGS+=" -b"\n', 3, "with +="),
        (
            'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a"\nEXTRA_SCHEDULER_ARGS="-b"\n',
            3,
            "assigned twice (lines 2 and 3)",
        ),
        (
            'MESOS_MASTER=x\n[ -n "$Y" ] && EXTRA_SCHEDULER_ARGS="-a"\n',
            2,
            "in a list, pipeline or background job (next to '&&')",
        ),
        ('MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a" exec true\n', 2, "as a prefix to a command"),
        (
            'MESOS_MASTER=x\ntrue |\n  EXTRA_SCHEDULER_ARGS="-a"\n',
            3,
            "in a list, pipeline or background job (next to '|')",
        ),
        ('MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a=${X)}"\n', 2, "bad substitution"),
        (
            'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-w=$(echo a -max_registration_delay=1mins)"\n',
            2,
            "holds -max_registration_delay inside an expansion",
        ),
        (
            'MESOS_MASTER=x\nS="a -http_authentication_mechanism=B"\nEXTRA_SCHEDULER_ARGS="-w=$S"\n',
            3,
            "holds -http_authentication_mechanism inside an expansion",
        ),
        (
            'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a"\nunset EXTRA_SCHEDULER_ARGS\n',
            3,
            "named by a command (unset)",
        ),
        (
            'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a"\nJAVA_OPTS="$EXTRA_SCHEDULER_ARGS"\n',
            3,
            "referenced",
        ),
        ('MESOS_MASTER=x\nIFS=,\nEXTRA_SCHEDULER_ARGS="-a,-b"\n', 2, "IFS is assigned"),
        (
            'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-max_registration_delay=1mins -max_registration_delay=2mins"\n',
            2,
            "given 2 times",
        ),
        (
            'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-mesos_master_address=zk://a/b"\n',
            2,
            "repeats -mesos_master_address",
        ),
        ('EXTRA_SCHEDULER_ARGS=""\nMESOS_MASTER="x\n', 2, "unterminated double quote"),
        (
            'MESOS_MASTER=x\nMESOS_MASTER=y\nEXTRA_SCHEDULER_ARGS=""\n',
            2,
            "MESOS_MASTER is assigned twice",
        ),
    ],
)
def test_disable_refuses_what_it_cannot_keep_and_names_the_line(
    text: str, line: int, why: str
) -> None:
    with pytest.raises(EnvFileError) as err:
        envfile.disable(text)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"line {line}: "), message
    assert why in message, message
    assert any(why in p and p.startswith(f"line {line}: ") for p in envfile.check_editable(text))


def test_drop_auth_refuses_an_auth_flag_holding_an_expansion() -> None:
    text = 'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-http_authentication_mechanism=$(cat m)"\n'
    with pytest.raises(EnvFileError, match=r"^line 2: .*holds an expansion"):
        envfile.drop_auth(text)


def test_what_is_fine_to_leave_alone() -> None:
    text = (
        'MESOS_MASTER=x\n. /etc/default/aurora-local\neval "$SITE_HOOK"\nexport JAVA_OPTS="-Xmx1g"\n'
        "export EXTRA_SCHEDULER_ARGS\n"
        'cat <<EOF >/dev/null\nEXTRA_SCHEDULER_ARGS="inside a here-document"\nEOF\n'
        'EXTRA_SCHEDULER_ARGS="-a"\n'
    )
    assert envfile.check_editable(text) == []
    out = envfile.disable(text)
    assert _diff(text, out) == [
        "-MESOS_MASTER=x\n",
        f"+MESOS_MASTER={BOGUS_MASTER}\n",
        '-EXTRA_SCHEDULER_ARGS="-a"\n',
        '+EXTRA_SCHEDULER_ARGS="-a -max_registration_delay=360mins -reconciliation_initial_delay=365days"\n',
    ]


def test_a_line_continuation_inside_a_name_is_read_as_bash_does() -> None:
    text = 'MESOS_MASTER=x\nEXTRA_SCHEDULE\\\nR_ARGS="-a"\n'
    assert envfile.disable(text) == text.replace("x\n", f"{BOGUS_MASTER}\n", 1).replace(
        '"-a"', '"-a -max_registration_delay=360mins -reconciliation_initial_delay=365days"'
    )
    rpm = "AURORA_F\\\nLAGS=(-a)\n"
    assert envfile.flavour(rpm) == "rpm"
    assert envfile.disable(rpm).startswith("AURORA_F\\\nLAGS=(-a -mesos_master_address=")
    with pytest.raises(EnvFileError, match="line 3: EXTRA_SCHEDULER_ARGS is named by a command"):
        envfile.disable('MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS=""\nunset EXTRA_SCHED\\\nULER_ARGS\n')


def test_not_an_aurora_file() -> None:
    with pytest.raises(EnvFileError, match="not an Aurora scheduler environment file"):
        envfile.flavour("GLOG_v=0\n")
    assert envfile.check_editable("GLOG_v=0\n") != []
    assert envfile.check_disabled("GLOG_v=0\n") != []


# --------------------------------------------------------------------------- RPM


def test_rpm_one_line_array() -> None:
    text = RPM_ONE_LINE
    assert envfile.flavour(text) == "rpm"
    assert envfile.check_editable(text) == []
    out = envfile.disable(text)
    assert out == text.replace("zk://127.0.0.1:2181/mesos", BOGUS_MASTER).replace(
        "-http_authentication_mechanism=BASIC)",
        "-http_authentication_mechanism=BASIC -max_registration_delay=360mins -reconciliation_initial_delay=365days)",
    )
    assert envfile.check_disabled(out) == [] and envfile.check_disabled(text) != []
    assert envfile.disable(out) == out
    assert envfile.has_auth_flag(text)
    assert envfile.drop_auth(text) == text.replace(" -http_authentication_mechanism=BASIC", "")
    assert envfile.settings(text) == {
        "log_dir": "/var/lib/aurora/scheduler/db",
        "backup_dir": "/var/lib/aurora/scheduler/backups",
        "quorum": "1",
    }


def test_rpm_array_on_many_lines_with_comments() -> None:
    text = RPM_MULTI_LINE
    out = envfile.disable(text)
    assert out == (
        text.replace('"zk://${ZK}/mesos"', f'"{BOGUS_MASTER}"')
        .replace("-max_registration_delay 1mins", "-max_registration_delay 360mins")
        .replace("\n)\n", "\n  -reconciliation_initial_delay=365days\n)\n")
    )
    assert envfile.check_disabled(out) == []
    assert envfile.disable(out) == out
    dropped = envfile.drop_auth(text)
    assert dropped == text.replace(
        "  -http_authentication_mechanism BASIC   # behind the proxy\n", ""
    )
    assert not envfile.has_auth_flag(dropped)
    assert envfile.settings(text) == {
        "log_dir": "/var/lib/aurora/scheduler/db",
        "backup_dir": "/var/lib/aurora/scheduler/backups",
        "quorum": "2",
    }


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("AURORA_FLAGS=(-a\n  $EXTRA_FLAGS\n)\n", 2, "$EXTRA_FLAGS could expand to a flag"),
        ("AURORA_FLAGS=(-a -max_registration_delay=$D)\n", 1, "holds an expansion"),
        ("AURORA_FLAGS=(-a)\nAURORA_FLAGS+=(-b)\n", 2, "with +="),
        ("AURORA_FLAGS=(-a)\nAURORA_FLAGS=(-b)\n", 2, "assigned twice"),
        ("declare -a AURORA_FLAGS=(-a)\n", 1, "inside declare"),
        ("if true; then\nAURORA_FLAGS=(-a)\nfi\n", 2, "inside an if"),
    ],
)
def test_rpm_refusals_name_the_line(text: str, line: int, why: str) -> None:
    with pytest.raises(EnvFileError) as err:
        envfile.disable(text)
    assert str(err.value).startswith(f"line {line}: ") and why in str(err.value), str(err.value)


def test_rpm_quoted_expansions_in_an_element_can_be_replaced() -> None:
    # "..." keeps an element one word, so its value can go whole; unquoted it could split.
    text = 'AURORA_FLAGS=(-max_registration_delay="$D" -http_authentication_mechanism="$(cat m)")\n'
    assert envfile.disable(text).startswith('AURORA_FLAGS=(-max_registration_delay="360mins" ')
    assert envfile.drop_auth(text) == 'AURORA_FLAGS=(-max_registration_delay="$D")\n'


# --------------------------------------------------------------------------- argv comparison


def test_argv_changes() -> None:
    base = ["-cluster_name=x", "-mesos_master_address=zk://a/b", "-hostname=h1"]
    good = ["-cluster_name=x", f"-mesos_master_address={BOGUS_MASTER}", "-hostname=h1",
            "-max_registration_delay", "360mins", "-reconciliation_initial_delay=365days"]  # fmt: skip
    assert envfile.argv_changes(base, good, envfile.DISABLED_ARGV) == []
    changed = [*good[:2], "-hostname=h2", *good[3:]]
    assert envfile.argv_changes(base, changed, envfile.DISABLED_ARGV) == [
        "'-hostname=h1' became '-hostname=h2'"
    ]
    twice = [*good, "-max_registration_delay=360mins"]
    assert envfile.argv_changes(base, twice, envfile.DISABLED_ARGV) == [
        "-max_registration_delay is ['360mins', '360mins'], want ['360mins'] once"
    ]
    assert envfile.argv_changes(base, base[:2], envfile.NO_AUTH_ARGV) == [
        "'-hostname=h1' disappeared"
    ]
    auth = [*base, "-http_authentication_mechanism", "BASIC"]
    assert envfile.argv_changes(auth, base, envfile.NO_AUTH_ARGV) == []
    assert envfile.argv_changes(auth, auth, envfile.NO_AUTH_ARGV) == [
        "-http_authentication_mechanism is still given (['BASIC'])"
    ]
    assert envfile.argv_changes(base, [*base, "-x"], {}) == ["'-x' appeared"]


def test_parse_argv() -> None:
    assert envfile.parse_argv(b"2\0-a=1\0-b c\0") == ["-a=1", "-b c"]
    assert envfile.parse_argv(b"0\0") == []
    for bad in (b"", b"2\0-a\0", b"-a\0", b"1\0-a"):
        with pytest.raises(EnvFileError):
            envfile.parse_argv(bad)


# --------------------------------------------------------------------------- REAL BASH


@pytest.fixture
def bash_env(tmp_path: Path) -> dict[str, str]:
    """PATH with a stub `hostname` (the scheduler host's name), nothing else."""
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "hostname").write_text("#!/bin/sh\necho sched1.example.com\n")
    (stub / "hostname").chmod(0o755)
    return {"PATH": f"{stub}:/usr/bin:/bin"}


def _argv(flavour: envfile.Flavour, text: str, env: dict[str, str]) -> list[str]:
    assert BASH is not None
    r = subprocess.run(
        [BASH, "-c", envfile.argv_script(flavour), "_", "/dev/stdin"],
        input=text.encode(),
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return envfile.parse_argv(r.stdout)


@needs_bash
def test_argv_script_debian(bash_env: dict[str, str], tmp_path: Path) -> None:
    argv = _argv("debian", SITE, bash_env)
    assert argv[:5] == [
        "-cluster_name=west",
        "-http_port=8081",
        "-native_log_quorum_size=3",
        "-zk_endpoints=zk1:2181,zk2:2181,zk3:2181",
        "-mesos_master_address=zk://zk1:2181,zk2:2181,zk3:2181/mesos",
    ]
    assert argv[13:] == [
        "-hostname=sched1.example.com",
        "-serverset_endpoint_name=http",
        "-stamp=tick",
        "-max_registration_delay",
        "1mins",
        "-http_authentication_mechanism=BASIC",
        "-allow_docker_parameters",
    ]
    # a file on disk, by a relative path, and one that exits before the end
    (tmp_path / "env").write_text(SITE)
    r = subprocess.run([BASH, "-c", envfile.argv_script("debian"), "_", "env"], cwd=tmp_path,
                       capture_output=True, env=bash_env, check=True)  # fmt: skip
    assert envfile.parse_argv(r.stdout) == argv
    r = subprocess.run([BASH, "-c", envfile.argv_script("debian"), "_", "/nonexistent"],
                       capture_output=True, env=bash_env)  # fmt: skip
    assert r.returncode != 0 and r.stdout == b""
    # a file that defines printf or cd, or prints, does not change what is printed
    odd = "printf() { echo fake; }\ncd() { :; }\necho noise\n" + SITE
    assert _argv("debian", odd, bash_env) == argv
    r = subprocess.run([BASH, "-c", envfile.argv_script("debian"), "_", "/dev/stdin"],
                       input=b"echo noise\nexit 0\n", capture_output=True, env=bash_env)  # fmt: skip
    with pytest.raises(EnvFileError):
        envfile.parse_argv(r.stdout)


@needs_bash
def test_argv_script_rpm(bash_env: dict[str, str]) -> None:
    argv = _argv("rpm", RPM_MULTI_LINE, bash_env)
    assert argv[:4] == [
        "-cluster_name=example",
        "-http_port=8081",
        "-mesos_master_address=zk://zk1:2181,zk2:2181/mesos",
        "-zk_endpoints=zk1:2181,zk2:2181",
    ]
    assert argv[-1] == "-thermos_executor_flags=--announcer-ensemble 127.0.0.1:2181"


@needs_bash
def test_the_old_bugs_keep_their_meaning(bash_env: dict[str, str]) -> None:
    """`$(hostname -f)`, `${HOSTNAME}`, `-flag value`, single-quoted backticks: the argv
    bash builds after the edit is the one before, but for the edited flags."""
    text = (
        "MESOS_MASTER=zk://h:2181/mesos\n"
        'EXTRA_SCHEDULER_ARGS="-hostname=$(hostname -f) -host2=${HOSTNAME} '
        '-max_registration_delay 1mins -http_authentication_mechanism BASIC"\n'
        "JAVA_OPTS='-x=a`pwned`b'\n"
    )
    before = _argv("debian", text, bash_env)
    assert "-hostname=sched1.example.com" in before
    assert any(w.startswith("-host2=") and len(w) > len("-host2=") for w in before)
    disabled = envfile.disable(text)
    assert (
        envfile.argv_changes(before, _argv("debian", disabled, bash_env), envfile.DISABLED_ARGV)
        == []
    )
    dropped = envfile.drop_auth(text)
    assert (
        envfile.argv_changes(before, _argv("debian", dropped, bash_env), envfile.NO_AUTH_ARGV) == []
    )


@needs_bash
def test_a_single_quoted_backtick_word_stays_inert(
    bash_env: dict[str, str], tmp_path: Path
) -> None:
    mark = tmp_path / "pwned"
    word = f"-x=a`touch${{IFS}}{mark}`b"  # one word: bash splits the value where it is used
    text = f"MESOS_MASTER=zk://h/mesos\nEXTRA_SCHEDULER_ARGS='{word} -http_authentication_mechanism=BASIC'\n"
    for edited in (envfile.disable(text), envfile.drop_auth(text)):
        argv = _argv("debian", edited, bash_env)
        assert word in argv
        assert not mark.exists()
    # the same word double-quoted runs: the marker works
    _argv("debian", text.replace("'", '"'), bash_env)
    assert mark.exists()


# The generator: EXTRA_SCHEDULER_ARGS / AURORA_FLAGS values mixing literal flags, $(...),
# ${VAR}, backticks, quotes, both flag forms, and words that must be refused.
_DQ_WORDS = [
    "-a=1", "-enable_preemptor", "-hostname=$(hostname -f)", "-serverset_endpoint_name=${ENDPOINT}",
    "-stamp=`echo tick`", "-sum=$((1+2))", '-q=\\"x\\"', "-e='s'", "-path=$AURORA_HOME/x",
    "-glob=*", "-host=${HOSTNAME}", "-split=$(echo a -z=1)",
    "-max_registration_delay=1mins", "-max_registration_delay 2mins", "-max_registration_delay",
    "-reconciliation_initial_delay=3mins", "-reconciliation_initial_delay 4mins",
    "-http_authentication_mechanism=BASIC", "-http_authentication_mechanism BASIC",
    "$OTHER_ARGS", "-max_registration_delay=$DELAY", "-http_authentication_mechanism=$(echo B)",
    "-${PREFIX}=x", "`echo -y`",
]  # fmt: skip
_SQ_WORDS = [
    "-a=1", "-x=a`touch /nonexistent/x`b", "-y=$(hostname)", "-z=${HOME}", '-dq="v"',
    "-max_registration_delay=1mins", "-http_authentication_mechanism BASIC",
    "-reconciliation_initial_delay 9mins", "-reconciliation_initial_delay=1days",
]  # fmt: skip
_HEADER = (
    '# generated\nGLOG_v=0\nAURORA_HOME="/var/lib/aurora"\nENDPOINT=http\nDELAY=5mins\n'
    'OTHER_ARGS="-foo=1 -bar=2"\nPREFIX=max_registration_delay\nZK_ENDPOINTS=zk1:2181\n'
    'LOGDB_FILE_PATH="${AURORA_HOME}/scheduler/db"\n'
)


def _debian_value(rng: random.Random) -> str:
    style = rng.choice(["dq", "dq", "dq", "sq", "mixed", "unquoted", "ansi", "multi"])
    if style == "sq":
        return "'" + " ".join(rng.sample(_SQ_WORDS, rng.randint(0, 4))) + "'"
    if style == "unquoted":
        return rng.choice(
            ["", "-a=1", "-max_registration_delay=7mins", "-http_authentication_mechanism=X"]
        )
    if style == "ansi":
        return "$'" + " ".join(rng.sample(["-a=1", "-max_registration_delay=1mins", "-b"], 2)) + "'"
    words = rng.sample(_DQ_WORDS, rng.randint(0, 6))
    if style == "mixed":
        sq = rng.sample(_SQ_WORDS, rng.randint(1, 2))
        return '"' + "".join(w + " " for w in words) + "\"'" + " ".join(sq) + "'"
    if style == "multi":
        return '"' + "".join(rng.choice([" \\\n  ", "\n  ", " "]) + w for w in words) + '\n"'
    return '"' + rng.choice([" ", "  "]).join(words) + '"'


def _debian_file(rng: random.Random) -> str:
    master = rng.choice(
        ['"zk://${ZK_ENDPOINTS}/mesos"', "'zk://h:2181/mesos'", "zk://h:2181/mesos", None]
    )
    lines = [_HEADER.rstrip("\n")]
    if master is not None:
        lines.append(f"MESOS_MASTER={master}")
    if rng.random() < 0.9:
        lines.append(f"EXTRA_SCHEDULER_ARGS={_debian_value(rng)}" + rng.choice(["", "  # site"]))
    if rng.random() < 0.3:
        lines.append("BACKUP_DIR=$AURORA_HOME/backups")
    return "\n".join(lines) + rng.choice(["\n", ""])


_RPM_ELEMENTS = [
    ["-cluster_name='example'"], ["-http_port=8081"], ['-hostname="$(hostname -f)"'],
    ["-thermos_executor_flags='--announcer-ensemble 127.0.0.1:2181'"], ['"-x=a b"'],
    ["-max_registration_delay", "1mins"], ["-max_registration_delay='2mins'"],
    ["-reconciliation_initial_delay=3mins"], ["-http_authentication_mechanism=BASIC"],
    ["-http_authentication_mechanism", '"BASIC"'], ["-endpoint=${ENDPOINT}"], ["-t=`echo tick`"],
    ["$EXTRA_FLAGS"], ["-max_registration_delay=$DELAY"], ["-native_log_file_path=/var/db"],
]  # fmt: skip


def _rpm_file(rng: random.Random) -> str:
    chosen = [w for group in rng.sample(_RPM_ELEMENTS, rng.randint(0, 6)) for w in group]
    master = rng.choice(
        [
            "-mesos_master_address='zk://127.0.0.1:2181/mesos'",
            '-mesos_master_address="zk://${ZK}/mesos"',
            None,
        ]
    )
    if master:
        chosen.insert(rng.randint(0, len(chosen)), master)
    head = 'GLOG_v=0\nZK=zk1:2181\nENDPOINT=http\nDELAY=5mins\nEXTRA_FLAGS="-a -b"\n'
    if rng.random() < 0.5:
        body = "AURORA_FLAGS=(" + " ".join(chosen) + ")"
    else:
        parts = []
        for w in chosen:
            parts.append(
                rng.choice(["", "  # note\n"]) + "  " + w + rng.choice(["", "  # why"]) + "\n"
            )
        body = "AURORA_FLAGS=(\n" + "".join(parts) + ")"
    return head + body + "\n"


def _check_case(flavour: envfile.Flavour, text: str, env: dict[str, str]) -> bool:
    """Edits the text both ways and compares bash's argv; True when it was editable."""
    problems = envfile.check_editable(text)
    results = []
    for edit in (envfile.disable, envfile.drop_auth):
        try:
            results.append(edit(text))
        except EnvFileError:
            results.append(None)
    if problems:
        assert None in results, (text, problems)
        return False
    assert None not in results, text
    disabled, dropped = results
    assert disabled is not None and dropped is not None
    before = _argv(flavour, text, env)
    assert (
        envfile.argv_changes(before, _argv(flavour, disabled, env), envfile.DISABLED_ARGV) == []
    ), (text, disabled)
    assert envfile.argv_changes(before, _argv(flavour, dropped, env), envfile.NO_AUTH_ARGV) == [], (
        text,
        dropped,
    )
    assert envfile.check_disabled(disabled) == [], disabled
    assert envfile.disable(disabled) == disabled
    return True


@needs_bash
def test_real_bash_debian_generated(bash_env: dict[str, str]) -> None:
    rng = random.Random(20261201)
    edited = sum(_check_case("debian", _debian_file(rng), bash_env) for _ in range(200))
    assert 60 < edited < 190  # both sides of the generator are exercised


@needs_bash
def test_real_bash_rpm_generated(bash_env: dict[str, str]) -> None:
    rng = random.Random(7)
    edited = sum(_check_case("rpm", _rpm_file(rng), bash_env) for _ in range(100))
    assert 30 < edited < 95


@needs_bash
def test_the_host_check_sees_what_the_text_cannot(bash_env: dict[str, str], tmp_path: Path) -> None:
    """An expansion after `=` may print a flag: the static edit cannot see it, bash can."""
    flags = tmp_path / "flags"
    flags.write_text("a -max_registration_delay=1mins\n")
    text = f'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-w=$(cat {flags})"\n'
    before = _argv("debian", text, bash_env)
    after = _argv("debian", envfile.disable(text), bash_env)
    assert envfile.argv_changes(before, after, envfile.DISABLED_ARGV) == [
        "-max_registration_delay is ['1mins', '360mins'], want ['360mins'] once"
    ]


@needs_bash
def test_the_caller_environment_does_not_reach_the_argv(bash_env: dict[str, str]) -> None:
    env = {**bash_env, "EXTRA_SCHEDULER_ARGS": "-from_the_caller", "CLUSTER_NAME": "caller"}
    argv = _argv("debian", "MESOS_MASTER=zk://h/mesos\n", env)
    assert "-from_the_caller" not in argv and "-cluster_name=" in argv


def test_has_auth_flag_sees_every_assignment() -> None:
    twice = 'MESOS_MASTER=x\nEXTRA_SCHEDULER_ARGS="-a"\nEXTRA_SCHEDULER_ARGS="-http_authentication_mechanism=BASIC"\n'
    assert envfile.has_auth_flag(twice)
    with pytest.raises(EnvFileError, match="assigned twice"):
        envfile.drop_auth(twice)
    assert envfile.has_auth_flag("AURORA_FLAGS=(\n  -http_authentication_mechanism NEGOTIATE\n)\n")
    assert not envfile.has_auth_flag('EXTRA_SCHEDULER_ARGS="-x=-http_authentication_mechanism"\n')


_PRINT_VARS = 'source "$1" >/dev/null 2>&1; shift; for v; do printf "%s\\0%s\\0" "$v" "${!v}"; done'


@needs_bash
def test_parse_agrees_with_bash(bash_env: dict[str, str], tmp_path: Path) -> None:
    """Every value parse() gives is the one bash assigns when it sources the file."""
    rng = random.Random(99)
    texts = [SITE, DEBIAN_DEFAULT, *(_debian_file(rng) for _ in range(60))]
    texts.append(
        "A=1\nB=\"${A}2\"'$A'\"\\$A\\\\\"\nC=$'x\\ty'\nD=a\\\nb\nexport E=$B\nF=\nG=${A}${B}\n"
    )
    seen = 0
    for text in texts:
        values = envfile.parse(text)
        path = tmp_path / "env"
        path.write_text(text)
        assert BASH is not None
        r = subprocess.run([BASH, "-c", _PRINT_VARS, "_", str(path), *values],
                           capture_output=True, env=bash_env, check=True)  # fmt: skip
        records = r.stdout.decode().split("\0")[:-1]
        assert dict(zip(records[::2], records[1::2], strict=True)) == values, text
        seen += len(values)
    assert seen > 500
