"""The simulated Aurora scheduler (`python -m sandbox.scheduler FLAGS...`).

Started by the host's `aurora-scheduler-startup` exactly like Debian's package starts the
real one, with the same flags (docs/aurora-notes.md §F8). It behaves like Aurora 0.17-0.20 where the
restore procedure can see it:

- flags parsed like JCommander (≥0.19): a flag given twice, a word that is no flag or a
  time amount spelled wrong aborts the start (docs/aurora-notes.md §F2);
- the advertised host (the candidate's data and the member_ JSON) is computed like
  JettyServerModule: `-hostname` when given, else the Jetty bind address `-ip`, else
  InetAddress.getLocalHost().getHostAddress(), i.e. the host's IP address (apache/aurora
  src/main/java/org/apache/aurora/scheduler/http/JettyServerModule.java;
  CuratorSingletonService.java: `leaderSelector.setId(endpoint.getHostName())`);
- the lifecycle IDLE → PREPARING_STORAGE → STORAGE_PREPARED → LEADER_AWAITING_REGISTRATION
  → ACTIVE (DEAD from anywhere), shown in /vars (§F4);
- storage is a replica of the replicated log (sandbox.replog): corrupt or unreadable kills
  the process (the supervisor restarts it: a crash loop), EMPTY waits forever (§F7);
- the leader is elected (sandbox.election); it registers with Mesos only when
  -mesos_master_address is the sandbox's real master, and only then advertises itself;
- an ACTIVE leader reconciles against the running tasks after
  -reconciliation_initial_delay and kills every task its storage does not know;
- /api is a JSON stand-in for the Thrift API with the storage-recovery calls (§F5, §F6);
- /vars carries `build.version` (e.g. `0.22.0`) as a release build exports its
  build.properties (rel/0.22.0 commons/src/main/java/org/apache/aurora/common/
  stats/TimeSeriesRepositoryImpl.java: `build.` + key; build-support/generate-build-properties).

As 0.22 (`--aurora-version 0.22`, docs/aurora-notes.md "Sandbox as 0.22") it also serves
libprocess' `/metrics/snapshot` with `log/recovered` on LIBPROCESS_IP (else the host's
address):LIBPROCESS_PORT (rel/0.22.0 docs/operations/upgrades.md), holds its replica's
LOCK while it runs, and the replicated log counts only the replicas up
(sandbox.replog.replicas_up): a blank replica is recovered once a quorum is up, from a
non-blank one if the quorum has one, else over the empty log (the danger).

Log lines go to stderr (the unit sends them to the host's journal) in a glog-like format. Every way out of the process goes through `Scheduler.die`, which leaves
the election first and then calls os._exit: nothing may keep a dying scheduler alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from aiohttp import web

from sandbox import replog
from sandbox.backups import (
    ALL_STATES,
    BACKUP_PREFIX,
    SnapshotDecodeError,
    Task,
    backup_name,
    decode_snapshot,
    encode_snapshot,
    framework_id,
)
from sandbox.election import Election, ElectionUnavailable, LocalElection, ZkElection, member_json
from sandbox.layout import RELEASES, HostInfo, SandboxInfo, inside

STATES = (
    "IDLE",
    "PREPARING_STORAGE",
    "STORAGE_PREPARED",
    "LEADER_AWAITING_REGISTRATION",
    "ACTIVE",
    "DEAD",
)
TRANSITIONS = {
    "IDLE": {"PREPARING_STORAGE", "DEAD"},
    "PREPARING_STORAGE": {"STORAGE_PREPARED", "DEAD"},
    "STORAGE_PREPARED": {"LEADER_AWAITING_REGISTRATION", "DEAD"},
    "LEADER_AWAITING_REGISTRATION": {"ACTIVE", "DEAD"},
    "ACTIVE": {"DEAD"},
    "DEAD": {"DEAD"},
}
READY_STATES = ("LEADER_AWAITING_REGISTRATION", "ACTIVE")
REGISTRATION_SECS = 1.0
EMPTY_LOG_INTERVAL = 3.0
ZK_RETRY_SECS = 3.0
QUORUM_RETRY_SECS = 1.0
QUORUM_PROBE_SECS = 0.5
BYPASS_HEADER = "Bypass-Leader-Redirect"
LOOPBACK = "127.0.0.1"

# ------------------------------------------------------------------------------------ flags

TIME_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "secs": 1.0,
    "mins": 60.0,
    "hrs": 3600.0,
    "days": 86400.0,
}
# Each flag with its type and default, from the @Parameter fields of Aurora's options
# classes (apache/aurora src/main/java/org/apache/aurora/scheduler/...): SchedulerModule
# (max_registration_delay, max_leading_duration), reconciliation/TaskReconcilerModule
# (reconciliation_*), storage/backup/BackupModule (backup_interval, max_saved_backups,
# backup_dir), storage/log/LogPersistenceModule (dlog_snapshot_interval),
# pruning/PruningModule (history_prune_threshold, history_max_per_job_threshold),
# http/JettyServerModule (http_port, hostname, ip), app/SchedulerMain
# (serverset_endpoint_name, cluster_name, serverset_path), discovery/FlaggedZooKeeperConfig
# (zk_*), http/api/security/HttpSecurityModule (http_authentication_mechanism).
TIME_FLAGS = {
    "max_registration_delay": "1mins",
    "reconciliation_initial_delay": "1mins",
    "reconciliation_explicit_interval": "60mins",
    "max_leading_duration": "1days",
    "backup_interval": "1hrs",
    "dlog_snapshot_interval": "1hrs",
    "zk_session_timeout": "4secs",
    "history_prune_threshold": "2days",
}
INT_FLAGS = {
    "http_port": 0,
    "native_log_quorum_size": 1,
    "max_saved_backups": 48,
    "history_max_per_job_threshold": 100,
}
ENUM_FLAGS = {"http_authentication_mechanism": ("NONE", "BASIC", "NEGOTIATE")}
STR_FLAGS = (
    "cluster_name",
    "zk_endpoints",
    "zk_chroot_path",
    "mesos_master_address",
    "serverset_path",
    "serverset_endpoint_name",
    "native_log_zk_group_path",
    "native_log_file_path",
    "backup_dir",
    "thermos_executor_path",
    "thermos_executor_resources",
    "thermos_executor_flags",
    "allowed_container_types",
    "hostname",
    "ip",
    "tier_config",
)
# Flags whose value must name a readable file (validateValueWith = ReadableFile:
# src/main/java/org/apache/aurora/scheduler/config/validators/ReadableFile.java).
READABLE_FILE_FLAGS = ("tier_config",)
KNOWN_FLAGS = frozenset((*TIME_FLAGS, *INT_FLAGS, *ENUM_FLAGS, *STR_FLAGS))
REQUIRED_FLAGS = (
    "cluster_name",
    "mesos_master_address",
    "serverset_path",
    "zk_endpoints",
    "backup_dir",
)
# Never parsed: only to make an aborted start look like one.
USAGE = "Usage: org.apache.aurora.scheduler.app.SchedulerMain [options]\n  Options:\n" + "".join(
    f"    -{name}\n" for name in sorted(KNOWN_FLAGS)
)


class FlagError(Exception):
    """A JCommander ParameterException: usage is printed, then this, then exit 1."""


@dataclass(frozen=True)
class Flags:
    cluster_name: str
    mesos_master_address: str
    serverset_path: str
    zk_endpoints: str
    backup_dir: str
    native_log_file_path: str
    http_port: int = 0
    native_log_quorum_size: int = 1
    max_saved_backups: int = 48
    max_registration_delay: float = 60.0
    reconciliation_initial_delay: float = 60.0
    reconciliation_explicit_interval: float = 3600.0
    max_leading_duration: float = 86400.0
    zk_session_timeout: float = 4.0
    http_authentication_mechanism: str = "NONE"
    serverset_endpoint_name: str = "http"
    native_log_zk_group_path: str = ""
    hostname: str | None = None
    ip: str | None = None


def parse_time(flag: str, raw: str) -> float:
    """Aurora's TimeAmountConverter: `(\\d+)([A-Za-z]+)`, the unit one of Time's names
    exactly (case-sensitive). Returns seconds."""
    m = re.fullmatch(r"([0-9]+)([A-Za-z]+)", raw)
    if m is None:
        raise FlagError(
            f'"-{flag}": couldn\'t convert "{raw}" to must be of the format 1ns, 2secs, etc.'
        )
    if m.group(2) not in TIME_UNITS:
        units = ", ".join(TIME_UNITS)
        raise FlagError(f'"-{flag}": couldn\'t convert "{raw}" to one of [{units}]')
    return min(int(m.group(1)) * TIME_UNITS[m.group(2)], 1e12)


def _convert(flag: str, raw: str) -> object:
    if flag in TIME_FLAGS:
        return parse_time(flag, raw)
    if flag in INT_FLAGS:
        if not re.fullmatch(r"-?[0-9]+", raw):
            raise FlagError(f'"-{flag}": couldn\'t convert "{raw}" to an integer')
        return int(raw)
    if flag in READABLE_FILE_FLAGS and not os.access(raw, os.R_OK):
        raise FlagError(f"File {raw} for -{flag} is not readable")
    if flag in ENUM_FLAGS:
        allowed = ENUM_FLAGS[flag]
        if raw not in allowed:
            raise FlagError(
                f"Invalid value for -{flag} parameter. Allowed values:[{', '.join(allowed)}]"
            )
    return raw


def parse_flags(argv: list[str]) -> Flags:
    """`-name=value` or `-name value`, each flag at most once; errors in argv order."""
    values: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, raw = arg[1:].partition("=")
        if not arg.startswith("-") or name not in KNOWN_FLAGS:
            raise FlagError(
                f"Was passed main parameter '{arg}' but no main parameter was defined "
                "in your arg class"
            )
        if not eq:
            if i + 1 >= len(argv):
                raise FlagError(f"Expected a value after parameter -{name}")
            i += 1
            raw = argv[i]
        if name in values:
            raise FlagError(f"Can only specify option -{name} once.")
        values[name] = _convert(name, raw)
        i += 1
    missing = [f"[-{f}]" for f in REQUIRED_FLAGS if f not in values]
    if missing:
        noun = "option is" if len(missing) == 1 else "options are"
        raise FlagError(f"The following {noun} required: {', '.join(missing)}")
    if not values.get("native_log_file_path"):
        raise FlagError("A value for the -native_log_file_path flag must be supplied")
    for flag, default in TIME_FLAGS.items():
        values.setdefault(flag, parse_time(flag, default))
    fields = set(Flags.__dataclass_fields__)
    return Flags(**{k: v for k, v in values.items() if k in fields})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ output


def log(level: str, component: str, message: str, thread: str = "main") -> None:
    """One glog-like line, flushed at once: the process may os._exit right after."""
    now = datetime.now()
    stamp = f"{now:%m%d %H:%M:%S}.{now.microsecond // 1000:03d}"
    sys.stderr.write(f"{level}{stamp} [{thread}] {component}: {message}\n")
    sys.stderr.flush()


def format_var(value: object) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def format_vars(values: Mapping[str, object]) -> str:
    """Aurora's /vars: `name value` lines sorted lexicographically, no trailing newline."""
    return "\n".join(sorted(f"{k} {format_var(v)}" for k, v in values.items()))


def api_response(
    code: str, message: str | None = None, result: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "responseCode": code,
        "details": [{"message": message}] if message else [],
        "result": result,
    }


class ApiError(Exception):
    """An RPC failure: its code and message become the response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------------------ Mesos


def _tasks_lock(info: SandboxInfo) -> Path:
    return info.tasks_file.with_name(info.tasks_file.name + ".lock")


def kill_unknown_tasks(info: SandboxInfo, known: set[str], host: str) -> list[str]:
    """Reconciliation: kill every running task the scheduler's storage does not know.

    The running tasks (tasks_file) are rewritten atomically under a lock on a sibling
    file, and each kill is appended to killed_file: the damage a bad restore does.
    """
    info.tasks_file.parent.mkdir(parents=True, exist_ok=True)
    with _tasks_lock(info).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            running = json.loads(info.tasks_file.read_text())
        except FileNotFoundError:
            return []
        keep = [t for t in running if t["task_id"] in known]
        killed = [str(t["task_id"]) for t in running if t["task_id"] not in known]
        if not killed:
            return []
        tmp = info.tasks_file.with_name(info.tasks_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(keep, indent=1) + "\n")
        os.replace(tmp, info.tasks_file)
        now = datetime.now().isoformat(timespec="seconds")
        with info.killed_file.open("a") as out:
            for task_id in killed:
                record = {
                    "time": now,
                    "host": host,
                    "task_id": task_id,
                    "reason": "unknown to the scheduler",
                }
                out.write(json.dumps(record) + "\n")
        return killed


# --------------------------------------------------------------------------- scheduler


@dataclass
class Staged:
    """A staged recovery: in this process's memory only (docs/aurora-notes.md §F6)."""

    backup: str
    tasks: list[Task]


def advertised_host(flags: Flags, host_address: str) -> str:
    """JettyServerModule: `-hostname` if set, else the bind host `-ip`, else
    InetAddress.getLocalHost().getHostAddress() (the host's IP address)."""
    return flags.hostname or flags.ip or host_address


def leader_address(info: SandboxInfo, advertised: str) -> str:
    """Where an advertised host is reached: a sandbox host's name maps to its address."""
    return next((h.address for h in info.hosts if advertised in (h.name, h.address)), advertised)


class Scheduler:
    def __init__(self, flags: Flags, info: SandboxInfo, host: str) -> None:
        self.flags = flags
        self.info = info
        self.host = host
        self.user = os.environ.get("SANDBOX_USER", "aurora")
        own = next((h.address for h in info.hosts if h.name == host), LOOPBACK)
        # Jetty binds -ip when given, else every interface: a simulated host's are its
        # own address and the loopback (`localhost` on the host reaches its scheduler).
        self.addresses = [flags.ip] if flags.ip else list(dict.fromkeys([own, LOOPBACK]))
        self.address = self.addresses[0]
        self.advertised = advertised_host(flags, own)
        self.log_path = Path(flags.native_log_file_path)
        self.backup_dir = Path(flags.backup_dir)
        self.state = "IDLE"
        self.started = time.monotonic()
        self.storage: list[Task] = []
        self.staged: Staged | None = None
        self.registered = False
        self.http_port = flags.http_port
        self.counters = {
            "scheduler_backup_success": 0,
            "scheduler_backup_failed": 0,
            "scheduler_log_snapshots": 0,
            "sandbox_tasks_killed": 0,
        }
        self.election: Election = self._make_election()
        self._tasks: set[asyncio.Task[None]] = set()
        # 0.22: the replica's libprocess (LIBPROCESS_IP/LIBPROCESS_PORT, exported by the
        # startup script from the env file) and its `log/recovered`.
        self.v022 = info.aurora_version == "0.22"
        self.recovered = False
        self.libprocess_ip = os.environ.get("LIBPROCESS_IP") or own
        self.libprocess_port = int(os.environ.get("LIBPROCESS_PORT") or 0)
        self._lock_fd: int | None = None
        # recover_blank and lead may both catch the replica up (each in a thread): once.
        self._adopt_lock = threading.Lock()

    def _make_election(self) -> Election:
        # The env file always names a ZooKeeper; the sandbox says whether one is used.
        if self.info.zk_endpoints:
            hosts = self.flags.zk_endpoints or self.info.zk_endpoints
            return ZkElection(
                hosts, self.flags.serverset_path, self.advertised, self.flags.zk_session_timeout
            )
        return LocalElection(self.info.election_dir, self.advertised)

    # ------------------------------------------------------------------ lifecycle

    def transition(self, to: str) -> None:
        if to not in TRANSITIONS[self.state]:
            raise RuntimeError(f"illegal lifecycle transition {self.state} -> {to}")
        log(
            "I",
            "SchedulerLifecycle",
            f"SchedulerLifecycle state machine transition {self.state} -> {to}",
        )
        self.state = to

    def die(self, code: int, reason: str) -> NoReturn:
        """DEAD, out of the election, gone: synchronous so it also works from a handler."""
        if self.state != "DEAD":
            self.transition("DEAD")
        log("I" if code == 0 else "E", "SchedulerLifecycle", reason)
        with contextlib.suppress(Exception):
            self.election.close()
        log("I", "SchedulerLifecycle", "Shutdown complete.")
        sys.stdout.flush()
        os._exit(code)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A background job; an uncaught error in it kills the scheduler (dieOnError)."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.die(1, f"Unexpected error, shutting down: {exc!r}")

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(
                sig, self.die, 0, f"Received {signal.Signals(sig).name}, shutting down."
            )
        if self.v022:
            await self.start_libprocess()
        await self.start_http()
        self.transition("PREPARING_STORAGE")
        replica = await self.prepare_storage()
        self.storage = replica.tasks
        self.transition("STORAGE_PREPARED")
        await self.join_election()
        await self.election.campaign()
        await self.lead()
        await asyncio.Event().wait()

    # -------------------------------------------------------------------- storage

    def peer_log_dirs(self) -> list[Path]:
        own = os.path.realpath(self.log_path)
        return [
            h.paths.log_dir
            for h in self.info.hosts
            if h.name != self.host and os.path.realpath(h.paths.log_dir) != own
        ]

    def open_replica(self) -> replog.Replica:
        """Open this host's replica the way the scheduler's LevelDB open would fail."""
        try:
            replica = replog.read(self.log_path)
        except replog.ReplicaCorrupt as exc:
            self.die(1, f"Failed to open the replicated log: {exc}")
        except PermissionError:
            self.die(1, f"IO error: {self.log_path}/LOCK: Permission denied")
        if replica.owner not in ("", self.user) and self.user != "root":
            self.die(1, f"IO error: {self.log_path}/LOCK: Permission denied")
        return replica

    def catch_up(self, replica: replog.Replica) -> replog.Replica:
        """Replication, simply: copy the newest snapshot of a VOTING peer that is ahead."""
        if replica.status != "VOTING":
            return replica
        best: replog.Replica | None = None
        for path in self.peer_log_dirs():
            try:
                peer = replog.read(path)
            except (replog.ReplicaCorrupt, OSError):
                continue
            if peer.status == "VOTING" and peer.position > (best or replica).position:
                best = peer
        if best is None or not inside(self.log_path, self.info.dir):
            return replica
        log("I", "Replica", f"Catching up from position {replica.position} to {best.position}")
        replog.append_snapshot(self.log_path, best.tasks)
        return self.open_replica()

    def lock_replica(self) -> None:
        """LevelDB's LOCK, held while the process runs (0.22): recovery-tool cannot open a
        replica a running scheduler holds."""
        try:
            fd = os.open(self.log_path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.die(1, f"IO error: lock {self.log_path}/LOCK: already held by process")
        self._lock_fd = fd

    async def prepare_storage(self) -> replog.Replica:
        log("I", "MesosLogStreamModule", f"Opening the replicated log at {self.log_path}")
        replica = self.open_replica()
        if replica.status == "EMPTY":
            while True:  # a never-initialized replica cannot recover: the real one waits
                log(
                    "I", "Replica", "Replica in EMPTY status received a broadcasted recover request"
                )
                await asyncio.sleep(EMPTY_LOG_INTERVAL)
        if self.v022:
            self.lock_replica()
            if replica.blank:
                log("I", "Replica", "Replica is blank: it recovers once a quorum is up")
                self.spawn(self.recover_blank())
            else:
                self.recovered = True
        else:
            replica = self.catch_up(replica)
        log(
            "I",
            "LogStorage",
            f"Recovered {len(replica.tasks)} tasks from the log at position {replica.position}",
        )
        return replica

    def best_of_quorum(self) -> replog.Replica | None:
        """0.22: the furthest replica up (peers and this one) once a quorum is up; None
        while the quorum is not. A blank quorum's best is a blank replica."""
        own = self.open_replica()
        up = [r for _, r in replog.replicas_up(self.info, self.log_path)]
        if 1 + len(up) < self.flags.native_log_quorum_size:
            return None
        return max([own, *up], key=lambda r: r.position)

    def adopt(self, best: replog.Replica) -> replog.Replica:
        """Catch this replica up to `best` (a peer's) when `best` is ahead."""
        with self._adopt_lock:
            own = self.open_replica()
            if best.position > own.position and inside(self.log_path, self.info.dir):
                log("I", "Replica", f"Catching up from position {own.position} to {best.position}")
                replog.append_snapshot(self.log_path, best.tasks)
                own = self.open_replica()
            return own

    async def recover_blank(self) -> None:
        """0.22: a blank replica waits for a quorum, then catches up from its furthest
        member (nothing to catch up when the quorum is all blank) and is recovered."""
        while not self.recovered:
            best = await asyncio.to_thread(self.best_of_quorum)
            if best is not None:
                own = await asyncio.to_thread(self.adopt, best)
                if self.state in ("PREPARING_STORAGE", "STORAGE_PREPARED"):
                    self.storage = own.tasks
                self.recovered = True
                log("I", "Replica", f"Replica recovered at position {own.position}")
                return
            await asyncio.sleep(QUORUM_RETRY_SECS)

    def replicate(self, tasks: list[Task]) -> int:
        """Write a snapshot to this replica and every VOTING peer (0.22: every peer up);
        returns the peer count."""
        if not inside(self.log_path, self.info.dir):
            raise ApiError("ERROR", "Failed to encode snapshot.")
        replog.append_snapshot(self.log_path, tasks)
        written = 0
        if self.v022:
            for host, _ in replog.replicas_up(self.info, self.log_path):
                replog.append_snapshot(host.paths.log_dir, tasks)
                written += 1
            self.counters["scheduler_log_snapshots"] += 1
            return written
        for path in self.peer_log_dirs():
            try:
                if replog.read(path).status == "VOTING":
                    replog.append_snapshot(path, tasks)
                    written += 1
            except (replog.ReplicaCorrupt, OSError):
                continue
        self.counters["scheduler_log_snapshots"] += 1
        return written

    # ---------------------------------------------------------------- leadership

    async def join_election(self) -> None:
        while True:
            try:
                await self.election.connect()
                return
            except ElectionUnavailable as exc:
                log("E", "CuratorServiceDiscoveryModule", str(exc))
                await asyncio.sleep(ZK_RETRY_SECS)

    async def peer_replica_up(self, peer: HostInfo) -> bool:
        """A peer's replica votes when its scheduler process runs (the replica lives in
        that process: it serves HTTP from its first moment) and the replica is VOTING
        (an EMPTY one, never initialized, does not vote)."""
        try:
            if replog.read(peer.paths.log_dir).status != "VOTING":
                return False
        except (replog.ReplicaCorrupt, OSError):
            return False
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(peer.address, peer.http_port), QUORUM_PROBE_SECS
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    async def wait_for_quorum(self) -> None:
        """The log's writer is elected only with `-native_log_quorum_size` replicas
        (this one included) answering; until then the leader retries, as Mesos'
        coordinator does (mesos src/log/coordinator.cpp: an election needs a quorum of
        promises; Aurora's -native_log_election_timeout/-native_log_election_retries).
        The sandbox retries for as long as it takes: a real one gives up after the
        retries, dies and is restarted by the unit, which comes to the same."""
        quorum = self.flags.native_log_quorum_size
        own = os.path.realpath(self.log_path)
        peers = [
            h
            for h in self.info.hosts
            if h.name != self.host and os.path.realpath(h.paths.log_dir) != own
        ]
        waited = 0
        while True:
            if self.v022:
                up = 1 + len(await asyncio.to_thread(replog.replicas_up, self.info, self.log_path))
            else:
                up = 1 + sum(await asyncio.gather(*(self.peer_replica_up(h) for h in peers)))
            if up >= quorum:
                log("I", "Coordinator", f"Elected with a quorum of {up} of {quorum} replicas")
                return
            if waited % 10 == 0:
                log(
                    "W",
                    "Coordinator",
                    f"Coordinator failed to get elected: {up} of the {quorum} replicas "
                    "of the quorum (-native_log_quorum_size) answered; retrying",
                )
            waited += 1
            await asyncio.sleep(QUORUM_RETRY_SECS)

    async def lead(self) -> None:
        # The log's writer needs a quorum of replicas before storage can start.
        await self.wait_for_quorum()
        # Storage starts on leadership: replay the log as it is now (a commit may have
        # rewritten it since this process prepared).
        if self.v022:
            # The writer's log is the furthest replica of the quorum up: a quorum of
            # blank replicas gives an EMPTY storage (the danger of a wrong start order).
            best = await asyncio.to_thread(self.best_of_quorum)
            own = await asyncio.to_thread(self.adopt, best) if best else self.open_replica()
            self.storage = own.tasks
            self.recovered = True
            log(
                "I",
                "LogStorage",
                f"Recovered {len(own.tasks)} tasks from the log at position {own.position}",
            )
        else:
            self.storage = self.catch_up(self.open_replica()).tasks
        self.transition("LEADER_AWAITING_REGISTRATION")
        log("I", "SchedulerLifecycle", "Elected as leading scheduler!")
        self.spawn(self.watch_leadership())
        self.spawn(self.registration_deadline())
        self.spawn(self.leading_deadline())
        log(
            "I",
            "MesosSchedulerImpl",
            f"Connecting to Mesos master at {self.flags.mesos_master_address}",
        )
        if self.flags.mesos_master_address == self.info.mesos_master:
            self.spawn(self.register())

    async def watch_leadership(self) -> None:
        await self.election.lost()
        self.die(1, "Lost leadership, committing suicide.")

    async def registration_deadline(self) -> None:
        await asyncio.sleep(self.flags.max_registration_delay)
        if not self.registered:
            self.die(1, "Framework has not been registered within the tolerated delay.")

    async def leading_deadline(self) -> None:
        await asyncio.sleep(self.flags.max_leading_duration)
        self.die(0, "Triggering automatic failover.")

    async def register(self) -> None:
        await asyncio.sleep(REGISTRATION_SECS)
        framework = framework_id(self.info.dir, self.flags.cluster_name)
        self.registered = True
        log(
            "I",
            "MesosCallbackHandler",
            f'Registered with ID value: "{framework}", master: {self.flags.mesos_master_address}',
        )
        self.transition("ACTIVE")
        await self.election.advertise(
            member_json(self.advertised, self.http_port, self.flags.serverset_endpoint_name)
        )
        log(
            "I",
            "SchedulerLifecycle",
            f"Advertised as leader at {self.advertised}:{self.http_port}",
        )
        self.spawn(self.reconcile_loop())

    async def reconcile_loop(self) -> None:
        await asyncio.sleep(self.flags.reconciliation_initial_delay)
        while True:
            known = {t.task_id for t in self.storage}
            killed = await asyncio.to_thread(kill_unknown_tasks, self.info, known, self.host)
            for task_id in killed:
                log("W", "TaskReconciler", f"Killing task {task_id} unknown to the scheduler")
            self.counters["sandbox_tasks_killed"] += len(killed)
            log("I", "TaskReconciler", f"Reconciliation done: {len(killed)} tasks killed")
            await asyncio.sleep(self.flags.reconciliation_explicit_interval)

    # ----------------------------------------------------------------------- HTTP

    async def start_http(self) -> None:
        app = web.Application()
        app.router.add_get("/vars", self.handle_vars)
        app.router.add_get("/vars.json", self.handle_vars_json)
        app.router.add_get("/leaderhealth", self.handle_leaderhealth)
        app.router.add_get("/health", self.handle_health)
        app.router.add_post("/api", self.handle_api)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        port = self.flags.http_port
        for address in self.addresses:
            site = web.TCPSite(runner, address, port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                self.die(
                    1,
                    f"Failed to start the HTTP server on {address}:{port}: {exc.strerror}",
                )
            port = int(runner.addresses[0][1])  # -http_port=0: the random port, everywhere
        self.http_port = port
        log("I", "JettyServerModule", f"HTTP server listening on {self.address}:{self.http_port}")

    async def start_libprocess(self) -> None:
        """libprocess' HTTP endpoint (0.22): `/metrics/snapshot` on LIBPROCESS_IP (else
        the host's address):LIBPROCESS_PORT. It binds before anything else, like
        libprocess initialising in the JVM: a port in use kills the start."""
        app = web.Application()
        app.router.add_get("/metrics/snapshot", self.handle_metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.libprocess_ip, self.libprocess_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            self.die(
                1,
                f"Failed to initialize libprocess: Failed to bind on "
                f"{self.libprocess_ip}:{self.libprocess_port}: {exc.strerror}",
            )
        self.libprocess_port = int(runner.addresses[0][1])
        log(
            "I",
            "process",
            f"libprocess is initialized on {self.libprocess_ip}:{self.libprocess_port}",
        )

    def metrics(self) -> dict[str, float]:
        """The replicated log's metric the upgrade procedure reads (rel/0.22.0
        docs/operations/upgrades.md: `log/recovered` is 1 once the log caught up)."""
        return {"log/recovered": float(self.recovered)}

    async def handle_metrics(self, request: web.Request) -> web.Response:
        return web.json_response(self.metrics())

    def vars(self) -> dict[str, object]:
        release = RELEASES.get(self.info.aurora_version, self.info.aurora_version)
        values: dict[str, object] = {"build.version": release}
        values |= {f"scheduler_lifecycle_{s}": int(s == self.state) for s in STATES}
        counts = {s: 0 for s in ALL_STATES}  # TaskVars: a gauge per ScheduleStatus
        for t in self.storage:
            if t.status in counts:
                counts[t.status] += 1
        values.update({f"task_store_{s}": n for s, n in counts.items()})
        values.update(self.counters)
        values.update(self.election.vars())
        uptime = time.monotonic() - self.started
        values.update(
            framework_registered=int(self.registered),
            jvm_uptime_secs=int(uptime),
            jvm_time_ms=int(time.time() * 1000),
            jvm_available_processors=os.cpu_count() or 1,
            jvm_threads_active=threading.active_count(),
            system_load_avg=round(os.getloadavg()[0], 2),
            http_port=self.http_port,
        )
        return values

    async def handle_vars(self, request: web.Request) -> web.Response:
        return web.Response(text=format_vars(self.vars()), content_type="text/plain")

    async def handle_vars_json(self, request: web.Request) -> web.Response:
        return web.json_response(dict(sorted(self.vars().items())))

    async def handle_health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK", content_type="text/plain")

    async def handle_leaderhealth(self, request: web.Request) -> web.Response:
        member = await self.election.member()
        if member is None:
            return web.Response(status=502, text="No leader found.")
        if member.get("serviceEndpoint", {}).get("host") == self.advertised:
            return web.Response(status=200, text="This is the leader.")
        return web.Response(status=503, text="This is not the leader.")

    def _auth_failure(self, request: web.Request) -> web.Response | None:
        mechanism = self.flags.http_authentication_mechanism
        if mechanism == "NONE" or "Authorization" in request.headers:
            return None
        challenge = 'Basic realm="Apache Aurora Scheduler"' if mechanism == "BASIC" else "Negotiate"
        return web.Response(
            status=401, text="Unauthorized", headers={"WWW-Authenticate": challenge}
        )

    async def _redirect(self, request: web.Request) -> web.Response | None:
        """LeaderRedirectFilter: served only by the advertised leader, unless bypassed."""
        if BYPASS_HEADER in request.headers:
            log(
                "I",
                "LeaderRedirectFilter",
                "Bypass-Leader-Redirect header was present on the request, bypassing leader redirection.",
                "qtp-http",
            )
            return None
        member = await self.election.member()
        if member is None:
            return web.Response(
                status=503,
                text="<html><body>No leader found.</body></html>",
                content_type="text/html",
            )
        endpoint = member.get("serviceEndpoint", {})
        if endpoint.get("host") == self.advertised:
            return None
        address = leader_address(self.info, str(endpoint.get("host")))
        return web.Response(
            status=307, headers={"Location": f"http://{address}:{endpoint.get('port')}/api"}
        )

    async def handle_api(self, request: web.Request) -> web.Response:
        refused = self._auth_failure(request) or await self._redirect(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
            method = str(body["method"])
            args = body.get("args") or {}
            if not isinstance(args, dict):
                raise TypeError("args must be an object")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response(
                api_response("INVALID_REQUEST", f"Bad request: {exc}"), status=400
            )
        handler = self.api_methods().get(method)
        if handler is None:
            return web.json_response(api_response("INVALID_REQUEST", f"Unknown method {method}"))
        try:
            result = handler(args, request)
            response = api_response("OK", None, result)
        except ApiError as exc:
            if exc.code != "ERROR_TRANSIENT":
                log(
                    "W",
                    "LoggingInterceptor",
                    f"Uncaught exception while handling {method}({args}): {exc}",
                    "qtp-http",
                )
            response = api_response(exc.code, str(exc))
        return web.json_response(response)

    # ------------------------------------------------------------------------ RPCs

    def api_methods(
        self,
    ) -> dict[str, Callable[[dict[str, Any], web.Request], dict[str, Any] | None]]:
        return {
            "listBackups": self.list_backups,
            "stageRecovery": self.stage_recovery,
            "queryRecovery": self.query_recovery,
            "deleteRecoveryTasks": self.delete_recovery_tasks,
            "commitRecovery": self.commit_recovery,
            "unloadRecovery": self.unload_recovery,
            "performBackup": self.perform_backup,
            "snapshot": self.snapshot,
        }

    def require_ready(self) -> None:
        if self.state not in READY_STATES:
            raise ApiError("ERROR_TRANSIENT", "Storage is not READY")

    def require_staged(self) -> Staged:
        if self.staged is None:
            raise ApiError("ERROR", "No backup loaded.")
        return self.staged

    def list_backups(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        try:
            names = os.listdir(self.backup_dir)  # every file, unordered (a Thrift set)
        except FileNotFoundError:
            names = []
        return {"listBackupsResult": {"backups": names}}

    def stage_recovery(self, args: dict[str, Any], request: web.Request) -> None:
        backup = str(args.get("backupId", ""))
        path = self.backup_dir / backup
        if not backup or not inside(path, self.backup_dir) or not path.is_file():
            # Recovery.load names the file: its name up to 0.19, its path from 0.20.
            shown = path if self.v022 else backup
            raise ApiError("ERROR", f"Backup {shown} does not exist.")
        try:
            tasks = decode_snapshot(path.read_bytes())
        except SnapshotDecodeError as exc:
            raise ApiError("ERROR", f"Failed to decode backup {exc}") from None
        except OSError as exc:
            raise ApiError("ERROR", f"Failed to read backup {exc}") from None
        if self.staged is not None:
            raise ApiError("ERROR", "Another backup is already loaded.")
        self.staged = Staged(backup, tasks)
        log("I", "Recovery", f"Staged recovery of backup {backup}: {len(tasks)} tasks", "qtp-http")
        return None

    def query_recovery(self, args: dict[str, Any], request: web.Request) -> dict[str, Any]:
        staged = self.require_staged()
        statuses = args.get("statuses")
        tasks = [t for t in staged.tasks if statuses is None or t.status in statuses]
        return {"queryRecoveryResult": {"tasks": [asdict(t) for t in tasks]}}

    def delete_recovery_tasks(self, args: dict[str, Any], request: web.Request) -> None:
        staged = self.require_staged()
        ids = args.get("taskIds")  # a TaskQuery without ids matches every task
        before = len(staged.tasks)
        staged.tasks = [t for t in staged.tasks if ids is not None and t.task_id not in ids]
        log(
            "I",
            "Recovery",
            f"Deleted {before - len(staged.tasks)} tasks from the staged recovery",
            "qtp-http",
        )
        return None

    def commit_recovery(self, args: dict[str, Any], request: web.Request) -> None:
        """Write the staged snapshot into the replicated log, then shut down (a failover)
        without answering: the client sees a transport error although the commit worked."""
        staged = self.require_staged()
        self.require_ready()
        peers = self.replicate(staged.tasks)
        log(
            "I",
            "Recovery",
            f"Committed recovery of backup {staged.backup}: {len(staged.tasks)} tasks written to the log (and {peers} peer replicas)",
            "qtp-http",
        )
        if request.transport is not None:
            request.transport.abort()
        self.die(0, "Recovery committed, shutting down to force a failover.")

    def unload_recovery(self, args: dict[str, Any], request: web.Request) -> None:
        self.staged = None
        log("I", "Recovery", "Unloaded the staged recovery", "qtp-http")
        return None

    def perform_backup(self, args: dict[str, Any], request: web.Request) -> None:
        """StorageBackup.backupNow: a failed save is logged and counted, the call says OK."""
        self.require_ready()
        now = datetime.now()
        name = backup_name(now)
        temp = self.backup_dir / f"temp_{name}"
        log("I", "StorageBackup", f"Saving backup to {temp}", "qtp-http")
        try:
            if not inside(self.backup_dir, self.info.dir):
                raise PermissionError(f"Backup dir {self.backup_dir} is not writable.")
            self.backup_dir.mkdir(parents=True, exist_ok=True)
            temp.write_bytes(
                encode_snapshot(
                    self.storage, now, framework_id(self.info.dir, self.flags.cluster_name)
                )
            )
            os.replace(temp, self.backup_dir / name)
        except OSError as exc:
            if inside(temp, self.info.dir):
                temp.unlink(missing_ok=True)
            log("E", "StorageBackup", f"Failed to prepare backup {name}: {exc}", "qtp-http")
            self.counters["scheduler_backup_failed"] += 1
            return None
        self.counters["scheduler_backup_success"] += 1
        self.prune_backups()
        return None

    def prune_backups(self) -> None:
        saved = sorted(n for n in os.listdir(self.backup_dir) if n.startswith(BACKUP_PREFIX))
        outdated = saved[: max(len(saved) - self.flags.max_saved_backups, 0)]
        if outdated:
            log(
                "I",
                "StorageBackup",
                f"Deleting {len(outdated)} outdated backups: {outdated}",
                "qtp-http",
            )
            for n in outdated:
                (self.backup_dir / n).unlink(missing_ok=True)

    def snapshot(self, args: dict[str, Any], request: web.Request) -> None:
        self.require_ready()
        self.replicate(self.storage)
        log("I", "LogStorage", "Snapshot complete.", "qtp-http")
        return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        flags = parse_flags(args)
    except FlagError as exc:
        sys.stdout.write(USAGE)
        sys.stdout.flush()
        log("E", "CommandLine", str(exc))
        return 1
    try:
        info = SandboxInfo.load()
    except (KeyError, OSError, ValueError, TypeError) as exc:
        log("E", "SchedulerMain", f"Cannot read the sandbox (SANDBOX_DIR): {exc!r}")
        return 1
    host = os.environ.get("SANDBOX_HOST") or os.uname().nodename
    log(
        "I",
        "SchedulerMain",
        f"Starting scheduler {host} for cluster {flags.cluster_name} (pid {os.getpid()})",
    )
    scheduler = Scheduler(flags, info, host)
    try:
        asyncio.run(scheduler.run())
    except BaseException as exc:  # anything escaping the lifecycle kills the process
        scheduler.die(1, f"Unexpected error, shutting down: {exc!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
