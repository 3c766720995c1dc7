"""runbook.snapshot: Aurora's backup encoding decoded, and refused with one line."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runbook import snapshot
from runbook.snapshot import SnapshotError, decode, decode_file
from sandbox.backups import (
    SnapshotDecodeError,
    decode_snapshot,
    encode_snapshot,
    generate_cluster_tasks,
    generate_history,
)

WHEN = datetime(2026, 11, 30, 14, 5, 17, 250000, tzinfo=UTC)


def _tasks(seed: int = 7) -> list:
    rng = random.Random(seed)
    active = generate_cluster_tasks(rng, 120)
    return active + generate_history(rng, active)


def test_a_backup_round_trips_with_its_time_framework_and_version() -> None:
    tasks = _tasks()
    data = encode_snapshot(tasks, WHEN, "fw-1234-0000", version="0.18.1")
    info = decode(data)
    assert info.taken_at == WHEN.timestamp()
    assert info.framework_id == "fw-1234-0000"
    assert info.version == "0.18.1"
    assert [
        (t.task_id, t.role, t.environment, t.job, t.instance, t.status) for t in info.tasks
    ] == [(t.task_id, t.role, t.environment, t.job, t.instance, t.status) for t in tasks]
    counts = info.counts_by_status
    assert sum(counts.values()) == len(tasks)
    assert counts["RUNNING"] > 0 and counts.get("FINISHED", 0) > 0
    assert decode_snapshot(data) == tasks  # the sandbox's staging reads the same bytes


def test_the_file_is_plain_thrift_binary_starting_with_the_timestamp_field() -> None:
    data = encode_snapshot(_tasks(), WHEN, "fw")
    # TBinaryProtocol field header: type I64 (10), id 1, then the ms since the epoch.
    assert data[:3] == b"\x0a\x00\x01"
    assert int.from_bytes(data[3:11], "big") == int(WHEN.timestamp() * 1000)


def test_decode_file_streams_the_same_result(tmp_path: Path) -> None:
    data = encode_snapshot(_tasks(), WHEN, "fw")
    path = tmp_path / "scheduler-backup-2026-11-30-14-05"
    path.write_bytes(data)
    assert decode_file(path) == decode(data)
    with pytest.raises(SnapshotError, match="No such file"):
        decode_file(tmp_path / "missing")


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: b"", "truncated: the file is empty"),
        (
            lambda d: b'{"format": "aurora-sandbox-snapshot/1"}',
            "not a Snapshot: its first byte 0x7b",
        ),
        (lambda d: b"\x00", "not a Snapshot: it has no timestamp"),
        (lambda d: d + b"\x00", "not a Snapshot: bytes follow"),
        (lambda d: b"\x0a\x00\x01" + bytes(8) + b"\x0e\x00\x04\x0c\xff\xff\xff\xff", "truncated"),
    ],
)
def test_a_damaged_file_is_one_line_of_why(mangle, reason: str) -> None:
    data = encode_snapshot(_tasks(), WHEN, "fw")
    with pytest.raises(SnapshotError) as err:
        decode(mangle(data))
    assert str(err.value).startswith(reason)
    assert "\n" not in str(err.value)


def test_a_backup_without_a_build_version_is_refused() -> None:
    data = encode_snapshot(_tasks(), WHEN, "fw", version="")
    with pytest.raises(SnapshotError, match="unknown version"):
        decode(data)
    with pytest.raises(SnapshotError, match="unknown version.*'banana'"):
        decode(encode_snapshot(_tasks(), WHEN, "fw", version="banana"))


def test_readable_by_refuses_pre_019_backups_on_020_and_later() -> None:
    old = decode(encode_snapshot(_tasks(), WHEN, "fw", version="0.17.0"))
    new = decode(encode_snapshot(_tasks(), WHEN, "fw", version="0.19.1"))
    assert old.readable_by("0.19.0") is None
    assert old.readable_by("0.18.1") is None
    reason = old.readable_by("0.20.0")
    assert reason is not None and "0.17.0" in reason and "before 0.19.0" in reason
    assert old.readable_by("0.22.0") is not None
    assert new.readable_by("0.22.0") is None
    assert "not a version" in (new.readable_by("latest") or "")


def test_the_sandbox_staging_error_is_the_java_exception() -> None:
    data = encode_snapshot(_tasks(), WHEN, "fw")
    with pytest.raises(SnapshotDecodeError) as err:
        decode_snapshot(data[:-7])
    assert str(err.value) == "org.apache.thrift.transport.TTransportException"
    with pytest.raises(SnapshotDecodeError) as err:
        decode_snapshot(b"{}")
    assert str(err.value) == "org.apache.thrift.protocol.TProtocolException: Unrecognized type 123"
    assert decode_snapshot(b"\x00") == []  # an empty struct is an empty snapshot to Aurora


def test_the_idl_keeps_aurora_field_ids() -> None:
    t = snapshot.thrift()
    spec = {fid: name for fid, (_, name, *_) in t.Snapshot.thrift_spec.items()}
    assert spec == {
        1: "timestamp",
        4: "tasks",
        6: "schedulerMetadata",
        11: "dbScript",
        12: "experimentalTaskStore",
    }
    assert t.ScheduleStatus.PARTITIONED == 18 and t.ScheduleStatus.THROTTLED == 16
