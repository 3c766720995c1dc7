"""What a step and a procedure are, apart from any one procedure's steps.

A procedure (`Procedure`) is an ordered tuple of steps with a name and the Aurora
versions it is written for. The engine, the views and the transcript are given a
procedure; none of them names a step id. Where they treat a step specially (the
preflight's gates, the listing under review, the wipe's preview, the leader tables, the
final verification) they ask for the step's `role`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What is special about a step, for code that is not the procedure's definition."""

    NONE = "none"
    PREFLIGHT = "preflight"  # every gate; the backup may be chosen again after it
    ACK_BACKUP = "ack_backup"  # the team acknowledges an old backup
    WIPE = "wipe"  # empties the log; its card previews what goes
    LEADER = "leader"  # finds the leader; its card and the transcript show the table
    REVIEW = "review"  # the staged or restored tasks, listed for review (delete modal)
    VERIFY = "verify"  # the end: a leader ACTIVE with the reviewed tasks
    TRANSCRIPT = "transcript"  # posts the transcript


class Risk(StrEnum):
    READ_ONLY = "read-only"  # runs without approval as soon as the restore reaches it
    MUTATING = "mutating"  # one approval from an allowed approver
    DESTRUCTIVE = "destructive"  # an approver other than the requester, and a confirm dialog


class Targets(StrEnum):
    ALL = "all schedulers"
    LEADER = "the leader"
    BOT = "the bot"
    # The offline procedure's (runbook.offline.target_hosts): the scheduler recovery-tool
    # rehydrates, the blank ones started next to reach the quorum, and the others.
    REHYDRATED = "the rehydrated scheduler"
    QUORUM = "blank schedulers, up to the quorum"
    REST = "the other blank schedulers"


@dataclass(frozen=True)
class Step:
    id: str
    phase: str
    title: str
    explain: str
    targets: Targets
    risk: Risk
    commands: tuple[str, ...]
    check: str
    skippable: bool = True
    # Shown as "suggested: skip" and skipped by unattended runs.
    suggest_skip: bool = False
    # What the views, the engine and the transcript treat specially (see Role).
    role: Role = Role.NONE
    # Name of a condition (runbook.engine) that decides whether the step is in the plan.
    condition: str | None = None
    # Name of a machine-checked precondition: approval is refused while it fails.
    precondition: str | None = None
    # Read-only commands the step also sends (its checks, its card's preview, reading the
    # files it edits): part of the plan shown and approved (runbook.plan).
    reads: tuple[str, ...] = ()
    # Marked "added" in the runbook: not in Aurora's page, done by careful operators.
    added: bool = False
    # When the precondition fails, the step fails and offers to go back to this earlier
    # step (every step from there on runs again, each with its approval).
    rewind_to: str | None = None
    # What the way back is called on the card, in refusals and in the console.
    rewind_label: str = ""
    # The replicated log: a step that empties it opens the window in which no scheduler
    # may start with its normal flags; a step that fills it from the backup closes it.
    empties_log: bool = False
    fills_log: bool = False
    # Starts schedulers with their normal flags (or leads there): refused in that window.
    needs_real_log: bool = False
    # A failure ends the restore at once and frees the cluster (nothing was changed yet).
    fail_ends_restore: bool = False


@dataclass(frozen=True)
class Procedure:
    """One way to restore: its name ("online", "offline"), for the root message and
    transcript.json, the Aurora versions it is written for, and its steps in order."""

    name: str
    title: str
    aurora_versions: str
    steps: tuple[Step, ...]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def by_role(self, role: Role) -> list[Step]:
        return [s for s in self.steps if s.role is role]

    def first(self, role: Role) -> Step | None:
        found = self.by_role(role)
        return found[0] if found else None
