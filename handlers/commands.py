"""`/aurora-restore`: a module-level Bolt listener that checks what was typed, acks at
once, then hands one piece of work to the work loop (handlers.common.after_ack).

Its dependencies come from Bolt's context (`context["front"]`, `context["engine"]`,
put there by `bot.slack_app.dependencies`). The start's arguments are checked before
the ack by `runbook.inputs.parse_start_args`, which `Engine.start` applies again: each
refusal has one wording, whichever front end meets it.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import blocks
from bot.slack_front import SlackFront
from handlers.actions import ALREADY_POSTED
from handlers.common import after_ack, engine_of, front_of
from handlers.shapes import COMMAND, RID_RE, Origin, origin
from runbook.access import start_refusal
from runbook.engine import Actor, Refused
from runbook.inputs import parse_start_args

USAGE = (
    "/aurora-restore <cluster> [backup-id] | check <cluster> | status | abort [cluster] "
    "| export [restore-id] | help"
)


def register(app: AsyncApp) -> None:
    app.command(COMMAND)(on_command)


async def on_command(ack: Any, command: dict[str, Any], context: Any) -> None:
    """Every verb of the slash command; a start when the first word is no verb."""
    front, engine = front_of(context), engine_of(context)
    text = command.get("text") or ""
    words = text.split()
    who = origin(command)
    if not words or words[0] in ("help", "-h", "--help"):
        await ack(response_type="ephemeral", text=blocks.help_text())
        return
    verb = words[0]
    if verb == "export":
        await ack(
            response_type="ephemeral",
            text="Exporting the transcript into the restore's thread…",
        )
        after_ack(front, who, "", _export(front, words[1:], who))
        return
    if verb == "check":
        name = words[1] if len(words) == 2 else ""
        if name not in engine.clusters:
            known = ", ".join(f"`{c}`" for c in sorted(engine.clusters)) or "none"
            await ack(
                response_type="ephemeral",
                text=f"Usage: `/aurora-restore check <cluster>`. Known clusters: {known}.",
            )
            return
        await ack(
            response_type="ephemeral",
            text=f"Checking `{name}`'s restore readiness (read-only, no lock)…",
        )
        after_ack(front, who, "", _check(front, name, who))
        return
    if verb in ("status", "abort"):
        await ack(response_type="ephemeral", text=f"`/aurora-restore {verb}`: looking…")
        trigger = command.get("trigger_id")
        after_ack(front, who, "", _status_or_abort(front, verb, words[1:], who, trigger))
        return
    try:
        args = parse_start_args(text, engine.clusters)
    except Refused as exc:
        await ack(response_type="ephemeral", text=f"🚫 {blocks.esc(exc)}\nUsage: `{USAGE}`")
        return
    refusal = start_refusal(engine.clusters[args.cluster], who.channel, who.channel_name)
    if refusal is not None:
        await ack(response_type="ephemeral", text=f"🚫 {refusal}")
        return
    await ack(response_type="ephemeral", text=f"Starting a restore of `{args.cluster}`…")
    after_ack(front, who, "", _start(front, args.cluster, args.backup, who))


async def _start(front: SlackFront, name: str, backup: str | None, who: Origin) -> None:
    engine = front.engine
    user = who.user
    holder = await engine.store.holder(name)
    if holder:
        here = await front.place_refusal(holder, who) is None
        link = await front.permalink(holder) if here else None
        where = f"<{link}|its thread>" if link else f"restore `{holder}`"
        await front.tell(who, f"Cluster `{name}` already has a restore running: see {where}.")
        return
    try:
        rid = await engine.start(name, backup, Actor(user))
    except Refused as exc:
        await front.tell(who, f"🚫 {exc}")
        return
    await front.open_thread(rid, who)
    await front.line(rid, user, "started the restore", "", f"cluster {name}")
    await engine.advance(rid)
    await front.refresh(rid)


async def _check(front: SlackFront, name: str, who: Origin) -> None:
    """`/aurora-restore check <cluster>` (bot.check): any member of the channel; read-only,
    no lock, so it runs beside a restore in progress (and says so). The table goes to the
    channel."""
    from slack_sdk.errors import SlackApiError

    from bot.check import check_cluster, slack_text

    engine = front.engine
    cluster = engine.clusters[name]
    remote, probe = engine.connect(cluster)  # its own connections, closed at the end
    try:
        rows = await check_cluster(
            cluster, remote, probe, detect=engine.detect, sources=engine.sources, mesos=engine.mesos
        )
    except Exception as exc:  # one line, never a traceback
        await front.tell(who, f"The check of `{name}` could not run: {type(exc).__name__}")
        return
    running = await engine.store.holder(name)
    try:
        await front.client.chat_postMessage(
            channel=who.channel, text=slack_text(name, rows, running)
        )
    except SlackApiError as exc:
        await front.tell(
            who, f"Cannot post the check of `{name}` here: {exc.response.get('error')}"
        )


async def _here(front: SlackFront, who: Origin) -> list[tuple[str, str]]:
    """(cluster, restore id) of the running restores whose thread is in who's channel
    (and workspace): status and abort see only those."""
    engine = front.engine
    running = []
    for name in sorted(engine.clusters):
        holder = await engine.store.holder(name)
        if holder and await front.place_refusal(holder, who) is None:
            running.append((name, holder))
    return running


async def _status_or_abort(
    front: SlackFront,
    verb: str,
    args: list[str],
    who: Origin,
    trigger_id: str | None,
) -> None:
    engine = front.engine
    client = front.client  # the work loop's client: this runs there
    running = await _here(front, who)
    if args:
        running = [(n, rid) for n, rid in running if n == args[0]]
    if verb == "status":
        if not running:
            await front.tell(who, "No restore is running in this channel.")
            return
        lines = []
        for n, rid in running:
            rec = await engine.record(rid)
            link = await front.permalink(rid)
            current = rec.current or "-"
            lines.append(
                f"• `{n}`: restore `{rid}`, step `{current}` ({rec.steps.get(current, {}).get('status', '')})"
                + (f" — <{link}|thread>" if link else "")
            )
        await front.tell(who, "\n".join(lines))
        return
    if len(running) != 1:
        await front.tell(
            who,
            "Name the cluster: `/aurora-restore abort <cluster>`"
            if running
            else "No restore is running in this channel"
            + (f" for `{blocks.esc(args[0])[:80]}`." if args else "."),
        )
        return
    rid = running[0][1]
    if trigger_id:
        resp = await client.views_open(trigger_id=trigger_id, view=blocks.abort_modal(rid))
        await front.remember_view(rid, str(resp["view"]["id"]), who.user)


async def _export(front: SlackFront, args: list[str], who: Origin) -> None:
    store = front.engine.store
    if args and not RID_RE.fullmatch(args[0]):
        await front.tell(who, f"`{blocks.esc(args[0])[:80]}` is not a restore id.")
        return
    rid = args[0] if args else None
    if rid is None:  # the newest restore of this channel
        for candidate in await store.restore_ids(limit=50):
            if await front.place_refusal(candidate, who) is None:
                rid = candidate
                break
    if rid is None or await store.load(rid) is None:
        await front.tell(
            who,
            f"No restore {rid or 'of this channel'} to export (finished restores expire after 90 days).",
        )
        return
    if await front.thread(rid) is None:
        await front.tell(
            who, f"Restore `{rid}` has no Slack thread: use `aurora-restore export {rid}`."
        )
        return
    why = await front.place_refusal(rid, who)
    if why is not None:
        await front.tell(who, f"🚫 {why}")
    elif not await front.post_transcript(rid):
        await front.tell(who, ALREADY_POSTED)
