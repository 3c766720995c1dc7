"""The console front end: walk a restore in the terminal (like Hubot's shell adapter).

`aurora-restore console --cluster FILE [--backup ID] [--as NAME] [--yes]` starts a
restore of the file's cluster, or continues the one already running there (after the
console was killed, say). Each step shows its explanation, targets, commands and risk;
the prompt takes approve / skip / retry / done / abort. `--yes` approves everything as
the cluster's console approvers, two identities, so the two-person rule still holds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from bot import wiring
from bot.settings import Settings
from bot.view import StepView, WipeHost, procedure_of, step_view
from runbook import transcript
from runbook.actions import Timing
from runbook.clusters import Cluster
from runbook.engine import Actor, Engine, Refused
from runbook.events import ENDINGS, EventKind
from runbook.listing import check_task_ids, listing_ids
from runbook.ports import HostResult, OnResult, Remote, VarsProbe
from runbook.procedure import Procedure, Risk, Step
from runbook.redact import redact
from runbook.store import RestoreRecord, Store
from runbook.transcript_html import to_html

RULE = "─" * 72


class Commands:
    """Which command each host result answers: the console's remotes note it as each
    result comes back, so the result line can name its command (a `HostResult` does
    not carry it)."""

    def __init__(self) -> None:
        self.of: dict[int, str] = {}

    def connect(self, cluster: Cluster) -> tuple[Remote, VarsProbe]:
        remote, probe = wiring.connect(cluster)
        return Watched(remote, self), probe

    def pop(self, result: HostResult) -> str:
        return self.of.pop(id(result), "")


class Watched:
    """A `Remote` that tells `Commands` the command of each result it reports."""

    def __init__(self, inner: Remote, commands: Commands) -> None:
        self.inner = inner
        self.commands = commands

    async def run(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float | None = None,
        stdin: Mapping[str, bytes] | None = None,
        on_result: OnResult | None = None,
    ) -> dict[str, HostResult]:
        if on_result is None:
            return await self.inner.run(commands, timeout=timeout, stdin=stdin)
        report = on_result

        async def noted(r: HostResult) -> None:
            self.commands.of[id(r)] = commands.get(r.host, "")
            try:
                res = report(r)
                if asyncio.iscoroutine(res):
                    await res
            finally:
                self.commands.of.pop(id(r), None)

        return await self.inner.run(commands, timeout=timeout, stdin=stdin, on_result=noted)

    async def read_file(self, host: str, path: str, timeout: float | None = None) -> bytes:
        return await self.inner.read_file(host, path, timeout)

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def whole(command: str) -> str:
    """A command as it was sent, whole (never cut), secrets masked: a command that spans
    lines is printed as it is."""
    return redact(command)


def seconds(duration: float) -> str:
    return f"{duration:.1f}s" if duration < 60 else f"{int(duration // 60)}m{duration % 60:02.0f}s"


def kills_note(card: StepView) -> str:
    """On the step that writes the backup into the log: what approving it kills."""
    kills = card.kills
    if kills is None:
        return ""
    if kills.known:
        return f" ({kills.summary})"
    return f" (the kills are not forecast: {kills.why})"


def describe(host: WipeHost) -> str:
    """A wipe preview's host as words."""
    if host.files is None:
        text = f"cannot tell ({host.error})"
    else:
        text = f"{host.files} files, {host.bytes} bytes"
    if host.archive_known:
        text += f"; archive {host.archive}" if host.archive else "; NO ARCHIVE: no way back"
    return text


def card_lines(card: StepView) -> list[str]:
    """What the console prints of a step offered: the same view a Slack card renders
    (bot.view), as text: commands per host, file diffs, reads, previews, the check."""
    position = f"step {card.position[0]} of {card.position[1]} · " if card.position else ""
    lines = [
        RULE,
        f"{position}{card.sid} · {card.title}",
        f"risk: {card.risk.value}   targets: {card.targets.value}",
        card.explain,
    ]
    if card.commands_error:
        lines.append(f"  (commands not available: {card.commands_error})")
    for hc in card.commands:
        lines += [f"  [{hc.host}] $ {c}" for c in hc.commands]
    if card.plan_error:
        lines.append(f"  ⚠ the plan could not be rendered: {card.plan_error}")
    for edit in card.edits:
        lines.append(f"  [{edit.host}] file edit:")
        lines += [f"    {line}" for line in edit.diff.splitlines()]
    if card.reads:
        lines.append("  it also reads, to check:")
        lines += [f"    $ {c}" for c in card.reads]
    if card.plan_digest:
        lines.append(f"  plan {card.plan_digest[:12]}: an approval runs exactly this")
    lines += _preview_lines(card)
    note = kills_note(card)
    if note:
        lines.append(f"  {note.strip(' ()')}")
    lines.append(f"check: {card.check}")
    return lines


def _preview_lines(card: StepView) -> list[str]:
    lines: list[str] = []
    review = card.review
    if review is not None and review.error:
        lines.append(f"  the listing failed: {review.error}")
    elif review is not None:
        lines.append(f"  staged tasks: {review.count}")
        lines += [f"    {status:<12} {n}" for status, n in review.by_status]
        lines += [f"    role {role:<16} {n}" for role, n in review.by_role[:10]]
    if card.wipe is not None:
        lines += [f"  {h.host}: {describe(h)}" for h in card.wipe.hosts]
    backup = card.backup
    if backup is not None:
        lines.append(
            f"  backup {backup.name} is {backup.age / 3600:.1f} hours old"
            if backup.age
            else "  no backup was found"
        )
    return lines


# The words the console also takes for an action, beside its letter.
WORDS = {
    "approve": "approve",
    "skip": "skip",
    "abort": "abort",
    "delete_tasks": "delete",
    "retry": "retry",
    "rewind": "back",
    "mark_done": "done",
}


def pick(card: StepView, word: str) -> str:
    """The kind of the action offered that `word` names (its letter or its word), or ""."""
    word = word.lower()
    for a in card.actions:
        if word and word in (a.key, WORDS.get(a.kind)):
            return a.kind
    return ""


def choices(card: StepView) -> str:
    """The console's prompt of the actions a card offers: `[a]pprove, [s]kip, a[b]ort`."""
    return ", ".join(a.prompt for a in card.actions)


class Console:
    def __init__(
        self,
        engine: Engine,
        cluster: Cluster,
        *,
        me: str,
        yes: bool = False,
        out: TextIO = sys.stdout,
        ask: Callable[[str], str] = input,
        commands: Commands | None = None,
    ) -> None:
        self.engine = engine
        self.cluster = cluster
        self.me = Actor(me)
        self.yes = yes
        self.out = out
        self.ask = ask
        self.commands = commands or Commands()
        # The procedure of the restore walked (set when its record is read; until then
        # the engine's first).
        self.procedures: dict[str, Procedure] = dict(getattr(engine, "procedures", {}))
        self.procedure: Procedure | None = next(iter(self.procedures.values()), None)
        self.started: dict[str, float] = {}
        engine.listener = self.on_event

    def step_named(self, sid: str) -> Step | None:
        """Step `sid` of the procedure walked. Events can arrive before the loop has read
        the record (a restore's first step runs inside `start`/`advance`), so it is looked
        up in every procedure the engine knows: step ids are unique across them."""
        for procedure in (self.procedure, *self.procedures.values()):
            if procedure is not None and sid in procedure.ids():
                return procedure.step(sid)
        return None

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def on_event(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "running":
            self.started[info["step"]] = time.monotonic()
            self.say(f"▶ running {info['step']} …")
        elif kind == "host_result":
            self.say(self.result_line(info["step"], info["result"]))
        elif kind in (EventKind.SUCCEEDED, EventKind.FAILED) and "ok" in info:
            mark = "✓" if info["ok"] else "✗"
            self.say(f"{mark} {info['step']}: {info['summary']}")
            began = self.started.pop(info["step"], None)
            if began is not None:
                self.say(f"   ({info['step']} took {seconds(time.monotonic() - began)})")
        elif kind in ENDINGS and info.get("summary"):
            self.say(f"■ restore {info.get('status', kind)}: {info['summary']}")
        elif kind == "interrupted":
            check = info.get("check")
            seen = f" — check: {check.summary}" if check is not None else ""
            self.say(f"⚠ {info['step']} was interrupted (the bot died while it ran){seen}")

    def result_line(self, sid: str, r: HostResult) -> str:
        """One host's result: mark, host, exit or error, duration, and its command. The
        step that fills the log (the commit) shuts the scheduler down, so its client
        failing is expected, not a ✗."""
        detail = r.error or f"exit {r.exit_status}"
        mark = "✓" if r.ok else "✗"
        step = self.step_named(sid)
        if not r.ok and step is not None and step.fills_log:
            mark, detail = "·", f"{detail} (expected: the commit shuts the scheduler down)"
        command = whole(self.commands.pop(r))
        shown = f"  $ {command}" if command else ""
        return f"   {mark} {r.host:<20} {detail:<10} {r.duration:6.2f}s{shown}"

    def approver_for(self, step: Step, started_by: str) -> Actor:
        """Unattended: the first console approver, or the second for a destructive step."""
        names = self.cluster.approvers.console
        if not names:
            raise Refused(
                f"--yes needs [clusters.{self.cluster.name}.approvers] console identities"
            )
        if step.risk is Risk.DESTRUCTIVE and self.cluster.two_person_rule:
            others = [n for n in names if n != started_by]
            if not others:
                raise Refused("--yes needs a second console approver for destructive steps")
            return Actor(others[0])
        return Actor(names[0])

    def card(self, card: StepView) -> None:
        for line in card_lines(card):
            self.say(line)

    def view(self, rec: RestoreRecord, sid: str) -> StepView:
        return step_view(rec, procedure_of(rec), sid, self.cluster)

    async def run(self, backup: str | None) -> str:
        engine = self.engine
        rid = await engine.store.holder(self.cluster.name)
        if rid:
            self.say(f"continuing restore {rid} of {self.cluster.name}")
            await engine.recover(rid)
        else:
            starter = (
                Actor(self.cluster.approvers.console[0])
                if self.yes and self.cluster.approvers.console
                else self.me
            )
            rid = await engine.start(self.cluster.name, backup, starter)
            self.say(f"restore {rid} of {self.cluster.name} started by {starter.label}")
            meta = (await engine.record(rid)).meta
            why = str(meta.get("procedure_why") or "")
            self.say(f"procedure: {meta.get('procedure', 'online')}" + (f" ({why})" if why else ""))
        await engine.advance(rid)
        while True:
            rec = await engine.record(rid)
            self.procedure = engine.procedure_of(rec)
            if rec.status != "running":
                self.say(RULE)
                self.say(f"restore {rid}: {rec.status}")
                return rid
            sid = next(
                (
                    s
                    for s in rec.meta["plan"]
                    if rec.steps[s]["status"] not in ("succeeded", "skipped")
                ),
                None,
            )
            if sid is None:
                await engine.advance(rid)
                continue
            state = rec.steps[sid]["status"]
            try:
                if state == "awaiting":
                    await self.decide_awaiting(rid, rec, sid)
                elif state in ("failed", "interrupted"):
                    if not await self.decide_failed(
                        rid, self.view(rec, sid), rec.meta["started_by"]
                    ):
                        return rid
                elif state == "running":
                    # Another worker holds it, or a killed console did: its lease decides.
                    self.say(
                        f"{sid} is running elsewhere; waiting for it or for its lease to run out"
                    )
                    while not await engine.recover(rid):
                        if (await engine.record(rid)).steps[sid]["status"] != "running":
                            break
                        await asyncio.sleep(1)
                else:
                    await engine.advance(rid)
            except Refused as exc:
                self.say(f"refused: {exc}")
                if self.yes:
                    await engine.abort(rid, Actor(self.cluster.approvers.console[0]), revert=True)
                    await self.after_abort(rid)

    async def decide_awaiting(self, rid: str, rec: RestoreRecord, sid: str) -> None:
        card = self.view(rec, sid)
        step = procedure_of(rec).step(sid)
        started_by = str(rec.meta["started_by"])
        self.card(card)
        if self.yes:
            who = self.approver_for(step, started_by)
            if step.suggest_skip and card.action("skip"):
                await self.engine.skip(
                    rid, step.id, who, "unattended run: the plan suggests skipping it"
                )
                self.say(f"skipped by {who.label} (suggested)")
                return
            self.say(f"approved by {who.label}{kills_note(card)}")
            await self.engine.approve(rid, step.id, who)
            return
        while True:
            if card.two_person:
                self.say(
                    f"destructive: someone other than {started_by} approves ('a NAME' approves as NAME)"
                )
            words = self.ask(f"{step.id}: {choices(card)}? ").strip().split()
            answer = pick(card, words[0] if words else "")
            # `s NAME` and `b NAME` act as NAME, like `a NAME`.
            who = Actor(words[1]) if len(words) > 1 else self.me
            if answer == "approve":
                refusal = self.own_destructive(step, who, started_by, "approving")
                if refusal:
                    self.say(f"refused: {refusal}")
                    continue
                approve = card.action("approve")
                if (
                    approve is not None
                    and approve.destructive
                    and self.ask("destructive: type the step id to confirm: ").strip() != step.id
                ):
                    self.say("not confirmed")
                    continue
                try:
                    await self.engine.approve(rid, step.id, who)
                except Refused as exc:
                    self.say(f"refused: {exc}")
                    return
                self.say(f"approved by {who.label}{kills_note(card)}")
                return  # the loop reads the step's state again
            if answer == "delete_tasks":
                known = set(listing_ids((rec.data.get("review") or {}).get("listing", "")))
                ids, error = check_task_ids(self.ask("task ids (comma-separated): "), known)
                if error:
                    self.say(error)
                    continue
                out = await self.engine.delete_tasks(rid, ids, self.me)
                self.say(out.summary)
                return
            if answer == "skip":
                await self.skip(rid, step, who)
                return
            if answer == "abort":
                await self.abort(rid, who)
                return

    def own_destructive(self, step: Step, who: Actor, started_by: str, doing: str) -> str:
        """The engine's two-person refusal, said before the confirm prompt: the one who
        started the restore may not also run its destructive step."""
        if step.risk is Risk.DESTRUCTIVE and self.cluster.two_person_rule and who.id == started_by:
            return (
                f"{step.id} is destructive: {doing} it needs an approver other than "
                f"{who.label}, who started the restore"
            )
        return ""

    async def skip(self, rid: str, step: Step, who: Actor) -> None:
        reason = self.ask("reason: ").strip() or "no reason given"
        try:
            await self.engine.skip(rid, step.id, who, reason)
        except Refused as exc:
            self.say(f"refused: {exc}")
            return
        self.say(f"skipped by {who.label}: {reason}")

    async def decide_failed(self, rid: str, card: StepView, started_by: str) -> bool:
        procedure = self.procedure or self.engine.procedure_of(await self.engine.record(rid))
        step = procedure.step(card.sid)
        said = card.interruption.check if card.interruption else ""
        self.say(f"{step.id} {card.status}: {card.summary or said}")
        if self.yes and card.status == "interrupted":
            who = self.approver_for(step, started_by)
            if card.action("mark_done"):
                self.say(f"unattended run: its check passed, marked done by {who.label}")
                await self.engine.mark_done(rid, step.id, who)
            else:
                self.say(f"unattended run: retried by {who.label}")
                await self.engine.retry(rid, step.id, who)
            return True
        if self.yes:
            self.say("unattended run: aborting and reverting")
            await self.engine.abort(rid, self.approver_for(step, started_by), revert=True)
            await self.after_abort(rid)
            return True
        words = self.ask(f"{step.id}: {choices(card)}? ").strip().split()
        answer = pick(card, words[0] if words else "")
        who = Actor(words[1]) if len(words) > 1 else self.me
        try:
            if answer == "rewind":
                target = await self.engine.rewind(rid, step.id, who)
                self.say(f"back to {target} (by {who.label})")
            elif answer == "retry":
                refusal = self.own_destructive(step, who, started_by, "retrying")
                if refusal:
                    self.say(f"refused: {refusal}")
                    return True
                await self.engine.retry(rid, step.id, who)
                self.say(f"retried by {who.label}")
            elif answer == "skip":
                await self.skip(rid, step, who)
            elif answer == "mark_done":
                refusal = self.own_destructive(step, who, started_by, "marking done")
                if refusal:
                    self.say(f"refused: {refusal}")
                    return True
                await self.engine.mark_done(rid, step.id, who)
                self.say(f"marked done by {who.label}")
            elif answer == "abort":
                await self.abort(rid, who)
        except Refused as exc:
            self.say(f"refused: {exc}")
        return True

    async def abort(self, rid: str, who: Actor | None = None) -> None:
        who = who or self.me
        revert = self.ask("revert every change made so far? [Y/n] ").strip().lower() != "n"
        result = await self.engine.abort(rid, who, revert=revert)
        self.say(f"aborted by {who.label}: restore {result}")
        await self.after_abort(rid)

    async def after_abort(self, rid: str) -> None:
        """After an abort that held the schedulers stopped on a wiped log, a person
        chooses the way on; an unattended run never does."""
        rec = await self.engine.record(rid)
        if not rec.data.get("held_after_wipe"):
            return
        if self.yes:
            self.say(
                "unattended run: the schedulers stay stopped and disabled; a person chooses "
                f"the way on (aurora-restore put-back {rid} --cluster FILE --as NAME)"
            )
            return
        words = self.ask(
            "[p]ut the old log back and revert, or [l]eave everything stopped? "
        ).split()
        if not words or words[0].lower() not in ("p", "put"):
            self.say(f"left stopped and disabled; later: aurora-restore put-back {rid}")
            return
        who = Actor(words[1]) if len(words) > 1 else self.me
        try:
            result = await self.engine.put_back_log(rid, who)
            self.say(f"restore {result}: the old log is back and the schedulers run on it")
        except Refused as exc:
            self.say(f"refused: {exc}")


async def write_transcripts(
    store: Store, rid: str, out_dir: Path, procedure: Procedure
) -> dict[str, Any]:
    rec = await store.load(rid)
    assert rec is not None
    doc = transcript.build(rec, await store.events(rid), await store.outputs(rid), procedure)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "transcript.json").write_text(transcript.to_json(doc))
    (out_dir / "transcript.md").write_text(transcript.to_markdown(doc))
    (out_dir / "transcript.html").write_text(to_html(doc))
    return doc


async def run_console(
    cluster: Cluster,
    redis_url: str,
    *,
    me: str,
    yes: bool,
    backup: str | None,
    out_dir: Path | None = None,
    timing: Timing | None = None,
    settings: Settings | None = None,
) -> tuple[str, str]:
    commands = Commands()
    async with wiring.open_store(redis_url) as store:
        engine = wiring.build_engine(
            store,
            {cluster.name: cluster},
            settings=settings,
            connect=commands.connect,
            timing=timing,
        )
        try:
            console = Console(engine, cluster, me=me, yes=yes, commands=commands)
            rid = await console.run(backup)
            rec = await engine.record(rid)
            if out_dir is not None:
                await write_transcripts(store, rid, out_dir, engine.procedure_of(rec))
                console.say(f"transcript: {out_dir}/transcript.md, .json and .html")
            return rid, rec.status
        finally:
            await engine.close()


async def run_put_back(
    cluster: Cluster, redis_url: str, rid: str, *, me: str, settings: Settings | None = None
) -> str:
    """`aurora-restore put-back`: the way back after an abort that followed the wipe."""
    async with wiring.open_store(redis_url) as store:
        engine = wiring.build_engine(store, {cluster.name: cluster}, settings=settings)
        try:
            Console(engine, cluster, me=me)
            return await engine.put_back_log(rid, Actor(me))
        finally:
            await engine.close()
