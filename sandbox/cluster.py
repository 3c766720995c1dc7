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
from datetime import datetime
from pathlib import Path

import asyncssh

from runbook.clusters import PATH_RE
from sandbox import replog
from sandbox.backups import Task, encode_snapshot, generate_cluster_tasks, plan_backups
from sandbox.layout import (
    CLUSTER_NAME,
    INFO_FILE,
    SCHEDULER_USER,
    SERVERSET_PATH,
    HostInfo,
    SandboxInfo,
)
from sandbox.service import ControlServer, Unit
from sandbox.sshd import HostSshd, ensure_host_key

SSH_USER = "aurora-ops"
CONSOLE_APPROVERS = ("alice", "bob")


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


def _validate(opts: Options) -> None:
    if opts.schedulers < 1:
        raise SandboxError(f"--schedulers must be at least 1, not {opts.schedulers}")
    if opts.schedulers > 200:
        raise SandboxError(f"--schedulers must be at most 200, not {opts.schedulers}")
    if opts.backups < 0:
        raise SandboxError(f"--backups must be 0 or more, not {opts.backups}")
    if opts.port_base and not 1024 <= opts.port_base <= 65535 - 2 * opts.schedulers:
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


def _env_file(host: HostInfo, zk: str, cluster: str) -> str:
    p = host.paths
    aurora_home = p.root / "var/lib/aurora"
    return f"""\
# /etc/default/aurora-scheduler, as Aurora's Debian package lays it out (sandbox host {host.name}).
GLOG_v=0
LIBPROCESS_PORT=8083
#LIBPROCESS_IP=127.0.0.1
JAVA_OPTS='-Djava.library.path=/usr/local/lib'
AURORA_HOME="{aurora_home}"
CLUSTER_NAME="{cluster}"
HTTP_PORT={host.http_port}
QUORUM_SIZE=1
ZK_ENDPOINTS="{zk}"
MESOS_MASTER="zk://${{ZK_ENDPOINTS}}/mesos"
ZK_SERVERSET_PATH="{SERVERSET_PATH}"
ZK_LOGDB_PATH="/aurora/replicated-log"
LOGDB_FILE_PATH="${{AURORA_HOME}}/scheduler/db"
BACKUP_DIR="${{AURORA_HOME}}/scheduler/backups"
THERMOS_EXECUTOR_PATH="/usr/share/aurora/bin/thermos_executor.pex"
THERMOS_EXECUTOR_RESOURCES=""
THERMOS_EXECUTOR_FLAGS="--announcer-ensemble 127.0.0.1:2181"
ALLOWED_CONTAINER_TYPES="MESOS,DOCKER"
EXTRA_SCHEDULER_ARGS=""
"""


def _startup_script(host: HostInfo) -> str:
    p = host.paths
    return f"""\
#!/bin/bash
# aurora-scheduler-startup, as Aurora's Debian package installs it.
source {shlex.quote(str(p.env_file))}

export GLOG_v LIBPROCESS_PORT LIBPROCESS_IP
export JAVA_OPTS="${{JAVA_OPTS[*]}}"

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


SUDO = """\
#!/bin/bash
# sudo stand-in: runs the command as asked, recording the target user in SANDBOX_USER.
user=root
while [ $# -gt 0 ]; do
  case "$1" in
    -u) user="$2"; shift 2 ;;
    -u*) user="${1#-u}"; shift ;;
    -n|-E|-H|-S) shift ;;
    --) shift; break ;;
    -*) echo "sudo: unknown option -- ${1#-}" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then echo "usage: sudo [-u user] command" >&2; exit 1; fi
export SANDBOX_USER="$user" USER="$user" LOGNAME="$user"
exec "$@"
"""


def _python_tool(module: str) -> str:
    return f'#!/bin/bash\nexec {shlex.quote(sys.executable)} -m {module} "$@"\n'


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


def _build_host(host: HostInfo, zk: str, corrupt: bool, tasks: list[Task], seed_log: bool) -> None:
    p = host.paths
    for d in (p.home, p.tmp, p.backup_dir, p.scheduler_log.parent, p.aurora_config_root):
        d.mkdir(parents=True, exist_ok=True)
    p.env_file.parent.mkdir(parents=True, exist_ok=True)
    p.env_file.write_text(_env_file(host, zk, CLUSTER_NAME))
    p.clusters_json.write_text(_clusters_json(zk))
    _write_exec(p.startup_script, _startup_script(host))
    _write_exec(p.scheduler_binary, _python_tool("sandbox.scheduler"))
    _write_exec(p.bin_dir / "sudo", SUDO)
    _write_exec(p.bin_dir / "systemctl", _python_tool("sandbox.systemctl"))
    _write_exec(p.bin_dir / "mesos-log", _python_tool("sandbox.mesoslog"))
    _write_exec(p.bin_dir / "aurora_admin", _python_tool("sandbox.admin"))
    _write_exec(p.bin_dir / "aurora-admin", _python_tool("sandbox.admin"))
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


def cluster_toml(info: SandboxInfo) -> str:
    d = info.root
    out = [
        "# The cluster file of the sandbox, written by `aurora-restore sandbox`.",
        '# Field reference: README.md, "The cluster file".',
        f"[clusters.{CLUSTER_NAME}]",
        f"aurora_name = {_toml_str(info.cluster)}",
        f"http_port = {info.hosts[0].http_port}",
        'aurora_admin = "aurora_admin"',
        f'scheduler_user = "{SCHEDULER_USER}"',
        'mesos_log = "mesos-log"',
        'max_backup_age = "4h"',
        f"serverset_path = {_toml_str(info.serverset_path)}",
        "two_person_rule = true",
    ]
    if info.zk_endpoints:
        out.append(f"zk_endpoints = {_toml_str(info.zk_endpoints)}")
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
            f"scheduler_log = {_toml_str(str(p.scheduler_log))}",
        ]
    return "\n".join(out) + "\n"


def build(opts: Options) -> SandboxInfo:
    """Lay out DIR (or reuse the sandbox already there). Nothing runs yet."""
    _validate(opts)
    directory = _prepare_dir(opts)
    address = "127.0.0.1"
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
        for h in info.hosts:
            _check_port(h.address, h.ssh_port)
            _check_port(h.address, h.http_port)
        info.python = sys.executable
        info.restart_sec = opts.restart_sec
        return info

    n = opts.schedulers
    if opts.port_base:
        ports = [opts.port_base + i for i in range(2 * n)]
        for port in ports:
            _check_port(address, port)
    else:
        ports = []
        while len(ports) < 2 * n:
            port = _free_port(address)
            if port not in ports:
                ports.append(port)
    zk = opts.zk or "127.0.0.1:2181"
    info = SandboxInfo(
        dir=str(directory),
        mesos_master=f"zk://{zk}/mesos",
        zk_endpoints=opts.zk,
        restart_sec=opts.restart_sec,
        python=sys.executable,
        hosts=[
            HostInfo(
                name=f"scheduler-{i + 1}",
                address=address,
                ssh_port=ports[i],
                http_port=ports[n + i],
                root=str(directory / "hosts" / f"scheduler-{i + 1}"),
            )
            for i in range(n)
        ],
    )
    rng = random.Random(opts.seed)
    current = generate_cluster_tasks(rng, count=rng.randint(240, 360))
    now = datetime.now()
    for h in info.hosts:
        _build_host(h, zk, opts.corrupt_log, current, seed_log=True)
    for b in plan_backups(now, current, opts.backups, n, rng):
        data = encode_snapshot(b.tasks, b.taken_at)
        stamp = b.taken_at.timestamp()
        for i in b.hosts:
            path = info.hosts[i].paths.backup_dir / b.name
            path.write_bytes(data)
            os.utime(path, (stamp, stamp))
    info.tasks_file.parent.mkdir(parents=True, exist_ok=True)
    info.tasks_file.write_text(json.dumps([t.__dict__ for t in current], indent=1) + "\n")
    info.killed_file.touch()
    info.election_dir.mkdir(parents=True, exist_ok=True)
    info.save()
    return info


class Sandbox:
    """The running sandbox: control server, SSH servers, scheduler units."""

    def __init__(self, info: SandboxInfo) -> None:
        self.info = info
        self.units = {h.name: Unit(info, h) for h in info.hosts}
        self.control = ControlServer(self.units)
        self.sshds: list[HostSshd] = []

    async def start(self) -> None:
        info = self.info
        info.control = await self.control.start()
        info.save()
        _write_client_files(info)
        (info.root / "clusters.toml").write_text(cluster_toml(info))
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
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    sandbox = Sandbox(info)
    await sandbox.start()
    try:
        print(f"cluster file: {info.root / 'clusters.toml'}", flush=True)
        print(f"ssh config:   {info.root / 'ssh_config'}", flush=True)
        print(
            f"{len(info.hosts)} schedulers: "
            + ", ".join(f"{h.name} (ssh {h.ssh_port}, http {h.http_port})" for h in info.hosts)
            + (f"; ZooKeeper {info.zk_endpoints}" if info.zk_endpoints else "; local election"),
            flush=True,
        )
        print("ready; Ctrl-C stops the sandbox", flush=True)
        await done.wait()
    finally:
        with contextlib.suppress(Exception):
            await sandbox.stop()
    return 0
