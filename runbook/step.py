"""What a step and a procedure are, apart from any one procedure's steps.

A procedure (`Procedure`) is an ordered tuple of steps with a name and the Aurora
versions it is written for. The engine, the views and the transcript are given a
procedure; none of them names a step id. Where they treat a step specially (the
preflight's gates, the listing under review, the wipe's preview, the leader tables, the
final verification) they ask for the step's `role`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # runbook.actions imports this module: only the types, not at run time
    from runbook.actions import Edit, Outcome, StepContext
    from runbook.plan import Plan

# What a step runs, and its read-only "did it run?" check: the same shape.
RunFn = Callable[["StepContext"], Awaitable["Outcome"]]
PreviewFn = Callable[["StepContext"], Awaitable[dict[str, Any]]]
# A machine-checked precondition: None when it holds, else why not (approval is refused).
PreconditionFn = Callable[["StepContext"], Awaitable[str | None]]
# Whether the step is in the plan at all, from the facts learnt so far.
ConditionFn = Callable[[Mapping[str, Any]], bool]
# The files a step edits on one host, and how (runbook.actions.make_plan).
FileEditsFn = Callable[["StepContext", str], "list[Edit]"]
# What a step adds to its plan besides its commands and file edits (a copy between hosts).
ExtendPlanFn = Callable[["StepContext", "Plan"], Awaitable[None]]


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
    REVIEWERS = "the rehydrated scheduler and the blank ones of the quorum"


@dataclass(frozen=True)
class Step:
    """One step, with the functions that are its behaviour: `run` does it, `verify` tells
    after a bot died in it whether it appears to have finished (read-only; None: it
    cannot tell), `preview` gathers what its card shows while it waits for approval,
    `precondition` refuses its approval while it does not hold, `condition` decides
    whether it is in the plan at all, `file_edits` names the files it edits (their new
    content is part of the plan approved) and `extend_plan` adds the rest of its plan."""

    id: str
    phase: str
    title: str
    explain: str
    targets: Targets
    risk: Risk
    commands: tuple[str, ...]
    check: str
    run: RunFn
    verify: RunFn | None = None
    preview: PreviewFn | None = None
    precondition: PreconditionFn | None = None
    condition: ConditionFn | None = None
    file_edits: FileEditsFn | None = None
    extend_plan: ExtendPlanFn | None = None
    skippable: bool = True
    # Shown as "suggested: skip" and skipped by unattended runs.
    suggest_skip: bool = False
    # What the views, the engine and the transcript treat specially (see Role).
    role: Role = Role.NONE
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
    # The fact (runbook data key) holding the leader table the step's summary prints
    # (preflight_table, leader_table, failover_table): the transcript checks it.
    table_fact: str = ""
    # The fact its preview is kept under (default: preview:<id>); the views read it.
    preview_fact: str = ""

    def preview_key(self) -> str:
        return self.preview_fact or f"preview:{self.id}"


@dataclass(frozen=True)
class Procedure:
    """One way to restore: its name ("online", "offline"), for the root message and
    transcript.json, the Aurora versions it is written for, and its steps in order."""

    name: str
    title: str
    aurora_versions: str
    steps: tuple[Step, ...]
    # How a revert brings the schedulers back with their normal flags once the files
    # are back (it stops them first); None: stop all, then start all at once. The offline
    # procedure starts the rehydrated scheduler first (runbook.offline.restart).
    restart: RunFn | None = None

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


def procedure_named(procedures: Mapping[str, Procedure], meta: Mapping[str, Any]) -> Procedure:
    """The procedure a restore follows, from its record's meta (a record from before
    procedures had names follows the online one). One that this bot does not know is
    refused, never guessed: its steps would be drawn and run as another procedure's."""
    from runbook.errors import Refused

    name = str(meta.get("procedure") or "online")
    try:
        return procedures[name]
    except KeyError:
        raise Refused(
            f"restore {meta.get('rid', '?')} follows procedure {name!r}, "
            "which this bot does not know"
        ) from None
