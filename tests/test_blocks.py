"""Block Kit payloads of bot.blocks: valid for slack_sdk, inside every limit, whatever the input."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
from types import SimpleNamespace
from typing import Any, cast

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot import blocks as B
from bot.console import Console
from bot.view import step_view
from runbook.clusters import Cluster, parse_clusters
from runbook.engine import Engine
from runbook.plan import Plan, read_command
from runbook.ports import HostResult
from runbook.procedure import ONLINE, Risk, Targets
from runbook.store import RestoreRecord

STATUSES = ["pending", "awaiting", "running", "succeeded", "failed", "skipped", "interrupted"]
NASTY = "<script>alert('x') & <@U999|fake> & ``` </b>"
ALLOWED_ANGLE = re.compile(r"<(@[UW][A-Z0-9]+|!date\^\d+\^[^|>]*\|[^>]*)>")


# ---------------------------------------------------------------- validators


def _texts(obj: Any) -> list[str]:
    """Every `text` string inside a payload."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "text" and isinstance(v, str):
                out.append(v)
            else:
                out += _texts(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _texts(v)
    return out


def _elements(obj: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(obj, dict):
        if "action_id" in obj:
            out.append(obj)
        for v in obj.values():
            out += _elements(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _elements(v)
    return out


def check_blocks(blocks: list[dict[str, Any]], text: str | None = None) -> None:
    assert isinstance(blocks, list) and blocks
    assert len(blocks) <= 50, f"{len(blocks)} blocks"
    for b in blocks:
        parsed = Block.parse(b)
        assert parsed is not None, b
        parsed.validate_json()
        parsed.to_dict()  # validates nested elements, confirm objects...
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= 3000
            assert b["text"]["text"].strip()
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= 150
        if b["type"] == "context":
            assert len(b["elements"]) <= 10
            assert all(len(e["text"]) <= 3000 for e in b["elements"])
        if b["type"] == "actions":
            assert len(b["elements"]) <= 25
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids)), ids
    assert all(len(i) <= 255 for i in ids)
    actions = [e["action_id"] for e in _elements(blocks)]
    assert len(actions) == len(set(actions)), actions
    for e in _elements(blocks):
        if e.get("type") == "button":
            assert len(e["text"]["text"]) <= 75
            assert len(e["value"]) <= 2000
            value = json.loads(e["value"])
            assert set(value) == {"rid", "sid"}
            if "confirm" in e:
                c = e["confirm"]
                assert len(c["title"]["text"]) <= 100 and len(c["text"]["text"]) <= 300
                assert len(c["confirm"]["text"]) <= 30 and len(c["deny"]["text"]) <= 30
    for t in _texts(blocks) + ([text] if text else []):
        stripped = ALLOWED_ANGLE.sub("", t)
        assert "<" not in stripped and ">" not in stripped, t[:300]
        assert not re.search(r"&(?!amp;|lt;|gt;)", stripped), t[:300]
    assert len(json.dumps(blocks, ensure_ascii=False)) <= B.MESSAGE_BUDGET
    if text is not None:
        assert 0 < len(text) <= 3000


def check_view(view: dict[str, Any]) -> None:
    View(**view).validate_json()
    assert len(view["title"]["text"]) <= 24
    assert len(view.get("private_metadata", "")) <= 3000
    check_blocks_only(view["blocks"])


def check_blocks_only(blocks: list[dict[str, Any]]) -> None:
    for b in blocks:
        parsed = Block.parse(b)
        assert parsed is not None
        parsed.validate_json()
        parsed.to_dict()


def test_validator_catches_broken_limits() -> None:
    too_long = {"type": "section", "block_id": "x", "text": {"type": "mrkdwn", "text": "a" * 3001}}
    with pytest.raises((SlackObjectFormationError, AssertionError)):
        check_blocks([too_long])
    with pytest.raises(AssertionError):
        check_blocks([B.section("a", "x"), B.section("b", "x")])
    with pytest.raises(AssertionError):
        check_blocks([B.section("a", f"b{i}") for i in range(51)])
    with pytest.raises(AssertionError):
        check_blocks([{"type": "section", "block_id": "x", "text": B._md("<b> & c")}])
    element = B.button("x", "approve", "{}")
    element["value"] = "v" * 2001  # button() itself never lets this through
    bad_button: dict[str, Any] = {"type": "actions", "block_id": "a", "elements": [element]}
    with pytest.raises((SlackObjectFormationError, AssertionError)):
        check_blocks([bad_button])


# ---------------------------------------------------------------- fixtures


def make_cluster(n: int, long_names: bool = False) -> Cluster:
    def host(i: int) -> str:
        if not long_names:
            return f"sched{i}"
        label = f"scheduler-{i:02d}-" + "x" * 45
        return f"{label}.{'d' * 60}.{'e' * 60}.example.com"

    data = {"clusters": {"west": {"schedulers": [{"host": host(i)} for i in range(1, n + 1)]}}}
    return parse_clusters(data, "t")["west"]


SMALL = make_cluster(3)
BIG = make_cluster(50, long_names=True)


def review_summary(n: int) -> dict[str, Any]:
    roles = {f"role-{i:05d}-" + "r" * 80: 1 for i in range(n)}
    jobs = {f"role-{i:05d}/job-{'j' * 100}-{i}": 1 for i in range(n)}
    return {
        "count": n,
        "summary": {"role": roles, "job": jobs, "status": {"RUNNING": n - 3, "PENDING<&>": 3}},
        "listing": "\n".join(f"r\tj\t{i}\tRUNNING\tid-{i}" for i in range(n)),
    }


def facts(cluster: Cluster, *, huge: bool = False) -> dict[str, Any]:
    hosts = [s.host for s in cluster.schedulers]
    return {
        "backup": "scheduler-backup-2024-01-01-00-00",
        "backup_age": 720.0,
        "backups": {"scheduler-backup-2024-01-01-00-00": hosts},
        "leader": hosts[0],
        "leader_table": {h: {"vars": {}} for h in hosts},
        "paths": {h: {"log_dir": "/var/lib/aurora/scheduler/db"} for h in hosts},
        "review": review_summary(10_000 if huge else 12),
        "preview:log.wipe": {h: {"files": 1234, "bytes": 5_000_000_000} for h in hosts}
        | {hosts[-1]: {"error": NASTY}},
    }


def record(
    cluster: Cluster,
    status_of: dict[str, str] | None = None,
    *,
    huge: bool = False,
    step_extra: dict[str, Any] | None = None,
) -> RestoreRecord:
    plan = [s.id for s in ONLINE]
    steps = {sid: {"status": "pending", "attempt": 0} for sid in plan}
    for sid, st in (status_of or {}).items():
        steps[sid] = {"status": st, "attempt": 2, **(step_extra or {})}
    current = next(iter(status_of or {}), "")
    return RestoreRecord(
        rid="abc123def456",
        meta={
            "cluster": cluster.name,
            "started_by": "U0123ABC",
            "started_by_name": "alice",
            "plan": plan,
            "started_at": 1_700_000_000_000,
        },
        status="running",
        current=current,
        steps=steps,
        data=facts(cluster, huge=huge),
    )


def results(cluster: Cluster, *, big_output: bool) -> dict[str, HostResult]:
    out: dict[str, HostResult] = {}
    for i, s in enumerate(cluster.schedulers):
        body = ("line <&> " + "y" * 60 + "\n") * (150 if big_output else 1)
        ok = i % 3 != 0
        out[s.host] = HostResult(
            s.host,
            0 if ok else 1,
            body,
            "" if ok else NASTY * 20,
            1.5 + i,
            None if ok else ("timeout " * 100),
        )
    return out


# ---------------------------------------------------------------- root message


@pytest.mark.parametrize("cluster", [SMALL, BIG], ids=["small", "big"])
@pytest.mark.parametrize("status", STATUSES)
def test_root_message_every_status(cluster: Cluster, status: str) -> None:
    rec = record(cluster, {sid: status for sid in [s.id for s in ONLINE]})
    text, blocks = B.root_message(rec, cluster)
    check_blocks(blocks, text)
    assert blocks[0]["type"] == "header" and "Aurora restore: west" in blocks[0]["text"]["text"]
    plan_sections = [b for b in blocks if b["block_id"].startswith("root.plan")]
    assert len(plan_sections) == 1, "23 steps fit in one section"
    assert B.STATUS_EMOJI[status] in plan_sections[0]["text"]["text"]
    assert plan_sections[0]["text"]["text"].count("\n") == len(ONLINE) - 1


def test_root_message_content() -> None:
    rec = record(SMALL, {"prep.stop": "awaiting", "prep.preflight": "succeeded"})
    _text, blocks = B.root_message(rec, SMALL)
    body = blocks[1]["text"]["text"]
    assert "`scheduler-backup-2024-01-01-00-00` (0.2 h old)" in body
    assert "<@U0123ABC>" in body
    assert "1/23 steps done" in body
    plan = blocks[-1]["text"]["text"]
    assert "✅ `prep.preflight`" in plan and "⏳ `prep.stop`" in plan and "⚪ `log.wipe`" in plan


def test_root_message_old_or_missing_backup() -> None:
    rec = record(SMALL)
    rec.data["backup_age"] = 10 * 3600
    _t, blocks = B.root_message(rec, SMALL)
    assert "⚠️" in blocks[1]["text"]["text"] and "10.0 h old" in blocks[1]["text"]["text"]
    rec.data["backup"] = None
    rec.data["backup_age"] = None
    _t, blocks = B.root_message(rec, SMALL)
    assert "none was found" in blocks[1]["text"]["text"]
    rec.data.clear()
    rec.meta["started_by"] = "console-bob"
    rec.meta["started_by_name"] = NASTY
    text, blocks = B.root_message(rec, SMALL)
    check_blocks(blocks, text)
    assert "not chosen yet" in blocks[1]["text"]["text"]


def test_root_message_huge_plan_splits_and_caps() -> None:
    rec = record(BIG)
    rec.meta["plan"] = [f"step.{i}." + "z" * 200 for i in range(2000)]
    rec.steps.update({sid: {"status": "failed", "reason": NASTY} for sid in rec.meta["plan"]})
    text, blocks = B.root_message(rec, BIG)
    check_blocks(blocks, text)
    assert len([b for b in blocks if b["block_id"].startswith("root.plan")]) > 1


# ---------------------------------------------------------------- step cards


@pytest.mark.parametrize("cluster", [SMALL, BIG], ids=["small", "big"])
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("sid", [s.id for s in ONLINE])
def test_step_card_every_step_and_status(cluster: Cluster, status: str, sid: str) -> None:
    extra = {
        "summary": NASTY * 100,
        "approved_by": "U0APPROVER",
        "skipped_by": "U0SKIPPER",
        "reason": NASTY * 50,
        "check": NASTY * 100,
        "appears_finished": True,
    }
    rec = record(cluster, {sid: status}, huge=cluster is BIG, step_extra=extra)
    progress = results(cluster, big_output=cluster is BIG) if status != "pending" else None
    card = B.render_step(rec, cluster, sid, progress=progress)
    check_blocks(card.blocks, card.text)
    step = ONLINE.step(sid)
    head = card.blocks[0]["text"]["text"]
    assert sid in head and B.STATUS_EMOJI[status] in head
    meta = next(b for b in card.blocks if b["block_id"] == "card.meta")
    assert f"status: *{status}* · attempt 2" in json.dumps(meta, ensure_ascii=False)
    assert card.text.endswith(f": {status}")
    assert B.RISK_BADGE[step.risk] in json.dumps(card.blocks, ensure_ascii=False)
    ids = {e["action_id"] for e in _elements(card.blocks)}
    expected = {
        "awaiting": {"approve"} | ({"skip"} if step.skippable else set()),
        "failed": {"retry", "abort"} | ({"skip"} if step.skippable else set()),
        "interrupted": {"retry", "mark_done", "abort"} | ({"skip"} if step.skippable else set()),
    }.get(status, set())
    if sid == "prep.preflight" and status == "succeeded":
        expected = expected | {"choose_backup"}  # nothing changed yet: the backup may change
    if sid == "restore.review" and status == "awaiting" and rec.data["review"].get("count"):
        expected = expected | {"delete_tasks"}
    assert ids == expected
    if cluster is BIG and status in ("succeeded", "failed"):
        assert card.needs_file


def test_destructive_approve_has_confirm_and_value() -> None:
    rec = record(SMALL, {"log.wipe": "awaiting"})
    blocks = B.render_step(rec, SMALL, "log.wipe").blocks
    approve = next(e for e in _elements(blocks) if e["action_id"] == "approve")
    assert approve["style"] == "primary"
    assert "DESTRUCTIVE" in approve["confirm"]["text"]["text"]
    assert json.loads(approve["value"]) == {"rid": "abc123def456", "sid": "log.wipe"}
    skip = next(e for e in _elements(blocks) if e["action_id"] == "skip")
    assert "confirm" not in skip
    rec = record(SMALL, {"prep.stop": "awaiting"})
    blocks = B.render_step(rec, SMALL, "prep.stop").blocks
    assert all("confirm" not in e for e in _elements(blocks))
    # Not skippable: no Skip button.
    rec = record(SMALL, {"restore.commit": "awaiting"})
    blocks = B.render_step(rec, SMALL, "restore.commit").blocks
    assert {e["action_id"] for e in _elements(blocks)} == {"approve"}


def test_card_content_of_wipe_review_and_ack() -> None:
    rec = record(SMALL, {"log.wipe": "awaiting"})
    blocks = B.render_step(rec, SMALL, "log.wipe").blocks
    dump = json.dumps(blocks, ensure_ascii=False)
    assert "sudo -n find /var/lib/aurora/scheduler/db -mindepth 1 -delete" in dump
    assert "1234 files, 4.7 GB" in dump and "&lt;script&gt;" in dump
    assert "all 3 schedulers" in dump and "check: directory empty everywhere" in dump
    rec = record(SMALL, {"restore.review": "awaiting"})
    blocks = B.render_step(rec, SMALL, "restore.review").blocks
    dump = json.dumps(blocks, ensure_ascii=False)
    assert "*Staged tasks:* 12" in dump and "`RUNNING` 9" in dump and "PENDING&lt;&amp;&gt;" in dump
    rec = record(SMALL, {"prep.ack_backup": "awaiting"})
    rec.data["backup_age"] = 9 * 3600
    blocks = B.render_step(rec, SMALL, "prep.ack_backup").blocks
    assert "9.0 h old" in json.dumps(blocks, ensure_ascii=False)


def console_card(rec: RestoreRecord, cluster: Cluster, sid: str) -> dict[str, list[str]]:
    """What the console prints for a step offered (bot.console.Console.card): its
    commands, the lines of its file diffs, and the commands it also reads with."""
    out = io.StringIO()
    console = Console(cast(Engine, SimpleNamespace()), cluster, me="alice", out=out)
    console.card(step_view(rec, ONLINE, sid, cluster))
    seen: dict[str, list[str]] = {"commands": [], "diffs": [], "reads": []}
    section = ""
    for line in out.getvalue().splitlines():
        if re.match(r"^  \[[^]]+\] \$ ", line):
            seen["commands"].append(line.split("] $ ", 1)[1])
            section = ""
        elif re.match(r"^  \[[^]]+\] file edit:$", line):
            section = "diffs"
        elif line == "  it also reads, to check:":
            section = "reads"
        elif line.startswith("    ") and section == "diffs":
            seen["diffs"].append(line[4:])
        elif line.startswith("    $ ") and section == "reads":
            seen["reads"].append(line[6:])
        else:
            section = ""
    return seen


def card_lines(card: B.StepCard, block_id: str) -> list[str]:
    """The lines of the sections whose block id starts with `block_id`, unescaped."""
    texts = [
        b["text"]["text"]
        for b in card.blocks
        if b["type"] == "section" and b["block_id"].startswith(block_id)
    ]
    return [html.unescape(line) for t in texts for line in t.splitlines()]


def test_card_content_mirrors_console() -> None:
    """A step offered shows the same commands, file diffs and reads on its Slack card as
    in the console: both render the step's stored plan (runbook.plan)."""
    hosts = [s.host for s in SMALL.schedulers]
    env = "/etc/default/aurora-scheduler"
    before = b'MESOS_MASTER="zk://zk1:2181/mesos"\nEXTRA_SCHEDULER_ARGS="-x=<1> & y"\n'
    after = (
        b'MESOS_MASTER="zk://localhost:1111/mesos/master"\n'
        b'EXTRA_SCHEDULER_ARGS="-x=<1> & y -max_registration_delay=360mins"\n'
    )
    disable = Plan()
    wipe = Plan()
    for h in hosts:
        disable.commands[h] = [f"sudo -n tee {env} > /dev/null"]
        disable.reads[h] = [read_command(env)]
        disable.edit(h, env, before, after)
        wipe.commands[h] = ["sudo -n find /var/lib/aurora/scheduler/db -mindepth 1 -delete"]
        wipe.reads[h] = ['test -z "$(sudo -n ls -A /var/lib/aurora/scheduler/db)"']
    cases = {"prep.disable": disable, "log.wipe": wipe, "restore.review": None}
    for sid, plan in cases.items():
        rec = record(SMALL, {sid: "awaiting"})
        if plan is not None:
            rec.data[f"plan:{sid}"] = plan.to_dict()
        seen = console_card(rec, SMALL, sid)
        card = B.render_step(rec, SMALL, sid)
        shown = [
            line.split("] $ ", 1)[1] for line in card_lines(card, "card.commands") if "] $ " in line
        ]
        assert seen["commands"] and set(shown) == set(seen["commands"]), sid
        diffs = card_lines(card, "card.diff.")
        assert set(diffs) - set(seen["diffs"]) <= {"```"} | {d for d in diffs if d.startswith("*")}
        assert set(seen["diffs"]) <= set(diffs), sid
        reads = card_lines(card, "card.reads")
        assert set(reads) - {"*It also reads, to check:*", "```"} == set(seen["reads"]), sid
        if plan is None:
            assert not seen["diffs"] and not seen["reads"], sid
            continue
        assert seen["reads"] == sorted({c for cs in plan.reads.values() for c in cs}), sid
        assert f"plan `{plan.to_dict()['digest'][:12]}`" in json.dumps(card.blocks), sid
        if sid == "prep.disable":  # the edited line, with the rest of it as it was
            edited = '+EXTRA_SCHEDULER_ARGS="-x=<1> & y -max_registration_delay=360mins"'
            assert edited in seen["diffs"] and edited in diffs


def test_commands_over_the_card_go_into_the_plan_file_it_names() -> None:
    rec = record(BIG, {"restore.failover": "awaiting"})
    card = B.render_step(rec, BIG, "restore.failover")
    check_blocks(card.blocks)
    cmd = next(b for b in card.blocks if b["block_id"] == "card.commands")["text"]["text"]
    assert "…" not in cmd and cmd.endswith("```")  # nothing is cut: it goes on, or into the file
    f = card.plan_file
    assert f is not None
    assert f.sha256 == hashlib.sha256(f.content.encode()).hexdigest()
    note = f"the full commands are in `{f.name}` (sha256 `{f.sha256}`)"
    assert note in json.dumps(card.blocks, ensure_ascii=False)
    view = step_view(rec, ONLINE, "restore.failover", BIG)
    for hc in view.commands:
        for c in hc.commands:
            assert f"\n[{hc.host}] $ {c}\n" in f.content


def test_running_progress_lines() -> None:
    rec = record(SMALL, {"prep.stop": "running"})
    progress = {
        "sched1": HostResult("sched1", 0, "", "", 1.234),
        "sched2": HostResult("sched2", None, "", "", 30.0, error="timed out"),
    }
    card = B.render_step(rec, SMALL, "prep.stop", progress=progress)
    text, blocks = card.text, card.blocks
    check_blocks(blocks, text)
    dump = json.dumps(blocks, ensure_ascii=False)
    assert "✓ `sched1` exit 0 · 1.23s" in dump
    assert "✗ `sched2` no exit status · 30.00s · timed out" in dump
    assert "… `sched3` running" in dump
    assert not _elements(blocks)


def test_interrupted_shows_check() -> None:
    for finished, word in ((True, "Mark done"), (False, "Retry")):
        rec = record(
            SMALL,
            {"prep.stop": "interrupted"},
            step_extra={"appears_finished": finished, "check": "service inactive on every host"},
        )
        blocks = B.render_step(rec, SMALL, "prep.stop").blocks
        state = next(b for b in blocks if b["block_id"] == "card.state")["text"]["text"]
        assert word in state and "service inactive on every host" in state


def test_output_tail_and_file() -> None:
    rec = record(SMALL, {"prep.stop": "failed"}, step_extra={"summary": "failed on sched1"})
    small = {"sched1": HostResult("sched1", 1, "ok\n", "boom\n", 0.5)}
    card = B.render_step(rec, SMALL, "prep.stop", progress=small)
    check_blocks(card.blocks, card.text)
    assert not card.needs_file
    assert "boom" in json.dumps(card.blocks)
    big_out = "".join(f"line {i}\n" for i in range(2000)) + "THE END"
    big = {"sched1": HostResult("sched1", 1, big_out, "", 0.5)}
    card = B.render_step(rec, SMALL, "prep.stop", progress=big)
    check_blocks(card.blocks, card.text)
    assert card.needs_file
    dump = json.dumps(card.blocks)
    assert "THE END" in dump and "line 0\\n" not in dump
    full = B.output_text("prep.stop", big)
    assert "line 0\n" in full and "THE END" in full


def test_unknown_step_and_targets() -> None:
    rec = record(SMALL)
    card = B.render_step(rec, SMALL, "no.such<step>")
    text, blocks = card.text, card.blocks
    check_blocks(blocks, text)
    step = ONLINE.step("restore.stage")
    assert step.targets is Targets.LEADER
    rec.data["leader"] = "sched1"
    assert "`sched1`" in B.targets_line(step_view(rec, ONLINE, step, SMALL))
    assert ONLINE.step("log.wipe").risk is Risk.DESTRUCTIVE


# ---------------------------------------------------------------- thread, modals, help


def test_action_line() -> None:
    text, blocks = B.action_line("U1ABC", "approved", "prep.stop")
    check_blocks(blocks, text)
    assert blocks[0]["text"]["text"] == "✅ <@U1ABC> approved `prep.stop`"
    text, blocks = B.action_line("U1ABC", "refused", "log.wipe", "you started it")
    assert text.startswith("🚫 <@U1ABC> refused `log.wipe`: you started it")
    text, blocks = B.action_line("console<x>", "skipped", "s" * 5000, NASTY * 500)
    check_blocks(blocks, text)


def test_modals() -> None:
    view = B.skip_modal("abc123def456", "prep.block_traffic")
    check_view(view)
    assert view["callback_id"] == "skip_reason"
    assert json.loads(view["private_metadata"]) == {
        "rid": "abc123def456",
        "sid": "prep.block_traffic",
    }
    assert view["blocks"][1]["element"]["type"] == "plain_text_input"
    check_view(B.skip_modal("r" * 5000, "s" * 5000 + NASTY))
    view = B.abort_modal("abc123def456")
    check_view(view)
    assert view["callback_id"] == "abort_restore"
    radio = view["blocks"][1]["element"]
    assert radio["type"] == "radio_buttons"
    assert [o["value"] for o in radio["options"]] == ["yes", "no"]
    check_view(B.abort_modal("r" * 5000))


def test_help_and_usage() -> None:
    help_ = B.help_text()
    assert "/aurora-restore" in help_ and "status" in help_ and "abort" in help_
    check_blocks([B.section(help_, "usage.help")])


def test_escape_and_clip() -> None:
    assert B.esc("a<b>&c") == "a&lt;b&gt;&amp;c"
    assert B.clip("abcdef", 4) == "abc…"
    assert B.clip("ab&amp;cd", 5) == "ab…"
    assert B.clip_tail("abcdef", 4) == "…def"
    assert B.clip_tail("x&amp;yz", 5) == "…yz"
    assert B.mention("U12345") == "<@U12345>" and B.mention("bob<") == "bob&lt;"


def test_failed_leader_offers_recheck_and_a_commit_whose_leader_changed_goes_back() -> None:
    rec = record(SMALL, {"restore.leader": "failed"})
    card = B.render_step(rec, SMALL, "restore.leader")
    check_blocks(card.blocks, card.text)
    texts = {e["action_id"]: e["text"]["text"] for e in _elements(card.blocks)}
    assert texts["retry"] == "Re-check"

    rec = record(
        SMALL,
        {"restore.commit": "failed"},
        step_extra={"summary": "the leader changed", "rewind": "restore.leader"},
    )
    card = B.render_step(rec, SMALL, "restore.commit")
    check_blocks(card.blocks, card.text)
    by_id = {e["action_id"]: e for e in _elements(card.blocks)}
    assert set(by_id) == {"rewind", "retry", "abort"}
    assert by_id["rewind"]["text"]["text"] == ONLINE.step("restore.commit").rewind_label
    assert by_id["rewind"]["style"] == "primary" and "style" not in by_id["retry"]
    assert "restore.leader" in by_id["rewind"]["confirm"]["text"]["text"]
    # Without the way back (any other failure), Retry is the first choice.
    rec.steps["restore.commit"].pop("rewind")
    card = B.render_step(rec, SMALL, "restore.commit")
    assert {e["action_id"] for e in _elements(card.blocks)} == {"retry", "abort"}


def test_review_with_nothing_staged_promises_no_file() -> None:
    rec = record(SMALL, {"restore.review": "awaiting"})
    rec.data["review"] = {
        "count": 0,
        "summary": {"role": {}, "job": {}, "status": {}},
        "listing": "",
    }
    card = B.render_step(rec, SMALL, "restore.review")
    text = json.dumps(card.blocks, ensure_ascii=False)
    assert "No tasks are staged" in text and "attached" not in text
    assert "delete_tasks" not in {e["action_id"] for e in _elements(card.blocks)}


def test_backup_menu_caps_at_the_newest_fifty_and_shows_only_while_nothing_changed() -> None:
    rec = record(SMALL, {"prep.preflight": "succeeded", "prep.stop": "awaiting"})
    names = [f"scheduler-backup-2026-01-{d:02d}-{h:02d}-00" for d in range(1, 29) for h in range(6)]
    rec.data["backups"] = {n: ["scheduler-1", "scheduler-2"] for n in names}
    rec.data["backup"] = max(names)
    card = B.render_step(rec, SMALL, "prep.preflight")
    check_blocks(card.blocks, card.text)
    (menu,) = [e for e in _elements(card.blocks) if e["action_id"] == "choose_backup"]
    assert len(menu["options"]) == 50 == B.MAX_OPTIONS < len(names)
    assert [o["value"] for o in menu["options"]] == sorted(names, reverse=True)[:50]
    assert menu["initial_option"] == menu["options"][0]
    assert menu["options"][0]["text"]["text"].endswith(" · 2 hosts")
    rec.data["backup"] = min(names)  # named in the slash command: offered, and chosen
    card = B.render_step(rec, SMALL, "prep.preflight")
    (menu,) = [e for e in _elements(card.blocks) if e["action_id"] == "choose_backup"]
    assert len(menu["options"]) == 50 and menu["initial_option"]["value"] == min(names)
    # Once prep.stop ran, the backup is fixed: no menu.
    rec.steps["prep.stop"] = {"status": "succeeded", "attempt": 1}
    card = B.render_step(rec, SMALL, "prep.preflight")
    assert "choose_backup" not in {e["action_id"] for e in _elements(card.blocks)}


def test_the_wipe_card_names_each_host_without_an_archive() -> None:
    hosts = [s.host for s in SMALL.schedulers]
    data = {
        "preview:log.wipe": {
            hosts[0]: {"files": 3, "bytes": 100, "archive": "/x/db.tar.gz"},
            hosts[1]: {"files": 3, "bytes": 100, "archive": None},
            hosts[2]: {"files": 3, "bytes": 100, "archive": None},
        }
    }
    rec = record(SMALL, {"log.wipe": "awaiting"})
    rec.data = data
    text = "\n".join(B.preview_lines(step_view(rec, ONLINE, "log.wipe", SMALL)))
    assert f"No archive of the log on 2 hosts:* {hosts[1]}, {hosts[2]}" in text
    assert text.count("no archive") == 2  # one mark per host without one


def test_a_secret_in_a_cluster_file_command_is_masked_on_the_card() -> None:
    data = {
        "clusters": {
            "west": {
                "service": {"stop": "sudo systemctl stop aurora-scheduler # token=s3cr3tvalue99"},
                "schedulers": [{"host": "sched1"}],
            }
        }
    }
    cluster = parse_clusters(data, "t")["west"]
    rec = record(cluster, {"prep.stop": "awaiting"})
    rec.data = {}
    shown = "\n".join(B.command_lines(step_view(rec, ONLINE, "prep.stop", cluster)))
    assert "s3cr3tvalue99" not in shown and "token=[REDACTED]" in shown
    # The stored plan is masked too, and a guarded remote compares in that form.
    plan = Plan(commands={"sched1": [cluster.service.stop]})
    assert "s3cr3tvalue99" not in json.dumps(plan.to_dict())
