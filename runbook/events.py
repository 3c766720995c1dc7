"""One event vocabulary: what the engine records in a restore's log and tells the fronts.

An `Event` is one thing that happened to a restore or one of its steps. The engine
appends it to the restore's log (runbook.store, which adds `step`, `at`, `seq` and the
hash chain) and hands the same event to its listener (the console, Slack, metrics):
the kind a front is told is the kind the log holds, so the transcript, the thread lines
and the console read one vocabulary (`EventKind`).

`live` carries what only the running process has and the log never holds (a host's
`HostResult`, the check's `Outcome`, a card's preview): it goes to the listener, not to
`to_dict()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    # the restore
    RESTORE_STARTED = "restore_started"
    RESTORE_SUCCEEDED = "restore_succeeded"
    RESTORE_FAILED = "restore_failed"
    ABORTED = "aborted"
    HELD_STOPPED = "held_stopped"  # how an abort ended: schedulers held stopped
    ABORT_DONE = "abort_done"  # ... nothing was reverted
    REVERTED = "reverted"  # ... every change undone
    REVERT_FAILED = "revert_failed"  # ... the revert failed
    PUTTING_BACK = "putting_back"
    LOG_PUT_BACK = "log_put_back"
    PUT_BACK_FAILED = "put_back_failed"
    BACKUP_CHOSEN = "backup_chosen"
    # a step
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    APPROVAL_EXPIRED = "approval_expired"
    PLAN_CHANGED = "plan_changed"
    REFUSED = "refused"
    STARTED = "started"  # a read-only step, started by the bot
    RUNNING = "running"  # told to the fronts only: the step's commands start now
    HOST_RESULT = "host_result"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_NEEDED = "not_needed"
    RETRIED = "retried"
    MARKED_DONE = "marked_done"
    INTERRUPTED = "interrupted"
    CHECKED = "checked"
    REWOUND = "rewound"
    RESET = "reset"
    DELETING_TASKS = "deleting_tasks"
    TASKS_DELETED = "tasks_deleted"


# Told to the fronts, never written to the log.
LISTENER_ONLY = frozenset({EventKind.RUNNING})
# How an abort (or the putting back after it) ended.
ENDINGS = frozenset(
    {
        EventKind.HELD_STOPPED,
        EventKind.ABORT_DONE,
        EventKind.REVERTED,
        EventKind.REVERT_FAILED,
        EventKind.LOG_PUT_BACK,
        EventKind.PUT_BACK_FAILED,
    }
)

# The fields the store adds to every logged event, and the export's own.
_BOOKKEEPING = ("seq", "prev", "hash", "raw")


@dataclass(frozen=True)
class Event:
    """One event. `rid`, `step`, `at` are set by the store when it is logged (`step` and
    `at` are also set on the event a listener gets); payload fields left None are not
    written."""

    kind: EventKind
    rid: str = ""
    step: str | None = None
    actor: str | None = None
    at: int | None = None
    # payload, as the log has held it
    cluster: str | None = None
    backup: str | None = None
    procedure: str | None = None
    procedure_version: str | None = None
    reason: str | None = None
    summary: str | None = None
    commands: list[dict[str, str]] | None = None
    plan_digest: str | None = None
    risk: str | None = None
    revert: bool | None = None
    ids: list[str] | None = None
    before: Any = None
    after: Any = None
    host: str | None = None
    attempt: int | None = None
    exit_status: int | None = None
    duration: float | None = None
    error: str | None = None
    output_sha256: str | None = None
    worker: str | None = None
    appears_finished: bool | None = None
    # told to the fronts only
    ok: bool | None = None
    status: str | None = None
    ending: str | None = None
    # what only this process has (never logged): see the module's docstring
    live: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The event as the log holds it: `type` is its kind, empty fields left out. A
        payload field that is a falsy value but not None (0, "", False) is kept."""
        out: dict[str, Any] = {"type": self.kind.value}
        for f in fields(self):
            if f.name in ("kind", "rid", "live", "ok", "status", "ending"):
                continue
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        # An event whose actor is None and that always had "actor" in the log keeps it.
        return out

    def to_store(self) -> dict[str, Any]:
        """What the engine hands the store: to_dict() without what the store sets."""
        out = self.to_dict()
        for key in ("step", "at"):
            out.pop(key, None)
        return out

    def info(self) -> dict[str, Any]:
        """What a listener gets with the kind (the `listener(kind, info)` adapter)."""
        out: dict[str, Any] = {"rid": self.rid}
        for f in fields(self):
            if f.name in ("kind", "rid", "live"):
                continue
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        out.update(self.live)
        return out

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], rid: str = "") -> Event:
        """An event from its logged form (`type` is its kind). A field this type does
        not know is refused, naming it; the store's bookkeeping (seq, prev, hash, raw)
        is dropped."""
        kind_raw = body.get("type")
        try:
            kind = EventKind(str(kind_raw))
        except ValueError:
            raise ValueError(f"event type {kind_raw!r} is not an EventKind") from None
        known = {f.name for f in fields(cls)} - {"kind", "rid", "live"}
        values: dict[str, Any] = {}
        for key, value in body.items():
            if key == "type" or key in _BOOKKEEPING:
                continue
            if key not in known:
                raise ValueError(f"event {kind.value}: unknown field {key!r}")
            values[key] = value
        return cls(kind=kind, rid=rid, **values)
