"""What must exist on the bot's own machine before a restore may start.

A restore that starts without the SSH key or the known_hosts file would create its
record and take the cluster's lock, then fail at the first remote step. `Engine.start`
asks `local_problems` first, so the operator gets one line naming the file and the
field, and nothing is created.
"""

from __future__ import annotations

from pathlib import Path

from runbook.clusters import Cluster


def file_problem(field: str, path: Path) -> str | None:
    """Why `path` (the value of `field`) cannot be read, in one line; None when it can."""
    try:
        with path.open("rb") as f:
            f.read(1)
    except FileNotFoundError:
        return f"{field}: {path}: no such file"
    except IsADirectoryError:
        return f"{field}: {path}: is a directory, not a file"
    except PermissionError:
        return f"{field}: {path}: not readable (permission denied)"
    except OSError as exc:
        return f"{field}: {path}: cannot be read ({exc.strerror or exc})"
    return None


def local_problems(cluster: Cluster) -> str | None:
    """The first local file the cluster's SSH settings name that cannot be read, as
    `ssh.key: /x/id: no such file`; None when the key and known_hosts both read."""
    for field, path in (
        ("ssh.key", cluster.ssh.key_path),
        ("ssh.known_hosts", cluster.ssh.known_hosts_path),
    ):
        problem = file_problem(field, path)
        if problem is not None:
            return problem
    return None
