"""Buttons and modal submissions: ack at once, then an engine call; refusals ephemeral."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import blocks
from bot.slack_front import SlackFront
from handlers.shapes import Origin, origin
from runbook.engine import Actor, Refused
from runbook.listing import check_task_ids, listing_ids

VERBS = {
    "approve": "approved",
    "retry": "retried",
    "mark_done": "marked done",
    "rewind": "went back",
}


def _ids(value: str) -> tuple[str, str]:
    # The value's shape was checked (handlers.shapes) before any listener ran.
    data = json.loads(value)
    return str(data["rid"]), str(data.get("sid", ""))


def _seen(value: str) -> str | None:
    """The plan digest on the card clicked, if the button carries one."""
    plan = json.loads(value).get("plan")
    return str(plan) if plan else None


def register(app: AsyncApp, front: SlackFront) -> None:
    engine = front.engine

    async def refuse(rid: str, who: Origin, sid: str, exc: Refused) -> None:
        await front.tell(who, f"🚫 {exc}")
        await front.line(rid, who.user, "refused", sid, str(exc))

    async def placed(rid: str, who: Origin) -> bool:
        """The request comes from the restore's workspace and thread channel; if not,
        the person is told why, and nothing changes."""
        why = await front.place_refusal(rid, who)
        if why is not None:
            await front.tell(who, f"🚫 {why}")
            return False
        return True

    async def act(verb: str, rid: str, sid: str, who: Origin, seen: str | None = None) -> None:
        # Runs after the ack. The thread line naming the person comes from the engine's
        # "approved" event, before the step runs; a refusal changes nothing and says why.
        if not await placed(rid, who):
            return
        user = who.user
        try:
            if verb == "approve":
                await engine.approve(rid, sid, Actor(user), seen)
            elif verb == "retry":
                await engine.retry(rid, sid, Actor(user))
            elif verb == "rewind":
                await engine.rewind(rid, sid, Actor(user))
            else:
                await engine.mark_done(rid, sid, Actor(user))
        except Refused as exc:
            await refuse(rid, who, sid, exc)

    def on_button(verb: str) -> Any:
        async def listener(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
            await ack()
            rid, sid = _ids(action["value"])
            who = origin(body)
            front.spawn(act(verb, rid, sid, who, _seen(action["value"])), who)

        return listener

    for verb in VERBS:
        app.action(verb)(on_button(verb))

    @app.action("export")
    async def on_export(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        rid, _ = _ids(action["value"])
        who = origin(body)

        async def work() -> None:
            if await placed(rid, who) and not await front.post_transcript(rid):
                await front.tell(who, ALREADY_POSTED)

        front.spawn(work(), who)

    @app.action("put_back")
    async def on_put_back(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """After an abort that held the schedulers stopped on the wiped log."""
        await ack()
        rid, _ = _ids(action["value"])
        who = origin(body)

        async def work() -> None:
            if not await placed(rid, who):
                return
            try:
                await engine.put_back_log(rid, Actor(who.user))
            except Refused as exc:
                await refuse(rid, who, "", exc)

        front.spawn(work(), who)

    @app.action("choose_backup")
    async def on_choose_backup(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        rid = str(action.get("block_id", "")).removeprefix("backup.")
        backup = str((action.get("selected_option") or {}).get("value", ""))
        who = origin(body)

        async def work() -> None:
            if not await placed(rid, who):
                front.schedule_refresh(rid)  # the menu shows the chosen backup again
                return
            try:
                await engine.choose_backup(rid, backup, Actor(who.user))
            except Refused as exc:
                await refuse(rid, who, "prep.preflight", exc)
                front.schedule_refresh(rid)  # the menu shows the chosen backup again

        front.spawn(work(), who)

    async def open_modal(
        client: Any, trigger_id: str, rid: str, who: Origin, view: Callable[[], Awaitable[Any]]
    ) -> None:
        """A modal about `rid`, only for a click from its thread; remembered, so that
        only its own submission is taken. Runs after the ack: a failure is caught here
        and told (Bolt loses the ack of a listener that raises after acking)."""
        try:
            why = await front.call(front.place_refusal(rid, who))
            if why is not None:
                front.spawn(front.tell(who, f"🚫 {why}"))
                return
            resp = await client.views_open(trigger_id=trigger_id, view=await view())
            await front.call(front.remember_view(rid, str(resp["view"]["id"]), who.user))
        except Exception as exc:
            front.failed(exc, who)

    @app.action("delete_tasks")
    async def on_delete(
        ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any
    ) -> None:
        await ack()
        rid, _ = _ids(action["value"])

        async def modal() -> Any:
            rec = await front.call(engine.store.load(rid))
            count = int(((rec.data.get("review") or {}) if rec else {}).get("count") or 0)
            return blocks.delete_modal(rid, count)

        await open_modal(client, body["trigger_id"], rid, origin(body), modal)

    async def view_refused(ack: Any, body: dict[str, Any], view: dict[str, Any], rid: str) -> bool:
        """The submission of a modal the bot did not open for this person from the
        restore's thread is refused inside the modal, and changes nothing."""
        why = await front.call(front.view_refusal(rid, view["id"], origin(body)))
        if why is None:
            return False
        await ack(response_action="errors", errors={_first_block(view): why[:1900]})
        return True

    @app.view("delete_tasks")
    async def on_delete_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        # Checked against the staged listing before the ack: errors show in the modal.
        meta = json.loads(view["private_metadata"])
        rid, user = str(meta["rid"]), body["user"]["id"]
        if await view_refused(ack, body, view, rid):
            return
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
        who = await _thread_origin(front, rid, body)

        async def work() -> None:
            try:
                await engine.delete_tasks(rid, ids, Actor(user))
            except Refused as exc:
                await refuse(rid, who, "restore.review", exc)

        front.spawn(work(), who)

    @app.action("skip")
    async def on_skip(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        await ack()
        rid, sid = _ids(action["value"])

        async def modal() -> Any:
            return blocks.skip_modal(rid, sid)

        await open_modal(client, body["trigger_id"], rid, origin(body), modal)

    @app.action("abort")
    async def on_abort(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        await ack()
        rid, _ = _ids(action["value"])

        async def modal() -> Any:
            return blocks.abort_modal(rid)

        await open_modal(client, body["trigger_id"], rid, origin(body), modal)

    @app.view("skip_reason")
    async def on_skip_reason(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        meta = json.loads(view["private_metadata"])
        rid, sid, user = str(meta["rid"]), str(meta["sid"]), body["user"]["id"]
        if await view_refused(ack, body, view, rid):
            return
        reason = _first_value(view)
        if not reason.strip():
            await ack(
                response_action="errors",
                errors={_first_block(view): "Say why the step is skipped."},
            )
            return
        await ack()
        who = await _thread_origin(front, rid, body)

        async def work() -> None:
            try:
                await engine.skip(rid, sid, Actor(user), reason)
            except Refused as exc:
                await refuse(rid, who, sid, exc)
                return
            front.schedule_refresh(rid)

        front.spawn(work(), who)

    @app.view("abort_restore")
    async def on_abort_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        meta = json.loads(view["private_metadata"])
        rid, user = str(meta["rid"]), body["user"]["id"]
        if await view_refused(ack, body, view, rid):
            return
        await ack()
        revert = _first_value(view) != "no"
        who = await _thread_origin(front, rid, body)

        async def work() -> None:
            try:
                await engine.abort(rid, Actor(user), revert=revert)
            except Refused as exc:
                await refuse(rid, who, "abort", exc)
                return
            front.schedule_refresh(rid)

        front.spawn(work(), who)


ALREADY_POSTED = "The transcript of this state of the restore is already posted above."


async def _thread_origin(front: SlackFront, rid: str, body: dict[str, Any]) -> Origin:
    """Who submitted a modal, placed in the restore's channel (a submission has none)."""
    channel = (await front.call(front.thread(rid)) or ("", ""))[0]
    who = origin(body)
    return Origin(who.team, who.enterprise, who.user, channel)


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
