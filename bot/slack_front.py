"""The Slack front end of the engine: the thread of a restore, kept in step with Redis.

Every message is rendered from the restore's record in Redis (never from memory), so any
app process can post or update any card, and two processes behind a load balancer keep
one coherent thread:

    ar:slack:<rid>            HASH channel, root_ts, team, enterprise (where the restore
                              lives: every action must come from there), card:<sid> (ts or
                              "posting"), seen:<key>, view:<view id> (the user a modal was
                              opened for), export:<seq> (a transcript posted for that state)

A card is posted once: the process that wins `HSETNX card:<sid> posting` posts it.
Updates are coalesced (at most one refresh a second per restore) to respect chat.update's
rate limits, and skipped when nothing changed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import secrets
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks, view
from bot.worker import WorkLoop
from handlers.shapes import Origin
from runbook import transcript
from runbook.clusters import Cluster
from runbook.engine import Actor, Engine
from runbook.events import EventKind
from runbook.ports import HostResult
from runbook.redact import redact
from runbook.step import Procedure, Role, Step
from runbook.store import RestoreRecord, restore_key
from runbook.transcript_html import to_html

log = logging.getLogger(__name__)

MIN_REFRESH_INTERVAL = 1.0
STORE_UNREACHABLE = "⚠️ The bot cannot reach its store; nothing was done. Try again in a minute."
GROUP_CACHE_SECONDS = 60.0
# What the person is told of a failure after the ack; the reference is in the log line.
SOMETHING_WRONG = (
    "⚠️ Something went wrong (ref {ref}); nothing more was done; the bot log has the details."
)


def slack_key(rid: str) -> str:
    return f"ar:slack:{rid}"


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Approvers:
    """Approvers by user id and by user group handle (usergroups.users.list, cached briefly)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._handles: tuple[float, dict[str, str]] | None = None
        self._members: dict[str, tuple[float, set[str]]] = {}

    async def _group_ids(self) -> dict[str, str]:
        now = time.monotonic()
        if self._handles is None or now - self._handles[0] > GROUP_CACHE_SECONDS:
            resp = await self.client.usergroups_list()
            groups: list[dict[str, Any]] = resp.get("usergroups", [])
            self._handles = (now, {str(g["handle"]): str(g["id"]) for g in groups})
        return self._handles[1]

    async def _members_of(self, group_id: str) -> set[str]:
        now = time.monotonic()
        cached = self._members.get(group_id)
        if cached is None or now - cached[0] > GROUP_CACHE_SECONDS:
            resp = await self.client.usergroups_users_list(usergroup=group_id)
            cached = (now, set(resp.get("users", [])))
            self._members[group_id] = cached
        return cached[1]

    async def may_approve(self, cluster: Cluster, actor: Actor) -> bool:
        if actor.id in cluster.approvers.users:
            return True
        if not cluster.approvers.groups:
            return False
        try:
            ids = await self._group_ids()
            for handle in cluster.approvers.groups:
                gid = ids.get(handle.lstrip("@"))
                if gid and actor.id in await self._members_of(gid):
                    return True
        except SlackApiError as exc:
            log.warning("cannot read user groups: %s", exc.response.get("error"))
        return False


class TokenBucket:
    """At most `per_minute` calls a minute, with bursts of `burst`: chat.update is a Tier 3
    method (about 50 a minute per workspace). Waiting here delays a card's refresh; the
    next refresh then carries the newest state, so nothing is lost."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def update_bucket() -> TokenBucket:
    """The default pace of message updates: 50 a minute after a burst of 20 (the
    settings' AURORA_RESTORE_UPDATES_PER_MINUTE and _BURST, handed in by bot.slack_app)."""
    return TokenBucket(50.0, burst=20)


class SlackFront:
    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        redis: Any,
        work: WorkLoop | None = None,
        *,
        updates: TokenBucket | None = None,
    ) -> None:
        self.work = work
        self.engine = engine
        self.client = client
        self.redis = redis
        self._team: str | None = None
        self._pending: dict[str, concurrent.futures.Future[None]] = {}
        self._last: dict[str, float] = {}
        # One refresh of a restore at a time (per event loop): a refresh marks a card's
        # inputs seen before it posts the card, so a second one running meanwhile would
        # skip that card and could post the next step's Approve before it.
        self._refreshing: dict[tuple[str, int], asyncio.Lock] = {}
        self.tasks: set[concurrent.futures.Future[Any]] = set()
        self.updates = updates or update_bucket()
        self.store_down = False  # logged once per outage, not once per click
        engine.listener = self.on_event

    # ------------------------------------------------------------ background work

    def spawn(self, coro: Any, who: Origin | None = None) -> concurrent.futures.Future[Any]:
        """Work after the ack, on the work loop. A failure is logged in one line with a
        reference, and the person it was for (`who`) is told, never left guessing. Work
        for a person runs only when the store answers: an acked click is never dropped
        silently (see `_if_store_reachable`)."""
        if who is not None:
            coro = self._if_store_reachable(coro, who)
        future: concurrent.futures.Future[Any] = (
            self.work.submit(coro) if self.work is not None else _as_future(coro)
        )
        self.tasks.add(future)

        def done(f: concurrent.futures.Future[Any]) -> None:
            self.tasks.discard(f)
            if not f.cancelled() and (exc := f.exception()) is not None:
                self.failed(exc, who)

        future.add_done_callback(done)
        return future

    async def _if_store_reachable(self, coro: Any, who: Origin) -> Any:
        """Run `coro` if the store answers a PING; otherwise do nothing of it, tell the
        person so, and log one line for the whole outage."""
        if not await self.engine.store.reachable():
            coro.close()
            if not self.store_down:
                self.store_down = True
                log.warning("the store cannot be reached: clicks are refused until it is back")
            await self.tell(who, STORE_UNREACHABLE)
            return None
        self.store_down = False
        return await coro

    def failed(self, exc: BaseException, who: Origin | None) -> str:
        """One log line with a reference id (the traceback at debug level only), and an
        ephemeral message to the person the work was for. Returns the reference."""
        ref = secrets.token_hex(3).upper()
        said = " ".join(redact(str(exc)).split())[:300]  # one line, whatever the error says
        log.error("ref %s: %s: %s", ref, type(exc).__name__, said)
        log.debug("ref %s", ref, exc_info=exc)
        if who is not None and who.user and who.channel:
            text = SOMETHING_WRONG.format(ref=ref)
            self.spawn(self.tell(who, text))
        return ref

    async def tell(self, who: Origin, text: str) -> None:
        """An ephemeral message to one person, where they asked from. A channel the bot
        cannot post in (another workspace's, say) costs one log line, nothing more."""
        try:
            await self.client.chat_postEphemeral(channel=who.channel, user=who.user, text=text)
        except SlackApiError as exc:
            log.warning(
                "cannot tell %s in %s: %s", who.user, who.channel, exc.response.get("error")
            )

    async def own_team(self) -> str | None:
        """The workspace the bot is installed in (auth.test, asked once): requests from
        any other team are refused. None while Slack cannot be asked (then nothing is
        refused for it: every action is still bound to its restore's own team)."""
        if self._team is None:
            try:
                resp = await self.call(self.client.auth_test())
                self._team = str(resp.get("team_id") or "") or None
            except Exception as exc:
                log.warning("auth.test failed (%s): the workspace is not checked yet", exc)
        return self._team

    async def call(self, coro: Any) -> Any:
        """Run `coro` on the work loop (where the store's connections live) and wait for
        its result from this loop: for the few reads that must happen before an ack."""
        if self.work is None:
            return await coro
        return await self.work.run(coro)

    # ------------------------------------------------------------ the thread

    async def thread(self, rid: str) -> tuple[str, str] | None:
        raw = await self.redis.hmget(slack_key(rid), "channel", "root_ts")
        if not raw or raw[0] is None or raw[1] is None:
            return None
        return _s(raw[0]), _s(raw[1])

    async def open_thread(self, rid: str, where: Origin) -> str:
        """The root message, in the channel the restore was started from; the workspace
        (team, enterprise) and channel are kept: every action must come from there."""
        rec = await self.engine.record(rid)
        cluster = self.engine.cluster_of(rec)
        text, body = blocks.root_message(rec, cluster)
        resp = await self.client.chat_postMessage(channel=where.channel, text=text, blocks=body)
        ts = _s(resp["ts"])
        await self.redis.hset(
            slack_key(rid),
            mapping={
                "channel": where.channel,
                "root_ts": ts,
                "team": where.team,
                "enterprise": where.enterprise,
            },
        )
        return ts

    async def place_refusal(self, rid: str, who: Origin, *, channel: bool = True) -> str | None:
        """Why a request from `who` may not act on restore `rid`, or None: it must come
        from the restore's workspace (team, and enterprise) and, unless `channel` is
        False (a modal's submission carries no channel), from its thread's channel."""
        raw = await self.redis.hmget(slack_key(rid), "channel", "team", "enterprise")
        if not raw or raw[0] is None:
            return f"Restore `{blocks.esc(rid)}` has no Slack thread: nothing was done."
        home, team, enterprise = _s(raw[0]), _s(raw[1] or ""), _s(raw[2] or "")
        # Restores started before the workspace was kept have no team: the channel decides.
        if team and (who.team != team or who.enterprise != enterprise):
            return f"Restore `{rid}` belongs to another Slack workspace: nothing was done."
        if channel and who.channel != home:
            return f"Restore `{rid}` lives in <#{home}>: act from its thread; nothing was done."
        return None

    async def remember_view(self, rid: str, view_id: str, user: str) -> None:
        """A modal opened for `user` about `rid`: only its submission is taken."""
        await self.redis.hset(slack_key(rid), f"view:{view_id}", user)

    async def view_refusal(self, rid: str, view_id: str, who: Origin) -> str | None:
        """Why a modal submission may not act on `rid`: the modal must be one the bot
        opened for this person from the restore's thread (so its channel was checked)."""
        why = await self.place_refusal(rid, who, channel=False)
        if why is not None:
            return why
        opened_for = await self.redis.hget(slack_key(rid), f"view:{view_id}")
        if opened_for is None or _s(opened_for) != who.user:
            return "This dialog was not opened for you from the restore's thread: nothing was done."
        return None

    async def permalink(self, rid: str) -> str | None:
        where = await self.thread(rid)
        if where is None:
            return None
        with contextlib.suppress(SlackApiError):
            resp = await self.client.chat_getPermalink(channel=where[0], message_ts=where[1])
            return str(resp["permalink"])
        return None

    async def line(self, rid: str, actor: str, verb: str, sid: str = "", detail: str = "") -> None:
        """A line in the thread naming the person: who approved, skipped, was refused…"""
        where = await self.thread(rid)
        if where is None:
            return
        text, body = blocks.action_line(actor, verb, sid, redact(detail))
        await self.client.chat_postMessage(
            channel=where[0], thread_ts=where[1], text=text, blocks=body
        )

    async def upload(self, rid: str, filename: str, content: str, title: str) -> None:
        where = await self.thread(rid)
        if where is None:
            return
        await self.client.files_upload_v2(
            content=redact(content),
            filename=filename,
            title=title,
            channel=where[0],
            thread_ts=where[1],
        )

    async def post_transcript(self, rid: str) -> bool:
        """The transcript as Markdown, JSON and an HTML timeline, into the thread; once
        per state of the restore (its last event's seq). False: already posted."""
        seq = _s(await self.redis.hget(restore_key(rid), "seq") or "0")
        if not await self.redis.hsetnx(slack_key(rid), f"export:{seq}", "1"):
            return False
        rec = await self.engine.record(rid)
        store = self.engine.store
        doc = transcript.build(
            rec, await store.events(rid), await store.outputs(rid), self.engine.procedure_of(rec)
        )
        for ext, content in (
            ("md", transcript.to_markdown(doc)),
            ("json", transcript.to_json(doc)),
            ("html", to_html(doc)),
        ):
            await self.upload(rid, f"aurora-restore-{rid}.{ext}", content, f"Transcript ({ext})")
        return True

    # ------------------------------------------------------------ keeping it in step

    # The thread's line for each event a person caused (runbook.events.EventKind).
    VERBS: dict[str, str] = {
        EventKind.APPROVED: "approved",
        EventKind.RETRIED: "retried",
        EventKind.MARKED_DONE: "marked done",
        EventKind.SKIPPED: "skipped",
        EventKind.HELD_STOPPED: "aborted the restore",
        EventKind.ABORT_DONE: "aborted the restore",
        EventKind.REVERT_FAILED: "aborted the restore",
        EventKind.REVERTED: "aborted the restore and reverted every change",
        EventKind.REWOUND: "went back",
        EventKind.BACKUP_CHOSEN: "chose the backup",
        EventKind.TASKS_DELETED: "deleted staged tasks",
        EventKind.PUTTING_BACK: "is putting the old log back (from the log.archive tarballs)",
        EventKind.LOG_PUT_BACK: "put the old log back and reverted every change",
        EventKind.PUT_BACK_FAILED: "aborted the restore",
    }

    def on_event(self, kind: str, info: dict[str, Any]) -> None:
        rid = info.get("rid")
        if not rid:
            return
        verb = self.VERBS.get(kind)
        if verb is not None and info.get("actor"):
            detail = str(info.get("reason") or info.get("summary") or "")
            self.spawn(self.line(rid, info["actor"], verb, info.get("step", ""), detail))
        if kind == "interrupted":
            # No person did it: the thread says the bot died in the step and what its
            # check sees (for restore.commit: whether the recovery is still staged).
            check = getattr(info.get("check"), "summary", "") or "no check: it cannot tell"
            self.spawn(self.line(rid, "the bot", "stopped while running", info["step"], check))
        self.schedule_refresh(rid)

    def schedule_refresh(self, rid: str) -> None:
        if rid in self._pending and not self._pending[rid].done():
            return  # one refresh is coming: it will read the newest state
        self._pending[rid] = self.spawn(self._refresh_later(rid))

    async def _refresh_later(self, rid: str) -> None:
        wait = self._last.get(rid, 0) + MIN_REFRESH_INTERVAL - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last[rid] = time.monotonic()
        self._pending.pop(rid, None)
        await self.refresh(rid)

    async def _changed(self, rid: str, key: str, payload: Any) -> bool:
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        old = await self.redis.hget(slack_key(rid), f"seen:{key}")
        if old is not None and _s(old) == digest:
            return False
        await self.redis.hset(slack_key(rid), f"seen:{key}", digest)
        return True

    async def refresh(self, rid: str) -> None:
        """Render the root and every started step from Redis (through the view model of
        `bot.view`, from the stored record and results alone); post or update what
        changed, in the plan's order, one refresh of a restore at a time."""
        key = (rid, id(asyncio.get_running_loop()))
        lock = self._refreshing.setdefault(key, asyncio.Lock())
        async with lock:
            await self._refresh(rid)

    async def _refresh(self, rid: str) -> None:
        where = await self.thread(rid)
        if where is None:
            return
        channel, root_ts = where
        rec = await self.engine.store.load(rid)
        if rec is None:
            return
        cluster = self.engine.cluster_of(rec)
        procedure = view.procedure_of(rec)
        text, body = blocks.render_root(view.root_view(rec, procedure, cluster))
        if await self._changed(rid, "root", body):
            await self.updates.take()
            await self.client.chat_update(channel=channel, ts=root_ts, text=text, blocks=body)
        if rec.status != "running" and await self.redis.hsetnx(slack_key(rid), "transcript", "1"):
            await self.post_transcript(rid)
        for sid in rec.meta["plan"]:
            if rec.steps[sid]["status"] != "pending":
                await self.refresh_card(rec, procedure, cluster, sid, channel, root_ts)

    def _card_inputs(self, rec: RestoreRecord, procedure: Procedure, sid: str) -> list[Any]:
        """What a card is made of but its host results: a step's state changes
        (`updated_at`) with every host result, so when none of this did, neither did
        the card, and nothing is read or rendered for it."""
        step = procedure.step(sid)
        return [
            rec.steps[sid],
            rec.data.get(f"preview:{sid}"),
            rec.data.get(f"plan:{sid}"),
            rec.data.get("review") if step.role is Role.REVIEW else None,
            rec.data.get("leader"),
            rec.data.get("backup"),
            view.backup_choice_open(rec, procedure) if step.role is Role.PREFLIGHT else None,
        ]

    async def refresh_card(
        self,
        rec: RestoreRecord,
        procedure: Procedure,
        cluster: Cluster,
        sid: str,
        channel: str,
        root_ts: str,
    ) -> None:
        """Post or update one step's card, and upload what goes with it as files."""
        rid = str(rec.rid)
        ts_raw = await self.redis.hget(slack_key(rid), f"card:{sid}")
        made_of = self._card_inputs(rec, procedure, sid)
        if ts_raw is not None and not await self._changed(rid, f"input:{sid}", made_of):
            return
        attempt = int(rec.steps[sid].get("attempt", 0))
        hosts = [sch.host for sch in cluster.schedulers]
        results = await self.engine.store.step_results(rid, sid, attempt, hosts)
        card_view = view.step_view(rec, procedure, sid, cluster, results=results)
        card = blocks.render_card(card_view)
        if card.plan_file is not None:
            # The whole plan the card names goes out first: it is in the thread before
            # the card's Approve can be clicked.
            await self.plan_file(rid, sid, card.plan_file)
        if ts_raw is None:
            if not await self.redis.hsetnx(slack_key(rid), f"card:{sid}", "posting"):
                return  # another process posts it
            resp = await self.client.chat_postMessage(
                channel=channel, thread_ts=root_ts, text=card.text, blocks=card.blocks
            )
            await self.redis.hset(slack_key(rid), f"card:{sid}", _s(resp["ts"]))
            await self._changed(rid, f"card:{sid}", card.blocks)
        elif _s(ts_raw) == "posting" or not await self._changed(rid, f"card:{sid}", card.blocks):
            return
        else:
            await self.updates.take()
            await self.client.chat_update(
                channel=channel, ts=_s(ts_raw), text=card.text, blocks=card.blocks
            )
        await self.card_files(rec, procedure.step(sid), card_view, card.needs_file, results)

    async def plan_file(self, rid: str, sid: str, f: blocks.PlanFile) -> None:
        """The whole plan of a card that cannot hold it, once per content (its sha256).
        Posted as it is (`blocks.plan_file` masked its secrets): the card names the sha256
        of exactly these bytes."""
        where = await self.thread(rid)
        if where is None:
            return
        key = f"plan-file:{sid}:{f.sha256}"
        if not await self.redis.hsetnx(slack_key(rid), key, "1"):
            return
        try:
            await self.client.files_upload_v2(
                content=f.content,
                filename=f.name,
                title=f"{sid}: the whole plan (sha256 {f.sha256})",
                channel=where[0],
                thread_ts=where[1],
            )
        except Exception:
            # Not posted: the card is not posted either (it would name a file that is
            # not there), and the next refresh tries both again.
            await self.redis.hdel(slack_key(rid), key, f"seen:input:{sid}")
            raise

    async def card_files(
        self,
        rec: RestoreRecord,
        step: Step,
        card_view: view.StepView,
        needs_file: bool,
        results: dict[str, HostResult],
    ) -> None:
        """The files a card promises: the whole review listing, the tasks a commit
        kills, the full output when the card cut it; each uploaded once."""
        rid, sid, status = str(rec.rid), step.id, card_view.status
        if step.role is Role.REVIEW and status == "awaiting":
            listing = (rec.data.get("review") or {}).get("listing")
            # Deleting tasks is an attempt of its own: its re-print is uploaded too.
            if listing and await self.redis.hsetnx(
                slack_key(rid), f"listing:{card_view.attempt}", "1"
            ):
                await self.upload(
                    rid,
                    f"staged-tasks-{rid}.tsv",
                    "Role\tJob\tShard\tStatus\tTask ID\n" + listing + "\n",
                    "The staged recovery's tasks (the whole listing)",
                )
        kills = card_view.kills
        if step.fills_log and status == "awaiting" and kills is not None and kills.known:
            # What approving it kills, whole: the card says how many.
            listing = rec.data.get("kills_listing") or ""
            if await self.redis.hsetnx(slack_key(rid), "kills-listing", "1"):
                await self.upload(
                    rid,
                    f"tasks-killed-{rid}.tsv",
                    listing or "(none)\n",
                    f"The running tasks {sid} kills: {kills.summary}",
                )
        if status in ("succeeded", "failed") and needs_file:
            key = f"file:{sid}:{card_view.attempt}"
            if await self.redis.hsetnx(slack_key(rid), key, "1"):
                await self.upload(
                    rid,
                    f"{sid}-output.txt",
                    blocks.output_text(sid, results),
                    f"{sid}: full output",
                )


def _as_future(coro: Any) -> concurrent.futures.Future[Any]:
    """Without a work loop (tests, console): a task on the running loop, as a Future."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    task = asyncio.ensure_future(coro)

    def copy(t: asyncio.Task[Any]) -> None:
        if t.cancelled():
            future.cancel()
        elif t.exception() is not None:
            future.set_exception(t.exception())
        else:
            future.set_result(t.result())

    task.add_done_callback(copy)
    return future
