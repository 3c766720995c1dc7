"""The `recovery-tool` stand-in of a 0.22 host (`python -m sandbox.recovery_tool FLAGS`).

Installed where the packages put Aurora's (HostPaths.recovery_tool), not on PATH. It
models apache/aurora rel/0.22.0
src/main/java/org/apache/aurora/scheduler/storage/durability/RecoveryTool.java and
Recovery.java for the one copy a restore makes, `-from BACKUP -to LOG`:

- flags parsed like JCommander over RecoveryTool's Options (`-from`, `-to`,
  `-batch-size`, `--help`), the Backup endpoint's `-backup` and the Log endpoint's option
  classes (MesosLogStreamModule, LogPersistenceModule, FlaggedZooKeeperConfig): `-name=value`
  (or `-name value`), each at most once; `-from`, `-to` and `-zk_endpoints` required
  (FlaggedZooKeeperConfig's `required = true` holds for every run, whatever the endpoints);
- the destination is prepared first: a replica that cannot be opened (corrupt, EMPTY
  i.e. never `mesos-log initialize`d, owned by another user, locked by a running
  scheduler) or a log writer without `-native_log_quorum_size` replicas up fails;
- Recovery.copy's requireEmpty: a log that already holds an entry is refused with
  "Refusing to recover into non-empty persistence", before the backup is read;
- the backup is read like BackupReader / storage/backup/Recovery.load: a missing file is
  "Backup FILE does not exist.", a corrupt one "Failed to decode backup ...";
- on success the backup's snapshot is the log's first entry (the replica's owner is who
  ran it: as root the files end up root's and the scheduler, run as aurora, cannot open
  them, docs/aurora-notes.md §F7), and it prints Recovery.copy's log lines.

Any -native_log_file_path or -backup outside the sandbox directory is refused: nothing the
sandbox runs may touch anything outside DIR. Errors go to stderr as the JVM prints an
uncaught exception; the exit code is 1.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from sandbox import replog
from sandbox.backups import SnapshotDecodeError, decode_snapshot
from sandbox.layout import SandboxInfo, inside

MAIN_CLASS = "org.apache.aurora.scheduler.storage.durability.RecoveryTool"
ENDPOINTS = ("LOG", "BACKUP")
# RecoveryTool.Options, Backup.Options and the Log endpoint's option classes (rel/0.22.0:
# log/mesos/MesosLogStreamModule.java, storage/log/LogPersistenceModule.java,
# discovery/FlaggedZooKeeperConfig.java).
INT_FLAGS = ("batch-size", "native_log_quorum_size", "native_log_election_retries")
FLAGS = (
    "from",
    "to",
    "backup",
    "native_log_file_path",
    "native_log_zk_group_path",
    "native_log_election_timeout",
    "native_log_read_timeout",
    "native_log_write_timeout",
    "dlog_snapshot_interval",
    "dlog_max_entry_size",
    "zk_endpoints",
    "zk_chroot_path",
    "zk_session_timeout",
    "zk_connection_timeout",
    "zk_digest_credentials",
    "zk_in_proc",
    *INT_FLAGS,
)
REQUIRED = ("from", "to", "zk_endpoints")
USAGE = f"Usage: {MAIN_CLASS} [options]\n  Options:\n" + "".join(
    f"    -{name}\n" for name in sorted(FLAGS)
)


class ToolError(Exception):
    """The tool's failure: printed as it is to stderr, exit 1."""


def _exception(kind: str, message: str) -> ToolError:
    return ToolError(f'Exception in thread "main" {kind}: {message}')


def log(message: str) -> None:
    """A line the way the tool's logback prints it (to stderr)."""
    sys.stderr.write(f"I{time.strftime('%m%d %H:%M:%S')} [main] RecoveryTool: {message}\n")
    sys.stderr.flush()


def parse(argv: list[str]) -> dict[str, str]:
    """JCommander: `-name=value` or `-name value`, every name known and given once."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--help":
            raise ToolError(USAGE)
        name, eq, raw = arg[1:].partition("=")
        if not arg.startswith("-") or name not in FLAGS:
            raise _exception(
                "com.beust.jcommander.ParameterException",
                f"Was passed main parameter '{arg}' but no main parameter was defined "
                "in your arg class",
            )
        if not eq:
            if i + 1 >= len(argv):
                raise _exception(
                    "com.beust.jcommander.ParameterException",
                    f"Expected a value after parameter -{name}",
                )
            i += 1
            raw = argv[i]
        if name in values:
            raise _exception(
                "com.beust.jcommander.ParameterException", f"Can only specify option -{name} once."
            )
        if name in ("from", "to") and raw not in ENDPOINTS:
            raise _exception(
                "com.beust.jcommander.ParameterException",
                f"Invalid value for -{name} parameter. Allowed values:[{', '.join(ENDPOINTS)}]",
            )
        if name in INT_FLAGS and not raw.lstrip("-").isdigit():
            raise _exception(
                "com.beust.jcommander.ParameterException",
                f'"-{name}": couldn\'t convert "{raw}" to an integer',
            )
        values[name] = raw
        i += 1
    missing = [f"[-{f}]" for f in REQUIRED if f not in values]
    if missing:
        noun = "option is" if len(missing) == 1 else "options are"
        raise _exception(
            "com.beust.jcommander.ParameterException",
            f"The following {noun} required: {', '.join(missing)}",
        )
    return values


def _sandbox() -> SandboxInfo:
    directory = os.environ.get("SANDBOX_DIR")
    if not directory:
        raise ToolError("recovery-tool (sandbox): SANDBOX_DIR is not set; refusing to run")
    try:
        return SandboxInfo.load(directory)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolError(
            f"recovery-tool (sandbox): cannot read the sandbox in {directory}: {exc}"
        ) from None


def _confined(flag: str, value: str, info: SandboxInfo) -> Path:
    if not inside(value, info.dir):
        raise ToolError(
            f"recovery-tool (sandbox): refusing to touch {value} (-{flag}): it lies outside "
            f"the sandbox directory {info.dir}"
        )
    return Path(value)


def open_log(path: Path, user: str) -> replog.Replica:
    """The Log endpoint's prepare(): open the replica as the scheduler would."""
    try:
        replica = replog.read(path)
    except replog.ReplicaCorrupt as exc:
        raise _exception(
            "java.lang.IllegalStateException", f"Failed to open the log: {exc}"
        ) from None
    except PermissionError:
        raise _exception(
            "java.lang.IllegalStateException", f"IO error: {path}/LOCK: Permission denied"
        ) from None
    if replica.status == "EMPTY":
        # The real replica waits for a quorum that never answers until the writer's
        # election times out: the sandbox fails at once with why.
        raise _exception(
            "java.lang.IllegalStateException",
            f"Failed to obtain a log writer: the replica at {path} is in EMPTY status "
            "(never initialized: run mesos-log initialize --path as the scheduler's user)",
        )
    if replica.owner not in ("", user) and user != "root":
        raise _exception(
            "java.lang.IllegalStateException", f"IO error: {path}/LOCK: Permission denied"
        )
    return replica


def _lock(path: Path) -> int:
    """LevelDB's LOCK: a running scheduler (0.22) holds it on its replica."""
    fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise _exception(
            "java.lang.IllegalStateException",
            f"IO error: lock {path}/LOCK: already held by process",
        ) from None
    return fd


def _quorum(values: dict[str, str], info: SandboxInfo, path: Path) -> None:
    """The log writer needs -native_log_quorum_size replicas (this one included) up."""
    quorum = int(values.get("native_log_quorum_size", "1"))
    up = 1 + len(replog.replicas_up(info, path))
    if up < quorum:
        raise _exception(
            "java.lang.IllegalStateException",
            f"Failed to obtain a log writer: {up} of the {quorum} replicas of the quorum "
            "(-native_log_quorum_size) answered",
        )


def run(argv: list[str]) -> None:
    values = parse(argv)
    info = _sandbox()
    log(f"Recovering from {values['from']} to {values['to']}")
    if (values["from"], values["to"]) != ("BACKUP", "LOG"):
        raise ToolError(
            "recovery-tool (sandbox): only -from BACKUP -to LOG is available in the sandbox"
        )
    if "backup" not in values:
        raise _exception("java.lang.NullPointerException", "-backup is not set")
    backup = _confined("backup", values["backup"], info)
    if not values.get("native_log_file_path"):
        raise _exception(
            "java.lang.IllegalArgumentException",
            "A value for the -native_log_file_path flag must be supplied",
        )
    path = _confined("native_log_file_path", values["native_log_file_path"], info)
    user = os.environ.get("SANDBOX_USER", "root")
    replica = open_log(path, user)
    lock = _lock(path)
    try:
        _quorum(values, info, path)
        log("Ensuring recovery destination is empty")
        if replica.entries:
            raise _exception(
                "java.lang.IllegalStateException",
                "Refusing to recover into non-empty persistence",
            )
        if not backup.exists():
            raise _exception(
                "java.lang.RuntimeException",
                f"org.apache.aurora.scheduler.storage.durability.Persistence$PersistenceException: "
                f"Backup {backup} does not exist.",
            )
        try:
            tasks = decode_snapshot(backup.read_bytes())
        except SnapshotDecodeError as exc:
            raise _exception(
                "org.apache.aurora.scheduler.storage.backup.Recovery$RecoveryException",
                f"Failed to decode backup {exc}",
            ) from None
        except OSError as exc:
            raise _exception(
                "org.apache.aurora.scheduler.storage.backup.Recovery$RecoveryException",
                f"Failed to read backup {exc}",
            ) from None
        started = time.monotonic()
        batch = int(values.get("batch-size", "50")) or 50
        for n in range(1, max(1, -(-len(tasks) // batch)) + 1):
            log(f"Saving batch {n}")
        replog.write_first_entry(path, tasks, owner=user)
        log("Recovery finished")
        elapsed = int((time.monotonic() - started) * 1000)
        log(f"Copied {len(tasks)} ops in {elapsed} ms")
    finally:
        os.close(lock)


def main(argv: list[str] | None = None) -> int:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except ToolError as exc:
        sys.stderr.write(str(exc).rstrip("\n") + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
