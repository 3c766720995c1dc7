"""Buttons and modal submissions: ack at once, then an engine call; refusals ephemeral."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import blocks
from bot.slack_front import SlackFront
from runbook.engine import Actor, Refused
from runbook.listing import check_task_ids, listing_ids

VERBS = {
    "approve": "approved",
    "retry": "retried",
    "mark_done": "marked done",
    "rewind": "went back",
}


def _ids(value: str) -> tuple[str, str]:
    data = json.loads(value)
    return str(data["rid"]), str(data.get("sid", ""))


def register(app: AsyncApp, front: SlackFront) -> None:
    engine = front.engine

    async def refuse(rid: str, user: str, channel: str, sid: str, exc: Refused) -> None:
        await front.client.chat_postEphemeral(channel=channel, user=user, text=f"🚫 {exc}")
        await front.line(rid, user, "refused", sid, str(exc))

    async def act(verb: str, rid: str, sid: str, user: str, channel: str) -> None:
        # Runs after the ack. The thread line naming the person comes from the engine's
        # "approved" event, before the step runs; a refusal changes nothing and says why.
        try:
            if verb == "approve":
                await engine.approve(rid, sid, Actor(user))
            elif verb == "retry":
                await engine.retry(rid, sid, Actor(user))
            elif verb == "rewind":
                await engine.rewind(rid, sid, Actor(user))
            else:
                await engine.mark_done(rid, sid, Actor(user))
        except Refused as exc:
            await refuse(rid, user, channel, sid, exc)

    def on_button(verb: str) -> Any:
        async def listener(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            rid, sid = _ids(action["value"])
            channel = body["container"]["channel_id"]
            front.spawn(act(verb, rid, sid, body["user"]["id"], channel))

        return listener

    for verb in VERBS:
        app.action(verb)(on_button(verb))

    @app.action("export")
    async def on_export(ack: Any, action: dict[str, Any]) -> None:
        await ack()
        rid, _ = _ids(action["value"])
        front.spawn(front.post_transcript(rid))

    @app.action("choose_backup")
    async def on_choose_backup(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        rid = str(action.get("block_id", "")).removeprefix("backup.")
        backup = str((action.get("selected_option") or {}).get("value", ""))
        user, channel = body["user"]["id"], body["container"]["channel_id"]

        async def work() -> None:
            try:
                await engine.choose_backup(rid, backup, Actor(user))
            except Refused as exc:
                await refuse(rid, user, channel, "prep.preflight", exc)
                front.schedule_refresh(rid)  # the menu shows the chosen backup again

        front.spawn(work())

    @app.action("delete_tasks")
    async def on_delete(
        ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any
    ) -> None:
        await ack()
        rid, _ = _ids(action["value"])
        rec = await front.call(engine.store.load(rid))
        count = int(((rec.data.get("review") or {}) if rec else {}).get("count") or 0)
        await client.views_open(trigger_id=body["trigger_id"], view=blocks.delete_modal(rid, count))

    @app.view("delete_tasks")
    async def on_delete_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        # Checked against the staged listing before the ack: errors show in the modal.
        meta = json.loads(view["private_metadata"])
        rid, user = str(meta["rid"]), body["user"]["id"]
        rec = await front.call(engine.store.load(rid))
        review = (rec.data.get("review") or {}) if rec else {}
        waiting = (
            rec is not None and rec.steps.get("restore.review", {}).get("status") == "awaiting"
        )
        ids, error = check_task_ids(_first_value(view), set(listing_ids(review.get("listing", ""))))
        if not waiting:
            error = "restore.review is not waiting for approval any more."
        elif rec is not None and not await _approver_or_unknown(front, rec, user):
            error = f"You are not an approver for {rec.meta['cluster']}: nothing was deleted."
        if error:
            await ack(response_action="errors", errors={_first_block(view): error[:1900]})
            return
        await ack()

        async def work() -> None:
            channel = (await front.thread(rid) or ("", ""))[0]
            try:
                await engine.delete_tasks(rid, ids, Actor(user))
            except Refused as exc:
                await refuse(rid, user, channel, "restore.review", exc)

        front.spawn(work())

    @app.action("skip")
    async def on_skip(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        await ack()
        rid, sid = _ids(action["value"])
        await client.views_open(trigger_id=body["trigger_id"], view=blocks.skip_modal(rid, sid))

    @app.action("abort")
    async def on_abort(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        await ack()
        rid, _ = _ids(action["value"])
        await client.views_open(trigger_id=body["trigger_id"], view=blocks.abort_modal(rid))

    @app.view("skip_reason")
    async def on_skip_reason(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        reason = _first_value(view)
        if not reason.strip():
            await ack(
                response_action="errors",
                errors={_first_block(view): "Say why the step is skipped."},
            )
            return
        await ack()
        meta = json.loads(view["private_metadata"])
        rid, sid, user = meta["rid"], meta["sid"], body["user"]["id"]

        async def work() -> None:
            rec = await engine.record(rid)
            channel = (await front.thread(rid) or ("", ""))[0]
            try:
                await engine.skip(rid, sid, Actor(user), reason)
            except Refused as exc:
                await refuse(rid, user, channel, sid, exc)
                return
            front.schedule_refresh(rec.rid)

        front.spawn(work())

    @app.view("abort_restore")
    async def on_abort_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        meta = json.loads(view["private_metadata"])
        rid, user = meta["rid"], body["user"]["id"]
        revert = _first_value(view) != "no"

        async def work() -> None:
            channel = (await front.thread(rid) or ("", ""))[0]
            try:
                await engine.abort(rid, Actor(user), revert=revert)
            except Refused as exc:
                await refuse(rid, user, channel, "abort", exc)
                return
            front.schedule_refresh(rid)

        front.spawn(work())


# The ack must leave within 3 s: a user-group lookup that takes longer is left to the
# engine, which checks again after the ack and refuses with an ephemeral message.
ACK_PATH_LOOKUP = 1.5


async def _approver_or_unknown(front: SlackFront, rec: Any, user: str) -> bool:
    engine = front.engine
    try:
        return bool(
            await asyncio.wait_for(
                front.call(engine.may_approve(engine.cluster_of(rec), Actor(user))),
                ACK_PATH_LOOKUP,
            )
        )
    except TimeoutError:
        return True


def _first_block(view: dict[str, Any]) -> str:
    return str(next(iter(view["state"]["values"])))


def _first_value(view: dict[str, Any]) -> str:
    for block in view["state"]["values"].values():
        for element in block.values():
            if element.get("type") == "radio_buttons":
                return str((element.get("selected_option") or {}).get("value", ""))
            return str(element.get("value") or "")
    return ""
