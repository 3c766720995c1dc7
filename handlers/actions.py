"""Buttons and modal submissions: module-level Bolt listeners that ack at once, then make
one engine call (handlers.common.after_ack); refusals are ephemeral.

Each listener takes its dependencies from Bolt's context (`context["front"]`,
`context["engine"]`, put there by `bot.slack_app.dependencies`). The checks a modal's
submission needs before its ack (the task ids typed: `runbook.inputs`, which the engine
applies again) answer inside the modal. No step is named here: the preflight and the review are found
by their roles in the restore's procedure (handlers.common.step_of).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import blocks
from bot.slack_front import SlackFront
from handlers.common import (
    after_ack,
    engine_call,
    engine_of,
    failed_after_ack,
    front_of,
    placed,
    step_of,
)
from handlers.shapes import Origin, origin
from runbook.engine import Actor, Refused
from runbook.inputs import parse_task_ids
from runbook.listing import listing_ids
from runbook.step import Role

VERBS = {
    "approve": "approved",
    "retry": "retried",
    "mark_done": "marked done",
    "rewind": "went back",
}

ALREADY_POSTED = "The transcript of this state of the restore is already posted above."


def register(app: AsyncApp) -> None:
    """Every button and modal listener of the restore's thread."""
    for verb in VERBS:
        app.action(verb)(on_step_button)
    app.action("export")(on_export)
    app.action("put_back")(on_put_back)
    app.action("choose_backup")(on_choose_backup)
    app.action("delete_tasks")(on_delete)
    app.action("skip")(on_skip)
    app.action("abort")(on_abort)
    app.view("delete_tasks")(on_delete_submit)
    app.view("skip_reason")(on_skip_reason)
    app.view("abort_restore")(on_abort_submit)


def _ids(value: str) -> tuple[str, str]:
    # The value's shape was checked (handlers.shapes) before any listener ran.
    data = json.loads(value)
    return str(data["rid"]), str(data.get("sid", ""))


def _seen(value: str) -> str | None:
    """The plan digest on the card clicked, if the button carries one."""
    plan = json.loads(value).get("plan")
    return str(plan) if plan else None


# ------------------------------------------------------------------ buttons


async def on_step_button(
    ack: Any, body: dict[str, Any], action: dict[str, Any], context: Any
) -> None:
    """Approve, Retry, Mark done, Back to …: the engine call named by the button."""
    await ack()
    front = front_of(context)
    rid, sid = _ids(action["value"])
    who = origin(body)
    verb = str(action["action_id"])
    after_ack(front, who, rid, act(front, verb, rid, sid, who, _seen(action["value"])))


async def act(
    front: SlackFront, verb: str, rid: str, sid: str, who: Origin, seen: str | None = None
) -> None:
    """After the ack. The thread line naming the person comes from the engine's
    "approved" event, before the step runs; a refusal changes nothing and says why."""
    if not await placed(front, rid, who):
        return
    engine, by = front.engine, Actor(who.user)
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "approve": lambda: engine.approve(rid, sid, by, seen),
        "retry": lambda: engine.retry(rid, sid, by),
        "rewind": lambda: engine.rewind(rid, sid, by),
        "mark_done": lambda: engine.mark_done(rid, sid, by),
    }
    await engine_call(front, rid, who, sid, calls[verb])


async def on_export(ack: Any, body: dict[str, Any], action: dict[str, Any], context: Any) -> None:
    await ack()
    front = front_of(context)
    rid, _ = _ids(action["value"])
    who = origin(body)
    after_ack(front, who, rid, export(front, rid, who))


async def export(front: SlackFront, rid: str, who: Origin) -> None:
    if await placed(front, rid, who) and not await front.post_transcript(rid):
        await front.tell(who, ALREADY_POSTED)


async def on_put_back(ack: Any, body: dict[str, Any], action: dict[str, Any], context: Any) -> None:
    """After an abort that held the schedulers stopped on the wiped log."""
    await ack()
    front = front_of(context)
    rid, _ = _ids(action["value"])
    who = origin(body)
    after_ack(front, who, rid, put_back(front, rid, who))


async def put_back(front: SlackFront, rid: str, who: Origin) -> None:
    if await placed(front, rid, who):
        engine = front.engine
        await engine_call(front, rid, who, "", lambda: engine.put_back_log(rid, Actor(who.user)))


async def on_choose_backup(
    ack: Any, body: dict[str, Any], action: dict[str, Any], context: Any
) -> None:
    await ack()
    front = front_of(context)
    rid = str(action.get("block_id", "")).removeprefix("backup.")
    backup = str((action.get("selected_option") or {}).get("value", ""))
    who = origin(body)
    after_ack(front, who, rid, choose_backup(front, rid, backup, who))


async def choose_backup(front: SlackFront, rid: str, backup: str, who: Origin) -> None:
    engine = front.engine
    if not await placed(front, rid, who):
        front.schedule_refresh(rid)  # the menu shows the chosen backup again
        return
    try:
        await engine.choose_backup(rid, backup, Actor(who.user))
    except Refused as exc:
        preflight = step_of(await engine.store.load(rid), Role.PREFLIGHT).id
        await front.tell(who, f"🚫 {exc}")
        await front.line(rid, who.user, "refused", preflight, str(exc))
        front.schedule_refresh(rid)  # the menu shows the chosen backup again


# ------------------------------------------------------------------ modals


async def on_delete(
    ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any, context: Any
) -> None:
    """The review card's "Delete tasks…": a modal asking for the task ids."""
    await ack()
    front = front_of(context)
    rid, _ = _ids(action["value"])

    async def modal() -> Any:
        rec = await front.call(front.engine.store.load(rid))
        count = int(((rec.data.get("review") or {}) if rec else {}).get("count") or 0)
        return blocks.delete_modal(rid, count)

    await open_modal(front, client, body["trigger_id"], rid, origin(body), modal)


async def on_skip(
    ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any, context: Any
) -> None:
    await ack()
    rid, sid = _ids(action["value"])

    async def modal() -> Any:
        return blocks.skip_modal(rid, sid)

    await open_modal(front_of(context), client, body["trigger_id"], rid, origin(body), modal)


async def on_abort(
    ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any, context: Any
) -> None:
    await ack()
    rid, _ = _ids(action["value"])

    async def modal() -> Any:
        return blocks.abort_modal(rid)

    await open_modal(front_of(context), client, body["trigger_id"], rid, origin(body), modal)


async def open_modal(
    front: SlackFront,
    client: Any,
    trigger_id: str,
    rid: str,
    who: Origin,
    view: Callable[[], Awaitable[Any]],
) -> None:
    """A modal about `rid`, only for a click from its thread; remembered, so that only
    its own submission is taken. Runs after the ack, on the app's loop (views.open must
    leave within the trigger's 3 seconds): a failure is caught here and told in the
    restore's thread (Bolt loses the ack of a listener that raises after acking)."""
    try:
        why = await front.call(front.place_refusal(rid, who))
        if why is not None:
            front.spawn(front.tell(who, f"🚫 {why}"))
            return
        resp = await client.views_open(trigger_id=trigger_id, view=await view())
        await front.call(front.remember_view(rid, str(resp["view"]["id"]), who.user))
    except Exception as exc:
        failed_after_ack(front, exc, who, rid)


async def view_refused(
    front: SlackFront, ack: Any, body: dict[str, Any], view: dict[str, Any], rid: str
) -> bool:
    """The submission of a modal the bot did not open for this person from the
    restore's thread is refused inside the modal, and changes nothing."""
    why = await front.call(front.view_refusal(rid, view["id"], origin(body)))
    if why is None:
        return False
    await ack(response_action="errors", errors={first_block(view): why[:1900]})
    return True


async def on_delete_submit(
    ack: Any, body: dict[str, Any], view: dict[str, Any], context: Any
) -> None:
    """The task ids to delete, checked against the staged listing before the ack (the
    errors show in the modal), then deleted by the engine."""
    front, engine = front_of(context), engine_of(context)
    meta = json.loads(view["private_metadata"])
    rid, user = str(meta["rid"]), body["user"]["id"]
    if await view_refused(front, ack, body, view, rid):
        return
    rec = await front.call(engine.store.load(rid))
    review = step_of(rec, Role.REVIEW).id
    listing = ((rec.data.get("review") or {}) if rec else {}).get("listing", "")
    error = ""
    ids: list[str] = []
    if rec is None or rec.steps.get(review, {}).get("status") != "awaiting":
        error = f"{review} is not waiting for approval any more."
    elif not await _approver_or_unknown(front, rec, user):
        error = f"You are not an approver for {rec.meta['cluster']}: nothing was deleted."
    else:
        try:
            ids = parse_task_ids(first_value(view), listing_ids(listing))
        except Refused as exc:
            error = str(exc)
    if error:
        await ack(response_action="errors", errors={first_block(view): error[:1900]})
        return
    await ack()
    who = await thread_origin(front, rid, body)
    work = engine_call(front, rid, who, review, lambda: engine.delete_tasks(rid, ids, Actor(user)))
    after_ack(front, who, rid, work)


async def on_skip_reason(
    ack: Any, body: dict[str, Any], view: dict[str, Any], context: Any
) -> None:
    front = front_of(context)
    meta = json.loads(view["private_metadata"])
    rid, sid = str(meta["rid"]), str(meta["sid"])
    if await view_refused(front, ack, body, view, rid):
        return
    reason = first_value(view)
    if not reason.strip():
        await ack(
            response_action="errors",
            errors={first_block(view): "Say why the step is skipped."},
        )
        return
    await ack()
    who = await thread_origin(front, rid, body)
    after_ack(front, who, rid, skip(front, rid, sid, who, reason))


async def skip(front: SlackFront, rid: str, sid: str, who: Origin, reason: str) -> None:
    engine = front.engine
    if await engine_call(
        front, rid, who, sid, lambda: engine.skip(rid, sid, Actor(who.user), reason)
    ):
        front.schedule_refresh(rid)


async def on_abort_submit(
    ack: Any, body: dict[str, Any], view: dict[str, Any], context: Any
) -> None:
    front = front_of(context)
    meta = json.loads(view["private_metadata"])
    rid = str(meta["rid"])
    if await view_refused(front, ack, body, view, rid):
        return
    await ack()
    revert = first_value(view) != "no"
    who = await thread_origin(front, rid, body)
    after_ack(front, who, rid, abort(front, rid, who, revert))


async def abort(front: SlackFront, rid: str, who: Origin, revert: bool) -> None:
    engine = front.engine
    call = lambda: engine.abort(rid, Actor(who.user), revert=revert)  # noqa: E731
    if await engine_call(front, rid, who, "abort", call):
        front.schedule_refresh(rid)


# ------------------------------------------------------------------ helpers


async def thread_origin(front: SlackFront, rid: str, body: dict[str, Any]) -> Origin:
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


def first_block(view: dict[str, Any]) -> str:
    return str(next(iter(view["state"]["values"])))


def first_value(view: dict[str, Any]) -> str:
    for block in view["state"]["values"].values():
        for element in block.values():
            if element.get("type") == "radio_buttons":
                return str((element.get("selected_option") or {}).get("value", ""))
            return str(element.get("value") or "")
    return ""
