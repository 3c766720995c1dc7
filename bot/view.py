"""One view of a restore for both fronts: what the root message and a step card show.

`root_view` and `step_view` compute, from the stored record alone (`RestoreRecord`: its
meta, step states and data, that is the facts, the stored plans and previews) and the
stored host results, frozen dataclasses that say *what* is shown: the plan with each
step's status, a step's commands per host (as planned in its stored plan, or as sent for
a read-only step that ran), its file-edit diffs, its previews as data (the wipe's sizes,
the review's listing, the leader table, the backup choice, the kills), its check line,
and the actions it offers with their labels, styles and confirm dialogs.

Nothing here talks to Slack, Redis, SSH or the engine. `bot.blocks` renders these views
as Block Kit, `bot.console` as text: both show the same commands, diffs and actions
because both render the same view. No step id is named here: steps treated specially
are found by their `Role` (runbook.step).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runbook import actions, approvals
from runbook.clusters import Cluster
from runbook.ports import HostResult
from runbook.procedures import PROCEDURES
from runbook.redact import redact
from runbook.step import Procedure, Risk, Role, Step, Targets, procedure_named
from runbook.store import RestoreRecord

DONE = ("succeeded", "skipped")


def procedure_of(rec: RestoreRecord) -> Procedure:
    """The procedure a restore follows: `rec.data["procedure"]` (or its meta's) names
    it; a restore stored before procedures had names follows the online one."""
    return procedure_named(PROCEDURES, {"rid": rec.rid, **rec.meta})


def _num(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class Confirm:
    """A confirm dialog: Slack's `confirm` object; the console asks its own way."""

    title: str
    text: str
    yes: str
    no: str = "Cancel"
    destructive: bool = False  # it runs a destructive step


@dataclass(frozen=True)
class Action:
    """One choice offered. `kind` is the Slack action id and the engine operation;
    `key` is the console's letter and `prompt` its text (`[a]pprove`)."""

    kind: str
    label: str
    key: str
    prompt: str
    style: str | None = None
    confirm: Confirm | None = None
    plan: str | None = None  # the digest an approval is bound to
    # A button on the Slack card. An awaiting step's abort is not one: in Slack it is
    # the slash command's (`/aurora-restore abort`), in the console a choice at the prompt.
    button: bool = True

    @property
    def destructive(self) -> bool:
        return self.confirm is not None and self.confirm.destructive


def _destructive_confirm(step: Step, cluster: Cluster, verb: str) -> Confirm | None:
    """Every run of a destructive step asks to confirm: a retry and a Mark done too."""
    if step.risk is not Risk.DESTRUCTIVE:
        return None
    return Confirm(
        f"{verb} {step.id}?",
        f"DESTRUCTIVE: {step.title} on {step.targets.value} of {cluster.name}. "
        + ("The person who started the restore cannot do this." if cluster.two_person_rule else ""),
        f"Yes, {verb.lower()}",
        destructive=True,
    )


def _approve_confirm(step: Step, cluster: Cluster) -> Confirm | None:
    if step.risk is not Risk.DESTRUCTIVE:
        return None
    return Confirm(
        f"Run {step.id}?",
        f"DESTRUCTIVE: {step.title} on {step.targets.value} of {cluster.name}. "
        "This cannot be undone. "
        + (
            "The person who started the restore cannot approve it."
            if cluster.two_person_rule
            else ""
        ),
        "Yes, run it",
        destructive=True,
    )


def _abort(cluster: Cluster, *, button: bool = True) -> Action:
    return Action(
        "abort",
        "Abort",
        "b",
        "a[b]ort",
        button=button,
        style="danger",
        confirm=Confirm(
            "Abort the restore?",
            f"This stops the restore of {cluster.name}. The next dialog asks whether to revert "
            "every change made so far.",
            "Abort",
        ),
    )


def _skip(step: Step) -> list[Action]:
    return [Action("skip", "Skip…", "s", "[s]kip")] if step.skippable else []


def step_actions(
    rec: RestoreRecord, cluster: Cluster, step: Step, status: str, state: Mapping[str, Any]
) -> tuple[Action, ...]:
    """What a step in `status` offers, in the order the card shows it."""
    if status == "awaiting":
        digest = (rec.data.get(f"plan:{step.id}") or {}).get("digest")
        approve = Action(
            "approve",
            "Approve",
            "a",
            "[a]pprove",
            style="primary",
            confirm=_approve_confirm(step, cluster),
            plan=digest if isinstance(digest, str) else None,
        )
        out = [approve, *_skip(step)]
        review = rec.data.get("review")
        if step.role is Role.REVIEW and isinstance(review, Mapping) and review.get("count"):
            out.append(Action("delete_tasks", "Delete tasks…", "d", "[d]elete tasks"))
        return (*out, _abort(cluster, button=False))
    if status == "failed":
        out = []
        rewind = state.get("rewind")
        if rewind:
            label = step.rewind_label or f"Back to {rewind}"
            out.append(
                Action(
                    "rewind",
                    label,
                    "g",
                    f"[g] {label}",
                    style="primary",
                    confirm=Confirm(
                        "Stage the backup again?",
                        f"Goes back to {rewind}: the leader is found again, the backup placed "
                        f"on it and staged, the tasks reviewed, and {step.id} approved again. "
                        "Each step needs its approval.",
                        "Go back",
                    ),
                )
            )
        recheck = step.risk is Risk.READ_ONLY
        out.append(
            Action(
                "retry",
                "Re-check" if recheck else "Retry",
                "r",
                "[r]e-check" if recheck else "[r]etry",
                style=None if rewind else "primary",
                confirm=_destructive_confirm(step, cluster, "Retry"),
            )
        )
        return (*out, *_skip(step), _abort(cluster))
    if status == "interrupted":
        out = [
            Action(
                "retry",
                "Retry",
                "r",
                "[r]etry",
                style="primary",
                confirm=_destructive_confirm(step, cluster, "Retry"),
            )
        ]
        # Done only where the step's check says it finished (runbook.actions.CHECK).
        if state.get("appears_finished"):
            out.append(
                Action(
                    "mark_done",
                    "Mark done",
                    "d",
                    "[d]one (it finished)",
                    confirm=_destructive_confirm(step, cluster, "Mark done"),
                )
            )
        return (*out, *_skip(step), _abort(cluster))
    return ()


# ---------------------------------------------------------------- root


@dataclass(frozen=True)
class BackupView:
    """The backup of a restore: `state` is "unchosen" (preflight has not run),
    "none" (none was found) or "chosen"."""

    state: str
    name: str = ""
    age: float | None = None  # seconds, from the snapshot (runbook.backups)
    too_old: bool = False
    max_age: str = ""
    requested: str = ""


@dataclass(frozen=True)
class PlanItem:
    sid: str
    title: str
    status: str
    destructive: bool
    reason: str
    current: bool  # the restore is at this step and it is not done


@dataclass(frozen=True)
class RootView:
    rid: str
    cluster: str
    procedure: str
    procedure_title: str
    aurora_versions: str
    status: str
    started_by: str
    started_by_name: str
    started_at_ms: int | None
    backup: BackupView
    plan: tuple[PlanItem, ...]
    done: int
    current: str
    schedulers: int
    # On the root: export the transcript (once it ended), put the old log back (after
    # an abort that held the schedulers stopped on a wiped log).
    actions: tuple[Action, ...]
    # The Aurora version the procedure was chosen for (runbook.choice), when known.
    procedure_version: str = ""


def backup_view(facts: Mapping[str, Any], cluster: Cluster, requested: str = "") -> BackupView:
    if "backup" not in facts:
        return BackupView("unchosen", requested=requested)
    name = facts.get("backup")
    if not name:
        return BackupView("none")
    age = facts.get("backup_age")
    seconds = float(age) if isinstance(age, int | float) else None
    too_old = seconds is not None and seconds > cluster.max_backup_age_delta.total_seconds()
    return BackupView("chosen", str(name), seconds, too_old, cluster.max_backup_age)


def root_actions(rec: RestoreRecord) -> tuple[Action, ...]:
    out: list[Action] = []
    if rec.status != "running":
        out.append(Action("export", "Export transcript", "x", "e[x]port"))
    if rec.status == "aborted" and rec.data.get("held_after_wipe"):
        out.append(
            Action(
                "put_back",
                "Put the old log back",
                "p",
                "[p]ut the old log back",
                style="danger",
                confirm=Confirm(
                    "Put the old log back?",
                    "On every scheduler: the archive of the old log (sha256-checked) replaces the "
                    "wiped log, the files are reverted and the schedulers start with their "
                    "normal flags on the old log. Needs an approver other than the one who "
                    "started the restore.",
                    "Put it back",
                ),
            )
        )
    return tuple(out)


def root_view(rec: RestoreRecord, procedure: Procedure, cluster: Cluster) -> RootView:
    """The root message of a restore, from its record."""
    meta: Mapping[str, Any] = rec.meta
    known = {s.id: s for s in procedure}
    items = []
    for sid in [str(s) for s in meta.get("plan", [])]:
        state = rec.steps.get(sid) or {}
        status = str(state.get("status", "pending"))
        step = known.get(sid)
        items.append(
            PlanItem(
                sid,
                step.title if step else "",
                status,
                step is not None and step.risk is Risk.DESTRUCTIVE,
                str(state.get("reason") or "") if status == "skipped" else "",
                sid == rec.current and status not in DONE,
            )
        )
    at = meta.get("started_at")
    return RootView(
        rid=str(rec.rid),
        cluster=str(meta.get("cluster") or cluster.name),
        procedure=procedure.name,
        procedure_title=procedure.title,
        aurora_versions=procedure.aurora_versions,
        procedure_version=str(meta.get("procedure_version") or ""),
        status=str(rec.status),
        started_by=str(meta.get("started_by", "")),
        started_by_name=str(meta.get("started_by_name") or ""),
        started_at_ms=int(at) if isinstance(at, int | float) and at > 0 else None,
        backup=backup_view(rec.data, cluster, str(meta.get("requested_backup") or "")),
        plan=tuple(items),
        done=sum(1 for i in items if i.status in DONE),
        current=str(rec.current or ""),
        schedulers=len(cluster.schedulers),
        actions=root_actions(rec),
    )


# ---------------------------------------------------------------- step card: previews


@dataclass(frozen=True)
class HostCommands:
    host: str
    commands: tuple[str, ...]


@dataclass(frozen=True)
class FileEdit:
    host: str
    path: str
    diff: str  # unified diff, secrets masked


@dataclass(frozen=True)
class WipeHost:
    host: str
    files: int | None  # None: cannot tell (`error` says why)
    bytes: int | None
    error: str = ""
    archive: str = ""  # where the archiving step put the old log; "" when none
    archive_known: bool = False  # the preview says whether there is an archive


@dataclass(frozen=True)
class WipePreview:
    hosts: tuple[WipeHost, ...]

    @property
    def files(self) -> int:
        return sum(h.files or 0 for h in self.hosts)

    @property
    def bytes(self) -> int:
        return sum(h.bytes or 0 for h in self.hosts)

    @property
    def without_archive(self) -> tuple[str, ...]:
        return tuple(h.host for h in self.hosts if not h.archive)


@dataclass(frozen=True)
class Deletion:
    asked: int
    removed: int
    before: int
    after: int
    still_there: tuple[str, ...]
    ok: bool


@dataclass(frozen=True)
class ReviewPreview:
    """The staged (or restored) tasks under review; `error` when listing failed."""

    error: str = ""
    count: int = 0
    by_status: tuple[tuple[str, int], ...] = ()
    by_role: tuple[tuple[str, int], ...] = ()
    by_job: tuple[tuple[str, int], ...] = ()
    deletions: tuple[Deletion, ...] = ()
    has_listing: bool = False


@dataclass(frozen=True)
class KillsPreview:
    """What approving the step that fills the log kills (runbook.forecast)."""

    known: bool
    summary: str = ""
    by_role: tuple[tuple[str, int], ...] = ()
    why: str = ""


@dataclass(frozen=True)
class BackupOption:
    name: str
    age: float | None
    holders: int


@dataclass(frozen=True)
class BackupChoice:
    """The backups the team may still choose from (only while nothing has changed)."""

    options: tuple[BackupOption, ...]
    chosen: str


@dataclass(frozen=True)
class LeaderRow:
    host: str
    sources: tuple[tuple[str, str], ...]  # (source, what it said)


# Slack allows 100 options; 50 keep the card within its budget, and hold every backup
# a scheduler keeps by default (-max_saved_backups=48) on one host.
MAX_OPTIONS = 50


def _counts(raw: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(raw, Mapping):
        return ()
    return tuple(sorted(((str(k), _num(v)) for k, v in raw.items()), key=lambda kv: -kv[1]))


def wipe_preview(raw: Any) -> WipePreview | None:
    if not isinstance(raw, Mapping) or not raw:
        return None
    hosts = []
    for host, info in raw.items():
        if isinstance(info, Mapping) and "error" not in info:
            hosts.append(
                WipeHost(
                    str(host),
                    _num(info.get("files")),
                    _num(info.get("bytes")),
                    archive=str(info.get("archive") or ""),
                    archive_known="archive" in info,
                )
            )
        else:
            err = info.get("error") if isinstance(info, Mapping) else info
            known = isinstance(info, Mapping) and "archive" in info
            archive = str(info.get("archive") or "") if isinstance(info, Mapping) else ""
            hosts.append(WipeHost(str(host), None, None, str(err), archive, known))
    return WipePreview(tuple(hosts))


def review_preview(raw: Any) -> ReviewPreview | None:
    if not isinstance(raw, Mapping):
        return None
    if "error" in raw:
        return ReviewPreview(error=str(raw["error"]))
    summary = raw.get("summary")
    if not isinstance(summary, Mapping):
        return None
    deletions = []
    for d in raw.get("deletions") or []:
        if isinstance(d, Mapping):
            deletions.append(
                Deletion(
                    len(d.get("ids") or []),
                    len(d.get("removed") or []),
                    _num(d.get("before")),
                    _num(d.get("after")),
                    tuple(str(t) for t in d.get("still_there") or []),
                    bool(d.get("ok", True)),
                )
            )
    return ReviewPreview(
        count=_num(raw.get("count")),
        by_status=_counts(summary.get("status")),
        by_role=_counts(summary.get("role")),
        by_job=_counts(summary.get("job")),
        deletions=tuple(deletions),
        has_listing=bool(raw.get("listing")),
    )


def kills_preview(raw: Any) -> KillsPreview:
    kills = raw if isinstance(raw, Mapping) else {}
    if kills.get("known"):
        return KillsPreview(True, str(kills.get("summary", "")), _counts(kills.get("by_role")))
    return KillsPreview(False, why=str(kills.get("why", "no forecast")))


def backup_choice_open(rec: RestoreRecord, procedure: Procedure) -> bool:
    """The backup may change while nothing has: preflight done, and every step after
    it (but the acknowledgement of an old backup) still pending or awaiting."""
    preflight = procedure.first(Role.PREFLIGHT)
    if rec.status != "running" or preflight is None:
        return False
    if rec.steps.get(preflight.id, {}).get("status") != "succeeded":
        return False
    early = {s.id for s in procedure if s.role in (Role.PREFLIGHT, Role.ACK_BACKUP)}
    return all(
        st.get("status") in ("pending", "awaiting")
        for sid, st in rec.steps.items()
        if sid not in early and sid in rec.meta.get("plan", [])
    )


def backup_choice(rec: RestoreRecord, procedure: Procedure) -> BackupChoice | None:
    """The backups found, newest first (at most MAX_OPTIONS, the chosen one always among
    them), while the choice is open."""
    backups = rec.data.get("backups")
    if not backup_choice_open(rec, procedure) or not isinstance(backups, Mapping) or not backups:
        return None
    chosen = rec.data.get("backup")
    names = sorted(backups, reverse=True)[:MAX_OPTIONS]
    if chosen in backups and chosen not in names:
        names = [*names[: MAX_OPTIONS - 1], chosen]
    options = []
    for name in names:
        holders = backups[name] if isinstance(backups[name], list) else []
        options.append(BackupOption(str(name), actions.backup_age(str(name)), len(holders)))
    return BackupChoice(tuple(options), str(chosen or ""))


def leader_rows(raw: Any) -> tuple[LeaderRow, ...]:
    if not isinstance(raw, Mapping):
        return ()
    rows = []
    for host, sources in raw.items():
        said = sources.items() if isinstance(sources, Mapping) else ()
        rows.append(LeaderRow(str(host), tuple((str(k), str(v)) for k, v in said)))
    return tuple(rows)


# ---------------------------------------------------------------- step card


@dataclass(frozen=True)
class Interruption:
    """After the bot died in the step: what its check says (None: not checked yet)."""

    appears_finished: bool | None
    check: str


@dataclass(frozen=True)
class StepView:
    rid: str
    cluster: str
    sid: str
    known: bool  # False: the record names a step the procedure does not have
    title: str
    phase: str
    explain: str
    role: Role
    risk: Risk
    targets: Targets
    target_hosts: tuple[str, ...]  # for Targets.LEADER: the leader, when known
    status: str
    attempt: int
    position: tuple[int, int] | None  # (1-based place in the plan, steps in the plan)
    waited: str  # "waiting for approval for 12m" while awaiting
    commands: tuple[HostCommands, ...]  # as planned (stored plan), or as sent (read-only)
    commands_error: str
    plan_error: str
    plan_digest: str
    edits: tuple[FileEdit, ...]
    reads: tuple[str, ...]  # what it also reads, to check (sorted, masked)
    wipe: WipePreview | None
    review: ReviewPreview | None
    kills: KillsPreview | None
    backup: BackupView | None  # on the acknowledgement of an old backup
    choice: BackupChoice | None  # on the preflight, while the backup may change
    leader_table: tuple[LeaderRow, ...]
    check: str
    suggest_skip: bool
    two_person: bool  # a destructive step needs an approver other than the requester
    approved_by: str
    skipped_by: str
    reason: str
    summary: str
    error: str
    interruption: Interruption | None
    results: tuple[HostResult, ...]  # failed hosts first
    running_on: tuple[str, ...]  # hosts with no result yet, while running
    actions: tuple[Action, ...]

    def action(self, kind: str) -> Action | None:
        return next((a for a in self.actions if a.kind == kind), None)


def _target_hosts(step: Step, cluster: Cluster, facts: Mapping[str, Any]) -> tuple[str, ...]:
    if step.targets is Targets.BOT:
        return ()
    if step.targets is Targets.LEADER:
        return (str(facts["leader"]),) if facts.get("leader") else ()
    return tuple(s.host for s in cluster.schedulers)


def _running_on(
    step: Step, cluster: Cluster, targets: tuple[str, ...], got: Mapping[str, HostResult]
) -> tuple[str, ...]:
    """The hosts a running step has no result from yet (all schedulers while the
    leader it targets is not known)."""
    if step.targets is Targets.LEADER and not targets:
        targets = tuple(s.host for s in cluster.schedulers)
    return tuple(h for h in targets if h not in got)


def _ran(state: Mapping[str, Any], part: str) -> dict[str, list[str]]:
    """What a read-only step sent (`commands`) or read with (`reads`), per host, in
    the batches the engine records on its state."""
    out: dict[str, list[str]] = {}
    for batch in state.get(part) or []:
        if isinstance(batch, Mapping):
            for host, command in batch.items():
                seen = out.setdefault(str(host), [])
                shown = redact(str(command))
                if shown not in seen:  # a poll sends the same command again
                    seen.append(shown)
    return out


def _commands(
    cluster: Cluster, step: Step, facts: Mapping[str, Any], state: Mapping[str, Any]
) -> tuple[tuple[HostCommands, ...], str]:
    """Per host: the stored plan's commands; for a read-only step that ran, those it
    sent; otherwise the step's templates as far as the facts render them."""
    sent = _ran(state, "commands")
    try:
        planned = sent or actions.planned_commands(cluster, step, facts)
    except Exception as exc:  # a card must render even if the facts are odd
        return (), f"{type(exc).__name__}: {exc}"
    return tuple(HostCommands(h, tuple(cs)) for h, cs in planned.items()), ""


def _edits(plan: Mapping[str, Any]) -> tuple[FileEdit, ...]:
    out = []
    for host, edits in (plan.get("files") or {}).items():
        for path, edit in edits.items():
            diff = str(edit.get("diff") or f"{path}: no change\n")
            out.append(FileEdit(str(host), str(path), redact(diff)))
    return tuple(out)


def _interruption(status: str, state: Mapping[str, Any]) -> Interruption | None:
    if status != "interrupted":
        return None
    finished = bool(state["appears_finished"]) if "appears_finished" in state else None
    return Interruption(finished, str(state.get("check") or ""))


def _waited(rec: RestoreRecord, sid: str, now_ms: int | None) -> str:
    since = dict(approvals.waiting_for(rec)).get(sid)
    if since is None:
        return "waiting for approval"
    return approvals.waited_text(since, now_ms if now_ms is not None else int(time.time() * 1000))


def step_view(
    rec: RestoreRecord,
    procedure: Procedure,
    step: Step | str,
    cluster: Cluster,
    *,
    results: Mapping[str, HostResult] | None = None,
    now_ms: int | None = None,
) -> StepView:
    """The card of one step, from the record and the stored results of its attempt
    (`Store.step_results`). A step id the procedure does not know gives a view with
    `known=False` (the card says so)."""
    sid = step if isinstance(step, str) else step.id
    found: Step | None = step if isinstance(step, Step) else None
    if found is None:
        try:
            found = procedure.step(sid)
        except KeyError:
            found = None
    state: Mapping[str, Any] = rec.steps.get(sid) or {}
    status = str(state.get("status", "pending"))
    facts: Mapping[str, Any] = rec.data
    if found is None:
        return _unknown(rec, cluster, sid, status)
    s = found
    plan_ids = [str(x) for x in rec.meta.get("plan") or []]
    plan = facts.get(f"plan:{sid}")
    plan = plan if isinstance(plan, Mapping) else {}
    commands, commands_error = _commands(cluster, s, facts, state)
    reads = {c for cs in (plan.get("reads") or {}).values() for c in cs}
    reads |= {c for cs in _ran(state, "reads").values() for c in cs}
    targets = _target_hosts(s, cluster, facts)
    got: Mapping[str, HostResult] = results or {}
    digest = plan.get("digest")
    return StepView(
        rid=str(rec.rid),
        cluster=cluster.name,
        sid=sid,
        known=True,
        title=s.title,
        phase=s.phase,
        explain=s.explain,
        role=s.role,
        risk=s.risk,
        targets=s.targets,
        target_hosts=targets,
        status=status,
        attempt=_num(state.get("attempt")),
        position=(plan_ids.index(sid) + 1, len(plan_ids)) if sid in plan_ids else None,
        waited=_waited(rec, sid, now_ms) if status == "awaiting" else "",
        commands=commands,
        commands_error=commands_error,
        plan_error=str(plan.get("error") or ""),
        plan_digest=digest if isinstance(digest, str) else "",
        edits=() if plan.get("error") else _edits(plan),
        reads=tuple(sorted(redact(str(c)) for c in reads)),
        wipe=wipe_preview(facts.get(f"preview:{sid}")) if s.role is Role.WIPE else None,
        review=review_preview(facts.get("review")) if s.role is Role.REVIEW else None,
        kills=kills_preview(facts.get("kills")) if s.fills_log else None,
        backup=backup_view(facts, cluster) if s.role is Role.ACK_BACKUP else None,
        choice=backup_choice(rec, procedure) if s.role is Role.PREFLIGHT else None,
        leader_table=leader_rows(facts.get("leader_table")) if s.role is Role.LEADER else (),
        check=s.check,
        suggest_skip=s.suggest_skip,
        two_person=s.risk is Risk.DESTRUCTIVE and cluster.two_person_rule,
        approved_by=str(state.get("approved_by") or ""),
        skipped_by=str(state.get("skipped_by") or ""),
        reason=str(state.get("reason") or ""),
        summary=str(state.get("summary") or ""),
        error=str(state.get("error") or ""),
        interruption=_interruption(status, state),
        results=tuple(sorted(got.values(), key=lambda r: r.ok)),
        running_on=_running_on(s, cluster, targets, got) if status == "running" else (),
        actions=step_actions(rec, cluster, s, status, state),
    )


def _unknown(rec: RestoreRecord, cluster: Cluster, sid: str, status: str) -> StepView:
    return StepView(
        rid=str(rec.rid),
        cluster=cluster.name,
        sid=sid,
        known=False,
        title="",
        phase="",
        explain="",
        role=Role.NONE,
        risk=Risk.READ_ONLY,
        targets=Targets.BOT,
        target_hosts=(),
        status=status,
        attempt=0,
        position=None,
        waited="",
        commands=(),
        commands_error="",
        plan_error="",
        plan_digest="",
        edits=(),
        reads=(),
        wipe=None,
        review=None,
        kills=None,
        backup=None,
        choice=None,
        leader_table=(),
        check="",
        suggest_skip=False,
        two_person=False,
        approved_by="",
        skipped_by="",
        reason="",
        summary="",
        error="",
        interruption=None,
        results=(),
        running_on=(),
        actions=(),
    )
