"""The engine: moves one restore through the procedure, with its state in Redis only.

Step and restore states, and the moves allowed between them: runbook.state (every move
goes through `_move`/`_restore_move`). Events, logged and told to the listener alike:
runbook.events. The engine is given its procedures (`procedures`, by name) and never
names a step: it asks a restore's procedure (`procedure_of`) for steps by role.

Nothing is kept in memory between calls: any bot process (or this one after a restart)
can continue any restore. Whoever wins the atomic transition of a step into `running`
runs it, holding a lease it renews; a step whose lease ran out (its bot died) is
`interrupted` and never re-run without a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook import actions, approvals, commands as cmd, preflight
from runbook.actions import Outcome, StepContext, Timing
from runbook.clusters import Cluster
from runbook.errors import (
    Refused as Refused,  # its home is the error tree
    reason_of,
)
from runbook.events import Event, EventKind as K
from runbook.listing import listing_ids
from runbook.local_checks import local_problems
from runbook.plan import Plan
from runbook.ports import (
    HostResult,
    LeaderDetector,
    MesosTasks,
    Remote,
    SourcesCheck,
    VarsProbe,
)
from runbook.redact import redact, redact_capped
from runbook.state import (
    DONE,
    RAN,
    RestoreStatus,
    StepStatus,
    restore_moves,
    step_moves,
)
from runbook.step import Procedure, Risk, Role, Step, procedure_named
from runbook.store import RETRY_PAUSE_MAX, RestoreRecord, Store, Transition, output_digest

log = logging.getLogger(__name__)

OUTPUT_CAP = 64 * 1024


# How long a finished restore stays in Redis unless the composition root (bot.wiring,
# from AURORA_RESTORE_RETENTION) says otherwise.
DEFAULT_RETENTION_SECONDS = 90 * 86400


@dataclass(frozen=True)
class Actor:
    id: str
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.id


Connect = Callable[[Cluster], tuple[Remote, VarsProbe]]
MayApprove = Callable[[Cluster, Actor], Awaitable[bool]]
# Told every event as it happens: its kind (an EventKind, the log's vocabulary) and
# Event.info() (the event's fields, plus what only this process has: see runbook.events).
Listener = Callable[[str, dict[str, Any]], Awaitable[None] | None]


def backup_choice_open(rec: RestoreRecord, procedure: Procedure) -> bool:
    """The backup may change while nothing has: preflight done, nothing past it approved."""
    pre = procedure.first(Role.PREFLIGHT)
    if (
        pre is None
        or rec.status != RestoreStatus.RUNNING
        or rec.steps.get(pre.id, {}).get("status") != StepStatus.SUCCEEDED
    ):
        return False
    early = {
        s.id for s in (*procedure.by_role(Role.PREFLIGHT), *procedure.by_role(Role.ACK_BACKUP))
    }
    return all(
        st.get("status") in (StepStatus.PENDING, StepStatus.AWAITING)
        for sid, st in rec.steps.items()
        if sid not in early and sid in rec.meta["plan"]
    )


def log_window_open(procedure: Procedure, rec: RestoreRecord) -> bool:
    """From the first run of a step that empties the replicated log (log.wipe) until a step
    that fills it from the backup (restore.commit) has succeeded, no path may start a
    scheduler with its normal flags: on an empty log it would register, reconcile and
    kill every running task (the seed page's own warning)."""

    def state(s: Step) -> dict[str, Any]:
        st: dict[str, Any] = rec.steps.get(s.id, {})
        return st

    emptied = any(
        s.empties_log
        and (int(state(s).get("attempt", 0) or 0) > 0 or state(s).get("status") in RAN)
        for s in procedure
    )
    filled = all(state(s).get("status") == StepStatus.SUCCEEDED for s in procedure if s.fills_log)
    return emptied and not filled


def _touches_schedulers(step: Step) -> bool:
    """A step that stops or starts schedulers or edits their flags: after it, the revert
    restarts them so that they run with their normal flags again."""
    return step.risk is not Risk.READ_ONLY and any(
        "{!service_" in c or "{env_file}" in c for c in step.commands
    )


async def _close_ports(pair: tuple[Remote, VarsProbe]) -> None:
    remote, probe = pair
    await remote.close()
    close = getattr(probe, "close", None)
    if close is not None:
        await close()


async def console_approvers(cluster: Cluster, actor: Actor) -> bool:
    return actor.id in cluster.approvers.console


def _sent(ctx: StepContext) -> dict[str, list[dict[str, str]]]:
    """What a step sent (`commands`) and read with (`reads`, at most 500 batches) so far,
    redacted, as its state records them for its card."""
    return {
        "commands": [{h: redact(c) for h, c in batch.items()} for batch in ctx.sent],
        "reads": [{h: redact(c) for h, c in b.items()} for b in ctx.reads][:500],
    }


@dataclass
class Engine:
    store: Store
    clusters: dict[str, Cluster]
    connect: Connect
    worker: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:8]}")
    may_approve: MayApprove = console_approvers
    lease_ms: int = 10_000
    timing: Timing = field(default_factory=Timing)
    listener: Listener | None = None
    detect: LeaderDetector | None = None
    sources: SourcesCheck | None = None
    mesos: MesosTasks | None = None
    # How each restore is done, by name (runbook.procedure.PROCEDURES, given by the
    # composition root); a restore keeps its procedure's name from its start.
    procedures: Mapping[str, Procedure] = field(kw_only=True)
    # Which procedure a new restore of a cluster follows, and why (default: "online").
    # A chooser may also say the Aurora version it chose for (runbook.choice.chooser):
    # kept as the record's procedure_version.
    choose: Callable[[Cluster], Awaitable[tuple[str, str] | tuple[str, str, str | None]]] | None = (
        None
    )
    # Finished restores expire from Redis after this long (export works until then).
    retention_seconds: int = DEFAULT_RETENTION_SECONDS
    _io: dict[str, tuple[Remote, VarsProbe]] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    _reads: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    # ------------------------------------------------------------ helpers

    def _ports(self, cluster: Cluster) -> tuple[Remote, VarsProbe]:
        if cluster.name not in self._io:
            self._io[cluster.name] = self.connect(cluster)
        return self._io[cluster.name]

    async def close(self) -> None:
        ports = list(self._io.values())
        self._io.clear()
        for pair in ports:
            await _close_ports(pair)

    async def release(self, cluster_name: str) -> None:
        """Close one cluster's ports (SSH, /vars, its ZooKeeper client): its restore
        ended, and the next restore of the cluster opens them anew."""
        pair = self._io.pop(cluster_name, None)
        if pair is not None:
            await _close_ports(pair)

    async def _notify(self, event: Event) -> None:
        """Tell the listener (the fronts) about an event: `listener(kind, info)`."""
        if self.listener is None:
            return
        try:
            res = self.listener(event.kind, event.info())
            if asyncio.iscoroutine(res):
                await res
        except Exception:  # a broken display must not break a restore
            log.exception("listener failed on %s", event.kind)

    async def _move(
        self,
        rid: str,
        sid: str,
        olds: tuple[str, ...],
        new: StepStatus | None,
        patch: dict[str, Any],
        event: Event,
        *,
        restore_patch: dict[str, str] | None = None,
        lease: str = "",
    ) -> Transition:
        """Move step `sid` from one of `olds` to `new` (None: its status stays), each
        move checked against runbook.state's table first; the store makes it atomically
        and logs `event` (runbook.store)."""
        allowed = step_moves(olds, new)
        if new is not None:
            patch = {**patch, "status": new}
        return await self.store.transition(
            rid, sid, allowed, patch, event.to_store(), restore_patch=restore_patch, lease=lease
        )

    async def _restore_move(
        self,
        rid: str,
        olds: tuple[str, ...],
        new: RestoreStatus,
        event: Event,
        *,
        patch: dict[str, str] | None = None,
        release: bool = False,
    ) -> tuple[bool, str]:
        """Move the restore from one of `olds` to `new` (checked against runbook.state's
        table), logging `event`."""
        allowed = restore_moves(olds, new)
        return await self.store.restore_event(
            rid, {**(patch or {}), "status": new}, event.to_store(), allowed, release=release
        )

    async def record(self, rid: str) -> RestoreRecord:
        rec = await self.store.load(rid)
        if rec is None:
            raise Refused(f"no restore {rid}")
        return rec

    def cluster_of(self, rec: RestoreRecord) -> Cluster:
        return self.clusters[rec.meta["cluster"]]

    def procedure_of(self, rec: RestoreRecord) -> Procedure:
        """The procedure a restore follows (see runbook.step.procedure_named)."""
        return procedure_named(self.procedures, {"rid": rec.rid, **rec.meta})

    def step(self, sid: str, rec: RestoreRecord) -> Step:
        """Step `sid` of the procedure `rec` follows."""
        try:
            return self.procedure_of(rec).step(sid)
        except KeyError:
            raise Refused(f"unknown step {sid!r}") from None

    async def _choose(self, cluster: Cluster) -> tuple[Procedure, str, str | None]:
        chosen = await self.choose(cluster) if self.choose is not None else ("online", "")
        name, why = chosen[0], chosen[1]
        version = chosen[2] if len(chosen) > 2 else None
        if name not in self.procedures:
            known = ", ".join(sorted(self.procedures)) or "none"
            raise Refused(f"{cluster.name}: no procedure {name!r} (known: {known})")
        return self.procedures[name], why, version

    # ------------------------------------------------------------ operations

    async def start(self, cluster_name: str, backup: str | None, by: Actor) -> str:
        from runbook.inputs import start_args  # the front ends' own check, one wording

        start_args(cluster_name, backup, self.clusters)
        cluster = self.clusters[cluster_name]
        problem = local_problems(cluster)
        if problem is not None:
            raise Refused(problem)
        if not await self.may_approve(cluster, by):
            raise Refused(
                f"{by.label} is not an approver for {cluster.name}: only an approver may start a restore"
            )
        procedure, why, version = await self._choose(cluster)
        rid = uuid.uuid4().hex[:12]
        steps = {s.id: {"status": StepStatus.PENDING, "attempt": 0} for s in procedure}
        meta = {
            "id": rid,
            "cluster": cluster.name,
            "aurora_name": cluster.aurora_name,
            "requested_backup": backup,
            "started_by": by.id,
            "started_by_name": by.label,
            "plan": procedure.ids(),
            "procedure": procedure.name,
            "procedure_why": why,
            "procedure_version": version,
        }
        ok, holder = await self.store.create(
            rid,
            cluster.name,
            meta,
            steps,
            Event(
                K.RESTORE_STARTED,
                actor=by.id,
                cluster=cluster.name,
                backup=backup,
                procedure=procedure.name,
                procedure_version=version,
            ).to_store(),
        )
        if not ok:
            raise Refused(f"cluster {cluster.name} already has a restore running: {holder}")
        await self.store.set_data(rid, requested_backup=backup)
        await self._notify(Event(K.RESTORE_STARTED, rid=rid, actor=by.id, procedure=procedure.name))
        return rid

    async def _check_approver(self, cluster: Cluster, by: Actor) -> None:
        if not await self.may_approve(cluster, by):
            raise Refused(f"{by.label} is not an approver for {cluster.name}")

    def _two_person(self, rec: RestoreRecord, step: Step, by: Actor, doing: str) -> None:
        """Every run of a destructive step (a first approval, a retry, a Mark done, the
        step after an interruption) needs an approver other than the requester, who is
        an approver too (start checks it): two distinct approvers."""
        if (
            step.risk is Risk.DESTRUCTIVE
            and self.cluster_of(rec).two_person_rule
            and by.id == rec.meta["started_by"]
        ):
            raise Refused(
                f"{step.id} is destructive: {doing} it needs an approver other than "
                f"{by.label}, who started the restore"
            )

    async def _context(
        self, rec: RestoreRecord, step: Step, on_result: Any = None, guarded: bool = False
    ) -> StepContext:
        """A step's context; `guarded`: its remote sends only what the step's stored plan
        holds (runbook.plan), for everything a step that changes something sends."""
        cluster = self.cluster_of(rec)
        remote, probe = self._ports(cluster)
        facts = dict(rec.data)

        async def learn(**values: Any) -> None:
            facts.update(values)
            await self.store.set_data(rec.rid, **values)

        return StepContext(
            cluster,
            step,
            facts,
            remote,
            probe,
            learn,
            on_result,
            self.timing,
            self.detect,
            sources=self.sources,
            mesos=self.mesos,
            plan=self._stored_plan(rec, step) if guarded else None,
        )

    def _stored_plan(self, rec: RestoreRecord, step: Step) -> Plan | None:
        if step.risk is Risk.READ_ONLY:
            return None
        raw = rec.data.get(f"plan:{step.id}")
        return Plan.from_dict(raw) if isinstance(raw, dict) and "commands" in raw else Plan()

    async def _render_plan(self, rec: RestoreRecord, step: Step) -> dict[str, Any]:
        """The step's plan rendered now (a dict with its digest, or an error)."""
        try:
            plan = await actions.make_plan(await self._context(rec, step))
        except Exception as exc:  # the card says what could not be rendered
            return {"error": f"{type(exc).__name__}: {redact(str(exc))}"}
        return plan.to_dict()

    async def _bind_plan(
        self, rec: RestoreRecord, step: Step, by: Actor, status: str, seen: str | None
    ) -> str:
        """Right before a step that changes something runs: its plan rendered again must
        be the one shown (and, from a card, the one its approver saw). Otherwise the
        approval is void: the new plan is stored, the card asks again, and the thread
        says why. Returns the digest approved."""
        stored = rec.data.get(f"plan:{step.id}") or {}
        fresh = await self._render_plan(rec, step)
        if "error" in fresh:
            raise Refused(f"{step.id} cannot run: its plan cannot be rendered: {fresh['error']}")
        if seen is not None and stored.get("digest") not in (None, seen):
            raise Refused(
                f"{step.id}: the card you approved is not the current one; look at it again"
            )
        if stored.get("digest") == fresh["digest"]:
            return str(fresh["digest"])
        old = Plan.from_dict(stored) if "commands" in stored else Plan()
        why = "; ".join(old.differences(Plan.from_dict(fresh))) or "it was not rendered before"
        await self.store.set_data(rec.rid, **{f"plan:{step.id}": fresh})
        await self._move(
            rec.rid,
            step.id,
            (status,),
            None,
            {},
            Event(K.PLAN_CHANGED, actor=by.id, reason=why[:500]),
        )
        await self._notify(
            Event(K.PLAN_CHANGED, rid=rec.rid, step=step.id, actor="bot", reason=why[:500])
        )
        raise Refused(
            f"{step.id}: what it would do changed since the card was shown ({why}); "
            "the card shows it again: approve again"
        )

    async def approve(self, rid: str, sid: str, by: Actor, seen: str | None = None) -> Outcome:
        """Run a waiting step for `by`. `seen` is the plan digest on the card approved."""
        rec = await self.record(rid)
        step = self.step(sid, rec)
        cluster = self.cluster_of(rec)
        self._require_running(rec)
        state = rec.steps.get(sid, {})
        if sid not in rec.meta["plan"]:
            raise Refused(f"{sid} is not in this restore's plan")
        if state.get("status") != StepStatus.AWAITING:
            raise Refused(f"{sid} is not waiting for approval (it is {state.get('status')})")
        await self._check_approver(cluster, by)
        self._two_person(rec, step, by, "approving")
        await self._expire(rec, step, by)
        await self._precondition(rec, step, by, StepStatus.AWAITING)
        digest = (
            await self._bind_plan(rec, step, by, StepStatus.AWAITING, seen)
            if step.risk is not Risk.READ_ONLY
            else None
        )
        won = await self._move(
            rid,
            sid,
            (StepStatus.AWAITING,),
            StepStatus.RUNNING,
            {"approved_by": by.id, "attempt": int(state.get("attempt", 0)) + 1},
            Event(K.APPROVED, actor=by.id, plan_digest=digest),
            restore_patch={"current": sid},
            lease=f"take:{self.worker}:{self.lease_ms}",
        )
        if not won.ok:
            raise Refused(f"{sid} was already {won.step.get('status')} (approved by someone else?)")
        await self._notify(Event(K.APPROVED, rid=rid, step=sid, actor=by.id, plan_digest=digest))
        outcome = await self._execute(rid, sid)
        await self.advance(rid)
        return outcome

    async def _expire(self, rec: RestoreRecord, step: Step, by: Actor) -> None:
        """An approval given long after the card was shown (approvals.expire_after) is
        refused: the step goes back, its plan and preview are rendered again, and it asks
        again (runbook.approvals)."""
        cluster = self.cluster_of(rec)
        since = dict(approvals.waiting_for(rec, await self.store.events(rec.rid))).get(step.id)
        why = (
            approvals.expired(
                since,
                int(time.time() * 1000),
                cluster.approvals.expire_after_ms,
                cluster.approvals.expire_after,
            )
            if since is not None
            else None
        )
        if not why:
            return
        await self._move(
            rec.rid,
            step.id,
            (StepStatus.AWAITING,),
            StepStatus.PENDING,
            {},
            Event(K.APPROVAL_EXPIRED, actor=by.id, reason=why),
        )
        await self._notify(
            Event(K.APPROVAL_EXPIRED, rid=rec.rid, step=step.id, actor=by.id, reason=why)
        )
        await self.advance(rec.rid)
        raise Refused(why)

    async def _precondition(self, rec: RestoreRecord, step: Step, by: Actor, status: str) -> None:
        """Refuse to run a step whose precondition fails, saying why. A step that can go
        back (`rewind_to`) fails instead, so that its card offers the way back."""
        if step.needs_real_log and log_window_open(self.procedure_of(rec), rec):
            window = (
                "the replicated log was wiped and the backup is not committed: starting the "
                "schedulers with their normal flags now would kill every running task"
            )
            await self._move(
                rec.rid, step.id, (status,), None, {}, Event(K.REFUSED, actor=by.id, reason=window)
            )
            raise Refused(f"{step.id} cannot run now: {window}")
        if step.precondition is None:
            return
        why = await step.precondition(await self._context(rec, step, guarded=True))
        if not why:
            return
        if step.rewind_to and status == StepStatus.AWAITING:
            res = await self._move(
                rec.rid,
                step.id,
                (status,),
                StepStatus.FAILED,
                {"summary": why, "rewind": step.rewind_to},
                Event(K.FAILED, actor=by.id, reason=why),
            )
            if res.ok:
                await self._notify(
                    Event(K.FAILED, rid=rec.rid, step=step.id, actor=by.id, ok=False, summary=why)
                )
            raise Refused(
                f"{step.id} did not run: {why}. Go back with “{step.rewind_label}”, or abort."
            )
        await self._move(
            rec.rid, step.id, (status,), None, {}, Event(K.REFUSED, actor=by.id, reason=why)
        )
        back = f". Go back with “{step.rewind_label}”, or abort" if step.rewind_to else ""
        raise Refused(f"{step.id} cannot run now: {why}{back}")

    async def rewind(self, rid: str, sid: str, by: Actor) -> str:
        """Go back from a failed step to its `rewind_to`: every step from there runs again."""
        rec = await self.record(rid)
        step = self.step(sid, rec)
        self._require_running(rec)
        await self._check_approver(self.cluster_of(rec), by)
        target = step.rewind_to
        if target is None:
            raise Refused(f"{sid} has no earlier step to go back to")
        if rec.steps.get(sid, {}).get("status") != StepStatus.FAILED:
            raise Refused(f"{sid} can go back only after it failed")
        plan = rec.meta["plan"]
        again = plan[plan.index(target) : plan.index(sid) + 1]
        reset = {"summary": "", "approved_by": None, "rewind": None}
        # The first step's transition decides who goes back: a second click is refused.
        first = await self._move(
            rid,
            target,
            (*sorted(DONE), StepStatus.FAILED),
            StepStatus.PENDING,
            reset,
            Event(K.REWOUND, actor=by.id, reason=f"back from {sid}"),
        )
        if not first.ok:
            raise Refused(f"already going back to {target}")
        for other in again[1:]:
            await self._move(
                rid,
                other,
                (*sorted(DONE), StepStatus.FAILED, StepStatus.AWAITING),
                StepStatus.PENDING,
                reset,
                Event(K.RESET, actor=by.id, reason=f"back to {target} from {sid}"),
            )
        await self.store.set_data(rid, staged_on=None, reviewed_count=None, review=None)
        await self._notify(
            Event(K.REWOUND, rid=rid, step=sid, actor=by.id, reason=f"back to {target}")
        )
        await self.advance(rid)
        return target

    async def choose_backup(self, rid: str, backup: str, by: Actor) -> None:
        """Another backup than the one preflight chose, before anything was changed."""
        rec = await self.record(rid)
        self._require_running(rec)
        cluster = self.cluster_of(rec)
        await self._check_approver(cluster, by)
        try:
            cmd.backup_id(backup)
        except cmd.InvalidValue as exc:
            raise Refused(str(exc)) from None
        if backup not in (rec.data.get("backups") or {}):
            raise Refused(f"{backup} is not on any scheduler")
        procedure = self.procedure_of(rec)
        if not backup_choice_open(rec, procedure):
            first = next((s.id for s in procedure if _touches_schedulers(s)), "the first stop")
            raise Refused(f"the backup can be changed only until {first} is approved")
        if backup == rec.data.get("backup"):
            raise Refused(f"{backup} is already the chosen backup")
        # The new backup is proven as preflight proved the first (decoded, forecast)
        # before anything about the choice changes.
        holders = sorted(rec.data["backups"][backup])
        if cluster.rehydrate is not None and cluster.rehydrate not in holders:
            raise Refused(
                f"{backup} is not on {cluster.rehydrate} (rehydrate in the cluster file); "
                f"the hosts that hold it: {', '.join(holders)}"
            )
        ctx = await self._context(rec, self.step(rec.meta["plan"][0], rec))
        ctx.facts["backup"] = backup
        proven, unusable = await preflight.prove_backup(ctx, backup, holders)
        if unusable is not None:
            raise Refused(f"{backup} cannot be restored: {unusable}")
        waiting = [s for s in rec.meta["plan"] if rec.steps[s]["status"] == StepStatus.AWAITING]
        event = Event(
            K.BACKUP_CHOSEN,
            actor=by.id,
            backup=backup,
            reason=f"{rec.data.get('backup')} → {backup}",
        )
        # The waiting step goes back to pending: an approval racing with this loses, or wins.
        for sid in waiting:
            res = await self._move(rid, sid, (StepStatus.AWAITING,), StepStatus.PENDING, {}, event)
            if not res.ok:
                raise Refused(f"{sid} was approved meanwhile: the backup stays")
        taken_at = proven["backup_info"]["taken_at"]
        await self.store.set_data(rid, **actions.backup_facts(backup, cluster, taken_at), **proven)
        # The acknowledgement of the backup's age is decided again, for the new backup.
        acks = {s.id for s in procedure.by_role(Role.ACK_BACKUP)}
        plan = [s.id for s in procedure if s.id in rec.meta["plan"] or s.id in acks]
        if plan != rec.meta["plan"]:
            await self.store.set_meta(rid, {**rec.meta, "plan": plan})
        for ack in sorted(acks):
            await self._move(
                rid,
                ack,
                (StepStatus.SKIPPED, StepStatus.SUCCEEDED, StepStatus.AWAITING),
                StepStatus.PENDING,
                {"reason": "", "approved_by": None},
                Event(K.RESET, actor=by.id, reason=f"backup changed to {backup}"),
            )
        await self._notify(
            Event(K.BACKUP_CHOSEN, rid=rid, actor=by.id, backup=backup, reason=event.reason)
        )
        await self.advance(rid)

    async def delete_tasks(self, rid: str, ids: list[str], by: Actor) -> Outcome:
        """scheduler_delete_recovery_tasks on the leader while restore.review waits, then
        a re-print; the step waits again, with the new listing, for its approval."""
        rec = await self.record(rid)
        review = self.procedure_of(rec).first(Role.REVIEW)
        if review is None:
            raise Refused("this restore's procedure has no review of staged tasks")
        sid = review.id
        self._require_running(rec)
        await self._check_approver(self.cluster_of(rec), by)
        from runbook.inputs import task_ids  # the delete modal's own check, one wording

        ids = task_ids(ids, listing_ids((rec.data.get("review") or {}).get("listing", "")))
        state = rec.steps.get(sid, {})
        # Holding the step (running, with a lease) keeps it from being approved meanwhile.
        won = await self._move(
            rid,
            sid,
            (StepStatus.AWAITING,),
            StepStatus.RUNNING,
            {"attempt": int(state.get("attempt", 0)) + 1},
            Event(K.DELETING_TASKS, actor=by.id, ids=ids[:500]),
            restore_patch={"current": sid},
            lease=f"take:{self.worker}:{self.lease_ms}",
        )
        if not won.ok:
            raise Refused(f"{sid} is not waiting for approval (it is {won.step.get('status')})")
        rec = await self.record(rid)
        outcome, summary, commands_sent = await self._hold_and_run(
            rec, sid, lambda ctx: actions.delete_tasks(ctx, ids), guarded=False
        )
        await self._move(
            rid,
            sid,
            (StepStatus.RUNNING,),
            StepStatus.AWAITING,
            {"summary": summary, "commands": commands_sent},
            Event(
                K.TASKS_DELETED,
                actor=by.id,
                summary=summary,
                commands=commands_sent,
                before=outcome.details.get("before"),
                after=outcome.details.get("after"),
            ),
            lease=f"own:{self.worker}",
        )
        await self._notify(
            Event(K.TASKS_DELETED, rid=rid, step=sid, actor=by.id, ok=outcome.ok, summary=summary)
        )
        return outcome

    async def skip(self, rid: str, sid: str, by: Actor, reason: str) -> None:
        rec = await self.record(rid)
        step = self.step(sid, rec)
        self._require_running(rec)
        await self._check_approver(self.cluster_of(rec), by)
        if not step.skippable:
            raise Refused(f"{sid} cannot be skipped")
        if not reason.strip():
            raise Refused("a skip needs a reason")
        res = await self._move(
            rid,
            sid,
            (StepStatus.AWAITING, StepStatus.FAILED, StepStatus.INTERRUPTED),
            StepStatus.SKIPPED,
            {"skipped_by": by.id, "reason": reason[:500]},
            Event(K.SKIPPED, actor=by.id, reason=reason[:500]),
        )
        if not res.ok:
            raise Refused(
                f"{sid} cannot be skipped while it is {res.step.get('status', 'unknown')}"
            )
        await self._notify(Event(K.SKIPPED, rid=rid, step=sid, actor=by.id, reason=reason[:500]))
        await self.advance(rid)

    async def retry(self, rid: str, sid: str, by: Actor) -> Outcome:
        rec = await self.record(rid)
        step = self.step(sid, rec)
        self._require_running(rec)
        await self._check_approver(self.cluster_of(rec), by)
        self._two_person(rec, step, by, "retrying")
        state = rec.steps.get(sid, {})
        if state.get("status") in (StepStatus.FAILED, StepStatus.INTERRUPTED):
            await self._precondition(rec, step, by, str(state["status"]))
            if step.risk is not Risk.READ_ONLY:
                await self._bind_plan(rec, step, by, str(state["status"]), None)
        won = await self._move(
            rid,
            sid,
            (StepStatus.FAILED, StepStatus.INTERRUPTED),
            StepStatus.RUNNING,
            {"attempt": int(state.get("attempt", 0)) + 1, "retried_by": by.id},
            Event(K.RETRIED, actor=by.id),
            restore_patch={"current": sid},
            lease=f"take:{self.worker}:{self.lease_ms}",
        )
        if not won.ok:
            raise Refused(
                f"{sid} can be retried only after it failed or was interrupted (it is {won.step.get('status')})"
            )
        await self._notify(Event(K.RETRIED, rid=rid, step=sid, actor=by.id))
        outcome = await self._execute(rid, sid)
        await self.advance(rid)
        return outcome

    async def mark_done(self, rid: str, sid: str, by: Actor) -> None:
        """An interrupted step whose check shows it finished: a person says so."""
        rec = await self.record(rid)
        self._require_running(rec)
        await self._check_approver(self.cluster_of(rec), by)
        self._two_person(rec, self.step(sid, rec), by, "marking done")
        if rec.steps.get(sid, {}).get("status") == StepStatus.INTERRUPTED and not rec.steps[
            sid
        ].get("appears_finished"):
            raise Refused(
                f"{sid} can be marked done only when its check says it finished "
                f"({rec.steps[sid].get('check') or 'it has no check'}): retry it, or abort"
            )
        res = await self._move(
            rid,
            sid,
            (StepStatus.INTERRUPTED,),
            StepStatus.SUCCEEDED,
            {"marked_done_by": by.id},
            Event(K.MARKED_DONE, actor=by.id),
        )
        if not res.ok:
            raise Refused(
                f"only an interrupted step can be marked done ({sid} is {res.step.get('status')})"
            )
        await self._notify(Event(K.MARKED_DONE, rid=rid, step=sid, actor=by.id))
        await self.advance(rid)

    async def abort(self, rid: str, by: Actor, revert: bool) -> str:
        """Stop the restore. Before the log was wiped, `revert` undoes every change and
        starts the schedulers with their normal flags. After the wipe and before a
        successful commit, nothing starts: the schedulers are stopped and stay disabled,
        and a person chooses the way on (`put_back_log`, or leave them stopped)."""
        rec = await self.record(rid)
        self._require_running(rec)
        await self._check_approver(self.cluster_of(rec), by)
        ok, status = await self._restore_move(
            rid,
            (RestoreStatus.RUNNING,),
            RestoreStatus.ABORTED,
            Event(K.ABORTED, actor=by.id, revert=revert),
        )
        if not ok:
            raise Refused(f"the restore is {status}, not running")
        task = self._tasks.get(rid)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        rec = await self.record(rid)
        for sid, st in rec.steps.items():
            if st.get("status") == StepStatus.RUNNING:
                await self._move(
                    rid,
                    sid,
                    (StepStatus.RUNNING,),
                    StepStatus.FAILED,
                    {"error": "aborted"},
                    Event(K.FAILED, actor=by.id, reason="aborted"),
                )
        rec = await self.record(rid)
        if log_window_open(self.procedure_of(rec), rec):
            outcome = await self._hold_stopped(rec)
            await self.store.set_data(rid, held_after_wipe=True)
            await self._end(
                rid, RestoreStatus.ABORTED, K.HELD_STOPPED, by, outcome.summary, ok=outcome.ok
            )
            return RestoreStatus.ABORTED
        if not revert:
            await self._end(
                rid, RestoreStatus.ABORTED, K.ABORT_DONE, by, "nothing was reverted", ok=True
            )
            return RestoreStatus.ABORTED
        try:
            outcome = await self._revert(rec)
        except Exception as exc:  # the revert must end, and say how
            log.exception("revert of %s failed", rid)
            outcome = Outcome(False, f"the revert stopped on {type(exc).__name__}: {exc}")
        final = RestoreStatus.REVERTED if outcome.ok else RestoreStatus.ABORTED
        await self._end(
            rid,
            final,
            K.REVERTED if outcome.ok else K.REVERT_FAILED,
            by,
            outcome.summary,
            outcome.ok,
        )
        if not outcome.ok:
            raise Refused(f"aborted, but the revert failed: {outcome.summary}")
        return final

    async def _end(
        self, rid: str, final: RestoreStatus, kind: K, by: Actor, summary: str, ok: bool
    ) -> None:
        """Record how an abort ended (`kind`, one of runbook.events.ENDINGS), free the
        cluster, and tell the fronts."""
        summary = redact(summary)[:3000]
        # Taken before the cluster is freed: a restore started next gets ports of its own.
        ports = self._io.pop((await self.record(rid)).meta["cluster"], None)
        await self._restore_move(
            rid,
            (RestoreStatus.ABORTED,),
            final,
            Event(kind, actor=by.id, summary=summary),
            release=True,
        )
        if kind is not K.HELD_STOPPED:  # a held restore still needs them for its revert
            await self.store.set_data(rid, originals=None)
        await self.store.expire(rid, self.retention_seconds)
        if ports is not None:
            await _close_ports(ports)
        await self._notify(
            Event(kind, rid=rid, actor=by.id, summary=summary, ok=ok, status=final, ending=kind)
        )

    def _held_summary(self, rec: RestoreRecord, stopped: Outcome) -> str:
        archives = rec.data.get("archives") or {}
        cluster = self.cluster_of(rec)
        missing = [
            s.host for s in cluster.schedulers if not (archives.get(s.host) or {}).get("sha256")
        ]
        disabled = any(s.file_edits is not None for s in self.procedure_of(rec))
        first = (
            "The replicated log was wiped and the backup was not committed: nothing was "
            "started. The schedulers are stopped and stay disabled (their environment files "
            "still point at the bogus Mesos master), so no start, not even a reboot's, "
            "registers on an empty log."
            if disabled
            else "The replicated log was wiped and the backup was not written into it: "
            "nothing was started. The schedulers are stopped; their environment files are "
            "their normal ones (this procedure edits none), so do not start one by hand on "
            "the empty log, and keep the hosts from rebooting into it until a way on is chosen."
        )
        lines = [
            first,
            f"Stopping them: {stopped.summary}",
            "Two ways on:",
        ]
        if missing:
            lines.append(
                "- Put the old log back: not possible on "
                + ", ".join(missing)
                + " (no archive recorded by log.archive)."
            )
        else:
            lines.append(
                "- Put the old log back from the log.archive tarballs (sha256-checked), then "
                "revert the files and start the schedulers on it (“Put the old log back”; "
                "console: `aurora-restore put-back`)."
            )
        lines.append(
            "- Or leave everything as it is and restore by hand; per host: "
            + "; ".join(f"{h}: archive {a.get('path', '-')}" for h, a in sorted(archives.items()))
            if archives
            else "- Or leave everything as it is and restore by hand (no archive exists)."
        )
        return "\n".join(lines)

    async def _hold_stopped(self, rec: RestoreRecord) -> Outcome:
        """Stop every scheduler and keep the files as they are (disabled)."""
        ctx = await self._context(rec, self._step_with(rec, "empties_log"))
        try:
            stopped = await actions.stop(ctx)
        except Exception as exc:
            stopped = Outcome(False, f"{type(exc).__name__}: {exc}")
        return Outcome(stopped.ok, self._held_summary(rec, stopped))

    def _step_with(self, rec: RestoreRecord, flag: str) -> Step:
        """The first step of the restore's procedure with `flag` set (empties_log, ...)."""
        return next(s for s in self.procedure_of(rec) if getattr(s, flag))

    async def put_back_log(self, rid: str, by: Actor) -> str:
        """After an abort that left the schedulers stopped on a wiped log: put the archived
        log back on every host (its sha256 checked against log.archive's), then revert the
        files and start the schedulers with their normal flags on the old log."""
        rec = await self.record(rid)
        cluster = self.cluster_of(rec)
        await self._check_approver(cluster, by)
        if rec.status != RestoreStatus.ABORTED or not rec.data.get("held_after_wipe"):
            raise Refused(
                "only a restore aborted after the wipe, with its schedulers held stopped, can have its old log put back"
            )
        if cluster.two_person_rule and by.id == rec.meta["started_by"]:
            raise Refused(
                f"putting the old log back needs an approver other than {by.label}, who started the restore"
            )
        archives = rec.data.get("archives") or {}
        missing = [
            s.host for s in cluster.schedulers if not (archives.get(s.host) or {}).get("sha256")
        ]
        if missing:
            raise Refused(
                f"no archive recorded by log.archive on {', '.join(missing)}: the old log cannot be put back there"
            )
        if not rec.data.get("originals"):
            raise Refused("the original files are no longer kept: revert them by hand")
        ok, status = await self._restore_move(
            rid,
            (RestoreStatus.ABORTED,),
            RestoreStatus.PUTTING_BACK,
            Event(K.PUTTING_BACK, actor=by.id),
        )
        if not ok:
            raise Refused(f"the restore is {status}: the old log is already being put back, or was")
        await self._notify(Event(K.PUTTING_BACK, rid=rid, actor=by.id))
        ctx = await self._context(rec, self._step_with(rec, "empties_log"))
        try:
            outcome = await actions.put_back_log(ctx, archives)
            if outcome.ok:
                reverted = await self._revert(await self.record(rid), restart_always=True)
                outcome = Outcome(reverted.ok, outcome.summary + "\n" + reverted.summary)
        except Exception as exc:
            log.exception("putting the log back for %s failed", rid)
            outcome = Outcome(False, f"stopped on {type(exc).__name__}: {exc}")
        final = RestoreStatus.REVERTED if outcome.ok else RestoreStatus.ABORTED
        kind = K.LOG_PUT_BACK if outcome.ok else K.PUT_BACK_FAILED
        summary = redact(outcome.summary)[:3000]
        await self._restore_move(
            rid,
            (RestoreStatus.PUTTING_BACK,),
            final,
            Event(kind, actor=by.id, summary=summary),
            release=True,
        )
        if outcome.ok:
            await self.store.set_data(rid, held_after_wipe=False, originals=None)
        await self._notify(
            Event(
                kind,
                rid=rid,
                actor=by.id,
                summary=summary,
                ok=outcome.ok,
                status=final,
                ending=kind,
            )
        )
        if not outcome.ok:
            raise Refused(f"putting the old log back failed: {summary}")
        return final

    async def _revert(self, rec: RestoreRecord, restart_always: bool = False) -> Outcome:
        """The revert step's semantics: every file back, and the schedulers restarted with
        their normal flags when the restore stopped or started them. Never in the window
        between the wipe and the commit (log_window_open)."""
        if log_window_open(self.procedure_of(rec), rec) and not restart_always:
            return Outcome(False, "the log was wiped and nothing committed: not reverting")
        ctx = await self._context(rec, self._step_with(rec, "needs_real_log"))
        out = await actions.revert(ctx)
        if not out.ok:
            return Outcome(False, f"files not reverted: {out.summary}; nothing was started")
        touched = restart_always or any(
            int(st.get("attempt", 0) or 0) > 0 and _touches_schedulers(self.step(sid, rec))
            for sid, st in rec.steps.items()
            if st.get("status") != StepStatus.SKIPPED
        )
        if not touched:
            return Outcome(True, out.summary + ".")
        restart = self.procedure_of(rec).restart
        if restart is not None:
            again = await restart(ctx)
            if not again.ok:
                return Outcome(
                    False, f"files reverted; the schedulers did not come back: {again.summary}"
                )
            return Outcome(
                True,
                f"{out.summary}; the schedulers were restarted with their normal flags: {again.summary}",
            )
        stopped = await actions.stop(ctx)
        if not stopped.ok:
            return Outcome(
                False,
                f"files reverted; stopping the schedulers to restart them failed: {stopped.summary}",
            )
        started = await actions.start(ctx)
        if not started.ok:
            return Outcome(
                False, f"files reverted; the schedulers did not come back: {started.summary}"
            )
        return Outcome(
            True,
            f"{out.summary}; the schedulers were restarted with their normal flags: {started.summary}",
        )

    def _require_running(self, rec: RestoreRecord) -> None:
        if rec.status != RestoreStatus.RUNNING:
            raise Refused(f"the restore is {rec.status}")

    # ------------------------------------------------------------ moving on

    async def advance(self, rid: str) -> None:
        """Run read-only steps, and bring the next step to its approval. Idempotent."""
        while True:
            rec = await self.record(rid)
            if rec.status != RestoreStatus.RUNNING:
                return
            nxt = next(
                (sid for sid in rec.meta["plan"] if rec.steps[sid]["status"] not in DONE), None
            )
            if nxt is None:
                await self._finish(rec)
                return
            step = self.step(nxt, rec)
            status = rec.steps[nxt]["status"]
            if status != StepStatus.PENDING:
                return  # waiting for a person, or running elsewhere
            if step.condition is not None and not step.condition(rec.data):
                plan = [s for s in rec.meta["plan"] if s != nxt]
                await self.store.set_meta(rid, {**rec.meta, "plan": plan})
                await self._move(
                    rid,
                    nxt,
                    (StepStatus.PENDING,),
                    StepStatus.SKIPPED,
                    {"reason": "not needed"},
                    Event(K.NOT_NEEDED),
                )
                continue
            if step.risk is Risk.READ_ONLY:
                won = await self._move(
                    rid,
                    nxt,
                    (StepStatus.PENDING,),
                    StepStatus.RUNNING,
                    {"attempt": 1},
                    Event(K.STARTED, actor="bot"),
                    restore_patch={"current": nxt},
                    lease=f"take:{self.worker}:{self.lease_ms}",
                )
                if not won.ok:
                    return
                await self._execute(rid, nxt)
                continue
            # The plan shown is the plan run: rendered now, stored with its digest.
            rendered = await self._render_plan(rec, step)
            await self.store.set_data(rid, **{f"plan:{nxt}": rendered})
            rec.data[f"plan:{nxt}"] = rendered
            preview: dict[str, Any] = {}
            if step.preview is not None:
                try:
                    ctx = await self._context(rec, step, guarded=True)
                    preview = await step.preview(ctx)
                except Exception as exc:  # the card says what could not be gathered
                    preview = {"error": str(exc)}
                await self.store.set_data(rid, **{step.preview_key(): preview})
            res = await self._move(
                rid,
                nxt,
                (StepStatus.PENDING,),
                StepStatus.AWAITING,
                {},
                Event(
                    K.AWAITING_APPROVAL, risk=step.risk.value, plan_digest=rendered.get("digest")
                ),
                restore_patch={"current": nxt},
            )
            if res.ok:
                await self._notify(
                    Event(
                        K.AWAITING_APPROVAL,
                        rid=rid,
                        step=nxt,
                        risk=step.risk.value,
                        live={"preview": preview},
                    )
                )
            return

    async def _finish(self, rec: RestoreRecord) -> None:
        verify = self.procedure_of(rec).by_role(Role.VERIFY)
        verified = bool(verify) and all(
            rec.steps.get(s.id, {}).get("status") == StepStatus.SUCCEEDED for s in verify
        )
        final = RestoreStatus.SUCCEEDED if verified else RestoreStatus.FAILED
        kind = K.RESTORE_SUCCEEDED if verified else K.RESTORE_FAILED
        # Taken before the cluster is freed: a restore started next gets ports of its own.
        ports = self._io.pop(rec.meta["cluster"], None)
        ok, _ = await self._restore_move(
            rec.rid,
            (RestoreStatus.RUNNING,),
            final,
            Event(kind),
            patch={"current": ""},
            release=True,
        )
        if ok:
            await self.store.set_data(rec.rid, originals=None)
            await self.store.expire(rec.rid, self.retention_seconds)
        if ports is not None:
            await _close_ports(ports)
        if ok:
            await self._notify(Event(kind, rid=rec.rid, status=final))

    async def _hold_and_run(
        self,
        rec: RestoreRecord,
        sid: str,
        run: Callable[[StepContext], Awaitable[Outcome]],
        guarded: bool = True,
    ) -> tuple[Outcome, str, list[dict[str, str]]]:
        """Run `run` for a step this worker holds (renewing its lease), recording each
        host's result; returns the outcome, its redacted summary and the commands sent."""
        attempt = int(rec.steps[sid].get("attempt", 1))
        read_only = self.step(sid, rec).risk is Risk.READ_ONLY

        async def on_result(r: HostResult) -> None:
            # A read-only step's card shows what it sent so far, as its results arrive.
            await self._host_result(rec.rid, sid, attempt, r, _sent(ctx) if read_only else {})

        ctx = await self._context(rec, self.step(sid, rec), on_result, guarded=guarded)
        await self._notify(Event(K.RUNNING, rid=rec.rid, step=sid, attempt=attempt))
        renew = asyncio.create_task(self._renew(rec.rid, sid))
        task = asyncio.ensure_future(run(ctx))
        self._tasks[rec.rid] = task
        try:
            outcome = await task
        except asyncio.CancelledError:
            outcome = Outcome(False, "cancelled (abort)")
        except Exception as exc:
            log.exception("step %s failed with an exception", sid)
            outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
        finally:
            renew.cancel()
            self._tasks.pop(rec.rid, None)
        summary = redact(outcome.summary)[:2000]
        sent = _sent(ctx)
        self._reads[rec.rid] = sent["reads"]
        return outcome, summary, sent["commands"]

    async def _execute(self, rid: str, sid: str) -> Outcome:
        """Run a step this worker holds the lease of, and record how it ended."""
        rec = await self.record(rid)
        step = self.step(sid, rec)
        outcome, summary, commands_sent = await self._hold_and_run(rec, sid, step.run)
        kind = K.SUCCEEDED if outcome.ok else K.FAILED
        res = await self._move(
            rid,
            sid,
            (StepStatus.RUNNING,),
            StepStatus.SUCCEEDED if outcome.ok else StepStatus.FAILED,
            {
                "summary": summary,
                "commands": commands_sent,
                # What it only read with (checks, previews, leader sources): on its card.
                "reads": self._reads.pop(rid, []),
            },
            Event(kind, summary=summary, commands=commands_sent),
            lease=f"own:{self.worker}",
        )
        if not res.ok:
            log.warning(
                "step %s of %s finished but its lease was lost (%s)",
                sid,
                rid,
                res.step.get("status"),
            )
        await self._notify(Event(kind, rid=rid, step=sid, ok=outcome.ok, summary=summary))
        if not outcome.ok and step.fail_ends_restore and res.ok:
            # Nothing has changed yet: the restore ends and the cluster is free again; a
            # new start reads the cluster file afresh.
            ended, _ = await self._restore_move(
                rid,
                (RestoreStatus.RUNNING,),
                RestoreStatus.FAILED,
                Event(K.RESTORE_FAILED, reason=f"{sid} failed; nothing was changed"),
                patch={"current": ""},
                release=True,
            )
            if ended:
                await self.store.set_data(rid, originals=None)
                await self.store.expire(rid, self.retention_seconds)
                await self._notify(Event(K.RESTORE_FAILED, rid=rid, status=RestoreStatus.FAILED))
        return outcome

    async def _host_result(
        self, rid: str, sid: str, attempt: int, r: HostResult, sent: dict[str, Any] | None = None
    ) -> None:
        stdout, out_cut = redact_capped(r.stdout, OUTPUT_CAP)
        stderr, err_cut = redact_capped(r.stderr, OUTPUT_CAP)
        output = await self.store.save_result(
            rid,
            sid,
            attempt,
            dataclasses.replace(r, stdout=stdout, stderr=stderr),
            truncated=out_cut or err_cut,
        )
        await self._move(
            rid,
            sid,
            (StepStatus.RUNNING,),
            None,
            sent or {},
            Event(
                K.HOST_RESULT,
                host=r.host,
                attempt=attempt,
                exit_status=r.exit_status,
                duration=round(r.duration, 3),
                error=r.error,
                output_sha256=output_digest(output),
            ),
            lease=f"own:{self.worker}",
        )
        await self._notify(Event(K.HOST_RESULT, rid=rid, step=sid, host=r.host, live={"result": r}))

    async def _renew(self, rid: str, sid: str) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            await self.store.renew(rid, sid, self.worker, self.lease_ms)

    async def sweep(self) -> list[tuple[str, str]]:
        """Every running restore's steps whose lease ran out (their worker died) become
        `interrupted`, with their check run: any living process does it, at any time.
        A step this engine is running itself is alive whatever its lease says (after a
        store outage longer than the lease, say): it is left alone."""
        found = []
        for rid in await self.store.restore_ids(limit=200):
            mine = self._tasks.get(rid)
            if mine is not None and not mine.done():
                continue
            rec = await self.store.load(rid)
            if rec is None or rec.status != RestoreStatus.RUNNING:
                continue
            if not any(st.get("status") == StepStatus.RUNNING for st in rec.steps.values()):
                continue
            try:
                found += [(rid, sid) for sid, _ in await self.recover(rid)]
            except Exception as exc:
                if not await self.store.reachable():
                    raise  # the store is away, for every restore: sweep_forever says it once
                # This restore only: the others are still swept.
                log.warning("cannot recover restore %s: %s", rid, reason_of(exc))
        return found

    async def resume(self) -> list[str]:
        """After a restart: in every running restore, the steps whose worker died become
        `interrupted` (their check run), and the restore goes on where it can. A restore
        that cannot be picked up now is logged, one line with its id and why, and the
        others go on. Returns the ids of the running restores (to refresh their views)."""
        running = []
        for rid in await self.store.restore_ids():
            try:
                rec = await self.store.load(rid)
                if rec is None or rec.status != "running":
                    continue
                running.append(rid)
                await self.recover(rid)
                await self.advance(rid)
            except Exception as exc:  # one line per restore that cannot be picked up now
                log.warning("cannot resume restore %s: %s", rid, reason_of(exc))
        return running

    async def sweep_forever(self, every: float | None = None) -> None:
        """`sweep` every half lease (at least each second), until cancelled.

        After the store was unreachable every lease has run out, the living ones too:
        once it answers again, the first sweep waits a lease and the store's longest
        retry pause, so that the workers still running their steps renew first."""
        interval = every if every is not None else max(self.lease_ms / 2000, 1.0)
        grace = self.lease_ms / 1000 + RETRY_PAUSE_MAX
        failing = False
        while True:
            try:
                if failing:
                    await self.store.restore_ids(limit=1)  # raises while still away
                    await asyncio.sleep(grace)
                await self.sweep()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one line per run of failures, never a traceback loop
                if not failing:
                    log.warning("the lease sweep failed: %s: %s", type(exc).__name__, exc)
                failing = True
            await asyncio.sleep(interval)

    async def recover(self, rid: str) -> list[tuple[str, Outcome | None]]:
        """Steps whose worker died become `interrupted`; their check tells what it looks like."""
        rec = await self.record(rid)
        found = []
        for sid, st in rec.steps.items():
            if st.get("status") != StepStatus.RUNNING:
                continue
            res = await self._move(
                rid,
                sid,
                (StepStatus.RUNNING,),
                StepStatus.INTERRUPTED,
                {},
                Event(K.INTERRUPTED, worker=st.get("lease_owner")),
                lease="expired",
            )
            if not res.ok:
                continue
            check = self.step(sid, rec).verify
            outcome = None
            if check is not None:
                try:
                    outcome = await check(
                        await self._context(rec, self.step(sid, rec), guarded=True)
                    )
                except Exception as exc:
                    why = reason_of(exc)
                    log.warning(
                        "restore %s: the check of interrupted %s could not run: %s", rid, sid, why
                    )
                    outcome = Outcome(False, f"check could not run: {why}")
                await self.store.set_data(
                    rid,
                    **{
                        f"interrupted:{sid}": {
                            "appears_finished": outcome.ok,
                            "check": outcome.summary,
                        }
                    },
                )
                await self._move(
                    rid,
                    sid,
                    (StepStatus.INTERRUPTED,),
                    None,
                    {"check": outcome.summary, "appears_finished": outcome.ok},
                    Event(K.CHECKED, appears_finished=outcome.ok, summary=outcome.summary),
                )
            found.append((sid, outcome))
            await self._notify(
                Event(
                    K.INTERRUPTED,
                    rid=rid,
                    step=sid,
                    worker=st.get("lease_owner"),
                    appears_finished=outcome.ok if outcome is not None else None,
                    live={"check": outcome},
                )
            )
        return found
