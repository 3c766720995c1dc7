"""Where everything of a sandbox lives, and the `sandbox.json` that ties it together.

A sandbox is one directory, DIR. Nothing the sandbox or a command run through it
does may touch anything outside DIR. The layout:

    DIR/clusters.toml                 the cluster file (one cluster, `sandbox`)
    DIR/ssh_config                    OpenSSH client config, a Host entry per scheduler
    DIR/id_ed25519, id_ed25519.pub    the client key the SSH servers accept
    DIR/known_hosts                   every host's (stable) host key
    DIR/sandbox.json                  SandboxInfo below: read by every process of the sandbox
    DIR/mesos/tasks.json              the tasks the simulated Mesos cluster runs
    DIR/mesos/killed.jsonl            every task a scheduler killed (the damage a bad restore does)
    DIR/ssh/commands.jsonl            every command a host's SSH server was asked to run, in order
    DIR/election/                     the local leader election (when no ZooKeeper is used)
    DIR/hosts/<name>/                 one simulated scheduler host: HostPaths below

Each host has a loopback address of its own (127.0.0.11, 127.0.0.12, ...): its SSH
server and its scheduler bind there, and `hostname -i` answers it.

Environment given to every process of a host (the scheduler, stand-ins, SSH commands):

    SANDBOX_DIR      DIR
    SANDBOX_HOST     the host's name, e.g. scheduler-1
    SANDBOX_ADDRESS  the host's address, e.g. 127.0.0.11
    SANDBOX_CONTROL  127.0.0.1:PORT of the service control server (the systemd stand-in)
    SANDBOX_USER     who runs the process (the sudo stand-in changes it)
    TZ               the sandbox's zone, when it has one (`--tz`)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLUSTER_NAME = "sandbox"
INFO_FILE = "sandbox.json"
# The Mesos master the schedulers register with when MESOS_MASTER is left alone.
MESOS_MASTER = "zk://127.0.0.1:2181/mesos"
# The address the runbook points them at instead: nothing listens there.
BOGUS_MESOS_MASTER = "zk://localhost:1111/mesos/master"
SERVERSET_PATH = "/aurora/scheduler"
SCHEDULER_USER = "aurora"
SSH_USER = "aurora-ops"
FLAVOURS = ("debian", "rpm")
# The Aurora releases the sandbox behaves as (--aurora-version): 0.17 (the online
# stage/commit recovery only) and 0.22 (also the offline recovery-tool, libprocess metrics).
AURORA_VERSIONS = ("0.17", "0.22")
# What each reports as `build.version` in /vars (TimeSeriesRepositoryImpl exports the
# build.properties keys as `build.<key>`; a release tarball's build has `version`).
RELEASES = {"0.17": "0.17.0", "0.22": "0.22.0"}
ADVERTISE = ("ip", "hostname")
# The unit's journal (journald stand-in) and the syslog identifier of its lines.
UNIT = "aurora-scheduler"
FIRST_ADDRESS = 11  # scheduler-1 is 127.0.0.11


def host_address(index: int) -> str:
    """The loopback address of the index-th host (0-based): 127.0.0.11, 127.0.0.12, ..."""
    n = FIRST_ADDRESS + index
    return f"127.0.{n // 256}.{n % 256}"


@dataclass(frozen=True)
class HostPaths:
    """The files of one simulated host, mirroring a packaged scheduler host: Debian's
    (aurora-packaging specs/debian) or the RPM's (specs/rpm)."""

    root: Path
    flavour: str = "debian"

    @property
    def env_file(self) -> Path:
        """`/etc/default/aurora-scheduler` (Debian) or `/etc/sysconfig/aurora-scheduler` (RPM)."""
        if self.flavour == "rpm":
            return self.root / "etc/sysconfig/aurora-scheduler"
        return self.root / "etc/default/aurora-scheduler"

    @property
    def admin_name(self) -> str:
        """The admin client's name: `aurora-admin` from Debian's aurora-tools,
        `aurora_admin` from the RPM (docs/aurora-notes.md §F8)."""
        return "aurora_admin" if self.flavour == "rpm" else "aurora-admin"

    @property
    def sudoers(self) -> Path:
        """The rules the sudo stand-in obeys."""
        return self.root / "etc/sudoers.d/aurora-ops"

    @property
    def journal(self) -> Path:
        """The journald stand-in's store for the unit: one line per log line."""
        return self.root / f"var/log/journal/{UNIT}.journal"

    @property
    def clusters_json(self) -> Path:
        return self.root / "etc/aurora/clusters.json"

    @property
    def aurora_config_root(self) -> Path:
        return self.root / "etc/aurora"

    @property
    def log_dir(self) -> Path:
        """`LOGDB_FILE_PATH`: the replicated log replica."""
        return self.root / "var/lib/aurora/scheduler/db"

    @property
    def backup_dir(self) -> Path:
        return self.root / "var/lib/aurora/scheduler/backups"

    @property
    def scheduler_log(self) -> Path:
        """The file log of `--log-file` (no package writes one: docs/aurora-notes.md §F8)."""
        return self.root / "var/log/aurora/aurora-scheduler.log"

    @property
    def bin_dir(self) -> Path:
        """Stand-ins (sudo, systemctl, journalctl, mesos-log, the admin client, uname,
        hostname): first on PATH."""
        return self.root / "usr/local/bin"

    @property
    def startup_script(self) -> Path:
        """`aurora-scheduler-startup` as the package installs it (both put it in /usr/bin)."""
        return self.root / "usr/bin/aurora-scheduler-startup"

    @property
    def scheduler_binary(self) -> Path:
        """`/usr/sbin/aurora-scheduler` (Debian) or `/usr/lib/aurora/bin/aurora-scheduler` (RPM)."""
        if self.flavour == "rpm":
            return self.root / "usr/lib/aurora/bin/aurora-scheduler"
        return self.root / "usr/sbin/aurora-scheduler"

    @property
    def recovery_tool(self) -> Path:
        """Aurora's `recovery-tool` (0.20+: the Gradle start script of RecoveryTool, in the
        scheduler distribution's bin/): Debian installs `dist/install/aurora-scheduler/bin`
        under /usr/share/aurora (aurora-packaging specs/debian/aurora-scheduler.install),
        the RPM under /usr/lib/aurora (specs/rpm/aurora.spec: `%{_prefix}/lib/aurora/bin/*`)."""
        if self.flavour == "rpm":
            return self.root / "usr/lib/aurora/bin/recovery-tool"
        return self.root / "usr/share/aurora/bin/recovery-tool"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def ssh_host_key(self) -> Path:
        return self.root / "etc/ssh/ssh_host_ed25519_key"


@dataclass
class HostInfo:
    name: str
    address: str
    ssh_port: int
    http_port: int
    root: str
    flavour: str = "debian"
    # LIBPROCESS_PORT in the host's env file: where its libprocess (the replicated log's
    # replica) answers /metrics/snapshot. 0: not a 0.22 host (no metrics served).
    libprocess_port: int = 0

    @property
    def paths(self) -> HostPaths:
        return HostPaths(Path(self.root), self.flavour)


@dataclass
class SandboxInfo:
    """The contents of DIR/sandbox.json."""

    dir: str
    cluster: str = CLUSTER_NAME
    mesos_master: str = MESOS_MASTER
    serverset_path: str = SERVERSET_PATH
    # "host:port,host:port" of a real ZooKeeper, or "" for the local election.
    zk_endpoints: str = ""
    control: str = ""
    restart_sec: float = 2.0
    python: str = ""
    # The packaging the hosts mirror: "debian" or "rpm".
    flavour: str = "debian"
    # What the schedulers advertise: "ip" (the packages' default) or "hostname".
    advertise: str = "ip"
    # An IANA zone every process of the hosts runs in ("" for the machine's own).
    tz: str = ""
    # True: the unit writes var/log/aurora/aurora-scheduler.log instead of the journal.
    log_file: bool = False
    # The Aurora release the hosts behave as: "0.17" or "0.22" (AURORA_VERSIONS).
    aurora_version: str = "0.17"
    # What --break broke (sandbox.cluster.BREAKS), each on the host it names.
    breaks: list[str] = field(default_factory=list)
    hosts: list[HostInfo] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return Path(self.dir)

    @property
    def tasks_file(self) -> Path:
        return self.root / "mesos/tasks.json"

    @property
    def killed_file(self) -> Path:
        return self.root / "mesos/killed.jsonl"

    @property
    def commands_file(self) -> Path:
        """Every exec request each host's SSH server got (sandbox.sshd): what the bot sent."""
        return self.root / "ssh/commands.jsonl"

    @property
    def election_dir(self) -> Path:
        return self.root / "election"

    def host(self, name: str) -> HostInfo:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(f"no host {name!r} in the sandbox")

    def save(self) -> None:
        path = self.root / INFO_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: str | Path | None = None) -> SandboxInfo:
        directory = Path(directory or os.environ["SANDBOX_DIR"])
        raw = json.loads((directory / INFO_FILE).read_text())
        hosts = [HostInfo(**h) for h in raw.pop("hosts")]
        return cls(hosts=hosts, **raw)


def inside(path: str | Path, directory: str | Path) -> bool:
    """True when `path`, resolved, is `directory` or lies below it."""
    resolved = Path(os.path.realpath(path))
    base = Path(os.path.realpath(directory))
    return resolved == base or base in resolved.parents
