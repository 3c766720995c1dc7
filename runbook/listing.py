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


MAX_DELETE = 500


def listing_ids(listing: str) -> list[str]:
    """The task ids of a listing as the bot keeps it (tab-separated, task id last)."""
    return [line.rsplit("\t", 1)[-1] for line in listing.splitlines() if line.strip()]


def check_task_ids(text: str, known: set[str]) -> tuple[list[str], str | None]:
    """Task ids typed by a person (one a line, or comma-separated), checked against the
    listing: see `check_ids`."""
    ids: list[str] = []
    for word in re.split(r"[\s,]+", text):
        if word and word not in ids:
            ids.append(word)
    return check_ids(ids, known)


def check_ids(ids: list[str], known: set[str]) -> tuple[list[str], str | None]:
    """The ids, or an error saying which ones are not task ids or not in the listing."""
    from runbook.commands import TASK_ID_RE

    ids = list(dict.fromkeys(ids))
    if not ids:
        return [], "Give at least one task id."
    if len(ids) > MAX_DELETE:
        return [], f"At most {MAX_DELETE} task ids at once ({len(ids)} given)."
    malformed = [i for i in ids if not TASK_ID_RE.fullmatch(i)]
    if malformed:
        return [], "Not task ids: " + _some(malformed)
    unknown = [i for i in ids if i not in known]
    if unknown:
        return [], "Not in the staged listing: " + _some(unknown)
    return ids, None


def _some(values: list[str], limit: int = 5) -> str:
    shown = ", ".join(v[:80] for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")
