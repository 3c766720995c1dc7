"""Where a scheduler's log is read from on its host, and the command that reads it.

No Aurora package writes `/var/log/aurora/aurora-scheduler.log`: the systemd unit of the
Debian and RPM packages has no redirection, so the log is in journald
(apache/aurora-packaging `specs/debian/aurora-scheduler.service`); upstart writes
`/var/log/upstart/aurora-scheduler.log` and the EL6 init script `/var/log/aurora/aurora.log`
(`specs/rpm/aurora-scheduler.init.sh`). So the default is `journalctl -u <unit>` (which
shows a system unit's lines only to root and the adm/systemd-journal groups: through
`sudo -n`), and a file when the cluster file sets `scheduler_log`.
"""

from __future__ import annotations

import shlex

from runbook.clusters import Cluster, Scheduler


def log_file(cluster: Cluster, s: Scheduler) -> str | None:
    path: str | None = cluster.path(s, "scheduler_log")
    return path


def uses_journal(cluster: Cluster, s: Scheduler) -> bool:
    return log_file(cluster, s) is None


def log_read_command(
    cluster: Cluster, s: Scheduler, lines: int, log_path: str | None = None
) -> str:
    """The last `lines` lines of the scheduler's log on `s`: `tail` of `log_path` or its
    `scheduler_log` when set, else its unit's journal."""
    path = log_path or log_file(cluster, s)
    if path is not None:
        return f"tail -n {int(lines)} -- {shlex.quote(path)}"
    unit = shlex.quote(cluster.scheduler_unit)
    return f"sudo -n journalctl -u {unit} -n {int(lines)} --no-pager -o cat"
