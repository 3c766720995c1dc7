"""Reading an Aurora backup before anything changes: what it holds, who can read it.

A backup file is the Thrift TBinaryProtocol encoding of `storage.Snapshot` (apache/aurora
src/main/java/org/apache/aurora/scheduler/storage/backup/StorageBackup.java writes it;
backup/Recovery.java `load` reads it back, and a file that does not decode fails staging
with "Failed to decode backup ..."). This module decodes it the same way, against the
IDL in `aurora_storage.thrift` (Aurora's field ids, only the fields needed here), so that
a truncated, corrupt or unreadable backup is found at preflight, before the old log is
wiped, and the tasks it knows can be compared with what Mesos runs (runbook.forecast).

Decoding uses thriftpy2's C binary protocol over a buffered transport that raises at end
of file (a truncated file is an error, as with Java's TIOStreamTransport) and reads the
`*View` structs, whose undeclared fields are skipped in C: memory stays a small multiple
of the file's size and 100,000 tasks decode in about a second.
"""

from __future__ import annotations

import io
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, NamedTuple

IDL = Path(__file__).with_name("aurora_storage.thrift")
# Aurora's ACTIVE_STATES (apache/aurora src/main/java/org/apache/aurora/scheduler/base/Tasks.java):
# the tasks a restored scheduler keeps running; every other running task is killed.
ACTIVE_STATES = frozenset(
    {
        "ASSIGNED",
        "DRAINING",
        "KILLING",
        "PENDING",
        "PREEMPTING",
        "RESTARTING",
        "RUNNING",
        "STARTING",
        "PARTITIONED",
        "THROTTLED",
    }
)
# RELEASE-NOTES.md 0.20.0: "An 0.20.0 scheduler will not be able to recover backups or
# replicated log data created prior to 0.19.0" (aurora.md §9.10).
FIRST_UNREADABLE_BY = (0, 20)
OLDEST_READABLE = (0, 19)
VERSION_RE = re.compile(r"([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(?:[-.+~][0-9A-Za-z.+~-]*)?")


class SnapshotError(Exception):
    """The bytes are not a backup this tool can read: one line saying why."""


class BackupTask(NamedTuple):
    """One task of a backup, compact."""

    task_id: str
    role: str
    environment: str
    job: str
    instance: int
    status: str


@dataclass(frozen=True)
class SnapshotInfo:
    """What a backup holds: when it was taken, by which scheduler, which tasks."""

    taken_at: float  # seconds since the epoch (Snapshot.timestamp, ms)
    framework_id: str
    version: str  # the scheduler's build version (SchedulerMetadata.details["version"])
    tasks: tuple[BackupTask, ...]
    has_db_script: bool = False  # 0.17-0.19: part of the state as H2 SQL
    details: dict[str, str] = field(default_factory=dict)

    @property
    def counts_by_status(self) -> dict[str, int]:
        return dict(sorted(Counter(t.status for t in self.tasks).items()))

    @property
    def active_ids(self) -> frozenset[str]:
        """The ids of the tasks a scheduler restored from this backup keeps."""
        return frozenset(t.task_id for t in self.tasks if t.status in ACTIVE_STATES)

    def readable_by(self, version: str) -> str | None:
        """None, or why a scheduler of `version` cannot restore this backup."""
        cluster = parse_version(version)
        if cluster is None:
            return f"the cluster's scheduler version {version!r} is not a version"
        if cluster < FIRST_UNREADABLE_BY:
            return None
        mine = parse_version(self.version)
        if (mine is not None and mine < OLDEST_READABLE) or self.has_db_script:
            return (
                f"the backup was written by Aurora {self.version}: a scheduler of "
                f"{version} (0.20.0 or later) cannot read backups made before 0.19.0"
            )
        return None


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = VERSION_RE.fullmatch(text.strip())
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@cache
def thrift() -> ModuleType:
    """The IDL, loaded once (thriftpy2 builds the classes at run time). thriftpy2 is
    imported here, not with the module: the sandbox's processes that never touch a
    backup (mesos-log, the stand-ins) start without it."""
    import thriftpy2

    return thriftpy2.load(str(IDL), module_name="aurora_storage_thrift")


def _status_names() -> dict[int, str]:
    return dict(thrift().ScheduleStatus._VALUES_TO_NAMES)


# TType values a struct's field header may carry (STOP, BOOL, BYTE, DOUBLE, I16, I32,
# I64, STRING, STRUCT, MAP, SET, LIST).
FIELD_TYPES = frozenset({0, 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15})


def read_snapshot(stream: BinaryIO, view: bool = True) -> tuple[Any, bool]:
    """Decode one Snapshot from `stream` (a file or BytesIO), as Recovery.load does:
    (the struct, whether bytes follow it).

    Raises TTransportException at an early end of file and TProtocolException /
    TDecodeException on bytes that are no Thrift struct."""
    from thriftpy2.protocol import TCyBinaryProtocol
    from thriftpy2.transport import TCyBufferedTransport, TTransportException

    cls = thrift().SnapshotView if view else thrift().Snapshot
    snapshot = cls()
    transport = TCyBufferedTransport(stream)
    snapshot.read(TCyBinaryProtocol(transport, strict_read=True))  # type: ignore[no-untyped-call]
    try:
        transport.read(1)
    except TTransportException:
        return snapshot, False
    return snapshot, True


def _reason(exc: Exception) -> str:
    from thriftpy2.transport import TTransportException

    if isinstance(exc, TTransportException):
        return "truncated: the file ends inside the Snapshot"
    return f"not a Snapshot: {exc}"


def decode(data: bytes) -> SnapshotInfo:
    """The backup in `data`; SnapshotError with one line when it cannot be read."""
    return decode_stream(io.BytesIO(data))


def decode_file(path: str | Path) -> SnapshotInfo:
    """The backup file at `path`, read as a stream (the file is never held whole)."""
    try:
        with open(path, "rb") as f:
            return decode_stream(f)
    except OSError as exc:
        raise SnapshotError(f"{path}: {exc.strerror or exc}") from None


class _Prefixed(io.RawIOBase):
    """`head` then the rest of `stream`: the first byte is looked at before decoding."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            return out
        return self.stream.read(size)


def decode_stream(stream: BinaryIO) -> SnapshotInfo:
    """The backup read from `stream`; SnapshotError with one line when it cannot be read."""
    head = stream.read(1)
    if not head:
        raise SnapshotError("truncated: the file is empty")
    if head[0] not in FIELD_TYPES:
        raise SnapshotError(
            f"not a Snapshot: its first byte 0x{head[0]:02x} is no Thrift field type"
            + (" (a JSON file?)" if head in (b"{", b"[") else "")
        )
    from thriftpy2.protocol.exc import TProtocolException
    from thriftpy2.thrift import TDecodeException
    from thriftpy2.transport import TTransportException

    try:
        raw, trailing = read_snapshot(_Prefixed(head, stream))  # type: ignore[arg-type]
    except (TTransportException, TProtocolException, TDecodeException) as exc:
        raise SnapshotError(_reason(exc)) from None
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError, MemoryError) as exc:
        raise SnapshotError(f"not a Snapshot: {type(exc).__name__}: {exc}") from None
    if trailing:
        raise SnapshotError("not a Snapshot: bytes follow the end of the struct")
    if raw.timestamp is None or raw.tasks is None:
        missing = "timestamp" if raw.timestamp is None else "tasks"
        raise SnapshotError(f"not a Snapshot: it has no {missing}")
    meta = raw.schedulerMetadata
    details = dict(meta.details or {}) if meta is not None else {}
    version = details.get("version", "")
    if parse_version(version) is None:
        raise SnapshotError(
            f"unknown version: the backup names scheduler build version {version!r}"
            if version
            else "unknown version: the backup's scheduler metadata names no build version"
        )
    tasks = _compact(raw.tasks)
    return SnapshotInfo(
        taken_at=raw.timestamp / 1000.0,
        framework_id=(meta.frameworkId or "") if meta is not None else "",
        version=version,
        tasks=tasks,
        has_db_script=bool(raw.dbScript),
        details=details,
    )


def _compact(raw_tasks: list[Any]) -> tuple[BackupTask, ...]:
    """The decoded tasks as BackupTask tuples, consuming the decoded list as it goes
    (names interned: a job's tasks share their role, environment and job strings)."""
    names = _status_names()
    intern = sys.intern
    out: list[BackupTask] = []
    raw_tasks.reverse()
    while raw_tasks:
        t = raw_tasks.pop()
        assigned = t.assignedTask
        if assigned is None or assigned.taskId is None:
            raise SnapshotError("not a Snapshot: a task without an id")
        config = assigned.task
        job = config.job if config is not None else None
        if job is None:
            raise SnapshotError(f"not a Snapshot: task {assigned.taskId} has no job key")
        out.append(
            BackupTask(
                assigned.taskId,
                intern(job.role or ""),
                intern(job.environment or ""),
                intern(job.name or ""),
                assigned.instanceId or 0,
                names.get(t.status, str(t.status)),
            )
        )
    return tuple(out)
