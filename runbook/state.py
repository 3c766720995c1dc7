"""The states a step and a restore can be in, and the moves allowed between them.

One vocabulary (`StepStatus`, `RestoreStatus`, str enums: they are stored in Redis and
written to transcripts as their plain values) and one table per kind of thing
(`STEP_TRANSITIONS`, `RESTORE_TRANSITIONS`). Every engine operation that changes a status
asks `step_transition` / `restore_transition` first, so a move the table does not allow
is a programming error, named, before anything is written; the store's Lua script then
makes the allowed move atomically (runbook.store).

A move to the same status (a refusal noted on a waiting step, a host's result while it
runs, the check after an interruption) is allowed for every status that has such events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class StepStatus(StrEnum):
    PENDING = "pending"  # not reached yet, or sent back (rewind, another backup)
    AWAITING = "awaiting"  # waiting for a person's approval
    RUNNING = "running"  # a worker holds its lease and runs it
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # by a person, or because its condition does not hold
    INTERRUPTED = "interrupted"  # its worker died while it ran; a person decides
    # How the transcript shows a step skipped because its condition did not hold (the
    # store keeps it as skipped, with the reason "not needed").
    NOT_NEEDED = "not needed"


class RestoreStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # its verification passed
    FAILED = "failed"  # ended without a passed verification (or its preflight failed)
    ABORTED = "aborted"  # stopped by a person (held stopped, or the revert failed)
    REVERTED = "reverted"  # aborted, and every change undone
    PUTTING_BACK = "putting_back"  # after an abort past the wipe: the old log goes back


S = StepStatus
STEP_TRANSITIONS: Mapping[StepStatus, frozenset[StepStatus]] = {
    # advance: to its approval, run (read-only), or not needed (its condition)
    S.PENDING: frozenset({S.AWAITING, S.RUNNING, S.SKIPPED}),
    # approve / delete tasks; expiry, another backup, rewind; skip; a failed
    # precondition that offers the way back; a refusal or a new plan noted (same)
    S.AWAITING: frozenset({S.RUNNING, S.PENDING, S.SKIPPED, S.FAILED, S.AWAITING}),
    # how it ended; back to its approval after deleting tasks; its worker died; a
    # host's result noted (same)
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.AWAITING, S.INTERRUPTED, S.RUNNING}),
    # retry; skip; rewind; a refusal noted (same)
    S.FAILED: frozenset({S.RUNNING, S.SKIPPED, S.PENDING, S.FAILED}),
    # retry; mark done; skip; its check or a refusal noted (same)
    S.INTERRUPTED: frozenset({S.RUNNING, S.SUCCEEDED, S.SKIPPED, S.INTERRUPTED}),
    # rewind, or the acknowledgement decided again for another backup
    S.SUCCEEDED: frozenset({S.PENDING}),
    S.SKIPPED: frozenset({S.PENDING}),
    # shown only, never stored
    S.NOT_NEEDED: frozenset(),
}

R = RestoreStatus
RESTORE_TRANSITIONS: Mapping[RestoreStatus, frozenset[RestoreStatus]] = {
    R.RUNNING: frozenset({R.SUCCEEDED, R.FAILED, R.ABORTED}),
    # how an abort ends (held stopped and revert_failed stay aborted); put the log back
    R.ABORTED: frozenset({R.ABORTED, R.REVERTED, R.PUTTING_BACK}),
    R.PUTTING_BACK: frozenset({R.REVERTED, R.ABORTED}),
    R.SUCCEEDED: frozenset(),
    R.FAILED: frozenset(),
    R.REVERTED: frozenset(),
}
del S, R

# A step that needs nothing more (the next one may come).
DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})
# A step that ran, or runs: its attempt counts.
RAN = frozenset(
    {StepStatus.RUNNING, StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.INTERRUPTED}
)


class TransitionRefused(Exception):
    """A move the transitions table does not allow: a programming error, not a person's."""


def _parse(kind: type[StepStatus] | type[RestoreStatus], value: str, what: str) -> StrEnum:
    try:
        return kind(value)
    except ValueError:
        raise TransitionRefused(f"{what}: {value!r} is not a {kind.__name__}") from None


def step_transition(old: str, new: str) -> StepStatus:
    """The new status, if the table allows a step to move from `old` to it."""
    o = StepStatus(_parse(StepStatus, old, "step status"))
    n = StepStatus(_parse(StepStatus, new, "step status"))
    if n not in STEP_TRANSITIONS[o]:
        raise TransitionRefused(f"a step cannot go from {o.value} to {n.value}")
    return n


def restore_transition(old: str, new: str) -> RestoreStatus:
    """The new status, if the table allows a restore to move from `old` to it."""
    o = RestoreStatus(_parse(RestoreStatus, old, "restore status"))
    n = RestoreStatus(_parse(RestoreStatus, new, "restore status"))
    if n not in RESTORE_TRANSITIONS[o]:
        raise TransitionRefused(f"a restore cannot go from {o.value} to {n.value}")
    return n


def step_moves(olds: Iterable[str], new: str | None) -> tuple[StepStatus, ...]:
    """`olds` as statuses, each checked against the table for a move to `new` (None:
    the status stays, which each old one must allow); for the store's `allowed`."""
    out = []
    for old in olds:
        status = StepStatus(_parse(StepStatus, old, "step status"))
        step_transition(status, new if new is not None else status)
        out.append(status)
    return tuple(out)


def restore_moves(olds: Iterable[str], new: str) -> tuple[RestoreStatus, ...]:
    """`olds` as restore statuses, each checked against the table for a move to `new`."""
    out = []
    for old in olds:
        status = RestoreStatus(_parse(RestoreStatus, old, "restore status"))
        restore_transition(status, new)
        out.append(status)
    return tuple(out)
