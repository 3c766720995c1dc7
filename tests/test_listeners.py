"""The Slack listeners (handlers/) one by one: each is called as Bolt calls it, with a
fake `ack`, a fake Slack client and a fake engine that records its calls, over the real
Slack front and a real Redis (the embedded server). Requests are built by the Slack
double's builders and checked by handlers.shapes, as the app does.

What each test pins: a listener acks before anything else, makes one engine call, and
takes its dependencies from the context; bad input is refused before the ack with the
wording of runbook.inputs (the engine's own); a refusal is told and changes nothing; a
failure after the ack reaches the person in the restore's thread with a reference that
is in the one log line. The end-to-end tests (test_slack_app.py, test_slack_auth.py,
test_slack_review.py, test_slack_boundary.py) run the same listeners through Bolt.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.slack_front import SlackFront, slack_key
from handlers import actions, commands, shapes
from runbook.clusters import Cluster, load_clusters
from runbook.engine import Actor, Engine, Refused
from runbook.inputs import StartArgs, parse_start_args, parse_task_ids, start_args, task_ids
from runbook.procedure import ONLINE
from runbook.procedures import PROCEDURES
from runbook.step import Role
from runbook.store import Store
from tests.slack_double import block_actions_body, slash_command_body, view_submission_body
from tests.test_slack_fuzz import cluster_file

CHANNEL, ELSEWHERE, TEAM = "C0OPS", "C0ELSEWHERE", "T0AURORA"
ALICE, BOB, MALLORY = "U0ALICE", "U0BOB", "U0MALLORY"
ROOT_TS = "1700000000.000100"
RID = "abc123def456"
REVIEW = ONLINE.first(Role.REVIEW)
PREFLIGHT = ONLINE.first(Role.PREFLIGHT)
assert REVIEW is not None and PREFLIGHT is not None
TASKS = ["www-data-prod-hello-0-aaaa", "www-data-prod-hello-1-bbbb"]


class Journal(list[tuple[str, dict[str, Any]]]):
    """What happened, in order: acks, engine calls, Slack calls."""

    def names(self) -> list[str]:
        return [name for name, _ in self]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kw for n, kw in self if n == name]


class FakeAck:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        self.journal.append(("ack", kwargs))


class FakeClient:
    """The Slack Web API calls the listeners and the front make, recorded."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.ts = 1_700_000_001

    def _next_ts(self) -> str:
        self.ts += 1
        return f"{self.ts}.000100"

    async def chat_postEphemeral(self, **kw: Any) -> dict[str, Any]:
        self.journal.append(("chat.postEphemeral", kw))
        return {"message_ts": self._next_ts()}

    async def chat_postMessage(self, **kw: Any) -> dict[str, Any]:
        self.journal.append(("chat.postMessage", kw))
        return {"ts": self._next_ts()}

    async def views_open(self, **kw: Any) -> dict[str, Any]:
        self.journal.append(("views.open", kw))
        return {"view": {"id": "V0MODAL1"}}


class FakeEngine:
    """The engine calls a listener may make, recorded; `fail` makes the next one raise."""

    def __init__(self, store: Store, clusters: dict[str, Cluster], journal: Journal) -> None:
        self.store = store
        self.clusters = clusters
        self.journal = journal
        self.listener: Any = None
        self.fail: BaseException | None = None
        self.approvers = {ALICE, BOB}

    async def _call(self, name: str, **kw: Any) -> Any:
        self.journal.append((f"engine.{name}", kw))
        if self.fail is not None:
            raise self.fail
        return None

    async def approve(self, rid: str, sid: str, by: Actor, seen: str | None = None) -> Any:
        return await self._call("approve", rid=rid, sid=sid, by=by, seen=seen)

    async def retry(self, rid: str, sid: str, by: Actor) -> Any:
        return await self._call("retry", rid=rid, sid=sid, by=by)

    async def rewind(self, rid: str, sid: str, by: Actor) -> Any:
        return await self._call("rewind", rid=rid, sid=sid, by=by)

    async def mark_done(self, rid: str, sid: str, by: Actor) -> Any:
        return await self._call("mark_done", rid=rid, sid=sid, by=by)

    async def choose_backup(self, rid: str, backup: str, by: Actor) -> Any:
        return await self._call("choose_backup", rid=rid, backup=backup, by=by)

    async def delete_tasks(self, rid: str, ids: list[str], by: Actor) -> Any:
        return await self._call("delete_tasks", rid=rid, ids=ids, by=by)

    async def start(self, name: str, backup: str | None, by: Actor) -> str:
        await self._call("start", cluster=name, backup=backup, by=by)
        return RID

    async def may_approve(self, cluster: Cluster, by: Actor) -> bool:
        return by.id in self.approvers

    def cluster_of(self, rec: Any) -> Cluster:
        return self.clusters[rec.meta["cluster"]]


class World:
    """A fake engine and client under the real Slack front, and the context Bolt's
    middleware (bot.slack_app.dependencies) hands every listener."""

    def __init__(self, store: Store, clusters: dict[str, Cluster]) -> None:
        self.journal = Journal()
        self.client = FakeClient(self.journal)
        self.engine = FakeEngine(store, clusters, self.journal)
        self.front = SlackFront(self.engine, self.client, store.redis)  # type: ignore[arg-type]
        self.context = {"front": self.front, "engine": self.engine}
        self.store = store

    def ack(self) -> FakeAck:
        return FakeAck(self.journal)

    async def settle(self) -> None:
        """Until the work after the acks (spawned on this loop: no work loop) is done."""

        async def drained() -> None:
            while self.front.tasks:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(drained(), 30)

    def ephemerals(self, user: str | None = None) -> list[dict[str, Any]]:
        return [kw for kw in self.journal.of("chat.postEphemeral") if user in (None, kw["user"])]

    def engine_calls(self) -> list[str]:
        return [n for n in self.journal.names() if n.startswith("engine.")]


@pytest.fixture
async def world(one_store: Store, tmp_path: Path) -> World:
    clusters = load_clusters(cluster_file(tmp_path / "clusters.toml"))
    w = World(one_store, clusters)
    await one_store.redis.hset(
        slack_key(RID),
        mapping={"channel": CHANNEL, "root_ts": ROOT_TS, "team": TEAM, "enterprise": ""},
    )
    return w


def request(body: bytes) -> dict[str, Any]:
    """A request as the listeners get it: read and checked by handlers.shapes."""
    return shapes.canonical(shapes.read_form(body.decode()))


def click(action_id: str, value: dict[str, Any], *, user: str = BOB, channel: str = CHANNEL) -> Any:
    return request(
        block_actions_body(
            user_id=user,
            action_id=action_id,
            value=json.dumps(value),
            channel_id=channel,
            thread_ts=ROOT_TS,
        )
    )


def slash(text: str, *, user: str = ALICE, channel: str = CHANNEL) -> dict[str, Any]:
    return request(slash_command_body(text=text, user_id=user, channel_id=channel))


async def review_waiting(world: World, listing: list[str]) -> None:
    """A restore whose review step waits, with its staged listing, in the store."""
    assert REVIEW is not None
    meta = {"id": RID, "cluster": "west", "plan": ONLINE.ids(), "procedure": ONLINE.name}
    steps = {s.id: {"status": "pending", "attempt": 0} for s in ONLINE}
    steps[REVIEW.id] = {"status": "awaiting", "attempt": 0}
    ok, _ = await world.store.create(RID, "west", meta, steps, {"type": "restore_started"})
    assert ok
    rows = "\n".join(f"www-data\thello\t{i}\tRUNNING\t{t}" for i, t in enumerate(listing))
    await world.store.set_data(RID, review={"listing": rows, "count": len(listing)})


async def delete_submission(world: World, text: str, *, user: str = ALICE) -> dict[str, Any]:
    await world.front.remember_view(RID, "V0MODAL1", user)
    return request(
        view_submission_body(
            user_id=user,
            callback_id="delete_tasks",
            private_metadata=json.dumps({"rid": RID}),
            view_id="V0MODAL1",
            state_values={"ids": {"ids": {"type": "plain_text_input", "value": text}}},
        )
    )


# ------------------------------------------------------------------ runbook.inputs


def test_start_args_are_checked_with_one_wording() -> None:
    known = {"west", "east"}
    assert parse_start_args("west", known) == StartArgs("west", None)
    backup = "scheduler-backup-2026-11-27-01-30"
    assert parse_start_args(f"  west  {backup} ", known) == StartArgs("west", backup)
    for text, wording in [
        ("", "Name the cluster to restore."),
        ("west a b", "Too many arguments: 3 given, at most a cluster and a backup id."),
        ("nope", "Unknown cluster `nope`. Known clusters: `east`, `west`."),
        ("n`o\x07pe", "Unknown cluster `n'o pe`. Known clusters: `east`, `west`."),
        (
            "west scheduler-backup-x;reboot",
            "`scheduler-backup-x;reboot` is not a backup id (scheduler-backup-yyyy-MM-dd-HH-mm).",
        ),
    ]:
        with pytest.raises(Refused) as refused:
            parse_start_args(text, known)
        assert str(refused.value) == wording, text
        assert "\n" not in str(refused.value)
    with pytest.raises(Refused, match="^Unknown cluster `" + "x" * 80 + "`"):
        start_args("x" * 500, None, known)


def test_task_ids_are_checked_against_the_listing() -> None:
    listed = set(TASKS)
    assert parse_task_ids(f"{TASKS[1]},\n{TASKS[0]} {TASKS[1]}", listed) == [TASKS[1], TASKS[0]]
    assert task_ids([TASKS[0], TASKS[0]], listed) == [TASKS[0]]
    for text, wording in [
        (" ,\n", "Give at least one task id."),
        ("nope-1", "Not in the staged listing: nope-1"),
        ("$(reboot)", "Not task ids: $(reboot)"),
    ]:
        with pytest.raises(Refused) as refused:
            parse_task_ids(text, listed)
        assert str(refused.value) == wording


async def test_the_engine_refuses_a_start_with_the_same_words(
    one_store: Store, tmp_path: Path
) -> None:
    clusters = load_clusters(cluster_file(tmp_path / "clusters.toml"))

    def unreachable(cluster: Cluster) -> Any:
        raise AssertionError("a refused start connects to nothing")

    engine = Engine(one_store, clusters, unreachable, procedures=PROCEDURES)
    for cluster, backup in [("nope", None), ("west", "scheduler-backup-1; reboot")]:
        with pytest.raises(Refused) as by_engine:
            await engine.start(cluster, backup, Actor(ALICE))
        with pytest.raises(Refused) as by_input:
            start_args(cluster, backup, clusters)
        assert str(by_engine.value) == str(by_input.value)
    assert await one_store.restore_ids() == []
    await engine.close()


# ------------------------------------------------------------------ buttons


@pytest.mark.parametrize("verb", sorted(actions.VERBS))
async def test_a_step_button_acks_first_and_makes_one_engine_call(world: World, verb: str) -> None:
    ack = world.ack()
    body = click(verb, {"rid": RID, "sid": "some.step", "plan": "ab" * 32})
    await actions.on_step_button(
        ack=ack, body=body, action=body["actions"][0], context=world.context
    )
    await world.settle()
    assert world.journal.names()[0] == "ack" and ack.calls == [{}]
    assert world.engine_calls() == [f"engine.{verb}"]
    call = world.journal.of(f"engine.{verb}")[0]
    assert (call["rid"], call["sid"], call["by"]) == (RID, "some.step", Actor(BOB))
    if verb == "approve":
        assert call["seen"] == "ab" * 32
    assert world.ephemerals() == []


async def test_a_click_from_another_channel_changes_nothing(world: World) -> None:
    ack = world.ack()
    body = click("approve", {"rid": RID, "sid": "some.step"}, channel=ELSEWHERE)
    await actions.on_step_button(
        ack=ack, body=body, action=body["actions"][0], context=world.context
    )
    await world.settle()
    assert ack.calls == [{}] and world.engine_calls() == []
    told = world.ephemerals(BOB)
    assert len(told) == 1 and f"lives in <#{CHANNEL}>" in told[0]["text"]


async def test_a_refusal_is_told_and_noted_in_the_thread(world: World) -> None:
    world.engine.fail = Refused("some.step is not waiting for approval")
    body = click("retry", {"rid": RID, "sid": "some.step"})
    await actions.on_step_button(
        ack=world.ack(), body=body, action=body["actions"][0], context=world.context
    )
    await world.settle()
    assert [e["text"] for e in world.ephemerals(BOB)] == [
        "🚫 some.step is not waiting for approval"
    ]
    lines = world.journal.of("chat.postMessage")
    assert len(lines) == 1 and lines[0]["thread_ts"] == ROOT_TS
    assert "refused" in lines[0]["text"]


async def test_a_failure_after_the_ack_reaches_the_person_in_the_thread(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.engine.fail = RuntimeError("the engine broke; token=xoxb-1234-secret")
    ack = world.ack()
    body = click("approve", {"rid": RID, "sid": "some.step"})
    with caplog.at_level(logging.INFO):
        await actions.on_step_button(
            ack=ack, body=body, action=body["actions"][0], context=world.context
        )
        await world.settle()
    assert ack.calls == [{}] and world.engine_calls() == ["engine.approve"]
    told = world.ephemerals(BOB)
    assert len(told) == 1
    assert (told[0]["channel"], told[0]["thread_ts"]) == (CHANNEL, ROOT_TS)
    text = told[0]["text"]
    ref = text.split("(ref ")[1].split(")")[0]
    assert text == (
        f"⚠️ Something went wrong (ref {ref}); nothing more was done; the bot log has the details."
    )
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in errors if f"ref {ref}" in r.getMessage()] == [
        errors[0].getMessage()
    ]
    assert len(errors) == 1 and "RuntimeError" in errors[0].getMessage()
    assert "xoxb-1234-secret" not in errors[0].getMessage()
    assert errors[0].exc_info is None  # the traceback goes at debug level only
    assert world.journal.of("chat.postMessage") == []  # no thread line: nothing happened


async def test_a_refused_backup_choice_names_the_preflight_by_its_role(world: World) -> None:
    assert PREFLIGHT is not None
    await review_waiting(world, TASKS)
    world.engine.fail = Refused("scheduler-backup-2000-01-01-00-00 is not on any scheduler")
    body = request(
        block_actions_body(
            user_id=ALICE,
            action_id="choose_backup",
            block_id=f"backup.{RID}",
            action_type="static_select",
            channel_id=CHANNEL,
            selected_option={"value": "scheduler-backup-2000-01-01-00-00"},
        )
    )
    await actions.on_choose_backup(
        ack=world.ack(), body=body, action=body["actions"][0], context=world.context
    )
    await world.settle()
    assert world.engine_calls() == ["engine.choose_backup"]
    lines = world.journal.of("chat.postMessage")
    assert any(PREFLIGHT.id in json.dumps(line) for line in lines), lines


# ------------------------------------------------------------------ the delete modal


async def test_task_ids_not_in_the_listing_are_refused_inside_the_modal(world: World) -> None:
    await review_waiting(world, TASKS)
    for text, wording in [
        (f"{TASKS[0]}, no-such-task", "Not in the staged listing: no-such-task"),
        ("x; rm -rf /", "Not task ids: x;"),
        (" ", "Give at least one task id."),
    ]:
        ack = world.ack()
        body = await delete_submission(world, text)
        await actions.on_delete_submit(ack=ack, body=body, view=body["view"], context=world.context)
        assert len(ack.calls) == 1 and ack.calls[0]["response_action"] == "errors", text
        assert ack.calls[0]["errors"]["ids"].startswith(wording), ack.calls[0]
    await world.settle()
    assert world.engine_calls() == []


async def test_known_task_ids_are_acked_then_deleted_by_one_engine_call(world: World) -> None:
    await review_waiting(world, TASKS)
    ack = world.ack()
    body = await delete_submission(world, f"{TASKS[1]}\n{TASKS[0]}\n{TASKS[1]}")
    await actions.on_delete_submit(ack=ack, body=body, view=body["view"], context=world.context)
    await world.settle()
    assert ack.calls == [{}]
    assert world.engine_calls() == ["engine.delete_tasks"]
    call = world.journal.of("engine.delete_tasks")[0]
    assert (call["rid"], call["ids"], call["by"]) == (RID, [TASKS[1], TASKS[0]], Actor(ALICE))


async def test_a_delete_by_a_non_approver_is_refused_in_the_modal(world: World) -> None:
    await review_waiting(world, TASKS)
    ack = world.ack()
    body = await delete_submission(world, TASKS[0], user=MALLORY)
    await actions.on_delete_submit(ack=ack, body=body, view=body["view"], context=world.context)
    assert ack.calls[0]["errors"]["ids"] == (
        "You are not an approver for west: nothing was deleted."
    )
    assert world.engine_calls() == []


# ------------------------------------------------------------------ the slash command


async def test_bad_start_arguments_are_refused_before_the_ack(world: World) -> None:
    for text, wording in [
        ("nope", "🚫 Unknown cluster `nope`. Known clusters: `east`, `west`."),
        ("west a b", "🚫 Too many arguments: 3 given"),
        ("west scheduler-backup-x;<reboot>", "🚫 `scheduler-backup-x;&lt;reboot&gt;` is not a"),
    ]:
        ack = world.ack()
        await commands.on_command(ack=ack, command=slash(text), context=world.context)
        assert len(ack.calls) == 1, text
        first, usage = ack.calls[0]["text"].split("\n")
        assert first.startswith(wording) and usage.startswith("Usage: "), first
        assert ack.calls[0]["response_type"] == "ephemeral"
    await world.settle()
    assert world.engine_calls() == [] and world.front.tasks == set()


async def test_a_start_is_acked_then_made_by_one_engine_call(world: World) -> None:
    ack = world.ack()
    backup = "scheduler-backup-2026-11-27-01-30"
    world.engine.fail = Refused("ALICE may not")  # the engine's own refusal, after the ack
    await commands.on_command(ack=ack, command=slash(f"west {backup}"), context=world.context)
    await world.settle()
    assert world.journal.names()[0] == "ack"
    assert ack.calls == [{"response_type": "ephemeral", "text": "Starting a restore of `west`…"}]
    assert world.engine_calls() == ["engine.start"]
    call = world.journal.of("engine.start")[0]
    assert (call["cluster"], call["backup"], call["by"]) == ("west", backup, Actor(ALICE))
    assert [e["text"] for e in world.ephemerals(ALICE)] == ["🚫 ALICE may not"]
