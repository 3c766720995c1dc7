"""Tasks and scheduler backups of the simulated cluster.

A backup is the Thrift binary encoding of Aurora's `Snapshot` struct, as a real one
(runbook/aurora_storage.thrift: Aurora's field ids), with a true `timestamp`, active and
terminal tasks and the scheduler's metadata (framework id, build version), under the
real name `scheduler-backup-yyyy-MM-dd-HH-mm` in the host's local time: the JVM's default
zone, which is the zone of the host (`TZ`, see `--tz`) (apache/aurora
src/main/java/org/apache/aurora/scheduler/storage/backup/StorageBackup.java: a
SimpleDateFormat that never sets a zone).

A real store holds terminal tasks too (FINISHED, FAILED, KILLED, LOST) until the pruner
drops them (apache/aurora src/main/java/org/apache/aurora/scheduler/pruning/PruningModule.java:
-history_prune_threshold 2days, -history_max_per_job_threshold 100): the generated
backups and logs hold such a history besides the active tasks.
"""

from __future__ import annotations

import io
import json
import random
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from runbook import snapshot as snapshot_idl

# The build version the sandbox's schedulers (and so their backups) claim.
SANDBOX_VERSION = "0.17.0"
BACKUP_PREFIX = "scheduler-backup-"
NAME_FORMAT = "%Y-%m-%d-%H-%M"

# Aurora's ACTIVE_STATES: what scheduler_print_recovery_tasks lists.
ACTIVE_STATES = (
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
)

# Every ScheduleStatus, in api.thrift's order (apache/aurora
# api/src/main/thrift/org/apache/aurora/gen/api.thrift, enum ScheduleStatus): TaskVars
# exports a task_store_<STATUS> gauge for each (src/main/java/org/apache/aurora/scheduler/TaskVars.java).
ALL_STATES = (
    "INIT",
    "THROTTLED",
    "PENDING",
    "ASSIGNED",
    "STARTING",
    "RUNNING",
    "FINISHED",
    "PREEMPTING",
    "RESTARTING",
    "DRAINING",
    "FAILED",
    "KILLED",
    "KILLING",
    "LOST",
    "PARTITIONED",
)
TERMINAL_STATES = ("FINISHED", "FAILED", "KILLED", "LOST")

_JOBS = {
    "www-data": [("prod", "hello"), ("prod", "frontend"), ("staging", "frontend")],
    "ads": [("prod", "bidder"), ("prod", "pacer"), ("devel", "bidder")],
    "search": [("prod", "indexer"), ("prod", "query"), ("prod", "ranker")],
    "payments": [("prod", "ledger"), ("prod", "gateway")],
    "mesos": [("prod", "thermos-observer")],
}


@dataclass(frozen=True)
class Task:
    role: str
    environment: str
    job: str
    instance: int
    status: str
    task_id: str

    @classmethod
    def new(
        cls, role: str, env: str, job: str, instance: int, status: str, rng: random.Random
    ) -> Task:
        uid = uuid.UUID(int=rng.getrandbits(128), version=4)
        return cls(role, env, job, instance, status, f"{role}-{env}-{job}-{instance}-{uid}")


def backup_name(when: datetime, zone: tzinfo | None = None) -> str:
    """The name StorageBackup gives a backup taken at `when`: its wall time in `zone`
    (the host's zone), or `when` as it is when no zone is given."""
    if zone is not None:
        when = when.astimezone(zone)
    return BACKUP_PREFIX + when.strftime(NAME_FORMAT)


def backup_time(name: str) -> datetime | None:
    """The time in a backup's name, or None when the name is not a backup's."""
    if not name.startswith(BACKUP_PREFIX):
        return None
    try:
        return datetime.strptime(name[len(BACKUP_PREFIX) :], NAME_FORMAT)
    except ValueError:
        return None


def framework_id(sandbox_dir: str, cluster: str) -> str:
    """The framework id Mesos gives the sandbox's schedulers: one per sandbox and cluster
    (what a registered scheduler logs, the master lists, and the backups record)."""
    return f"{uuid.uuid5(uuid.NAMESPACE_URL, sandbox_dir + cluster)}-0000"


def _events(task: Task, taken_ms: int) -> list[tuple[int, str]]:
    """The task's TaskEvents: the path a task takes to its status, ending before the
    backup was taken."""
    path = {
        "PENDING": ["PENDING"],
        "THROTTLED": ["PENDING", "THROTTLED"],
        "ASSIGNED": ["PENDING", "ASSIGNED"],
        "STARTING": ["PENDING", "ASSIGNED", "STARTING"],
    }.get(task.status, ["PENDING", "ASSIGNED", "STARTING", "RUNNING"])
    if task.status not in path:
        path.append(task.status)
    step = 7_000
    start = taken_ms - step * len(path) - (zlib.crc32(task.task_id.encode()) % 86_400_000)
    return [(start + i * step, status) for i, status in enumerate(path)]


def _scheduled_task(t: Task, taken_ms: int, host_count: int = 40) -> object:
    """A ScheduledTask as Aurora stores it (api.thrift): the assigned task on an agent,
    its config (job key, owner, resources, the Thermos executor's config), its events."""
    s = snapshot_idl.thrift()
    status = s.ScheduleStatus._NAMES_TO_VALUES
    agent = zlib.crc32(t.task_id.encode()) % host_count
    placed = t.status not in ("PENDING", "THROTTLED")
    config = s.TaskConfig(
        job=s.JobKey(role=t.role, environment=t.environment, name=t.job),
        owner=s.Identity(user=t.role),
        isService=True,
        priority=0,
        maxTaskFailures=1,
        production=t.environment == "prod",
        tier="preferred" if t.environment == "prod" else "preemptible",
        resources=[
            s.Resource(numCpus=1.0),
            s.Resource(ramMb=512),
            s.Resource(diskMb=1024),
            s.Resource(namedPort="http"),
        ],
        executorConfig=s.ExecutorConfig(
            name="AuroraExecutor",
            data=json.dumps(
                {
                    "role": t.role,
                    "environment": t.environment,
                    "name": t.job,
                    "cluster": "sandbox",
                    "task": {"name": t.job, "processes": [{"name": t.job, "cmdline": "./run"}]},
                },
                separators=(",", ":"),
            ),
        ),
    )
    assigned = s.AssignedTask(
        taskId=t.task_id,
        slaveId=f"agent-{agent:02d}-S0" if placed else None,
        slaveHost=f"agent-{agent:02d}.sandbox" if placed else None,
        task=config,
        assignedPorts={"http": 31000 + t.instance} if placed else {},
        instanceId=t.instance,
    )
    return s.ScheduledTask(
        assignedTask=assigned,
        status=status[t.status],
        failureCount=0,
        taskEvents=[
            s.TaskEvent(timestamp=when, status=status[st], scheduler="scheduler-1")
            for when, st in _events(t, taken_ms)
        ],
    )


def encode_snapshot(
    tasks: list[Task],
    taken_at: datetime,
    framework: str | None = None,
    version: str = SANDBOX_VERSION,
) -> bytes:
    """A backup file: the TBinaryProtocol encoding of Aurora's `storage.Snapshot` with
    `timestamp` = `taken_at` in ms, the tasks, and the scheduler metadata (framework id,
    build properties), as StorageBackup writes it."""
    from thriftpy2.protocol import TCyBinaryProtocol
    from thriftpy2.transport import TCyBufferedTransport

    s = snapshot_idl.thrift()
    taken_ms = int(taken_at.timestamp() * 1000)
    snapshot = s.Snapshot(
        timestamp=taken_ms,
        tasks=[_scheduled_task(t, taken_ms) for t in tasks],
        schedulerMetadata=s.SchedulerMetadata(
            frameworkId=framework,
            details={
                "version": version,
                "git.revision": "0" * 40,
                "git.tag": version,
                "date": taken_at.strftime("%a %Y-%m-%d"),
            },
        ),
    )
    out = io.BytesIO()
    transport = TCyBufferedTransport(out)
    snapshot.write(TCyBinaryProtocol(transport))  # type: ignore[no-untyped-call]
    transport.flush()
    return out.getvalue()


class SnapshotDecodeError(ValueError):
    """The bytes do not decode as a Snapshot: str() is the Java exception Recovery.load
    puts after "Failed to decode backup " (a truncated file ends in TIOStreamTransport's
    END_OF_FILE; a byte that is no field type is TProtocolUtil.skip's "Unrecognized type")."""


def decode_snapshot(data: bytes) -> list[Task]:
    """The tasks of a backup, decoded like Recovery.load: the whole struct, any field
    missing left unset (an empty struct is an empty snapshot, as in Aurora)."""
    from thriftpy2.transport import TTransportException

    if data and data[0] not in snapshot_idl.FIELD_TYPES:
        raise SnapshotDecodeError(
            f"org.apache.thrift.protocol.TProtocolException: Unrecognized type {data[0]}"
        )
    try:
        raw, _ = snapshot_idl.read_snapshot(io.BytesIO(data), view=False)
    except TTransportException:
        raise SnapshotDecodeError("org.apache.thrift.transport.TTransportException") from None
    except Exception as exc:  # anything the codec raises is a TException in Java
        raise SnapshotDecodeError(f"org.apache.thrift.protocol.TProtocolException: {exc}") from None
    names = dict(snapshot_idl.thrift().ScheduleStatus._VALUES_TO_NAMES)
    out: list[Task] = []
    for t in raw.tasks or []:
        a = t.assignedTask
        job = a.task.job
        out.append(
            Task(job.role, job.environment, job.name, a.instanceId, names[t.status], a.taskId)
        )
    return out


def generate_cluster_tasks(rng: random.Random, count: int = 300) -> list[Task]:
    """A realistic set of active tasks: a few hundred, mostly RUNNING."""
    tasks: list[Task] = []
    jobs = [(role, env, job) for role, pairs in _JOBS.items() for env, job in pairs]
    while len(tasks) < count:
        for role, env, job in jobs:
            instances = rng.randint(5, 40)
            for instance in range(instances):
                status = rng.choices(
                    ["RUNNING", "PENDING", "STARTING", "ASSIGNED", "THROTTLED"],
                    weights=[90, 4, 3, 2, 1],
                )[0]
                tasks.append(Task.new(role, env, job, instance, status, rng))
                if len(tasks) >= count:
                    return tasks
    return tasks


def generate_history(rng: random.Random, active: list[Task]) -> list[Task]:
    """Terminal tasks of the same jobs (earlier runs of their instances): what a store
    keeps until the pruner drops them. A few to a few dozen per job, mostly FINISHED."""
    jobs = sorted({(t.role, t.environment, t.job) for t in active})
    history: list[Task] = []
    for role, env, job in jobs:
        for _ in range(rng.randint(3, 30)):
            status = rng.choices(TERMINAL_STATES, weights=[50, 25, 20, 5])[0]
            history.append(Task.new(role, env, job, rng.randint(0, 39), status, rng))
    return history


def evolve(tasks: list[Task], rng: random.Random, churn: int) -> list[Task]:
    """The same cluster a while later: `churn` active tasks replaced by new ones
    (rescheduled); the terminal history is left alone."""
    out = list(tasks)
    active = [i for i, t in enumerate(out) if t.status in ACTIVE_STATES]
    for _ in range(min(churn, len(active))):
        i = rng.choice(active)
        old = out[i]
        out[i] = Task.new(old.role, old.environment, old.job, old.instance, "RUNNING", rng)
    return out


@dataclass(frozen=True)
class PlannedBackup:
    name: str
    taken_at: datetime
    tasks: list[Task]
    hosts: list[int]  # indexes of the hosts that hold it


def plan_backups(
    now: datetime,
    current: list[Task],
    count: int,
    hosts: int,
    rng: random.Random,
    zone: tzinfo | None = None,
) -> list[PlannedBackup]:
    """`count` backups, newest first: some minutes old, some days old.

    The newest backup misses the few tasks started since it was taken (they are in
    `current`), older ones miss more. Not every backup is on every host: the newest is
    on every host but the last, older ones on one or two hosts. Names are the wall time
    in `zone` (the hosts' zone; `now` itself when None).
    """
    ages = [timedelta(minutes=12), timedelta(hours=1, minutes=7), timedelta(hours=5)]
    ages += [timedelta(days=d, hours=3) for d in range(1, max(count - 2, 1))]
    planned: list[PlannedBackup] = []
    tasks = current
    for i in range(count):
        taken_at = (now - ages[i]).replace(second=0, microsecond=0)
        # Going back in time: the cluster differed more the older the backup is.
        tasks = evolve(tasks, rng, churn=3 if i == 0 else 10 * i)
        if i == 0:
            holders = list(range(max(hosts - 1, 1)))
        else:
            first = i % hosts
            holders = sorted({first, (first + 1) % hosts}) if i % 2 else [first]
        planned.append(PlannedBackup(backup_name(taken_at, zone), taken_at, tasks, holders))
    return planned
