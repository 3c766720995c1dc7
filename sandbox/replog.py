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

On a 0.22 sandbox (docs/aurora-notes.md "Sandbox as 0.22") a replica is "up" while its
scheduler's libprocess answers on the host's LIBPROCESS_PORT (`replicas_up`), and only
the replicas up take part: a blank replica (VOTING, no entry: `mesos-log initialize`d)
catches up from a non-blank one only once a quorum is up, and a quorum of blank replicas
elects a writer over an empty log.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.backups import Task
from sandbox.layout import HostInfo, SandboxInfo

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
    def blank(self) -> bool:
        """Initialised and empty: what `mesos-log initialize` leaves."""
        return self.status == "VOTING" and not self.entries

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


def write_first_entry(path: Path, tasks: list[Task], owner: str) -> None:
    """What recovery-tool leaves: a VOTING replica whose first entry is the snapshot, its
    files owned by whoever ran the tool."""
    _write(path, Replica(status="VOTING", owner=owner, entries=[list(tasks)]))


PROBE_SECS = 0.3


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=PROBE_SECS):
            return True
    except OSError:
        return False


def process_up(host: HostInfo) -> bool:
    """The host's scheduler process runs: its libprocess (0.22) or, on a 0.17 host, its
    HTTP server answers. The replica lives in that process."""
    return _answers(host.address, host.libprocess_port or host.http_port)


def replicas_up(info: SandboxInfo, own: Path) -> list[tuple[HostInfo, Replica]]:
    """Every other replica of the log that takes part now: its process up, its replica
    VOTING (an EMPTY or unreadable one does not vote)."""
    own_real = os.path.realpath(own)
    out = []
    for h in info.hosts:
        if os.path.realpath(h.paths.log_dir) == own_real:
            continue
        try:
            replica = read(h.paths.log_dir)
        except (ReplicaCorrupt, OSError):
            continue
        if replica.status == "VOTING" and process_up(h):
            out.append((h, replica))
    return out
