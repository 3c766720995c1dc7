"""The Slack side of choosing the backup, deleting staged tasks and going back after a
leader change: a real `aurora-restore serve` process, real signed requests, the Slack
double checking every payload, the sandbox over real SSH.

* the preflight card carries a select menu of the backups (newest chosen); picking an
  old one brings the `prep.ack_backup` card, a line in the thread names who chose;
* the review card's "Delete tasks…" opens a modal; ids not in the listing are refused
  inside the modal (`response_action: errors`) and change nothing; known ids are
  deleted, the card shows what changed and the listing is uploaded again;
* the leader goes away before the commit: approving it is refused, the card offers
  "Back to restore.leader", and clicking it brings `restore.place` back for approval.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio as aioredis

from runbook.listing import listing_ids
from runbook.store import Store
from tests.conftest import RunningSandbox
from tests.slack_double import (
    SlackDouble,
    block_actions_body,
    slash_command_body,
    view_submission_body,
)
from tests.test_backup_and_review import MAX_AGE, wait_for_leader
from tests.test_slack_app import (  # noqa: F401  (world is a fixture)
    ALICE,
    BOB,
    CHANNEL,
    MALLORY,
    AppProcess,
    Thread,
    buttons,
    post,
    until,
    world,
)

pytestmark = pytest.mark.timeout(300)


def elements(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e
        for b in message.get("blocks") or []
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    ]


async def test_backup_menu_delete_modal_and_going_back(world: dict[str, Any]) -> None:  # noqa: F811
    double: SlackDouble = world["double"]
    sandbox: RunningSandbox = world["sandbox"]
    app = await AppProcess(world["env"]).start()
    world["apps"].append(app)
    redis = aioredis.Redis.from_url(world["redis_url"])
    store = Store(redis)

    async def send(body: bytes) -> str:
        status, text, _ = await post(app.url, body)
        assert status == 200, text
        return text

    await wait_for_leader(sandbox, state="ACTIVE")
    await send(slash_command_body(text="sandbox", user_id=ALICE, channel_id=CHANNEL))
    root = await until(lambda: double.messages(channel=CHANNEL), what="root")
    root_ts = root[0]["ts"]
    rid = (await store.restore_ids())[0]

    def card_of(sid: str, action_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        for m in double.messages(channel=CHANNEL, thread_ts=root_ts):
            if f"{sid} ·" not in m.get("text", ""):
                continue
            for e in elements(m):
                if e.get("action_id") == action_id:
                    return m, e
        return None

    thread = Thread(double, root_ts, send)
    click = thread.click

    async def approve(sid: str, user: str = ALICE) -> None:
        await thread.approve(sid, user)

    # The preflight card: a menu of the backups, the newest chosen.
    msg, menu = await until(lambda: card_of("prep.preflight", "choose_backup"), what="menu")
    rec = await store.load(rid)
    assert rec is not None
    newest = rec.data["backup"]
    assert menu["initial_option"]["value"] == newest
    assert [o["value"] for o in menu["options"]] == sorted(rec.data["backups"], reverse=True)
    old = next(o for o in reversed(menu["options"]) if "h ·" in o["text"]["text"])
    assert float(old["text"]["text"].split(" · ")[1].removesuffix(" h")) * 3600 > MAX_AGE
    block_id = next(
        b["block_id"]
        for b in msg["blocks"]
        if b.get("type") == "actions" and menu in b.get("elements", [])
    )
    await send(
        block_actions_body(
            user_id=BOB,
            action_id="choose_backup",
            block_id=block_id,
            action_type="static_select",
            selected_option=old,
            channel_id=CHANNEL,
            message_ts=msg["ts"],
            thread_ts=root_ts,
            message=msg,
        )
    )
    await approve("prep.ack_backup")  # the old backup's age, acknowledged
    # The approval runs after the click's ack: wait for it to be recorded.
    for _ in range(600):
        rec = await store.load(rid)
        if rec is not None and rec.steps["prep.ack_backup"].get("approved_by"):
            break
        await asyncio.sleep(0.1)
    assert rec is not None and rec.data["backup"] == old["value"]
    assert rec.steps["prep.ack_backup"]["approved_by"] == ALICE
    said = json.dumps(double.messages(channel=CHANNEL, thread_ts=root_ts))
    assert f"<@{BOB}> chose the backup" in said

    await approve("prep.stop")
    # The menu is gone once something changed.
    await until(lambda: card_of("prep.preflight", "choose_backup") is None, what="menu gone")
    await thread.skip("prep.block_traffic", BOB, "none")
    for sid in ("prep.admin_access", "prep.disable", "prep.start", "log.stop", "log.archive"):
        await approve(sid)
    await approve("log.wipe", BOB)
    for sid in ("log.init", "log.start", "restore.place", "restore.stage"):
        await approve(sid)

    # restore.review: "Delete tasks…" opens the modal.
    msg, delete = await until(lambda: card_of("restore.review", "delete_tasks"), what="delete")
    views_before = len(double.views)
    await send(click("delete_tasks", msg, delete["value"], BOB))
    await until(lambda: len(double.views) > views_before, what="delete modal")
    modal = list(double.views.values())[-1]
    assert modal["callback_id"] == "delete_tasks"
    rec = await store.load(rid)
    assert rec is not None
    ids = listing_ids(rec.data["review"]["listing"])
    count = rec.data["review"]["count"]

    def submit(text: str, user: str = BOB, view: dict[str, Any] = modal) -> bytes:
        return view_submission_body(
            user_id=user,
            view_id=view["id"],
            callback_id="delete_tasks",
            private_metadata=view["private_metadata"],
            state_values={"ids": {"ids": {"type": "plain_text_input", "value": text}}},
        )

    events_before = await store.events(rid)
    reply = json.loads(await send(submit(f"{ids[0]}\nnot-a-staged-task")))
    assert reply == {
        "response_action": "errors",
        "errors": {"ids": "Not in the staged listing: not-a-staged-task"},
    }
    # Bob's dialog, submitted by someone else: refused in the dialog.
    reply = json.loads(await send(submit(ids[0], MALLORY)))
    assert reply["errors"]["ids"].startswith("This dialog was not opened for you")
    # Mallory's own dialog: she is no approver.
    await send(click("delete_tasks", msg, delete["value"], MALLORY))
    await until(lambda: len(double.views) > views_before + 1, what="Mallory's delete modal")
    mallorys = list(double.views.values())[-1]
    reply = json.loads(await send(submit(ids[0], MALLORY, mallorys)))
    assert reply["errors"]["ids"] == "You are not an approver for sandbox: nothing was deleted."
    reply = json.loads(await send(submit("x; rm -rf /")))
    assert reply["errors"]["ids"].startswith("Not task ids: x;")
    assert await store.events(rid) == events_before  # nothing changed

    assert await send(submit(f"{ids[0]}, {ids[1]}")) == ""
    listings = await until(
        lambda: [f for f in double.files if f.name == f"staged-tasks-{rid}.tsv"][1:],
        timeout=60,
        what="the listing printed again",
    )
    lines = listings[0].text.splitlines()
    assert len(lines) == count - 2 + 1  # header + every remaining task
    assert not any(line.endswith(("\t" + ids[0], "\t" + ids[1])) for line in lines)
    await until(
        lambda: (
            "*Deleted:* 2 of 2 tasks"
            in json.dumps(double.messages(channel=CHANNEL), ensure_ascii=False)
        ),
        what="the card shows the deletion",
    )
    said = json.dumps(double.messages(channel=CHANNEL, thread_ts=root_ts))
    assert f"<@{BOB}> deleted staged tasks" in said

    await approve("restore.review")
    await until(
        lambda: [x for x in buttons(double, root_ts, "approve") if x[1]["sid"] == "restore.commit"],
        what="commit card",
    )
    rec = await store.load(rid)
    assert rec is not None and rec.data["reviewed_count"] == count - 2
    first = rec.data["leader"]
    assert sandbox.ssh(first, "sudo systemctl stop aurora-scheduler").returncode == 0
    await wait_for_leader(sandbox, not_on=first)

    await approve("restore.commit", BOB)
    await until(
        lambda: any("did not run: the leader changed" in json.dumps(e) for e in double.ephemerals),
        what="refusal",
    )
    msg, back = await until(lambda: card_of("restore.commit", "rewind"), what="back button")
    assert back["confirm"]["confirm"]["text"] == "Go back"
    await send(click("rewind", msg, back["value"], ALICE))
    # restore.place waits for its approval again (its card updated in place).
    await until(
        lambda: [x for x in buttons(double, root_ts, "approve") if x[1]["sid"] == "restore.place"],
        what="place again",
    )
    rec = await store.load(rid)
    assert rec is not None and rec.data["leader"] != first
    assert rec.steps["restore.commit"]["status"] == "pending"
    said = json.dumps(double.messages(channel=CHANNEL, thread_ts=root_ts))
    assert f"<@{ALICE}> went back" in said
    assert double.invalid == []
    await redis.aclose()
