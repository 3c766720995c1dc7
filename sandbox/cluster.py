"""`aurora-restore sandbox`: lay out a simulated Aurora cluster in DIR and run it.

`build()` writes every file (hosts, keys, backups, the cluster file, ssh_config);
`Sandbox` runs it: the control server, one SSH server and one scheduler unit per host.
A DIR that already holds a sandbox is reused as it is (its state survives, like
machines that reboot); `reset=True` starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import random
import shlex
import shutil
import signal
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncssh

from runbook.clusters import PATH_RE
from sandbox import replog
from sandbox.backups import (
    Task,
    encode_snapshot,
    framework_id,
    generate_cluster_tasks,
    generate_history,
    plan_backups,
)
from sandbox.layout import (
    ADVERTISE,
    AURORA_VERSIONS,
    CLUSTER_NAME,
    FLAVOURS,
    INFO_FILE,
    SCHEDULER_USER,
    SERVERSET_PATH,
    SSH_USER,
    HostInfo,
    SandboxInfo,
    host_address,
)
from sandbox.mesos_master import MesosMaster, masters_file, source_for
from sandbox.service import ControlServer, Unit
from sandbox.sshd import HostSshd, ensure_host_key

CONSOLE_APPROVERS = ("alice", "bob")
# Where `localhost` leads on every simulated host (the scheduler listens there too).
LOOPBACK = "127.0.0.1"


class SandboxError(Exception):
    """Bad input or an unusable environment: one line for the user."""


@dataclass(frozen=True)
class Options:
    dir: Path
    schedulers: int = 3
    backups: int = 5
    zk: str = ""
    corrupt_log: bool = False
    port_base: int = 0
    reset: bool = False
    restart_sec: float = 2.0
    seed: int | None = None
    # The packaging the hosts mirror: "debian" (/etc/default, EXTRA_SCHEDULER_ARGS,
    # aurora-admin) or "rpm" (/etc/sysconfig, AURORA_FLAGS=(...), aurora_admin).
    flavour: str = "debian"
    # What the schedulers advertise in the election: "ip" (the packages' default: no
    # -hostname, so the host's address) or "hostname" (-hostname=$(uname -n)).
    advertise: str = "ip"
    # An IANA zone for every process of the hosts ("": the machine's own).
    tz: str = ""
    # True: the unit logs to var/log/aurora/aurora-scheduler.log (and the cluster file
    # names it as scheduler_log) instead of the journald stand-in.
    log_file: bool = False
    # For drills and tests (--break): what to break, each on the host BREAK_HOSTS names.
    breaks: tuple[str, ...] = ()
    # The Aurora release the hosts behave as (AURORA_VERSIONS): "0.17" (no recovery-tool)
    # or "0.22" (recovery-tool, libprocess /metrics/snapshot, the quorum's catch-up).
    aurora_version: str = "0.17"


def zone(name: str) -> tzinfo | None:
    """The zone `--tz` names (None for ""); SandboxError when it is not an IANA zone."""
    if not name:
        return None
    if name.startswith("/") or ".." in name or not all(c.isalnum() or c in "/_+-" for c in name):
        raise SandboxError(f"--tz {name!r} is not an IANA time zone name (e.g. Europe/Paris)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise SandboxError(
            f"--tz {name!r} is not a known IANA time zone (e.g. Europe/Paris)"
        ) from None


def _validate(opts: Options) -> None:
    unknown = [b for b in opts.breaks if b not in BREAKS]
    if unknown:
        raise SandboxError(
            f"--break {','.join(unknown)}: not a kind to break (known: {', '.join(BREAKS)})"
        )
    if opts.schedulers < 1:
        raise SandboxError(f"--schedulers must be at least 1, not {opts.schedulers}")
    if opts.schedulers > 200:
        raise SandboxError(f"--schedulers must be at most 200, not {opts.schedulers}")
    if opts.backups < 0:
        raise SandboxError(f"--backups must be 0 or more, not {opts.backups}")
    if opts.flavour not in FLAVOURS:
        raise SandboxError(f"--flavour must be one of {', '.join(FLAVOURS)}, not {opts.flavour!r}")
    if opts.advertise not in ADVERTISE:
        raise SandboxError(
            f"--advertise must be one of {', '.join(ADVERTISE)}, not {opts.advertise!r}"
        )
    if opts.aurora_version not in AURORA_VERSIONS:
        raise SandboxError(
            f"--aurora-version must be one of {', '.join(AURORA_VERSIONS)}, "
            f"not {opts.aurora_version!r}"
        )
    zone(opts.tz)
    per_host = 3 if opts.aurora_version == "0.22" else 2  # ssh, http (, libprocess)
    if opts.port_base and not 1024 <= opts.port_base <= 65535 - per_host * opts.schedulers:
        raise SandboxError(f"--port-base {opts.port_base} is out of range")
    if opts.zk:
        for part in opts.zk.split(","):
            host, _, port = part.rpartition(":")
            if not host or not port.isdigit():
                raise SandboxError(f"--zk wants HOST:PORT[,HOST:PORT], not {opts.zk!r}")
    path = str(opts.dir.resolve())
    if not PATH_RE.fullmatch(path):
        raise SandboxError(
            f"--dir {path!r}: use a path of letters, digits and _ . / @ + - only "
            "(it goes into the commands the bot runs)"
        )


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def _check_port(address: str, port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SandboxError(f"port {port} on {address} is in use") from None
            raise SandboxError(f"cannot use port {port} on {address}: {exc.strerror}") from None


def _prepare_dir(opts: Options) -> Path:
    directory = opts.dir.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SandboxError(f"cannot write to {directory}: {exc.strerror or exc}") from None
    if opts.reset:
        for child in (
            "hosts",
            "mesos",
            "election",
            INFO_FILE,
            "clusters.toml",
            "ssh_config",
            "known_hosts",
            "id_ed25519",
            "id_ed25519.pub",
        ):
            target = directory / child
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return directory


LICENSE_HEADER = """\
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
#
"""


def extra_scheduler_args(advertise: str) -> str:
    """The value of Debian's EXTRA_SCHEDULER_ARGS on a sandbox host, as written in the file
    (bash expands it when the startup script sources the file, then splits it into words).

    It holds what operators put there: a tier config found with a command substitution,
    a `${VAR:-default}`, a two-word `-flag value` pair and plain `-flag=value`s; every
    flag is one the scheduler knows and none is one the startup script already passes.
    No `-ip` or `-hostname` (the packages set neither: the scheduler advertises its IP);
    with advertise="hostname", `-hostname=$(uname -n)`."""
    words = [
        '-tier_config=$(dirname "${BACKUP_DIR}")/tiers.json',
        "-serverset_endpoint_name=${SERVERSET_ENDPOINT:-http}",
        "-backup_interval 1hrs",
        "-max_saved_backups=48",
        "-history_prune_threshold=2days",
        "-history_max_per_job_threshold=100",
    ]
    if advertise == "hostname":
        words.append("-hostname=$(uname -n)")
    return " ".join(words)


def quorum_size(schedulers: int) -> int:
    """The replicated log's quorum for a cluster of `schedulers`: a majority, as the
    packaging's comment asks ("floor(number_of_schedulers / 2) + 1") and Aurora's docs
    (docs/operations/configuration.md, "Replicated Log Configuration")."""
    return schedulers // 2 + 1


def _debian_env_file(host: HostInfo, zk: str, cluster: str, advertise: str, quorum: int = 1) -> str:
    """`/etc/default/aurora-scheduler` in the shape of aurora-packaging's
    specs/debian/aurora-scheduler.default: its license header, `###` blocks and a comment
    above each variable, `${VAR}` references, with this host's values and an
    EXTRA_SCHEDULER_ARGS that already holds flags (extra_scheduler_args)."""
    p = host.paths
    aurora_home = p.root / "var/lib/aurora"
    first_zk = zk.split(",")[0]
    return (
        LICENSE_HEADER
        + f"""
# Defaults for Aurora startup (sandbox host {host.name})

###
# Environment variables control the behavior of the Mesos scheduler driver (libmesos).
GLOG_v=0
LIBPROCESS_PORT={host.libprocess_port or 8083}
#LIBPROCESS_IP=127.0.0.1
###

###
# Flags that control the behavior of the JVM.
#JAVA_OPTS='-Djava.library.path=/usr/local/lib -Dlog4j.configuration="file:///etc/zookeeper/conf/log4j.properties"'
JAVA_OPTS='-Djava.library.path=/usr/local/lib'
###

AURORA_HOME="{aurora_home}"

# Name of the cluster. Please change this.
CLUSTER_NAME="{cluster}"

# Listening port for the scheduler
HTTP_PORT={host.http_port}

# Replicated log quorum size. Set to (floor(number_of_schedulers / 2) + 1)
QUORUM_SIZE={quorum}

# List of zookeeper endpoints
ZK_ENDPOINTS="{zk}"

# Zookeeper path or URL to mesos master
MESOS_MASTER="zk://${{ZK_ENDPOINTS}}/mesos"

# Zookeeper ServerSet path to register at
ZK_SERVERSET_PATH="{SERVERSET_PATH}"

# Log path in zookeeper
ZK_LOGDB_PATH="/aurora/replicated-log"

# Where to store the replicated log on disk
LOGDB_FILE_PATH="${{AURORA_HOME}}/scheduler/db"

# Where to store backups on disk
BACKUP_DIR="${{AURORA_HOME}}/scheduler/backups"

# Path (on the slave nodes) or URL to thermos executor or wrapper script
THERMOS_EXECUTOR_PATH="/usr/share/aurora/bin/thermos_executor.pex"

# A comma seperated list of additional resources to copy into the sandbox.
# Note: if thermos_executor_path is not the thermos_executor.pex file itself,
# this must include it.
THERMOS_EXECUTOR_RESOURCES=""

# Extra arguments to be passed to the thermos executor
THERMOS_EXECUTOR_FLAGS="--announcer-ensemble {first_zk}"

# Container types that are allowed to be used by jobs.
ALLOWED_CONTAINER_TYPES="MESOS,DOCKER"

# Any args you want to add to the aurora-scheduler invocation:
EXTRA_SCHEDULER_ARGS="{extra_scheduler_args(advertise)}"
"""
    )


def _rpm_env_file(host: HostInfo, zk: str, cluster: str, advertise: str, quorum: int = 1) -> str:
    """`/etc/sysconfig/aurora-scheduler` in the shape of aurora-packaging's
    specs/rpm/SOURCES/aurora-scheduler.sysconfig: bash arrays JAVA_OPTS=(...) and a
    multi-line AURORA_FLAGS=(...) with comments inside, no MESOS_MASTER, no
    EXTRA_SCHEDULER_ARGS. With advertise="hostname", AURORA_FLAGS also holds
    `-hostname="$(uname -n)"`."""
    p = host.paths
    first_zk = zk.split(",")[0]
    hostname = (
        "\n  # Advertise this host's name in ZooKeeper instead of its address.\n"
        '  -hostname="$(uname -n)"\n'
        if advertise == "hostname"
        else ""
    )
    return (
        LICENSE_HEADER
        + f"""
# sandbox host {host.name}

GLOG_v=0
LIBPROCESS_PORT={host.libprocess_port or 8083}
#LIBPROCESS_IP=127.0.0.1

# Flags that control the behavior of the JVM.
JAVA_OPTS=(
  # Uses server-level GC optimizations, as this is a server.
  -server

  # Location of libmesos-XXXX.so / libmesos-XXXX.dylib
  -Djava.library.path='/usr/lib;/usr/lib64'
)

# Flags control the behavior of the Aurora scheduler.
# For a full list of available flags, run /usr/lib/aurora/bin/aurora-scheduler -help
AURORA_FLAGS=(
  # The name of this cluster.
  -cluster_name='{cluster}'

  # The HTTP port upon which Aurora will listen.
  -http_port={host.http_port}

  # The ZooKeeper URL of the ZNode where the Mesos master has registered.
  -mesos_master_address='zk://{zk}/mesos'

  # The ZooKeeper quorum to which Aurora will register itself.
  -zk_endpoints='{zk}'

  # The ZooKeeper ZNode within the specified quorum to which Aurora will register its
  # ServerSet, which keeps track of all live Aurora schedulers.
  -serverset_path='{SERVERSET_PATH}'

  # Allows the scheduling of containers of the provided type.
  -allowed_container_types='DOCKER,MESOS'

  ### Native Log Settings ###

  # The native log serves as a replicated database which stores the state of the
  # scheduler, allowing for multi-master operation.

  # Size of the quorum of Aurora schedulers which possess a native log.  If running in
  # multi-master mode, consult the following document to determine appropriate values:
  #
  # https://aurora.apache.org/documentation/latest/deploying-aurora-scheduler/#replicated-log-configuration
  -native_log_quorum_size='{quorum}'
  # The ZooKeeper ZNode to which Aurora will register the locations of its replicated log.
  -native_log_zk_group_path='/aurora/replicated-log'
  # The local directory in which an Aurora scheduler can find Aurora's replicated log.
  -native_log_file_path='{p.log_dir}'
  # The local directory in which Aurora schedulers will place state backups.
  -backup_dir='{p.backup_dir}'

  ### Thermos Settings ###

  # The local path of the Thermos executor binary.
  -thermos_executor_path='/usr/bin/thermos_executor'
  # Flags to pass to the Thermos executor.
  -thermos_executor_flags='--announcer-ensemble {first_zk}'
{hostname})
"""
    )


def env_file_text(host: HostInfo, zk: str, cluster: str, advertise: str, quorum: int = 1) -> str:
    """The host's env file in its flavour's shape."""
    if host.flavour == "rpm":
        return _rpm_env_file(host, zk, cluster, advertise, quorum)
    return _debian_env_file(host, zk, cluster, advertise, quorum)


def _startup_script(host: HostInfo) -> str:
    """`/usr/bin/aurora-scheduler-startup` as the package installs it: Debian's
    (specs/debian/aurora-scheduler.startup.sh) passes the fixed flags from the variables
    and `$EXTRA_SCHEDULER_ARGS` unquoted; the RPM's (specs/rpm/SOURCES/aurora-scheduler.startup.sh)
    passes `"${AURORA_FLAGS[@]}"`. Both source the env file with bash."""
    p = host.paths
    if host.flavour == "rpm":
        return f"""\
#!/bin/bash
# aurora-scheduler-startup, as Aurora's RPM installs it.
source {shlex.quote(str(p.env_file))}

# Environment variables control the behavior of the Mesos scheduler driver (libmesos).
export GLOG_v LIBPROCESS_PORT LIBPROCESS_IP
export JAVA_OPTS="${{JAVA_OPTS[*]}}"

# Preferences Java 1.8 over any other Java version.
export PATH=/usr/lib/jvm/java-1.8.0/bin:${{PATH}}

exec {shlex.quote(str(p.scheduler_binary))} "${{AURORA_FLAGS[@]}}"
"""
    return f"""\
#!/bin/bash
# aurora-scheduler-startup, as Aurora's Debian package installs it.
source {shlex.quote(str(p.env_file))}

# Environment variables control the behavior of the Mesos scheduler driver (libmesos).
export GLOG_v LIBPROCESS_PORT LIBPROCESS_IP
export JAVA_OPTS="${{JAVA_OPTS[*]}}"

# Preferences Java 1.8 over any other Java version.
export PATH=/usr/lib/jvm/java-1.8.0/bin:${{PATH}}

exec {shlex.quote(str(p.scheduler_binary))} \\
  -cluster_name="$CLUSTER_NAME" \\
  -http_port="$HTTP_PORT" \\
  -native_log_quorum_size="$QUORUM_SIZE" \\
  -zk_endpoints="$ZK_ENDPOINTS" \\
  -mesos_master_address="$MESOS_MASTER" \\
  -serverset_path="$ZK_SERVERSET_PATH" \\
  -native_log_zk_group_path="$ZK_LOGDB_PATH" \\
  -native_log_file_path="$LOGDB_FILE_PATH" \\
  -backup_dir="$BACKUP_DIR" \\
  -thermos_executor_path="$THERMOS_EXECUTOR_PATH" \\
  -thermos_executor_resources="$THERMOS_EXECUTOR_RESOURCES" \\
  -thermos_executor_flags="$THERMOS_EXECUTOR_FLAGS" \\
  -allowed_container_types="$ALLOWED_CONTAINER_TYPES" \\
  $EXTRA_SCHEDULER_ARGS
"""


# Aurora's default tier config (apache/aurora src/main/resources/org/apache/aurora/scheduler/tiers.json),
# which the Debian env file's -tier_config names.
TIERS_JSON = """\
{
  "default": "preemptible",
  "tiers": {
    "preferred": {"preemptible": false, "revocable": false},
    "preemptible": {"preemptible": true, "revocable": false},
    "revocable": {"preemptible": true, "revocable": true}
  }
}
"""

DEFAULT_SUDOERS = f"""\
# /etc/sudoers.d/aurora-ops: what the sudo stand-in lets {SSH_USER} run.
# A rule: USER HOST=(RUNAS[,RUNAS]) [NOPASSWD:] COMMAND[, COMMAND]...
# COMMAND is ALL, or a full path with optional arguments (* matches anything; "" means
# no arguments). Remove or narrow the rule below to drill a host without sudo.
{SSH_USER} ALL=(ALL) NOPASSWD: ALL
"""


def _real_binary(name: str) -> str:
    """The machine's own binary (the stand-ins hand everything else to it)."""
    found = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    return found or f"/usr/bin/{name}"


def uname_stand_in(host: HostInfo) -> str:
    """`uname -n` answers the simulated host's name; anything else is the real uname."""
    return f"""\
#!/bin/bash
# uname stand-in: this simulated host's node name; everything else from the real uname.
real={shlex.quote(_real_binary("uname"))}
case "$*" in
  -n|--nodename) echo {shlex.quote(host.name)}; exit 0 ;;
  -a|--all) "$real" -a | awk -v n={shlex.quote(host.name)} '{{ $2 = n; print }}'; exit 0 ;;
esac
exec "$real" "$@"
"""


def hostname_stand_in(host: HostInfo) -> str:
    """`hostname [-f|-s]` answers the simulated host's name, `hostname -i` its address;
    anything else is the real hostname."""
    return f"""\
#!/bin/bash
# hostname stand-in: this simulated host's name and address; everything else real.
case "$*" in
  ""|-f|--fqdn|--long|-s|--short) echo {shlex.quote(host.name)}; exit 0 ;;
  -i|--ip-address) echo {shlex.quote(host.address)}; exit 0 ;;
esac
exec {shlex.quote(_real_binary("hostname"))} "$@"
"""


def _python_tool(module: str, prog: str = "") -> str:
    env = f"SANDBOX_ADMIN_PROG={shlex.quote(prog)} " if prog else ""
    return f'#!/bin/bash\n{env}exec {shlex.quote(sys.executable)} -m {module} "$@"\n'


def _write_exec(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def _clusters_json(zk: str) -> str:
    host, _, port = zk.split(",")[0].rpartition(":")
    entry = {
        "name": CLUSTER_NAME,
        "zk": host,
        "zk_port": int(port),
        "scheduler_zk_path": SERVERSET_PATH,
        "auth_mechanism": "UNAUTHENTICATED",
        "slave_run_directory": "latest",
        "slave_root": "/var/lib/mesos",
    }
    return json.dumps([entry], indent=2) + "\n"


def _build_host(
    host: HostInfo,
    zk: str,
    corrupt: bool,
    tasks: list[Task],
    seed_log: bool,
    advertise: str,
    quorum: int = 1,
    recovery_tool: bool = False,
) -> None:
    p = host.paths
    for d in (p.home, p.tmp, p.backup_dir, p.journal.parent, p.aurora_config_root):
        d.mkdir(parents=True, exist_ok=True)
    p.env_file.parent.mkdir(parents=True, exist_ok=True)
    p.env_file.write_text(env_file_text(host, zk, CLUSTER_NAME, advertise, quorum))
    p.clusters_json.write_text(_clusters_json(zk))
    (p.backup_dir.parent / "tiers.json").write_text(TIERS_JSON)
    p.sudoers.parent.mkdir(parents=True, exist_ok=True)
    p.sudoers.write_text(DEFAULT_SUDOERS)
    _write_exec(p.startup_script, _startup_script(host))
    _write_exec(p.scheduler_binary, _python_tool("sandbox.scheduler"))
    _write_exec(p.bin_dir / "sudo", _python_tool("sandbox.sudo"))
    _write_exec(p.bin_dir / "systemctl", _python_tool("sandbox.systemctl"))
    _write_exec(p.bin_dir / "journalctl", _python_tool("sandbox.journalctl"))
    _write_exec(p.bin_dir / "mesos-log", _python_tool("sandbox.mesoslog"))
    _write_exec(p.bin_dir / p.admin_name, _python_tool("sandbox.admin", p.admin_name))
    _write_exec(p.bin_dir / "uname", uname_stand_in(host))
    _write_exec(p.bin_dir / "hostname", hostname_stand_in(host))
    if recovery_tool:  # 0.22: not on PATH, where the package puts it
        _write_exec(p.recovery_tool, _python_tool("sandbox.recovery_tool"))
    if seed_log:
        if corrupt:
            replog.corrupt(p.log_dir)
        else:
            replog.create_with(p.log_dir, tasks, owner=SCHEDULER_USER)
    ensure_host_key(p.ssh_host_key)


def _write_client_files(info: SandboxInfo) -> None:
    d = info.root
    key_path = d / "id_ed25519"
    if not key_path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="aurora-restore-sandbox")
        key.write_private_key(str(key_path))
        key.write_public_key(str(key_path) + ".pub")
    key_path.chmod(0o600)
    lines = []
    for h in info.hosts:
        pub = Path(str(h.paths.ssh_host_key) + ".pub").read_text().split()
        lines.append(f"[{h.address}]:{h.ssh_port},{h.name} {pub[0]} {pub[1]}")
    (d / "known_hosts").write_text("\n".join(lines) + "\n")
    blocks = []
    for h in info.hosts:
        blocks.append(
            f"Host {h.name}\n"
            f"  HostName {h.address}\n"
            f"  Port {h.ssh_port}\n"
            f"  User {SSH_USER}\n"
            f"  IdentityFile {key_path}\n"
            f"  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {d / 'known_hosts'}\n"
            f"  GlobalKnownHostsFile /dev/null\n"
            f"  HostKeyAlias {h.name}\n"
            f"  StrictHostKeyChecking yes\n"
            f"  PasswordAuthentication no\n"
            f"  BatchMode yes\n"
        )
    (d / "ssh_config").write_text(
        "# Written by `aurora-restore sandbox`: ssh -F ssh_config scheduler-1\n\n"
        + "\n".join(blocks)
    )


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for these values


def cluster_toml(info: SandboxInfo, mesos_master: str | None = None) -> str:
    d = info.root
    out = [
        "# The cluster file of the sandbox, written by `aurora-restore sandbox`.",
        '# Field reference: README.md, "The cluster file".',
        f"[clusters.{CLUSTER_NAME}]",
        f"aurora_name = {_toml_str(info.cluster)}",
        f"http_port = {info.hosts[0].http_port}",
        f'scheduler_user = "{SCHEDULER_USER}"',
        'mesos_log = "mesos-log"',
        'max_backup_age = "4h"',
        f"serverset_path = {_toml_str(info.serverset_path)}",
        "two_person_rule = true",
    ]
    if info.zk_endpoints:
        out.append(f"zk_endpoints = {_toml_str(info.zk_endpoints)}")
    if mesos_master:
        out.append(f"mesos_master = {_toml_str(mesos_master)}")
    out += [
        "",
        f"[clusters.{CLUSTER_NAME}.service]",
        'stop = "sudo systemctl stop aurora-scheduler"',
        'start = "sudo systemctl start aurora-scheduler"',
        'is_active = "systemctl is-active aurora-scheduler"',
        "",
        f"[clusters.{CLUSTER_NAME}.ssh]",
        f'user = "{SSH_USER}"',
        f"key = {_toml_str(str(d / 'id_ed25519'))}",
        f"known_hosts = {_toml_str(str(d / 'known_hosts'))}",
        'connect_timeout = "5s"',
        'command_timeout = "2m"',
        "",
        f"[clusters.{CLUSTER_NAME}.approvers]",
        "users = []",
        "groups = []",
        "console = [" + ", ".join(_toml_str(c) for c in CONSOLE_APPROVERS) + "]",
    ]
    for h in info.hosts:
        p = h.paths
        out += [
            "",
            f"[[clusters.{CLUSTER_NAME}.schedulers]]",
            f"host = {_toml_str(h.name)}",
            f"address = {_toml_str(h.address)}",
            f"ssh_port = {h.ssh_port}",
            f"http_port = {h.http_port}",
            f"env_file = {_toml_str(str(p.env_file))}",
            f"native_log_file_path = {_toml_str(str(p.log_dir))}",
            f"backup_dir = {_toml_str(str(p.backup_dir))}",
            f"admin_clusters_json = {_toml_str(str(p.clusters_json))}",
        ]
        if info.aurora_version == "0.22":  # where this host's package put recovery-tool
            out.append(f"recovery_tool = {_toml_str(str(p.recovery_tool))}")
        if info.log_file:
            out.append(f"scheduler_log = {_toml_str(str(p.scheduler_log))}")
    return "\n".join(out) + "\n"


def _keep_settings(info: SandboxInfo, opts: Options, directory: Path) -> None:
    """A reused DIR keeps the settings its files were laid out with; asking for other
    ones (anything but the defaults) is refused rather than silently ignored."""
    defaults = Options(dir=opts.dir)
    for name in ("flavour", "advertise", "tz", "log_file", "aurora_version"):
        wanted, saved = getattr(opts, name), getattr(info, name)
        if wanted != saved and wanted != getattr(defaults, name):
            flag = "--" + name.replace("_", "-")
            raise SandboxError(
                f"{directory} holds a sandbox with {flag} {saved!r}, not {wanted!r}; "
                "start over with --reset, or use another --dir"
            )


def _ports(opts: Options, addresses: list[str]) -> tuple[list[int], list[int], list[int]]:
    """(ssh ports, http ports, libprocess ports), one of each per host, on the host's own
    address. The libprocess ports (LIBPROCESS_PORT, 0.22 hosts only; else 0) are free
    ports rather than the packaging's 8083: the hosts of parallel sandboxes share their
    addresses."""
    n = len(addresses)
    libprocess = opts.aurora_version == "0.22"
    if opts.port_base:
        base_ssh = [opts.port_base + i for i in range(n)]
        base_http = [opts.port_base + n + i for i in range(n)]
        base_lib = [opts.port_base + 2 * n + i if libprocess else 0 for i in range(n)]
        for address, a, b, c in zip(addresses, base_ssh, base_http, base_lib, strict=True):
            _check_port(address, a)
            _check_port(address, b)
            _check_port(LOOPBACK, b)
            if c:
                _check_port(address, c)
        return base_ssh, base_http, base_lib
    taken: set[int] = set()
    ssh: list[int] = []
    http: list[int] = []
    lib: list[int] = []
    for address in addresses:
        ssh.append(_new_port(address, taken))
        http.append(_new_port(address, taken, also=LOOPBACK))
        lib.append(_new_port(address, taken) if libprocess else 0)
    return ssh, http, lib


def _new_port(address: str, taken: set[int], also: str = "") -> int:
    """A port free on `address` (and on `also`), used by no other host of the sandbox."""
    while True:
        port = _free_port(address)
        if port in taken:
            continue
        if also:
            try:
                _check_port(also, port)
            except SandboxError:
                continue
        taken.add(port)
        return port


def _write_backups(
    info: SandboxInfo, current: list[Task], opts: Options, rng: random.Random
) -> None:
    """The generated backups, named in the hosts' zone (--tz) like StorageBackup names
    them, each file's mtime its true time."""
    now = datetime.now(UTC)
    host_zone = zone(info.tz) or datetime.now().astimezone().tzinfo
    for b in plan_backups(now, current, opts.backups, len(info.hosts), rng, host_zone):
        data = encode_snapshot(
            b.tasks, b.taken_at.astimezone(host_zone), framework_id(info.dir, info.cluster)
        )
        stamp = b.taken_at.timestamp()
        for i in b.hosts:
            path = info.hosts[i].paths.backup_dir / b.name
            path.write_bytes(data)
            os.utime(path, (stamp, stamp))


# --break KIND: what a restore needs, broken on purpose (issue 14: `aurora-restore check`
# must find each). KIND -> index of the host it breaks (clamped to the last host); None:
# every host. Chosen apart, so that several breaks at once each show on their own host
# (hostkey last: a host SSH cannot reach shows nothing else).
BREAKS: dict[str, int | None] = {
    "envfile": 0,  # EXTRA_SCHEDULER_ARGS / AURORA_FLAGS gets a bare `$MORE_ARGS` word
    "client": 1,  # the aurora client removed from PATH
    "sudo": 1,  # the sudoers rule no longer allows `tee`
    "quorum": 2,  # QUORUM_SIZE / -native_log_quorum_size one more than elsewhere
    "hostkey": 3,  # the SSH host key regenerated: known_hosts no longer matches
    "backups": None,  # no backups: each renamed to temp_<name>, as StorageBackup's partials
}
# The sudoers rule of --break sudo: every command in the usual directories and the host's
# stand-ins except `tee` (the stand-in's `*` matches anything but `/`; [!e] excludes).
NO_TEE = ("[!t]*", "t[!e]*", "te[!e]*", "tee?*", "t", "te")


def break_host(info: SandboxInfo, kind: str) -> HostInfo | None:
    index = BREAKS[kind]
    return None if index is None else info.hosts[min(index, len(info.hosts) - 1)]


def broken(info: SandboxInfo) -> list[str]:
    """One phrase per break applied, naming its host, for the ready output."""
    out = []
    for kind in info.breaks:
        h = break_host(info, kind)
        out.append(f"{kind} on {h.name if h else 'every host'}")
    return out


def _apply_breaks(info: SandboxInfo) -> None:
    """The file-level breaks (hostkey comes at start, after known_hosts is written)."""
    for kind in info.breaks:
        host = break_host(info, kind)
        hosts = [host] if host else info.hosts
        for h in hosts:
            p = h.paths
            if kind == "client":
                (p.bin_dir / p.admin_name).unlink(missing_ok=True)
            elif kind == "envfile":
                _break_env(p.env_file, h.flavour)
            elif kind == "quorum":
                _break_quorum(p.env_file, h.flavour, quorum_size(len(info.hosts)) + 1)
            elif kind == "sudo":
                dirs = ("/usr/bin", "/bin", "/usr/sbin", "/sbin", str(p.bin_dir))
                allowed = ", ".join(f"{d}/{g}" for d in dirs for g in NO_TEE)
                p.sudoers.write_text(
                    f"# --break sudo: everything but tee\n{SSH_USER} ALL=(ALL) NOPASSWD: {allowed}\n"
                )
            elif kind == "backups":
                for f in list(p.backup_dir.iterdir()):
                    if not f.name.startswith("temp_"):
                        f.rename(f.with_name("temp_" + f.name))


def _break_env(path: Path, flavour: str) -> None:
    text = path.read_text()
    if flavour == "rpm":
        text = text.replace("AURORA_FLAGS=(\n", "AURORA_FLAGS=(\n  $MORE_ARGS\n", 1)
    else:
        text = text.replace('EXTRA_SCHEDULER_ARGS="', 'EXTRA_SCHEDULER_ARGS="$MORE_ARGS ', 1)
    path.write_text(text)


def _break_quorum(path: Path, flavour: str, quorum: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if flavour != "rpm" and line.startswith("QUORUM_SIZE="):
            lines[i] = f"QUORUM_SIZE={quorum}\n"
        elif flavour == "rpm" and line.strip().startswith("-native_log_quorum_size="):
            lines[i] = f"  -native_log_quorum_size='{quorum}'\n"
    path.write_text("".join(lines))


def _break_host_key(info: SandboxInfo) -> None:
    host = break_host(info, "hostkey") if "hostkey" in info.breaks else None
    if host is None:
        return
    key = host.paths.ssh_host_key
    key.unlink(missing_ok=True)
    Path(str(key) + ".pub").unlink(missing_ok=True)
    ensure_host_key(key)


def build(opts: Options) -> SandboxInfo:
    """Lay out DIR (or reuse the sandbox already there). Nothing runs yet."""
    _validate(opts)
    directory = _prepare_dir(opts)
    existing = directory / INFO_FILE
    if existing.exists():
        try:
            info = SandboxInfo.load(directory)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise SandboxError(
                f"{existing} is unreadable ({exc}); start over with --reset"
            ) from None
        if len(info.hosts) != opts.schedulers or info.zk_endpoints != opts.zk:
            raise SandboxError(
                f"{directory} holds a sandbox of {len(info.hosts)} schedulers"
                f"{' with ZooKeeper ' + info.zk_endpoints if info.zk_endpoints else ''}; "
                "start over with --reset, or use another --dir"
            )
        _keep_settings(info, opts, directory)
        for h in info.hosts:
            _check_port(h.address, h.ssh_port)
            _check_port(h.address, h.http_port)
            if h.libprocess_port:
                _check_port(h.address, h.libprocess_port)
        info.python = sys.executable
        info.restart_sec = opts.restart_sec
        if opts.breaks:
            info.breaks = sorted(set(info.breaks) | set(opts.breaks))
            _apply_breaks(info)
            info.save()
        return info

    n = opts.schedulers
    addresses = [host_address(i) for i in range(n)]
    ssh_ports, http_ports, libprocess_ports = _ports(opts, addresses)
    zk = opts.zk or "127.0.0.1:2181"
    info = SandboxInfo(
        dir=str(directory),
        mesos_master=f"zk://{zk}/mesos",
        zk_endpoints=opts.zk,
        restart_sec=opts.restart_sec,
        python=sys.executable,
        flavour=opts.flavour,
        advertise=opts.advertise,
        tz=opts.tz,
        log_file=opts.log_file,
        aurora_version=opts.aurora_version,
        breaks=list(opts.breaks),
        hosts=[
            HostInfo(
                name=f"scheduler-{i + 1}",
                address=addresses[i],
                ssh_port=ssh_ports[i],
                http_port=http_ports[i],
                root=str(directory / "hosts" / f"scheduler-{i + 1}"),
                flavour=opts.flavour,
                libprocess_port=libprocess_ports[i],
            )
            for i in range(n)
        ],
    )
    rng = random.Random(opts.seed)
    current = generate_cluster_tasks(rng, count=rng.randint(240, 360))
    # The store (log and backups) also holds the terminal history; Mesos runs `current`.
    stored = current + generate_history(rng, current)
    for h in info.hosts:
        _build_host(
            h,
            zk,
            opts.corrupt_log,
            stored,
            seed_log=True,
            advertise=opts.advertise,
            quorum=quorum_size(n),
            recovery_tool=opts.aurora_version == "0.22",
        )
    _write_backups(info, stored, opts, rng)
    info.tasks_file.parent.mkdir(parents=True, exist_ok=True)
    info.tasks_file.write_text(json.dumps([t.__dict__ for t in current], indent=1) + "\n")
    info.killed_file.touch()
    info.election_dir.mkdir(parents=True, exist_ok=True)
    _apply_breaks(info)
    info.save()
    return info


class Sandbox:
    """The running sandbox: control server, SSH servers, scheduler units."""

    def __init__(self, info: SandboxInfo) -> None:
        self.info = info
        self.units = {h.name: Unit(info, h) for h in info.hosts}
        self.control = ControlServer(self.units)
        self.sshds: list[HostSshd] = []
        self.masters: list[MesosMaster] = []

    async def start_masters(self) -> str:
        """The Mesos masters on the loopback: the leader, and a standby that sends every
        request to it (DIR/mesos/masters.json names both). Returns the leader's URL."""
        source = source_for(self.info.dir, self.info.cluster)
        leader = MesosMaster(source)
        url = await leader.start(LOOPBACK)
        standby = MesosMaster(source, leader=url)
        self.masters = [leader, standby]
        masters_file(self.info.dir).write_text(
            json.dumps({"leader": url, "standby": await standby.start(LOOPBACK)}) + "\n"
        )
        return url

    async def start(self) -> None:
        info = self.info
        info.control = await self.control.start()
        info.save()
        _write_client_files(info)
        _break_host_key(info)
        master = await self.start_masters()
        (info.root / "clusters.toml").write_text(cluster_toml(info, master))
        pub = info.root / "id_ed25519.pub"
        for h in info.hosts:
            sshd = HostSshd(info, h, SSH_USER, pub)
            try:
                await sshd.start()
            except OSError as exc:
                await self.stop()
                raise SandboxError(
                    f"cannot listen on {h.address}:{h.ssh_port}: {exc.strerror}"
                ) from None
            self.sshds.append(sshd)
        # Like a host booting: the unit is enabled, the scheduler starts.
        await asyncio.gather(*(u.start() for u in self.units.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(u.stop() for u in self.units.values()), return_exceptions=True)
        for sshd in self.sshds:
            await sshd.close()
        await self.control.close()
        for m in self.masters:
            await m.close()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def run(opts: Options) -> int:
    """Run until SIGINT or SIGTERM. Prints the two paths operators need."""
    info = build(opts)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    received: list[str] = []

    def stop_on(sig: signal.Signals) -> None:
        received.append(sig.name)
        done.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_on, sig)
    sandbox = Sandbox(info)
    await sandbox.start()
    try:
        print(f"cluster file: {info.root / 'clusters.toml'}", flush=True)
        print(f"ssh config:   {info.root / 'ssh_config'}", flush=True)
        print(
            f"{len(info.hosts)} schedulers: "
            + ", ".join(
                f"{h.name} ({h.address}, ssh {h.ssh_port}, http {h.http_port}"
                + (f", libprocess {h.libprocess_port})" if h.libprocess_port else ")")
                for h in info.hosts
            )
            + (f"; ZooKeeper {info.zk_endpoints}" if info.zk_endpoints else "; local election")
            + f"; Aurora {info.aurora_version}",
            flush=True,
        )
        if info.breaks:
            print("broken (--break): " + "; ".join(broken(info)), flush=True)
        print("ready; Ctrl-C stops the sandbox", flush=True)
        await done.wait()
    finally:
        with contextlib.suppress(Exception):
            await sandbox.stop()
    why = f" on {received[0]}" if received else ""
    print(
        f"sandbox stopped{why}: {len(info.hosts)} schedulers, their SSH servers, the Mesos "
        f"masters and the control server; its state stays in {info.root} "
        "(start it again with the same --dir)",
        flush=True,
    )
    return 0
