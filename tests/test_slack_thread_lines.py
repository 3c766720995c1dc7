"""A bot killed in a step, seen from Slack: the thread says so, with what the step's
check sees, and so does the card; Retry and Mark done each leave a line in the thread
naming who did it. End to end: a real `aurora-restore serve`, signed requests, the Slack
double, the sandbox over real SSH, the embedded store.

The bot "dies in a step" as in tests/test_interrupted_checks.py (the console half): the
process is killed (SIGKILL) while the step waits, and the store is left as a worker that
took the approval and died before it sent anything leaves it; the next process finds it.

* `log.stop`: the schedulers were stopped by hand meanwhile, so its check finds it
  finished: the card offers Mark done, alice marks it done, the thread names her;
* `restore.commit`: nothing ran, so the check finds the recovery still staged on the
  leader: the thread and the card say so, Mark done is not offered, the requester's
  Retry is refused (two people), bob's runs it and the thread names him."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest
import redis.asyncio as aioredis

from runbook.store import Store
from tests.conftest import RunningSandbox
from tests.slack_cards import PatientApp, block_texts, card_now, thread_lines
from tests.slack_double import SlackDouble, slash_command_body
from tests.test_backup_and_review import wait_for_leader
from tests.test_slack_app import (  # noqa: F401  (world is a fixture)
    ALICE,
    BOB,
    CHANNEL,
    AppProcess,
    Thread,
    buttons,
    post,
    until,
    world,
)

pytestmark = pytest.mark.timeout(600)


def actions_of(message: dict[str, Any] | None) -> list[str]:
    return [
        e.get("action_id", "")
        for b in (message or {}).get("blocks") or []
        if b.get("type") == "actions"
        for e in b.get("elements") or []
    ]


async def test_interrupted_steps_retry_and_mark_done_in_the_thread(
    world: dict[str, Any],  # noqa: F811
) -> None:
    double: SlackDouble = world["double"]
    sandbox: RunningSandbox = world["sandbox"]
    apps: list[AppProcess] = world["apps"]
    apps.append(await PatientApp(world["env"]).start())
    redis = aioredis.Redis.from_url(world["redis_url"])
    store = Store(redis)

    async def send(body: bytes) -> str:
        status, text, _ = await post(apps[-1].url, body)
        assert status == 200, text
        return text

    await wait_for_leader(sandbox, state="ACTIVE")
    await send(slash_command_body(text="sandbox", user_id=ALICE, channel_id=CHANNEL))
    root = await until(lambda: double.messages(channel=CHANNEL), what="root")
    root_ts = root[0]["ts"]
    rid = (await store.restore_ids())[0]
    thread = Thread(double, root_ts, send)

    def lines() -> list[str]:
        return thread_lines(double, CHANNEL, root_ts)

    async def die_in(sid: str) -> None:
        """The bot is killed while `sid` waits; the store is left as a worker that took
        bob's approval and died before it sent anything leaves it; a new bot starts."""
        await thread.card(sid)
        await apps[-1].stop(signal.SIGKILL)
        done = await store.transition(
            rid,
            sid,
            ("awaiting",),
            {"status": "running", "attempt": 1, "lease_owner": "dead", "lease_until": 0},
            {"type": "approved", "actor": BOB},
        )
        assert done.ok, done
        apps.append(await PatientApp(world["env"]).start())

    await thread.approve("prep.stop", ALICE)
    await thread.skip("prep.block_traffic", BOB, "drill")
    for sid in ("prep.admin_access", "prep.disable", "prep.start"):
        await thread.approve(sid, ALICE)

    # log.stop: stopped by hand while the bot was away; its check finds it finished.
    await thread.card("log.stop")
    for s in sandbox.cluster.schedulers:
        assert sandbox.ssh(s.host, "sudo systemctl stop aurora-scheduler").returncode == 0
    await die_in("log.stop")
    msg, value = await thread.card("log.stop", "mark_done")
    said = "\n".join(block_texts(msg["blocks"]))
    assert "The bot stopped while this step ran" in said and "appears to have finished" in said
    stopped = await until(
        lambda: [t for t in lines() if "stopped while running `log.stop`" in t],
        what="the thread says the bot stopped in log.stop",
    )
    rec = await store.load(rid)
    assert rec is not None
    check = rec.steps["log.stop"]["check"]
    assert stopped[0].endswith(f": {check}"), (stopped, check)
    assert f"<@{ALICE}> marked done" not in "\n".join(lines())
    await send(thread.click("mark_done", msg, value, ALICE))
    await until(
        lambda: [t for t in lines() if f"<@{ALICE}> marked done `log.stop`" in t],
        what="the thread names who marked log.stop done",
    )

    for sid in ("log.archive",):
        await thread.approve(sid, ALICE)
    await thread.approve("log.wipe", BOB)
    for sid in ("log.init", "log.start", "restore.place", "restore.stage", "restore.review"):
        await thread.approve(sid, ALICE)

    # restore.commit: the bot dies before the commit is sent; the recovery stays staged.
    msg, _ = await thread.card("restore.commit")
    rec = await store.load(rid)
    assert rec is not None
    leader = rec.data["leader"]
    await die_in("restore.commit")
    msg, value = await thread.card("restore.commit", "retry")
    said = "\n".join(block_texts(msg["blocks"]))
    assert "The bot stopped while this step ran" in said, said
    assert f"{leader} still leads with the recovery staged" in said, said
    assert "mark_done" not in actions_of(msg)  # its check says it did not run
    line = await until(
        lambda: [t for t in lines() if "stopped while running `restore.commit`" in t],
        what="the thread says the bot stopped in restore.commit",
    )
    assert f"did not run: {leader} still leads with the recovery staged" in line[0], line
    # The requester's retry of a destructive step: refused, to her alone; no line.
    ephemerals = len(double.ephemerals)
    await send(thread.click("retry", msg, value, ALICE))
    await until(
        lambda: any("other than" in json.dumps(e) for e in double.ephemerals[ephemerals:]),
        what="the two-person refusal",
    )
    await asyncio.sleep(1)
    assert not [t for t in lines() if "retried `restore.commit`" in t]
    await send(thread.click("retry", msg, value, BOB))
    await until(
        lambda: [t for t in lines() if f"<@{BOB}> retried `restore.commit`" in t],
        what="the thread names who retried restore.commit",
    )

    async def committed() -> bool:
        rec = await store.load(rid)
        return rec is not None and rec.steps["restore.commit"]["status"] == "succeeded"

    for _ in range(300):
        if await committed():
            break
        await asyncio.sleep(0.2)
    assert await committed()
    # Each line once, whatever number of refreshes and processes.
    text = lines()
    assert len([t for t in text if "retried `restore.commit`" in t]) == 1
    assert len([t for t in text if "marked done `log.stop`" in t]) == 1
    assert len([t for t in text if "stopped while running" in t]) == 2
    assert card_now(double, CHANNEL, root_ts, "restore.commit") is not None
    assert double.invalid == []
    await redis.aclose()
