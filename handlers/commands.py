"""`/aurora-restore`: ack at once, then do the work."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import blocks
from bot.slack_front import SlackFront
from runbook import commands as cmd
from runbook.engine import Actor, Refused

USAGE = (
    "/aurora-restore <cluster> [backup-id] | status | abort [cluster] | export [restore-id] | help"
)


def register(app: AsyncApp, front: SlackFront) -> None:
    engine = front.engine

    @app.command("/aurora-restore")
    async def aurora_restore(ack: Any, command: dict[str, Any], client: Any) -> None:
        words = (command.get("text") or "").split()
        user, channel = command["user_id"], command["channel_id"]
        if not words or words[0] in ("help", "-h", "--help"):
            await ack(response_type="ephemeral", text=blocks.help_text())
            return
        verb = words[0]
        if verb == "export":
            await ack(
                response_type="ephemeral",
                text="Exporting the transcript into the restore's thread…",
            )
            front.spawn(_export(front, words[1:], user, channel))
            return
        if verb in ("status", "abort"):
            await ack(response_type="ephemeral", text=f"`/aurora-restore {verb}`: looking…")
            front.spawn(
                _status_or_abort(front, verb, words[1:], user, channel, command.get("trigger_id"))
            )
            return
        if len(words) > 2:
            await ack(response_type="ephemeral", text=f"Too many arguments.\nUsage: `{USAGE}`")
            return
        name, backup = words[0], (words[1] if len(words) == 2 else None)
        if name not in engine.clusters:
            known = ", ".join(f"`{c}`" for c in sorted(engine.clusters)) or "none"
            await ack(
                response_type="ephemeral",
                text=f"Unknown cluster `{blocks.esc(name)[:80]}`. Known clusters: {known}.\nUsage: `{USAGE}`",
            )
            return
        if backup is not None:
            try:
                cmd.backup_id(backup)
            except cmd.InvalidValue:
                await ack(
                    response_type="ephemeral",
                    text=f"`{blocks.esc(backup)[:80]}` is not a backup id (scheduler-backup-yyyy-MM-dd-HH-mm).\nUsage: `{USAGE}`",
                )
                return
        await ack(response_type="ephemeral", text=f"Starting a restore of `{name}`…")
        front.spawn(_start(front, name, backup, user, channel))


async def _start(front: SlackFront, name: str, backup: str | None, user: str, channel: str) -> None:
    engine = front.engine
    holder = await engine.store.holder(name)
    if holder:
        link = await front.permalink(holder)
        where = f"<{link}|its thread>" if link else f"restore `{holder}`"
        await front.client.chat_postEphemeral(
            channel=channel,
            user=user,
            text=f"Cluster `{name}` already has a restore running: see {where}.",
        )
        return
    try:
        rid = await engine.start(name, backup, Actor(user))
    except Refused as exc:
        await front.client.chat_postEphemeral(channel=channel, user=user, text=f"🚫 {exc}")
        return
    await front.open_thread(rid, channel)
    await front.line(rid, user, "started the restore", "", f"cluster {name}")
    await engine.advance(rid)
    await front.refresh(rid)


async def _status_or_abort(
    front: SlackFront,
    verb: str,
    args: list[str],
    user: str,
    channel: str,
    trigger_id: str | None,
) -> None:
    engine = front.engine
    client = front.client  # the work loop's client: this runs there
    names = args[:1] or sorted(engine.clusters)
    running: list[tuple[str, str]] = []
    for n in names:
        holder = await engine.store.holder(n) if n in engine.clusters else None
        if holder:
            running.append((n, holder))
    if verb == "status":
        if not running:
            await client.chat_postEphemeral(
                channel=channel, user=user, text="No restore is running."
            )
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
        await client.chat_postEphemeral(channel=channel, user=user, text="\n".join(lines))
        return
    if len(running) != 1:
        await client.chat_postEphemeral(
            channel=channel,
            user=user,
            text="Name the cluster: `/aurora-restore abort <cluster>`"
            if running
            else "No restore is running.",
        )
        return
    rid = running[0][1]
    if trigger_id:
        await client.views_open(trigger_id=trigger_id, view=blocks.abort_modal(rid))


async def _export(front: SlackFront, args: list[str], user: str, channel: str) -> None:
    store = front.engine.store
    rid = args[0] if args else next(iter(await store.restore_ids(limit=1)), None)
    if rid is None or await store.load(rid) is None:
        await front.client.chat_postEphemeral(
            channel=channel,
            user=user,
            text=f"No restore {rid or ''} to export (finished restores expire after 90 days).",
        )
        return
    if await front.thread(rid) is None:
        await front.client.chat_postEphemeral(
            channel=channel,
            user=user,
            text=f"Restore `{rid}` has no Slack thread: use `aurora-restore export {rid}`.",
        )
        return
    await front.post_transcript(rid)
