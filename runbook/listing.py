"""aurora_admin's `scheduler_print_recovery_tasks` output, parsed.

The real client writes the table through its logger, to stderr, one task a line:

     INFO] Response from scheduler: OK (message: )
     INFO] Role	Job	Shard	Status	Task ID
     INFO] www-data	hello	0	RUNNING	www-data-prod-hello-0-<uuid>
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

PREFIX_RE = re.compile(r"^\s*(INFO|WARN|ERROR|FATAL|DEBUG)\] ?")
HEADER = ("Role", "Job", "Shard", "Status", "Task ID")


@dataclass(frozen=True)
class StagedTask:
    role: str
    job: str
    shard: int
    status: str
    task_id: str


class ListingError(ValueError):
    """The output does not hold a task table."""


def parse_listing(output: str) -> list[StagedTask]:
    tasks: list[StagedTask] = []
    seen_header = False
    for line in output.splitlines():
        body = PREFIX_RE.sub("", line, count=1)
        cols = body.split("\t")
        if tuple(c.strip() for c in cols) == HEADER:
            seen_header = True
            continue
        if not seen_header or len(cols) != 5:
            continue
        role, job, shard, status, task_id = (c.strip() for c in cols)
        if not shard.isdigit():
            raise ListingError(f"bad shard in line {line!r}")
        tasks.append(StagedTask(role, job, int(shard), status, task_id))
    if not seen_header:
        raise ListingError("no task table (Role/Job/Shard/Status/Task ID) in the output")
    return tasks


def summarize(tasks: list[StagedTask]) -> dict[str, dict[str, int]]:
    return {
        "role": dict(Counter(t.role for t in tasks).most_common()),
        "job": dict(Counter(f"{t.role}/{t.job}" for t in tasks).most_common()),
        "status": dict(Counter(t.status for t in tasks).most_common()),
    }
