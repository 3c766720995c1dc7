"""Backup names, read strictly.

Aurora names a backup `scheduler-backup-yyyy-MM-dd-HH-mm`, in the scheduler JVM's default
time zone (apache/aurora `src/main/java/org/apache/aurora/scheduler/storage/backup/
StorageBackup.java`, `DateTimeFormatter` without a zone), and the backup directory also
holds `temp_` files and whatever else lies there. A name counts as a backup only when it
matches the pattern in ASCII digits, its date is a real one, and it is not in the future
(by the clock of the host that holds it): anything else is listed as "not a backup".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

PREFIX = "scheduler-backup-"
NAME_RE = re.compile(r"scheduler-backup-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}", re.ASCII)
# Clocks differ a little between hosts: a name a few minutes ahead is still a backup.
FUTURE_SLACK = timedelta(minutes=5)


def backup_time(name: str) -> datetime | None:
    """The local time in a backup's name (naive: the zone is the host's), or None."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return None
    try:
        return datetime.strptime(name[len(PREFIX) :], "%Y-%m-%d-%H-%M")
    except ValueError:
        return None


def is_backup(name: str, offset: timezone | None = None, now: datetime | None = None) -> bool:
    """A real backup name whose time is not in the future on a host at `offset`."""
    stamp = backup_time(name)
    if stamp is None:
        return False
    now = now or datetime.now(UTC)
    local = stamp.replace(tzinfo=offset or UTC)
    return local <= now + FUTURE_SLACK + (timedelta(hours=14) if offset is None else timedelta(0))


def parse_names(
    lines: Iterable[str], offset: timezone | None = None, now: datetime | None = None
) -> tuple[list[str], list[str]]:
    """(backups, other entries) of a backup directory's listing, one name a line."""
    backups: list[str] = []
    others: list[str] = []
    for line in lines:
        name = line.rstrip("\n")
        if not name.strip():
            continue
        (backups if is_backup(name, offset, now) else others).append(name)
    return backups, others
