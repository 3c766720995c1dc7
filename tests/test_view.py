"""The view model of bot.view, table-tested, and its two renderers held to it: the
Block Kit card (bot.blocks) and the console (bot.console) show the same commands, diffs
and actions for the same view. No Slack, no Redis, no SSH: runs in a second."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bot import blocks as B, view as V
from bot.console import Console, card_lines, choices, pick
from runbook.clusters import Cluster, parse_clusters
from runbook.engine import Engine
from runbook.plan import Plan, read_command
from runbook.ports import HostResult
from runbook.procedure import ONLINE
from runbook.step import Risk, Role, Step
from runbook.store import RestoreRecord, parse_result_key, result_key

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ["sched1", "sched2", "sched3"]
STATUSES = ["pending", "awaiting", "running", "succeeded", "failed", "skipped", "interrupted"]


def cluster(two_person: bool = True) -> Cluster:
    data = {
        "clusters": {
            "west": {
                "two_person_rule": two_person,
                "schedulers": [{"host": h} for h in HOSTS],
            }
        }
    }
    return parse_clusters(data, "t")["west"]


WEST = cluster()


def record(status_of: dict[str, str] | None = None, **step_extra: Any) -> RestoreRecord:
    plan = ONLINE.ids()
    steps: dict[str, dict[str, Any]] = {sid: {"status": "pending", "attempt": 0} for sid in plan}
    for sid, st in (status_of or {}).items():
        steps[sid] = {"status": st, "attempt": 1, **step_extra}
    return RestoreRecord(
        rid="r1",
        meta={"cluster": "west", "started_by": "U0ALICE", "plan": plan, "started_at": 1},
        status="running",
        current=next(iter(status_of or {}), ""),
        steps=steps,
        data={"backup": "scheduler-backup-2024-01-01-00-00", "backup_age": 60.0},
    )


def kinds(card: V.StepView) -> list[str]:
    return [a.kind for a in card.actions]


def one(role: Role) -> Step:
    step = ONLINE.first(role)
    assert step is not None, role
    return step


def by_risk(risk: Risk) -> Step:
    """A step of that risk, one with no role where there is one."""
    steps = sorted((s for s in ONLINE if s.risk is risk), key=lambda s: s.role is not Role.NONE)
    return steps[0]


# ---------------------------------------------------------------- actions, by status and step


def expected_kinds(step: Step, status: str, state: dict[str, Any]) -> list[str]:
    """The table the view must follow, written out plainly."""
    skip = ["skip"] if step.skippable else []
    if status == "awaiting":
        return ["approve", *skip, "abort"]
    if status == "failed":
        back = ["rewind"] if state.get("rewind") else []
        return [*back, "retry", *skip, "abort"]
    if status == "interrupted":
        done = ["mark_done"] if state.get("appears_finished") else []
        return ["retry", *done, *skip, "abort"]
    return []


CASES = [
    (step, status, extra)
    for step in ONLINE
    for status in STATUSES
    for extra in ({}, {"appears_finished": True}, {"rewind": "restore.leader"})
]


@pytest.mark.parametrize(
    ("step", "status", "extra"),
    CASES,
    ids=[f"{s.id}-{st}-{'+'.join(e) or 'plain'}" for s, st, e in CASES],
)
def test_actions_offered_for_every_step_and_status(
    step: Step, status: str, extra: dict[str, Any]
) -> None:
    rec = record({step.id: status}, **extra)
    rec.data.pop("review", None)  # no listing: no Delete tasks
    card = V.step_view(rec, ONLINE, step, WEST)
    assert kinds(card) == expected_kinds(step, status, extra)
    for a in card.actions:
        # Every run of a destructive step asks to confirm; nothing else but abort,
        # rewind (a way back over several steps) and the approve of a destructive one.
        runs = a.kind in ("approve", "retry", "mark_done")
        if runs:
            assert (a.confirm is not None) == (step.risk is Risk.DESTRUCTIVE), a
            assert a.destructive == (step.risk is Risk.DESTRUCTIVE), a
        if a.kind in ("abort", "rewind"):
            assert a.confirm is not None and not a.destructive
        if a.kind == "skip":
            assert a.confirm is None
    # The awaiting card's abort is the slash command's in Slack, a choice in the console.
    buttons = {a.kind for a in card.actions if a.button}
    assert ("abort" in buttons) == (status in ("failed", "interrupted"))


@pytest.mark.parametrize(
    ("status", "risk", "label", "style"),
    [
        ("awaiting", Risk.READ_ONLY, "Approve", "primary"),
        ("failed", Risk.READ_ONLY, "Re-check", "primary"),
        ("failed", Risk.MUTATING, "Retry", "primary"),
        ("failed", Risk.DESTRUCTIVE, "Retry", "primary"),
        ("interrupted", Risk.DESTRUCTIVE, "Retry", "primary"),
    ],
)
def test_labels_and_styles(status: str, risk: Risk, label: str, style: str) -> None:
    step = by_risk(risk)
    card = V.step_view(record({step.id: status}), ONLINE, step, WEST)
    first = card.actions[0]
    assert (first.label, first.style) == (label, style)
    abort = card.action("abort")
    assert abort is not None and abort.style == "danger" and abort.label == "Abort"


def test_a_destructive_confirm_names_the_step_its_targets_and_the_two_person_rule() -> None:
    wipe = one(Role.WIPE)
    assert wipe.risk is Risk.DESTRUCTIVE
    card = V.step_view(record({wipe.id: "awaiting"}), ONLINE, wipe, WEST)
    approve = card.action("approve")
    assert approve is not None and approve.confirm is not None
    assert approve.confirm.title == f"Run {wipe.id}?"
    assert wipe.title in approve.confirm.text and "west" in approve.confirm.text
    assert "cannot approve it" in approve.confirm.text and card.two_person
    alone = V.step_view(record({wipe.id: "awaiting"}), ONLINE, wipe, cluster(two_person=False))
    approve = alone.action("approve")
    assert approve is not None and approve.confirm is not None
    assert "cannot approve" not in approve.confirm.text and not alone.two_person


def test_mark_done_only_where_the_check_says_it_finished() -> None:
    step = one(Role.WIPE)
    for said, offered in ((True, True), (False, False), (None, False)):
        extra = {} if said is None else {"appears_finished": said, "check": "dir empty"}
        card = V.step_view(record({step.id: "interrupted"}, **extra), ONLINE, step, WEST)
        assert (card.action("mark_done") is not None) is offered, said
        assert card.interruption is not None and card.interruption.appears_finished is said


def test_skip_only_where_skippable() -> None:
    fixed = [s for s in ONLINE if not s.skippable]
    free = [s for s in ONLINE if s.skippable]
    assert fixed and free
    for step in ONLINE:
        for status in ("awaiting", "failed", "interrupted"):
            card = V.step_view(record({step.id: status}), ONLINE, step, WEST)
            assert (card.action("skip") is not None) is step.skippable, (step.id, status)


def test_the_way_back_is_labelled_as_the_step_says_and_retry_is_no_longer_first() -> None:
    step = next(s for s in ONLINE if s.rewind_to)
    card = V.step_view(record({step.id: "failed"}, rewind=step.rewind_to), ONLINE, step, WEST)
    rewind, retry = card.actions[0], card.actions[1]
    assert rewind.kind == "rewind" and rewind.label == step.rewind_label
    assert rewind.style == "primary" and retry.style is None
    assert rewind.confirm is not None and str(step.rewind_to) in rewind.confirm.text


def test_delete_tasks_only_on_the_review_with_tasks_staged() -> None:
    review = one(Role.REVIEW)
    for count, offered in ((12, True), (0, False)):
        rec = record({review.id: "awaiting"})
        rec.data["review"] = {"count": count, "summary": {"status": {}}, "listing": "x"}
        card = V.step_view(rec, ONLINE, review, WEST)
        assert (card.action("delete_tasks") is not None) is offered
    other = by_risk(Risk.MUTATING)
    rec = record({other.id: "awaiting"})
    rec.data["review"] = {"count": 12, "summary": {"status": {}}, "listing": "x"}
    assert V.step_view(rec, ONLINE, other, WEST).action("delete_tasks") is None


def test_approve_is_bound_to_the_stored_plan() -> None:
    step = by_risk(Risk.MUTATING)
    rec = record({step.id: "awaiting"})
    plan = Plan(commands={h: ["sudo -n true"] for h in HOSTS})
    rec.data[f"plan:{step.id}"] = plan.to_dict()
    card = V.step_view(rec, ONLINE, step, WEST)
    approve = card.action("approve")
    assert approve is not None and approve.plan == plan.to_dict()["digest"] == card.plan_digest
    (button,) = [
        e
        for b in B.render_card(card).blocks
        for e in b.get("elements", [])
        if e.get("action_id") == "approve"
    ]
    assert json.loads(button["value"])["plan"] == approve.plan


# ---------------------------------------------------------------- content from the record


def test_commands_are_the_stored_plan_or_what_a_read_only_step_sent() -> None:
    mutating = by_risk(Risk.MUTATING)
    rec = record({mutating.id: "awaiting"})
    rec.data[f"plan:{mutating.id}"] = Plan(commands={"sched2": ["sudo -n planned"]}).to_dict()
    card = V.step_view(rec, ONLINE, mutating, WEST)
    assert card.commands == (V.HostCommands("sched2", ("sudo -n planned",)),)
    reader = one(Role.PREFLIGHT)
    sent = [{"sched1": "cat /etc/x", "sched2": "cat /etc/x"}, {"sched1": "cat /etc/x"}]
    rec = record({reader.id: "succeeded"}, commands=sent, reads=[{"sched1": "ls /y"}])
    card = V.step_view(rec, ONLINE, reader, WEST)
    assert card.commands == (
        V.HostCommands("sched1", ("cat /etc/x",)),  # sent twice, shown once
        V.HostCommands("sched2", ("cat /etc/x",)),
    )
    assert card.reads == ("ls /y",)


def test_previews_are_data_and_only_on_their_steps() -> None:
    rec = record()
    wipe, review, ack = one(Role.WIPE), one(Role.REVIEW), one(Role.ACK_BACKUP)
    rec.data[f"preview:{wipe.id}"] = {
        "sched1": {"files": 3, "bytes": 100, "archive": "/a.tgz"},
        "sched2": {"files": 2, "bytes": 50, "archive": None},
        "sched3": {"error": "no answer"},
    }
    rec.data["review"] = {
        "count": 3,
        "summary": {"status": {"PENDING": 1, "RUNNING": 2}, "role": {"www": 3}, "job": {}},
        "listing": "…",
    }
    got = V.step_view(rec, ONLINE, wipe, WEST).wipe
    assert got is not None and (got.files, got.bytes) == (5, 150)
    assert got.without_archive == ("sched2", "sched3")
    assert got.hosts[2] == V.WipeHost("sched3", None, None, "no answer", "", False)
    staged = V.step_view(rec, ONLINE, review, WEST).review
    assert staged is not None and staged.count == 3 and staged.has_listing
    assert staged.by_status == (("RUNNING", 2), ("PENDING", 1))  # the most first
    backup = V.step_view(rec, ONLINE, ack, WEST).backup
    assert backup is not None and backup.name.startswith("scheduler-backup-")
    for step in ONLINE:
        card = V.step_view(rec, ONLINE, step, WEST)
        assert (card.wipe is not None) is (step.role is Role.WIPE), step.id
        assert (card.review is not None) is (step.role is Role.REVIEW), step.id
        assert (card.kills is not None) is step.fills_log, step.id


def test_the_backup_may_be_chosen_only_while_nothing_changed() -> None:
    preflight = one(Role.PREFLIGHT)
    rec = record({preflight.id: "succeeded"})
    rec.data["backups"] = {"scheduler-backup-2024-01-01-00-00": HOSTS}
    choice = V.step_view(rec, ONLINE, preflight, WEST).choice
    assert choice is not None and choice.chosen == "scheduler-backup-2024-01-01-00-00"
    assert choice.options[0].holders == 3
    first_change = next(s for s in ONLINE if s.risk is not Risk.READ_ONLY and s.role is Role.NONE)
    rec.steps[first_change.id] = {"status": "succeeded", "attempt": 1}
    assert V.step_view(rec, ONLINE, preflight, WEST).choice is None
    assert not V.backup_choice_open(rec, ONLINE)


def test_root_view() -> None:
    first, second = ONLINE.steps[0], ONLINE.steps[1]
    rec = record({first.id: "succeeded", second.id: "awaiting"})
    rec.current = second.id
    root = V.root_view(rec, ONLINE, WEST)
    assert (root.procedure, root.cluster, root.status, root.started_by) == (
        "online",
        "west",
        "running",
        "U0ALICE",
    )
    assert root.done == 1 and len(root.plan) == len(ONLINE)
    assert [i.current for i in root.plan][:2] == [False, True]
    assert root.actions == ()
    rec.status = "aborted"
    rec.data["held_after_wipe"] = True
    assert [a.kind for a in V.root_view(rec, ONLINE, WEST).actions] == ["export", "put_back"]
    _text, body = B.render_root(V.root_view(rec, ONLINE, WEST))
    assert [b["block_id"] for b in body[-2:]] == ["export", "put_back"]


def test_procedure_of_reads_the_record() -> None:
    rec = record()
    assert V.procedure_of(rec) is ONLINE
    rec.data["procedure"] = "online"
    assert V.procedure_of(rec) is ONLINE


def test_an_unknown_step_is_a_view_that_says_so() -> None:
    card = V.step_view(record(), ONLINE, "no.such", WEST)
    assert not card.known and card.actions == ()
    assert "Unknown step" in B.render_card(card).text


# ---------------------------------------------------------------- both renderers, one view


def offered_card() -> tuple[RestoreRecord, Step]:
    """An awaiting file-editing step with a stored plan: commands, a diff and reads."""
    step = by_risk(Risk.MUTATING)
    env = "/etc/default/aurora-scheduler"
    plan = Plan()
    for h in HOSTS:
        plan.commands[h] = [f"sudo -n tee {env} > /dev/null"]
        plan.reads[h] = [read_command(env)]
        plan.edit(h, env, b'A="1 & <2>"\n', b'A="1 & <2> -x=3"\n')
    rec = record({step.id: "awaiting"})
    rec.data[f"plan:{step.id}"] = plan.to_dict()
    return rec, step


def slack_lines(card: B.StepCard, prefix: str) -> list[str]:
    texts = [
        b["text"]["text"]
        for b in card.blocks
        if b["type"] == "section" and b["block_id"].startswith(prefix)
    ]
    return [html.unescape(line) for t in texts for line in t.splitlines()]


def test_block_kit_and_console_show_the_same_commands_diffs_and_reads() -> None:
    rec, step = offered_card()
    card = V.step_view(rec, ONLINE, step, WEST)
    slack = B.render_card(card)
    console = card_lines(card)
    shown = {
        line.split("] $ ", 1)[1] for line in slack_lines(slack, "card.commands") if "] $ " in line
    }
    printed = {line.split("] $ ", 1)[1] for line in console if re.match(r"^  \[[^]]+\] \$ ", line)}
    assert shown == printed == {c for hc in card.commands for c in hc.commands}
    diff = [line for e in card.edits for line in e.diff.splitlines()]
    assert '+A="1 & <2> -x=3"' in diff
    assert set(diff) <= set(slack_lines(slack, "card.diff."))
    assert set(diff) <= {line[4:] for line in console if line.startswith("    ")}
    reads = set(slack_lines(slack, "card.reads")) - {"*It also reads, to check:*", "```"}
    assert reads == {line[6:] for line in console if line.startswith("    $ ")} == set(card.reads)
    digest = card.plan_digest[:12]
    assert f"plan `{digest}`" in json.dumps(slack.blocks) and any(digest in x for x in console)


@pytest.mark.parametrize("status", ["awaiting", "failed", "interrupted"])
@pytest.mark.parametrize("role", [Role.WIPE, Role.REVIEW, Role.LEADER, Role.PREFLIGHT])
def test_block_kit_and_console_offer_the_same_actions(role: Role, status: str) -> None:
    step = one(role)
    rec = record({step.id: status}, appears_finished=True)
    rec.data["review"] = {"count": 2, "summary": {"status": {"RUNNING": 2}}, "listing": "x"}
    card = V.step_view(rec, ONLINE, step, WEST)
    elements = [e for b in B.render_card(card).blocks for e in b.get("elements", [])]
    buttons = [
        (e["action_id"], e["text"]["text"], "confirm" in e)
        for e in elements
        if e.get("type") == "button"
    ]
    assert buttons == [(a.kind, a.label, a.confirm is not None) for a in card.actions if a.button]
    prompt = choices(card)
    assert prompt == ", ".join(a.prompt for a in card.actions)
    for a in card.actions:
        assert pick(card, a.key) == a.kind and a.prompt in prompt


def test_the_console_prints_the_card_it_is_given() -> None:
    rec, step = offered_card()
    card = V.step_view(rec, ONLINE, step, WEST)
    out = io.StringIO()
    Console(cast(Engine, SimpleNamespace()), WEST, me="alice", out=out).card(card)
    assert out.getvalue().splitlines() == card_lines(card)
    assert f"step {ONLINE.ids().index(step.id) + 1} of {len(ONLINE)} · {step.id}" in out.getvalue()


def test_progress_comes_from_the_stored_results() -> None:
    step = by_risk(Risk.MUTATING)
    rec = record({step.id: "running"})
    results = {"sched1": HostResult("sched1", 0, "ok", "", 1.0)}
    card = V.step_view(rec, ONLINE, step, WEST, results=results)
    assert card.running_on == ("sched2", "sched3") and card.results == (results["sched1"],)
    dump = json.dumps(B.render_card(card).blocks, ensure_ascii=False)
    assert "✓ `sched1` exit 0" in dump and "… `sched3` running" in dump


# ---------------------------------------------------------------- serialised in one place


def test_a_host_result_and_its_key_round_trip() -> None:
    r = HostResult("h:1", 2, "out", "err", 1.23456, "boom")
    back = HostResult.from_dict(r.host, json.loads(json.dumps({**r.to_dict(), "truncated": 1})))
    assert back == HostResult("h:1", 2, "out", "err", 1.235, "boom")
    assert HostResult.from_dict("h", {}) == HostResult("h", None, "", "", 0.0, None)
    assert parse_result_key(result_key("prep.stop", 3, "h:1")) == ("prep.stop", 3, "h:1")


def test_no_view_or_renderer_names_a_step_id() -> None:
    """Steps treated specially are found by role (runbook.step), never by id."""
    files = ["bot/view.py", "bot/blocks.py", "bot/console.py"]
    for name in files:
        text = (ROOT / name).read_text()
        for sid in ONLINE.ids():
            assert sid not in text, f"{name} names {sid}"
    # And the key shape of a stored result is known in one place.
    for name in [*files, "bot/slack_front.py", "runbook/transcript.py"]:
        text = (ROOT / name).read_text()
        assert 'split(":", 2)' not in text and ":{attempt}:" not in text, name
