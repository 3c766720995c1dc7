"""A stand-in for one replica of the Mesos replicated log (`-native_log_file_path`).

The real replica is a LevelDB directory. This one looks like it from outside
(`CURRENT`, `LOCK`, `LOG`, `MANIFEST-000001`, `000003.log`) and keeps its records, one
JSON object a line, in `000003.log`:

    {"status": "VOTING", "owner": "aurora"}         the metadata record, always first
    {"position": 1, "snapshot": [task, ...]}        a snapshot entry (what a commit writes)

Replica status, as Mesos has it:
- no files at all: EMPTY (a scheduler waits forever: "Replica in EMPTY status ...");
- `mesos-log initialize` turns an EMPTY replica into VOTING and refuses anything else
  ("The log is not empty");
- anything unreadable is corrupt (LevelDB's "Corruption: ..."): the scheduler dies.

Quorum: the replicas of a cluster form one log; its writer (the leading scheduler) is
elected only when `-native_log_quorum_size` replicas answer, itself included (Mesos
src/log/coordinator.cpp; Aurora docs/operations/configuration.md "Replicated Log
Configuration": the quorum is a majority of the schedulers). A replica answers while
its scheduler process runs and it is VOTING (sandbox.scheduler.Scheduler.wait_for_quorum).
The sandbox's hosts are laid out with a majority (sandbox.cluster.quorum_size): 2 of 3.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.backups import Task

DATA_FILE = "000003.log"
MANIFEST = "MANIFEST-000001"


class ReplicaCorrupt(Exception):
    """LevelDB could not open the directory."""


class ReplicaNotEmpty(Exception):
    """`mesos-log initialize` on a replica that already holds a log."""


@dataclass
class Replica:
    status: str  # EMPTY or VOTING
    owner: str = ""
    entries: list[list[Task]] = field(default_factory=list)

    @property
    def position(self) -> int:
        return len(self.entries)

    @property
    def tasks(self) -> list[Task]:
        """The storage the log replays to: the latest snapshot, or nothing."""
        return list(self.entries[-1]) if self.entries else []


def read(path: Path) -> Replica:
    if not path.is_dir() or not any(path.iterdir()):
        return Replica(status="EMPTY")
    data = path / DATA_FILE
    try:
        if (path / "CURRENT").read_text() != MANIFEST + "\n":
            raise ReplicaCorrupt(f"Corruption: CURRENT file does not end with newline in {path}")
        lines = data.read_text().splitlines()
        meta = json.loads(lines[0])
        entries = [[Task(**t) for t in json.loads(line)["snapshot"]] for line in lines[1:]]
        return Replica(status=meta["status"], owner=meta.get("owner", ""), entries=entries)
    except ReplicaCorrupt:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise ReplicaCorrupt(f"Corruption: bad record in {data}: {exc}") from exc


def _write(path: Path, replica: Replica) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "CURRENT").write_text(MANIFEST + "\n")
    (path / "LOCK").touch()
    (path / MANIFEST).write_bytes(b"\x00leveldb.BytewiseComparator\x00")
    lines = [json.dumps({"status": replica.status, "owner": replica.owner})]
    for i, snapshot in enumerate(replica.entries, start=1):
        lines.append(json.dumps({"position": i, "snapshot": [asdict(t) for t in snapshot]}))
    tmp = path / (DATA_FILE + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path / DATA_FILE)
    with (path / "LOG").open("a") as log:
        log.write(f"Recovering log #{len(replica.entries)}\n")


def initialize(path: Path, owner: str) -> None:
    """`mesos-log initialize --path=PATH`: only an EMPTY replica becomes VOTING."""
    current = read(path)  # raises ReplicaCorrupt
    if current.status != "EMPTY":
        raise ReplicaNotEmpty("The log is not empty")
    _write(path, Replica(status="VOTING", owner=owner))


def append_snapshot(path: Path, tasks: list[Task]) -> None:
    replica = read(path)
    if replica.status != "VOTING":
        raise ReplicaCorrupt(f"replica at {path} is {replica.status}, not VOTING")
    replica.entries.append(list(tasks))
    _write(path, replica)


def create_with(path: Path, tasks: list[Task], owner: str) -> None:
    """A healthy replica holding one snapshot (how the sandbox starts out)."""
    _write(path, Replica(status="VOTING", owner=owner, entries=[list(tasks)]))


def corrupt(path: Path) -> None:
    """Damage the replica the way a bad disk does: a broken record LevelDB cannot read."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "CURRENT").write_text(MANIFEST + "\n")
    (path / DATA_FILE).write_bytes(b"\x8f\x02\xffcorrupted block\x00\x13")
