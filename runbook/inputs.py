"""What a person types, checked once: the start arguments and the task ids to delete.

The Slack listeners call these before they ack (so a refusal shows at once, in the
ephemeral reply or inside the modal), and the engine applies them again itself
(`Engine.start`, `Engine.delete_tasks`), so every front end meets the same rule and
each refusal has one wording. Pure: no Slack, no store, no sockets. Every refusal is a
`Refused` whose message is one line naming the value (cut to `SHOWN` characters).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from runbook import commands as cmd
from runbook.listing import check_ids

SHOWN = 80  # characters of a typed value repeated in a refusal
BACKUP_FORM = "scheduler-backup-yyyy-MM-dd-HH-mm"


def _refused(message: str) -> Exception:
    # Imported here: the engine imports this module, and Refused lives in the engine.
    from runbook.engine import Refused

    return Refused(message)


def _shown(value: str) -> str:
    """A typed value as a refusal repeats it: on one line, printable, cut short."""
    flat = "".join(c if c.isprintable() else " " for c in value)
    return flat.replace("`", "'")[:SHOWN]


@dataclass(frozen=True)
class StartArgs:
    """The arguments of a restore's start: a configured cluster, and a backup id or None
    (the newest backup then)."""

    cluster: str
    backup: str | None = None


def parse_start_args(text: str, known: Collection[str]) -> StartArgs:
    """`<cluster> [backup-id]` as typed after the slash command. `known`: the configured
    cluster names. Raises `Refused` (one line) for no cluster, too many words, an
    unknown cluster or a malformed backup id."""
    words = text.split()
    if not words:
        raise _refused("Name the cluster to restore.")
    if len(words) > 2:
        raise _refused(
            f"Too many arguments: {len(words)} given, at most a cluster and a backup id."
        )
    return start_args(words[0], words[1] if len(words) == 2 else None, known)


def start_args(cluster: str, backup: str | None, known: Collection[str]) -> StartArgs:
    """The cluster and backup of a start, checked: the cluster is one of `known`, the
    backup (when given) has the form of a backup id. Raises `Refused` (one line)."""
    if cluster not in known:
        names = ", ".join(f"`{name}`" for name in sorted(known)) or "none"
        raise _refused(f"Unknown cluster `{_shown(cluster)}`. Known clusters: {names}.")
    if backup is not None:
        try:
            cmd.backup_id(backup)
        except cmd.InvalidValue:
            raise _refused(f"`{_shown(backup)}` is not a backup id ({BACKUP_FORM}).") from None
    return StartArgs(cluster, backup)


def parse_task_ids(text: str, listed: Collection[str]) -> list[str]:
    """Task ids typed by a person (one a line, or separated by commas or spaces), each
    once, in the order typed; every one a task id of the staged listing `listed`.
    Raises `Refused` (one line) otherwise: see `task_ids`."""
    words = [word for word in re.split(r"[\s,]+", text) if word]
    return task_ids(words, listed)


def task_ids(ids: Sequence[str], listed: Collection[str]) -> list[str]:
    """The ids, each once, when every one is a task id of the listing `listed`; raises
    `Refused` naming those that are not (runbook.listing.check_ids has the wording)."""
    checked, error = check_ids(list(ids), set(listed))
    if error:
        raise _refused(error)
    return checked
