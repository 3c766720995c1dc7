"""Rule 3 on the Slack card and in the console: what a person approves is exactly what
runs. No command is cut (a long one spans sections), a read-only step's card shows every
command it sent and read with, every file edit is a diff on the card, and what does not
fit within Block Kit's limits goes out as a file the card names with its sha256.

The cards are read back with the acceptance tests' parser (tests/slack_cards.py), as a
person reads them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bot import blocks as B
from bot.console import card_lines
from bot.view import step_view
from runbook.procedure import ONLINE
from runbook.store import RestoreRecord
from tests.slack_cards import Shown, apply_diff
from tests.test_blocks import SMALL, check_blocks, record

HOSTS = [s.host for s in SMALL.schedulers]


def long_command(host: str, n: int = 3500) -> str:
    """A command over a section's 3000 characters, with mrkdwn's specials in it, and a
    code fence, and lines."""
    body = " ".join(f"-flag_{i}='a&b<c>'" for i in range(n // 16))
    return f"sudo -n env X=1 bash -c 'echo ```{host}```'\n{body}\ntrue && echo done"


def with_plan(
    sid: str,
    status: str,
    commands: dict[str, list[str]],
    files: dict[str, dict[str, dict[str, str]]] | None = None,
    reads: dict[str, list[str]] | None = None,
) -> RestoreRecord:
    rec = record(SMALL, {sid: status})
    plan: dict[str, Any] = {"commands": commands, "files": files or {}, "reads": reads or {}}
    plan["digest"] = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
    rec.data[f"plan:{sid}"] = plan
    return rec


def check(card: B.StepCard) -> None:
    """Block Kit's limits and the card budget (tests/test_blocks.py), the Approve's
    value carrying the plan digest besides the restore and the step."""
    blocks = json.loads(json.dumps(card.blocks))
    for b in blocks:
        for e in b.get("elements") or []:
            if e.get("type") == "button":
                value = json.loads(e["value"])
                value.pop("plan", None)
                e["value"] = json.dumps(value)
    check_blocks(blocks, card.text)


def shown(card: B.StepCard) -> Shown:
    """The card as the acceptance test reads it, with its plan file posted."""
    posted = {card.plan_file.name: card.plan_file.content} if card.plan_file else {}
    out = Shown()
    out.add(card.blocks, posted)
    return out


def sections(card: B.StepCard) -> list[str]:
    return [b["text"]["text"] for b in card.blocks if b["type"] == "section"]


def test_a_command_over_3000_characters_is_shown_whole_across_sections() -> None:
    commands = {h: ["sudo -n systemctl status aurora-scheduler"] for h in HOSTS}
    commands[HOSTS[0]].insert(0, long_command(HOSTS[0]))
    assert len(commands[HOSTS[0]][0]) > 3000
    card = B.render_card(
        step_view(with_plan("prep.disable", "awaiting", commands), ONLINE, "prep.disable", SMALL)
    )
    check(card)
    assert card.plan_file is None  # it fits on the card, over several sections
    parts = [t for t in sections(card) if t.startswith("*Commands")]
    assert len(parts) >= 2 and all(len(t) <= B.SECTION_TEXT for t in parts)
    assert any(t.startswith("*Commands, continued (the same line):*") for t in parts)
    assert not any("…" in t for t in parts)
    seen = shown(card)
    for host, cs in commands.items():
        for c in cs:
            assert seen.has(host, c), (host, c[:80])
    # Another host's command is not taken for this one's.
    assert not seen.has(HOSTS[1], long_command(HOSTS[0]))
    # The console prints the same commands, whole.
    printed = "\n".join(
        card_lines(
            step_view(
                with_plan("prep.disable", "awaiting", commands), ONLINE, "prep.disable", SMALL
            )
        )
    )
    for host, cs in commands.items():
        assert all(f"[{host}] $ {c}" in printed for c in cs)


def test_a_split_never_breaks_an_entity() -> None:
    line = B.esc("x" * 2950 + "&&&&&&&&" + "y" * 100)
    parts = B.code_parts("Commands", [line])
    assert len(parts) == 2
    first = parts[0].split("```\n", 1)[1].removesuffix("\n```")
    assert not first.endswith(("&", "&a", "&am", "&amp"))
    assert first.endswith(("&amp;", "x"))


def test_a_read_only_step_shows_every_command_it_sent_and_read_with() -> None:
    sid = "prep.preflight"
    rec = record(SMALL, {sid: "succeeded"})
    sent = [
        {
            h: f"find /var/lib/aurora/scheduler/backups -maxdepth 1 -printf '%f\\0' # {h}"
            for h in HOSTS
        }
    ]
    reads = [{h: f"cat -- /etc/default/aurora-scheduler{i}" for h in HOSTS} for i in range(40)]
    reads += [{h: "sudo -n -l tee " + "/very/long/path/" * 200 for h in HOSTS}]
    rec.steps[sid] |= {"commands": sent, "reads": reads}
    card = B.render_card(step_view(rec, ONLINE, sid, SMALL))
    check(card)
    seen = shown(card)
    for batch in sent + reads:
        for host, command in batch.items():
            assert seen.has(host, command), command[:80]


def test_a_running_read_only_step_shows_what_it_sent_so_far() -> None:
    sid = "prep.preflight"
    rec = record(SMALL, {sid: "running"})
    rec.steps[sid] |= {
        "commands": [{HOSTS[0]: "date +%z%n%Z"}],
        "reads": [{HOSTS[1]: "journalctl -n 200"}],
    }
    seen = shown(B.render_card(step_view(rec, ONLINE, sid, SMALL)))
    assert seen.has(HOSTS[0], "date +%z%n%Z") and seen.has(HOSTS[1], "journalctl -n 200")


def test_a_card_over_the_limits_posts_its_whole_plan_as_a_file_it_names() -> None:
    commands = {h: [long_command(h, 2800) + f" {i}" for i in range(6)] for h in HOSTS}
    rec = with_plan("prep.disable", "awaiting", commands)
    view = step_view(rec, ONLINE, "prep.disable", SMALL)
    card = B.render_card(view)
    check(card)
    f = card.plan_file
    assert f is not None
    assert f.sha256 == hashlib.sha256(f.content.encode()).hexdigest()
    note = f"the full commands are in `{f.name}` (sha256 `{f.sha256}`)"
    assert note in json.dumps(card.blocks, ensure_ascii=False)
    # The approval still binds the plan's digest, and the card shows it.
    approve = next(
        e for b in card.blocks for e in b.get("elements") or [] if e.get("action_id") == "approve"
    )
    assert json.loads(approve["value"])["plan"] == rec.data["plan:prep.disable"]["digest"]
    seen = shown(card)
    for host, cs in commands.items():
        for c in cs:
            assert seen.has(host, c)
            assert f"\n[{host}] $ {c}\n" in f.content
    # The same view renders the same file: posting it again is recognised by its sha256.
    assert B.render_card(view).plan_file == f


def diff_of(path: str, old: str, new: str) -> str:
    return f"--- {path} (on the host)\n+++ {path} (after)\n@@ -1 +1 @@\n-{old}\n+{new}\n"


def test_five_diffs_and_more_are_all_on_the_card() -> None:
    files = {
        h: {
            "/etc/default/aurora-scheduler": {
                "diff": diff_of("/etc/default/aurora-scheduler", f"A={h}", f"A={h}&1")
            },
            "/etc/aurora/clusters.json": {
                "diff": diff_of("/etc/aurora/clusters.json", f"[{h}]", f"[<{h}>]")
            },
        }
        for h in HOSTS
    }
    commands = {h: [f"sudo -n tee /etc/default/aurora-scheduler # {h}"] for h in HOSTS}
    card = B.render_card(
        step_view(
            with_plan("cleanup.revert", "awaiting", commands, files),
            ONLINE,
            "cleanup.revert",
            SMALL,
        )
    )
    check(card)
    assert card.plan_file is None
    seen = shown(card)
    assert len(seen.diffs) == 6
    for h, edits in files.items():
        for path, edit in edits.items():
            diffs = [d for hosts, d in seen.diffs if h in hosts and d.startswith(f"--- {path} ")]
            old = edit["diff"].split("\n")[3][1:] + "\n"
            assert [apply_diff(old, d) for d in diffs] == [edit["diff"].split("\n")[4][1:] + "\n"]
    assert not any("more diffs" in t for t in seen.texts)


def test_diffs_over_the_card_go_into_the_file_before_approval() -> None:
    big = "\n".join(f"line {i} " + "z" * 40 for i in range(15))
    files = {
        h: {
            f"/etc/f{i}": {
                "diff": f"--- /etc/f{i} (on the host)\n+++ /etc/f{i} (after)\n@@ -1,15 +1,15 @@\n"
                + "\n".join(f"-{line}" for line in big.split("\n"))
                + "\n"
                + "\n".join(f"+{line}{h}{i}" for line in big.split("\n"))
                + "\n"
            }
            for i in range(4)
        }
        for h in HOSTS
    }
    commands = {h: ["sudo -n true"] for h in HOSTS}
    card = B.render_card(
        step_view(
            with_plan("cleanup.revert", "awaiting", commands, files),
            ONLINE,
            "cleanup.revert",
            SMALL,
        )
    )
    check(card)
    assert card.plan_file is not None
    on_card = [t for t in sections(card) if t.startswith("*File edit on ")]
    assert on_card  # as many as fit
    seen = shown(card)
    for h, edits in files.items():
        for path, edit in edits.items():
            assert any(h in hosts and d == edit["diff"].rstrip("\n") for hosts, d in seen.diffs), (
                h,
                path,
            )
