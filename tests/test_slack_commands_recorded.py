"""What a person approves in Slack is exactly what runs, end to end: a whole restore
driven only through Slack by two people (alice starts it and approves, bob approves the
destructive steps), through a real `aurora-restore serve`, signed requests, the Slack
double and the sandbox over real SSH. Every command each host's SSH server was asked to
run (the sandbox's command log, sandbox.sshd) is, byte for byte, a command shown on the
card of a step that was running or being prepared at the time it ran: for a step a
person approved, the card as it was before the approval. Every file a step changed was
shown as a diff on its card before the approval, and that diff, applied to the file as
it was, gives the file as it is after, byte for byte.

The console half is tests/test_plan_binding.py."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from runbook.store import Store
from tests.conftest import RunningSandbox
from tests.slack_cards import PatientApp, Shown, apply_diff, card_step, sent_commands, shown_by_step
from tests.slack_double import SlackDouble, slash_command_body
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

DONE = ("succeeded", "skipped")


@dataclass
class Window:
    """From one click (or the start) to the next: the step the click ran, the steps
    that moved meanwhile (read-only steps run by themselves, the next card prepared),
    and the number of Slack calls made when it opened (the card as the person saw it)."""

    opened: float
    calls_at_open: int
    clicked: str | None
    before: dict[str, str]
    closed: float = 0.0
    calls_at_close: int = 0
    after: dict[str, str] = field(default_factory=dict)

    def moved(self) -> set[str]:
        return {s for s, st in self.after.items() if st != self.before.get(s, "pending")} | {
            s for s, st in self.after.items() if st == "awaiting"
        }


def edited_files(sandbox: RunningSandbox) -> dict[tuple[str, str], bytes]:
    """Every file the restore may edit, per host and path, as it is now."""
    out = {}
    cluster = sandbox.cluster
    for s in cluster.schedulers:
        for name in ("env_file", "admin_clusters_json"):
            path = cluster.path(s, name)
            if path and Path(path).exists():
                out[(s.host, str(path))] = Path(path).read_bytes()
    return out


def destructive(message: dict[str, Any]) -> bool:
    """The card's Approve asks to confirm a DESTRUCTIVE step (the two-person rule)."""
    for b in message.get("blocks") or []:
        for e in b.get("elements") or []:
            if e.get("action_id") == "approve":
                return "DESTRUCTIVE" in str((e.get("confirm") or {}).get("text"))
    return False


def suggests_skip(message: dict[str, Any]) -> bool:
    return any(
        "suggested: skip" in str(e.get("text"))
        for b in message.get("blocks") or []
        if b.get("type") == "context"
        for e in b.get("elements") or []
    )


async def test_every_command_sent_through_slack_was_on_the_card_that_asked_for_it(
    world: dict[str, Any],  # noqa: F811
) -> None:
    double: SlackDouble = world["double"]
    sandbox: RunningSandbox = world["sandbox"]
    app = await PatientApp(world["env"]).start()
    world["apps"].append(app)
    redis = aioredis.Redis.from_url(world["redis_url"])
    store = Store(redis)

    async def send(body: bytes) -> str:
        status, text, _ = await post(app.url, body)
        assert status == 200, text
        return text

    async def statuses(rid: str) -> dict[str, str]:
        rec = await store.load(rid)
        assert rec is not None
        return {sid: str(st["status"]) for sid, st in rec.steps.items()}

    # Nothing the sandbox's own start sent counts: the log starts with the restore.
    log = sandbox.dir / "ssh/commands.jsonl"
    log.unlink(missing_ok=True)
    windows = [Window(time.time(), len(double.calls), None, {})]
    await send(slash_command_body(text="sandbox", user_id=ALICE, channel_id=CHANNEL))
    root = await until(lambda: double.messages(channel=CHANNEL), what="root")
    root_ts = root[0]["ts"]
    rid = (await store.restore_ids())[0]
    thread = Thread(double, root_ts, send)
    files: list[dict[tuple[str, str], bytes]] = []
    approved: list[tuple[str, dict[str, Any]]] = []

    async def waiting() -> tuple[str, dict[str, Any]] | None:
        """The step waiting for a person, once its card offers Approve; None at the end."""
        while True:
            rec = await store.load(rid)
            assert rec is not None
            if rec.status != "running":
                return None
            sid = next((s for s in rec.meta["plan"] if rec.steps[s]["status"] not in DONE), "")
            if not sid:  # every step done: the restore is about to say it succeeded
                await asyncio.sleep(0.3)
                continue
            state = rec.steps[sid]["status"]
            assert state not in ("failed", "interrupted"), (sid, rec.steps[sid])
            if state == "awaiting":
                found = [m for m, v in buttons(double, root_ts, "approve") if v["sid"] == sid]
                if found:
                    return sid, found[0]
            await asyncio.sleep(0.3)

    while (found := await waiting()) is not None:
        sid, message = found
        # The window closes (what the person saw is fixed) and the click's opens.
        last = windows[-1]
        last.closed, last.calls_at_close = time.time(), len(double.calls)
        last.after = await statuses(rid)
        files.append(edited_files(sandbox))
        windows.append(Window(last.closed, last.calls_at_close, sid, last.after))
        if suggests_skip(message):
            await thread.skip(sid, BOB, "the plan suggests it")
            continue
        approved.append((sid, message))
        await thread.approve(sid, BOB if destructive(message) else ALICE)

    rec = await store.load(rid)
    assert rec is not None and rec.status == "succeeded", {
        k: (v["status"], v.get("summary")) for k, v in rec.steps.items()
    }
    windows[-1].closed = time.time() + 3600
    windows[-1].calls_at_close = len(double.calls)
    windows[-1].after = await statuses(rid)
    files.append(edited_files(sandbox))

    sent = sent_commands(sandbox.dir)
    assert len(sent) > 50, len(sent)
    # Each command, attributed to the window it ran in, was shown on a card of that window.
    unshown = []
    for c in sent:
        w = next((w for w in windows if w.opened <= c["at"] < w.closed), None)
        assert w is not None, ("sent outside the restore", c)
        cards: dict[str, Shown] = {}
        if w.clicked is not None:
            # The step approved: only its card as it was when the person clicked.
            cards[w.clicked] = shown_by_step(double, upto=w.calls_at_open).get(w.clicked, Shown())
        later = shown_by_step(double, upto=w.calls_at_close)
        cards |= {s: later[s] for s in w.moved() - {w.clicked} if s in later}
        if any(card.has(c["host"], c["command"]) for card in cards.values()):
            continue
        named = {s: (card.named, len(card.files)) for s, card in cards.items() if card.named}
        unshown.append((w.clicked, sorted(w.moved()), c["host"], c["command"], named))
    # Whole: no command is cut on a card (a long one spans sections, or the card names
    # the file of its whole plan), and a read-only step's card shows what it sent.
    assert unshown == [], (unshown[:3], [f.name for f in double.files])

    # Every file a step changed was on its card, as a diff, before the approval, and the
    # diff turns the file as it was into the file as it is, byte for byte.
    edits = 0
    for i, w in enumerate(windows[1:]):
        old, new = files[i], files[i + 1]
        changed = [key for key in new if new[key] != old.get(key)]
        if not changed:
            continue
        assert w.clicked is not None
        card = shown_by_step(double, upto=w.calls_at_open).get(w.clicked, Shown())
        for host, path in changed:
            diffs = [d for hosts, d in card.diffs if host in hosts and d.startswith(f"--- {path} ")]
            assert diffs, (w.clicked, host, path, card.texts)
            before, after = old[(host, path)].decode(), new[(host, path)].decode()
            assert any(_applies(before, d) == after for d in diffs), (w.clicked, host, diffs)
            edits += 1
    assert edits >= 9, edits  # prep.admin_access, prep.disable and cleanup.revert on 3 hosts
    assert {card_step(m) for _, m in approved} >= {"log.wipe", "restore.commit"}
    assert double.invalid == []
    await redis.aclose()


def _applies(old: str, diff: str) -> str | None:
    try:
        return apply_diff(old, diff)
    except (AssertionError, IndexError):
        return None
