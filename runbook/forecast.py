"""What approving a restore from a backup will kill, computed before anything changes.

A scheduler restored from a backup knows the backup's tasks only. Once it is ACTIVE
its reconciliation asks Mesos about every running task and kills each one its storage
does not hold (Aurora's restore page: tasks the backup does not know are killed shortly
after the restart; aurora.md §9.17). The forecast is that set: the framework's running
tasks (from the Mesos master) whose ids are not among the backup's active tasks,
grouped by role and job, plus the jobs that did not exist when the backup was taken.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from runbook.snapshot import SnapshotInfo


class RunningTask(Protocol):
    """What the forecast needs of a running task (bot.mesos.MesosTask)."""

    @property
    def task_id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def job(self) -> str: ...
    @property
    def state(self) -> str: ...


@dataclass(frozen=True)
class Forecast:
    # (role, environment, job) -> ids of the running tasks that will be killed, sorted
    killed: dict[tuple[str, str, str], tuple[str, ...]]
    # jobs running now that the backup does not hold at all, sorted
    new_jobs: tuple[tuple[str, str, str], ...]
    running: int  # running tasks looked at
    backup_taken_at: float

    @property
    def kill_count(self) -> int:
        return sum(len(ids) for ids in self.killed.values())

    @property
    def job_count(self) -> int:
        return len(self.killed)

    @property
    def roles(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for (role, _, _), ids in self.killed.items():
            out[role] += len(ids)
        return dict(sorted(out.items()))

    def summary(self) -> str:
        """One line for the card."""
        if not self.kill_count:
            return f"approving kills no running task (all {self.running} are in the backup)"
        jobs = "job" if self.job_count == 1 else "jobs"
        tasks = "task" if self.kill_count == 1 else "tasks"
        line = f"approving kills {self.kill_count} running {tasks} of {self.job_count} {jobs}"
        if self.new_jobs:
            line += f" ({len(self.new_jobs)} created since the backup)"
        return line

    def listing(self) -> str:
        """A TSV for the file attached to the card: one killed task a line."""
        new = set(self.new_jobs)
        lines = ["role\tenvironment\tjob\ttask_id\tjob_created_since_backup"]
        for key, ids in self.killed.items():
            flag = "yes" if key in new else "no"
            lines += [f"{key[0]}\t{key[1]}\t{key[2]}\t{i}\t{flag}" for i in ids]
        return "\n".join(lines) + "\n"


def forecast(backup: SnapshotInfo, running: list[RunningTask]) -> Forecast:
    """The running tasks a scheduler restored from `backup` kills, grouped by job."""
    known = backup.active_ids
    jobs_in_backup = {(t.role, t.environment, t.job) for t in backup.tasks}
    killed: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for t in running:
        if t.task_id not in known:
            killed[(t.role, t.environment, t.job)].append(t.task_id)
    grouped = {k: tuple(sorted(v)) for k, v in sorted(killed.items())}
    new_jobs = tuple(k for k in grouped if k not in jobs_in_backup)
    return Forecast(grouped, new_jobs, len(running), backup.taken_at)
