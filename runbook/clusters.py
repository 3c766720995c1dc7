"""The cluster file: the operators' description of their Aurora clusters (TOML).

The field names are fixed (see the README, "The cluster file"). Every value that may
end up in a remote command is validated here, on load, so that a typo fails before
anything runs; errors name the file, the cluster and the field:

    clusters.toml: cluster 'west': schedulers[1].host: not a valid host name: 'sched 2'

A path field of a scheduler entry wins over the cluster's (`Scheduler.path`).

Types are strict: TOML has booleans and integers of its own, so a quoted value is a
mistake, not a spelling (`two_person_rule = "off"` must not turn the two-person rule
off, `http_port = "8081"` is refused): the error names the field and says what was
expected.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
HOST_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]+$")
PATH_RE = re.compile(r"^/[A-Za-z0-9_./@+-]*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
SLACK_CHANNEL_RE = re.compile(r"^[CG][A-Z0-9]{2,}$")
DURATION_RE = re.compile(r"^(\d+)(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

DEFAULT_ENV_FILE = "/etc/default/aurora-scheduler"
RPM_ENV_FILE = "/etc/sysconfig/aurora-scheduler"
# Where preflight looks for the environment file when the cluster file names none.
ENV_FILE_CANDIDATES = (DEFAULT_ENV_FILE, RPM_ENV_FILE)
DEFAULT_LOG_PATH = "/var/lib/aurora/scheduler/db"
# Where the packages install Aurora's `recovery-tool` (the offline procedure's, 0.20+):
# Debian's `specs/debian/aurora-scheduler.install` puts `dist/install/aurora-scheduler/bin`
# under /usr/share/aurora, the RPM's `specs/rpm/aurora.spec` copies it to /usr/lib/aurora
# (apache/aurora-packaging). Preflight looks for it there when the cluster file names none.
DEBIAN_RECOVERY_TOOL = "/usr/share/aurora/bin/recovery-tool"
RPM_RECOVERY_TOOL = "/usr/lib/aurora/bin/recovery-tool"
RECOVERY_TOOL_CANDIDATES = (DEBIAN_RECOVERY_TOOL, RPM_RECOVERY_TOOL)
# The restore procedures (runbook.choice): "auto" picks one by the Aurora version.
PROCEDURES = ("online", "offline", "auto")
DEFAULT_BACKUP_DIR = "/var/lib/aurora/scheduler/backups"


class ClusterFileError(ValueError):
    """The cluster file cannot be used; the message names file, cluster and field."""


def parse_duration(text: str) -> timedelta:
    """`10s`, `5m`, `4h`, `2d` → timedelta."""
    m = DURATION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"not a duration like 10s, 5m, 4h or 2d: {text!r}")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"letters, digits, '.', '_' and '-' only (at most 63): {value!r}")
    return value


def _host(value: str) -> str:
    if not (HOST_RE.fullmatch(value) or (":" in value and IPV6_RE.fullmatch(value))):
        raise ValueError(f"not a valid host name: {value!r}")
    return value


def _abs_path(value: str) -> str:
    if not PATH_RE.fullmatch(value) or "/../" in value + "/" or value.endswith("/.."):
        raise ValueError(
            f"an absolute path of letters, digits and _ . / @ + - (no '..'): {value!r}"
        )
    return value


def _local_path(value: str) -> str:
    """A path on the bot's own machine (ssh key, known_hosts): `~` allowed."""
    if not value or "\x00" in value:
        raise ValueError("a file path")
    return value


def _user(value: str) -> str:
    if not USER_RE.fullmatch(value):
        raise ValueError(f"not a valid user name: {value!r}")
    return value


def _command(value: str) -> str:
    if not value.strip() or "\n" in value or "\x00" in value:
        raise ValueError("a one-line command")
    return value


def _procedure(value: str) -> str:
    if value not in PROCEDURES:
        raise ValueError(f"one of {', '.join(PROCEDURES)}, not {value!r}")
    return value


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _http_url(value: str) -> str:
    """An http(s) URL of a host (and port): the Mesos master the bot asks for tasks."""
    m = re.fullmatch(r"https?://([^/:\s]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?", value)
    if m is None:
        raise ValueError(f"not an http(s) URL like http://master:5050: {value!r}")
    host = m.group(1).strip("[]")
    _host(host)
    if m.group(2) and not 1 <= int(m.group(2)[1:]) <= 65535:
        raise ValueError(f"port out of range: {value!r}")
    return value.rstrip("/")


def _slack_channel(value: str) -> str:
    if not SLACK_CHANNEL_RE.fullmatch(value):
        raise ValueError(f"not a Slack channel id (C… or G…): {value!r}")
    return value


Name = Annotated[str, AfterValidator(_name)]
Host = Annotated[str, AfterValidator(_host)]
RemotePath = Annotated[str, AfterValidator(_abs_path)]
LocalPath = Annotated[str, AfterValidator(_local_path)]
User = Annotated[str, AfterValidator(_user)]
Command = Annotated[str, AfterValidator(_command)]
Duration = Annotated[str, AfterValidator(_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
ProcedureName = Annotated[str, AfterValidator(_procedure)]


class _Strict(BaseModel):
    # strict: no coercion ("off" is not false, "8081" is not a port, 1 is not true).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Service(_Strict):
    stop: Command = "sudo systemctl stop aurora-scheduler"
    start: Command = "sudo systemctl start aurora-scheduler"
    is_active: Command = "systemctl is-active aurora-scheduler"


class Ssh(_Strict):
    user: User = "aurora-ops"
    key: LocalPath = "~/.ssh/aurora_restore"
    known_hosts: LocalPath = "~/.ssh/known_hosts"
    connect_timeout: Duration = "10s"
    command_timeout: Duration = "5m"

    @property
    def key_path(self) -> Path:
        return Path(self.key).expanduser()

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts).expanduser()


class Approvers(_Strict):
    users: list[Annotated[str, AfterValidator(_name)]] = []
    groups: list[Annotated[str, AfterValidator(_name)]] = []
    console: list[Annotated[str, AfterValidator(_name)]] = []


class Approvals(_Strict):
    """How long a step waits for approval before the approvers are reminded in the
    restore's thread (again every `remind_after`), and after how long an approval is
    refused: the step's checks run again and it asks again (`runbook.approvals`)."""

    remind_after: Duration = "10m"
    expire_after: Duration = "1h"

    @property
    def remind_after_ms(self) -> int:
        return int(parse_duration(self.remind_after).total_seconds() * 1000)

    @property
    def expire_after_ms(self) -> int:
        return int(parse_duration(self.expire_after).total_seconds() * 1000)


class Readiness(_Strict):
    """The scheduled readiness check (bot.readiness_schedule): run `aurora-restore check`
    every `every` and post the table into `channel` when something fails or changed."""

    channel: Annotated[str, AfterValidator(_slack_channel)]
    every: Duration = "7d"

    @model_validator(mode="after")
    def _positive(self) -> Readiness:
        if self.every_ms <= 0:
            raise ValueError(f"every: must be longer than 0s: {self.every!r}")
        return self

    @property
    def every_ms(self) -> int:
        return int(parse_duration(self.every).total_seconds() * 1000)


class Scheduler(_Strict):
    host: Host
    # Added: where to connect when it differs from `host` (the sandbox's hosts all
    # live on 127.0.0.1); `host` stays the name the scheduler advertises.
    address: Host | None = None
    ssh_port: Port = 22
    http_port: Port | None = None
    env_file: RemotePath | None = None
    native_log_file_path: RemotePath | None = None
    backup_dir: RemotePath | None = None
    admin_clusters_json: RemotePath | None = None
    scheduler_log: RemotePath | None = None
    recovery_tool: RemotePath | None = None

    @property
    def connect_address(self) -> str:
        return self.address or self.host


class Cluster(_Strict):
    name: Name
    aurora_name: Name
    http_port: Port = 8081
    # Unset: /etc/default/aurora-scheduler (Debian), else /etc/sysconfig/aurora-scheduler (RPM).
    env_file: RemotePath | None = None
    native_log_file_path: RemotePath | None = None
    backup_dir: RemotePath | None = None
    admin_clusters_json: RemotePath = "/etc/aurora/clusters.json"
    # Added: the scheduler's log, one of the three sources of restore.leader. Unset (no
    # package writes a file of its own): journald, `journalctl -u <scheduler_unit>`.
    scheduler_log: RemotePath | None = None
    # Added: the systemd unit whose journal is read when no scheduler_log is set.
    scheduler_unit: Name = "aurora-scheduler"
    # The aurora client; unset: found on each host (Debian's `aurora-admin`, the RPM's
    # `aurora_admin`). A configured name wins.
    aurora_admin: Command | None = None
    scheduler_user: User = "aurora"
    mesos_log: Command = "mesos-log"
    max_backup_age: Duration = "4h"
    # Added: how long restore.failover waits for a leader after the commit.
    failover_wait: Duration = "5m"
    # Added: the Aurora version the schedulers run (e.g. "0.20.0"): a backup that version
    # cannot read (made before 0.19, for 0.20 and later) is refused at preflight.
    aurora_version: str | None = None
    # Added: how long a start waits for every scheduler to answer /vars in the state
    # the step expects (a started unit is not a scheduler that came up).
    start_wait: Duration = "3m"
    zk_endpoints: str | None = None
    # Added: which restore procedure (runbook.choice): "online" (aurora_admin's staged
    # recovery, Aurora 0.13 to 0.20), "offline" (`recovery-tool`, 0.21 and later), or
    # "auto": chosen by the version the schedulers report on /vars.
    procedure: ProcedureName = "auto"
    # Added: the offline procedure's `recovery-tool`; unset: found on each host at the
    # Debian path, else the RPM one (RECOVERY_TOOL_CANDIDATES). A configured path wins.
    recovery_tool: RemotePath | None = None
    # Added: the scheduler the offline procedure rehydrates (it must hold the backup);
    # unset: the preflight's leader when it holds the backup, else the first that does.
    rehydrate: str | None = None
    # Added: a Mesos master's HTTP address (any master: the leader is followed), to
    # list the running tasks a restore would kill. None: no forecast of kills.
    mesos_master: HttpUrl | None = None
    serverset_path: RemotePath = "/aurora/scheduler"
    two_person_rule: bool = True
    service: Service = Service()
    ssh: Ssh = Ssh()
    approvers: Approvers = Approvers()
    approvals: Approvals = Approvals()
    # Added: the Slack channels (ids) a restore of this cluster may start in; None: any.
    channels: list[Annotated[str, AfterValidator(_slack_channel)]] | None = None
    # Added: the scheduled readiness check; None: none.
    readiness: Readiness | None = None
    schedulers: list[Scheduler] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        if self.zk_endpoints is not None:
            for part in self.zk_endpoints.split(","):
                host, _, port = part.strip().rpartition(":")
                if not host or not port.isdigit():
                    raise ValueError(f"zk_endpoints: expected host:port,host:port, got {part!r}")
                _host(host)
        seen: set[str] = set()
        for s in self.schedulers:
            key = f"{s.host}"
            if key in seen:
                raise ValueError(f"schedulers: host {s.host!r} is listed twice")
            seen.add(key)
        if self.rehydrate is not None and self.rehydrate not in seen:
            raise ValueError(f"rehydrate: {self.rehydrate!r} is not one of the schedulers")
        return self

    @property
    def max_backup_age_delta(self) -> timedelta:
        return parse_duration(self.max_backup_age)

    def path(self, scheduler: Scheduler, field: str) -> str | None:
        """The value of a path field for one scheduler: its own wins over the cluster's."""
        own: str | None = getattr(scheduler, field)
        if own is not None:
            return own
        value: str | None = getattr(self, field)
        return value

    def http_port_of(self, scheduler: Scheduler) -> int:
        return scheduler.http_port or self.http_port

    def scheduler(self, host: str) -> Scheduler:
        for s in self.schedulers:
            if s.host == host:
                return s
        raise KeyError(host)


class ClusterFile(_Strict):
    clusters: dict[str, Cluster]


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


# Strict-mode type errors, said in the file's own terms.
_EXPECTED = {
    "bool_type": "true or false (unquoted)",
    "int_type": "a whole number (unquoted)",
    "string_type": "a quoted string",
    "list_type": "a list [...]",
    "model_type": "a table",
    "dict_type": "a table",
}


def _message(error: Any) -> str:
    """One error of pydantic's, as the cluster file's line says it."""
    expected = _EXPECTED.get(error["type"])
    if expected is not None:
        value = error.get("input")
        if isinstance(value, str):
            got = f"the string {value!r}"
        elif isinstance(value, dict):
            got = "a table"
        else:
            got = repr(value)
        return f"expected {expected}, not {got}"
    msg: str = error["msg"]
    return msg.removeprefix("Value error, ")


def parse_clusters(data: dict[str, Any], source: str) -> dict[str, Cluster]:
    """Validate the parsed TOML of a cluster file; errors name source, cluster and field."""
    clusters = data.get("clusters")
    if not isinstance(clusters, dict) or not clusters:
        raise ClusterFileError(f"{source}: no [clusters.<name>] table")
    unknown = set(data) - {"clusters"}
    if unknown:
        raise ClusterFileError(f"{source}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    out: dict[str, Cluster] = {}
    for key, raw in clusters.items():
        where = f"{source}: cluster {key!r}"
        if not NAME_RE.fullmatch(key):
            raise ClusterFileError(f"{where}: the cluster name must be letters, digits, . _ -")
        if not isinstance(raw, dict):
            raise ClusterFileError(f"{where}: expected a table")
        try:
            out[key] = Cluster.model_validate({"name": key, "aurora_name": key, **raw})
        except ValidationError as exc:
            first = exc.errors()[0]
            field = _location(first["loc"]) or "(cluster)"
            msg = _message(first)
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise ClusterFileError(f"{where}: {field}: {msg}{more}") from None
    return out


def load_clusters(path: str | Path) -> dict[str, Cluster]:
    """Read and validate a cluster file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ClusterFileError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ClusterFileError(f"{path}: not valid TOML: {exc}") from None
    return parse_clusters(data, str(path))
