"""Block Kit payloads for the Slack front end: pure functions, no I/O.

Every function returns plain dicts (what `chat.postMessage`, `chat.update` and
`views.open` take) together with a fallback `text` where a message is built. The root
message and the step cards render the view model of `bot.view` (`render_root`,
`render_card`), the same one the console (`bot.console`) prints; besides them: one line
per action in the thread, and the modals.

Whatever the input (long host names, 50 schedulers, 10 KB of output, a review of
10,000 tasks), no payload breaks a Block Kit limit: text is escaped for mrkdwn first
and then cut with "…", counts are capped, and a card stays under `MESSAGE_BUDGET`
characters. When output had to be cut, `StepCard.needs_file` (from `render_step`) tells
the caller to attach the full output (`output_text`) as a file.

The plan is never cut (rule 3: what a person approves is exactly what runs): every
command, whole, for every host it runs on (a long one spans several sections,
`code_parts`), every file edit as a diff, every command it reads with. What does not fit
within the card's limits (50 blocks, `MESSAGE_BUDGET`) goes out whole as a file,
`StepCard.plan_file` (`plan_text`), which the card names with its sha256 and the caller
posts before the card, so it is in the thread before Approve can be clicked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.view import (
    MAX_OPTIONS as MAX_OPTIONS,  # the backup menu's cap
    Action,
    BackupChoice,
    BackupView,
    Confirm,
    KillsPreview,
    PlanItem,
    ReviewPreview,
    RootView,
    StepView,
    WipePreview,
    procedure_of,
    root_view,
    step_view,
)
from runbook.clusters import Cluster
from runbook.ports import HostResult
from runbook.procedure import ONLINE
from runbook.procedures import PROCEDURES
from runbook.redact import redact
from runbook.step import Procedure, Risk, Role, Targets
from runbook.store import RestoreRecord

# ---------------------------------------------------------------- limits

MAX_BLOCKS = 50
SECTION_TEXT = 3000
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
CONTEXT_TEXT = 2000
MODAL_TITLE = 24
FALLBACK_TEXT = 3000
# The JSON size of one card's blocks: 50 full sections would be unreadable.
MESSAGE_BUDGET = 16000
# Output shown per host before it is cut (the tail is kept).
TAIL_CHARS = 800
# Per-host lines shown before "… and N more hosts".
MAX_HOST_LINES = 60
TOP_N = 10

STATUS_EMOJI = {
    "pending": "⚪",
    "awaiting": "⏳",
    "running": "🔄",
    "succeeded": "✅",
    "failed": "❌",
    "skipped": "⏭️",
    "interrupted": "⚠️",
}
RESTORE_EMOJI = {"running": "🔄", "succeeded": "✅", "failed": "❌", "aborted": "🛑"}
RISK_BADGE = {
    Risk.READ_ONLY: "🟢 read-only",
    Risk.MUTATING: "🟠 mutating",
    Risk.DESTRUCTIVE: "🔴 DESTRUCTIVE",
}
VERB_EMOJI = {
    "approved": "✅",
    "skipped": "⏭️",
    "retried": "🔁",
    "marked done": "☑️",
    "aborted": "🛑",
    "started": "🚀",
    "finished": "🏁",
    "chose the backup": "📦",
    "deleted staged tasks": "🗑️",
    "went back": "↩️",
}
USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,40}$")
_PARTIAL_ENTITY_RE = re.compile(r"&[a-z]{0,3}$")


# ---------------------------------------------------------------- text helpers


def esc(text: object) -> str:
    """Escape for mrkdwn and plain text: `&`, `<`, `>`."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters; cut ones end in "…" (never inside an `&amp;` entity)."""
    if len(text) <= limit:
        return text
    cut = _PARTIAL_ENTITY_RE.sub("", text[: max(limit - 1, 0)])
    return cut + "…"


def clip_tail(text: str, limit: int) -> str:
    """The last `limit` characters; cut ones start with "…" (never inside an entity)."""
    if len(text) <= limit:
        return text
    start = len(text) - max(limit - 1, 0)
    before = text[max(0, start - 4) : start]
    amp = before.rfind("&")
    if amp != -1 and ";" not in before[amp:]:
        semi = text.find(";", start)
        if semi != -1 and semi - start < 4:
            start = semi + 1
    return "…" + text[start:]


def etext(text: object, limit: int) -> str:
    """Escaped, then clipped."""
    return clip(esc(text), limit)


def mention(user: str, name: str | None = None) -> str:
    """`<@U…>` for a Slack user id, else the (escaped) name."""
    if USER_ID_RE.fullmatch(user or ""):
        return f"<@{user}>"
    return etext(name or user or "someone", 80)


def code_block(lines: Iterable[str]) -> str:
    body = "\n".join(lines).replace("```", "`\u200b``")
    return f"```\n{body}\n```"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _num(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# ---------------------------------------------------------------- block helpers


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": etext(text, limit) or " ", "emoji": True}


def _md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or " "}


def section(text: str, block_id: str) -> dict[str, Any]:
    """A section of already escaped mrkdwn, cut to the section limit."""
    return {"type": "section", "block_id": block_id, "text": _md(clip(text, SECTION_TEXT))}


def header(text: str, block_id: str) -> dict[str, Any]:
    return {"type": "header", "block_id": block_id, "text": _plain(text, HEADER_TEXT)}


def context(texts: list[str], block_id: str) -> dict[str, Any]:
    return {
        "type": "context",
        "block_id": block_id,
        "elements": [_md(clip(t, CONTEXT_TEXT)) for t in texts[:10]],
    }


def divider(block_id: str) -> dict[str, Any]:
    return {"type": "divider", "block_id": block_id}


def _pack(lines: list[str], limit: int = SECTION_TEXT) -> list[str]:
    """Join lines into chunks of at most `limit` characters (a long line is cut)."""
    chunks: list[str] = []
    cur = ""
    for line in lines:
        line = clip(line, limit)
        if cur and len(cur) + 1 + len(line) > limit:
            chunks.append(cur)
            cur = line
        else:
            cur = f"{cur}\n{line}" if cur else line
    if cur:
        chunks.append(cur)
    return chunks


def _fit_lines(lines: list[str], budget: int, more: str) -> str:
    """As many whole lines as fit in `budget`, then `more.format(n=...)` for the rest."""
    if sum(len(line) + 1 for line in lines) <= budget:
        return "\n".join(lines)
    reserve = len(more.format(n=len(lines))) + 1
    out: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 + reserve > budget:
            break
        out.append(line)
        used += len(line) + 1
    out.append(more.format(n=len(lines) - len(out)))
    return "\n".join(out)


def _value(rid: str, sid: str, plan: str | None = None) -> str:
    data = {"rid": rid[:900], "sid": sid[:900]}
    if plan:
        data["plan"] = plan  # the approval is bound to the plan this card shows
    return json.dumps(data)[:BUTTON_VALUE]


def _confirm(title: str, text: str, yes: str, no: str = "Cancel") -> dict[str, Any]:
    return {
        "title": _plain(title, CONFIRM_TITLE),
        "text": _md(etext(text, CONFIRM_TEXT)),
        "confirm": _plain(yes, CONFIRM_BUTTON),
        "deny": _plain(no, CONFIRM_BUTTON),
        "style": "danger",
    }


def confirm_object(c: Confirm) -> dict[str, Any]:
    """A view's confirm dialog as Block Kit's confirm object."""
    return _confirm(c.title, c.text, c.yes, c.no)


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    b: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(text, BUTTON_TEXT),
        "value": value[:BUTTON_VALUE],
    }
    if style:
        b["style"] = style
    if confirm:
        b["confirm"] = confirm
    return b


def action_button(a: Action, value: str) -> dict[str, Any]:
    """One action of a view as a button carrying `value`."""
    return button(
        a.label,
        a.kind,
        value,
        style=a.style,
        confirm=confirm_object(a.confirm) if a.confirm else None,
    )


# ---------------------------------------------------------------- root message


def backup_text(b: BackupView) -> str:
    """`*Backup:* `id` (0.2 h old)`, or a warning when too old or none was found."""
    if b.state == "unchosen":
        wanted = f" (requested `{etext(b.requested, 200)}`)" if b.requested else ""
        return f"*Backup:* not chosen yet{wanted}: the preflight finds it"
    if b.state == "none":
        return "⚠️ *Backup:* none was found: restoring is not possible without one"
    name = f"`{etext(b.name, 200)}`"
    if b.age is None:
        return f"*Backup:* {name} (age unknown)"
    hours = f"{b.age / 3600:.1f} h old"
    if b.too_old:
        return (
            f"⚠️ *Backup:* {name} is *{hours}*, older than the maximum of "
            f"{etext(b.max_age, 20)}: every task started since will be killed"
        )
    return f"*Backup:* {name} ({hours})"


def plan_line(item: PlanItem) -> str:
    emoji = STATUS_EMOJI.get(item.status, "❔")
    title = etext(item.title, 70)
    line = f"{emoji} `{etext(item.sid, 60)}` {title}"
    if item.destructive:
        line += " 🔴"
    if item.reason:
        line += f" _({etext(item.reason, 40)})_"
    if item.current:
        line += "  ◀"
    return clip(line, 300)


def root_message(rec: RestoreRecord, cluster: Cluster) -> tuple[str, list[dict[str, Any]]]:
    """The restore's root message (see `render_root`)."""
    return render_root(root_view(rec, procedure_of(rec), cluster))


def _root_buttons(view: RootView) -> list[dict[str, Any]]:
    out = []
    value = json.dumps({"rid": view.rid[:900]})
    for a in view.actions:  # each in its own block: the handlers know them by block id
        out.append({"type": "actions", "block_id": a.kind, "elements": [action_button(a, value)]})
    return out


def render_root(view: RootView) -> tuple[str, list[dict[str, Any]]]:
    """Backup, who started it, status, procedure, the plan as a checklist, and the
    buttons the root offers (export, put back)."""
    who = mention(view.started_by, view.started_by_name or None)
    started = ""
    if view.started_at_ms:
        sec = int(view.started_at_ms / 1000)
        started = f" <!date^{sec}^{{date_short_pretty}} {{time}}|at {sec}>"
    emoji = RESTORE_EMOJI.get(view.status, "❔")
    total = len(view.plan)
    summary = "\n".join(
        [
            backup_text(view.backup),
            f"*Started by:* {who}{started}",
            f"*Status:* {emoji} {etext(view.status, 40)} · {view.done}/{total} steps done"
            + (f" · now at `{etext(view.current, 60)}`" if view.current else ""),
        ]
    )
    procedure = f"{etext(view.procedure, 40)} procedure"
    if view.procedure_version:
        procedure += f" for Aurora {etext(view.procedure_version, 40)}"
    elif view.aurora_versions:
        procedure += f" (Aurora {etext(view.aurora_versions, 60)})"
    blocks: list[dict[str, Any]] = [
        header(f"Aurora restore: {view.cluster}", "root.head"),
        section(summary, "root.summary"),
        context(
            [f"restore `{etext(view.rid, 80)}` · {view.schedulers} schedulers · {procedure}"],
            "root.id",
        ),
        divider("root.div"),
    ]
    buttons = _root_buttons(view)
    lines = [plan_line(item) for item in view.plan]
    chunks = _pack(lines) if lines else ["_empty plan_"]
    room = MAX_BLOCKS - len(blocks) - len(buttons)
    kept: list[str] = []
    used = 0
    for chunk in chunks:
        if len(kept) >= room - 1 or used + len(chunk) > MESSAGE_BUDGET - 3000:
            kept.append(f"… {total} steps in all: the rest is in the transcript")
            break
        kept.append(chunk)
        used += len(chunk)
    for i, chunk in enumerate(kept):
        blocks.append(section(chunk, f"root.plan.{i}"))
    text = clip(
        f"Aurora restore: {esc(view.cluster)} · {esc(view.status)} · {view.done}/{total} steps done",
        FALLBACK_TEXT,
    )
    return text, blocks + buttons


# ---------------------------------------------------------------- step card


@dataclass(frozen=True)
class StepCard:
    text: str
    blocks: list[dict[str, Any]]
    needs_file: bool  # output was cut: attach `output_text(...)` as a file
    # The whole plan, when the card cannot hold it: post it before the card (bot.slack_front).
    plan_file: PlanFile | None = None


def targets_line(view: StepView) -> str:
    if view.targets is Targets.BOT:
        return "*Targets:* the bot itself (nothing runs on the schedulers)"
    if view.targets is Targets.LEADER:
        who = f"`{etext(view.target_hosts[0], 260)}`" if view.target_hosts else "not known yet"
        return f"*Targets:* the leader: {who}"
    hosts = view.target_hosts
    shown = ", ".join(f"`{etext(h, 80)}`" for h in hosts[:8])
    more = f" and {len(hosts) - 8} more" if len(hosts) > 8 else ""
    return clip(f"*Targets:* all {len(hosts)} schedulers: {shown}{more}", 1200)


def command_lines(view: StepView) -> list[str]:
    """`[hosts] $ command` lines, hosts with the same commands grouped (escaped, whole:
    a command is never cut; `code_parts` splits a long one over sections)."""
    if view.commands_error:
        return [esc(f"(commands not available: {view.commands_error})")]
    groups: dict[tuple[str, ...], list[str]] = {}
    for hc in view.commands:
        groups.setdefault(hc.commands, []).append(hc.host)
    lines: list[str] = []
    for group, members in groups.items():
        if len(groups) == 1 and len(members) > 1:
            label = f"every target ({len(members)} hosts)"
        else:
            label = ", ".join(members)  # every host it runs on, whole
        for c in group:
            lines.append(esc(f"[{label}] $ {c}"))
    return lines


def _fence(text: str) -> str:
    """Text that cannot close the code block it is in."""
    return text.replace("```", "`\u200b``")


def _safe_cut(text: str, limit: int) -> int:
    """Where to cut `text` at or before `limit` without splitting an `&amp;` entity."""
    m = _PARTIAL_ENTITY_RE.search(text[:limit])
    return m.start() if m and m.start() > 0 else limit


CONTINUED = "continued"
SAME_LINE = "continued (the same line)"


def code_parts(title: str, lines: list[str]) -> list[str]:
    """Section texts that show `lines` (escaped mrkdwn) whole, in code blocks, each within
    the section limit: as many lines per section as fit, a longer line split over several
    sections. The first is headed `*{title}:*`, the next `*{title}, continued:*`, or
    `*{title}, continued (the same line):*` where it goes on with the line the section
    before ended with (joined without a line break, the line is the command sent)."""
    room = SECTION_TEXT - len(f"*{title}, {SAME_LINE}:*\n```\n\n```")
    bodies: list[tuple[str, bool]] = []  # (body, it goes on with the line before)
    cur, cur_same = "", False
    for raw in lines:
        line = _fence(raw)
        if cur and len(cur) + 1 + len(line) <= room:
            cur += "\n" + line
            continue
        if cur:
            bodies.append((cur, cur_same))
            cur, cur_same = "", False
        while len(line) > room:
            cut = _safe_cut(line, room)
            bodies.append((line[:cut], cur_same))
            line, cur_same = line[cut:], True
        cur = line
    if cur:
        bodies.append((cur, cur_same))
    out = []
    for i, (body, same) in enumerate(bodies):
        head = f"*{title}:*" if i == 0 else f"*{title}, {SAME_LINE if same else CONTINUED}:*"
        out.append(f"{head}\n```\n{body}\n```")
    return out


def _diff_groups(view: StepView) -> list[tuple[str, list[str]]]:
    """Each different diff with the hosts it is for, in the view's order."""
    diffs: dict[str, list[str]] = {}
    for edit in view.edits:
        diffs.setdefault(edit.diff, []).append(edit.host)
    return list(diffs.items())


def _diff_text(text: str, hosts: list[str]) -> str | None:
    """One file edit as a section text, whole; None when it cannot fit in one section."""
    label = ", ".join(f"`{etext(h, 60)}`" for h in hosts[:6]) + (
        f" +{len(hosts) - 6}" if len(hosts) > 6 else ""
    )
    out = f"*File edit on {label}:*\n" + code_block(esc(text).splitlines())
    return out if len(out) <= SECTION_TEXT else None


def plan_parts(view: StepView) -> tuple[list[dict[str, Any]], bool]:
    """The plan approved (runbook.plan), whole, as sections in order: the commands, each
    file edit as a unified diff (hosts with the same diff together), the commands it
    only reads with; and False when a part cannot be a section at all (a diff longer
    than a section): the parts before it are shown and the plan goes out as a file."""
    if view.plan_error:
        error = f"⚠️ *The plan could not be rendered:* {etext(view.plan_error, 1500)}"
        return [section(error, "card.plan")], True
    lines = command_lines(view)
    out: list[dict[str, Any]] = []
    if not lines:
        text = "_No commands on the schedulers: the bot does this itself._"
        out.append(section(text, "card.commands"))
    for i, text in enumerate(code_parts("Commands", lines)):
        out.append(section(text, "card.commands" if i == 0 else f"card.commands.{i}"))
    whole = True
    for i, (diff, hosts) in enumerate(_diff_groups(view)):
        text_or_none = _diff_text(diff, hosts)
        if text_or_none is None:
            whole = False
            break
        out.append(section(text_or_none, f"card.diff.{i}"))
    if whole and view.reads:
        reads = code_parts("It also reads, to check", [esc(c) for c in view.reads])
        for i, text in enumerate(reads):
            out.append(section(text, "card.reads" if i == 0 else f"card.reads.{i}"))
    return out, whole


def _digest_block(view: StepView) -> list[dict[str, Any]]:
    if not view.plan_digest:
        return []
    text = f"plan `{view.plan_digest[:12]}`: an approval runs exactly this"
    return [context([text], "card.digest")]


@dataclass(frozen=True)
class PlanFile:
    """The whole plan of a card that cannot hold it, posted in the thread with the card
    (before its Approve can be clicked); the card names it and its sha256."""

    name: str
    content: str
    sha256: str


def plan_text(view: StepView) -> str:
    """The whole plan of a step, unescaped, as the file posted when the card cannot hold
    it: every command per host (`[host] $ command`), what it also reads, and every file
    edit as a unified diff, each section headed by a line starting with "===== "."""
    out = [f"{view.sid} · {view.title}: the whole plan"]
    if view.plan_digest:
        out.append(f"plan {view.plan_digest} (an approval runs exactly this)")
    out.append("===== Commands")
    out += [f"[{hc.host}] $ {c}" for hc in view.commands for c in hc.commands]
    out.append("===== It also reads, to check")
    out += list(view.reads)
    for diff, hosts in _diff_groups(view):
        out.append(f"===== File edit on {', '.join(hosts)}:")
        out.append(diff.rstrip("\n"))
    return "\n".join(out) + "\n"


def plan_file(view: StepView) -> PlanFile:
    """The file of a view's whole plan, secrets masked (as `upload` posts it: its sha256
    is of exactly the bytes posted)."""
    content = redact(plan_text(view))
    digest = hashlib.sha256(content.encode()).hexdigest()
    return PlanFile(f"{view.sid}-plan-{digest[:12]}.txt", content, digest)


def plan_file_note(f: PlanFile) -> dict[str, Any]:
    text = (
        f"⚠️ The plan does not fit on this card: the full commands are in `{etext(f.name, 200)}` "
        f"(sha256 `{f.sha256}`), posted in this thread. It is what an approval runs."
    )
    return context([text], "card.planfile")


def _wipe_lines(wipe: WipePreview) -> list[str]:
    out = [
        f"*To delete:* {wipe.files} files, {_human_bytes(wipe.bytes)} on {len(wipe.hosts)} hosts"
    ]
    for i, h in enumerate(wipe.hosts):
        if i >= MAX_HOST_LINES:
            out.append(f"… and {len(wipe.hosts) - i} more hosts")
            break
        if h.files is not None:
            what = f"{h.files} files, {_human_bytes(h.bytes or 0)}"
        else:
            what = f"⚠️ cannot tell: {etext(h.error, 200)}"
        if h.archive_known and not h.archive:
            what += " · ⚠️ *no archive*: the old log is gone for good"
        out.append(f"• `{etext(h.host, 80)}`: {what}")
    bare = [h.host for h in wipe.hosts if h.archive_known and not h.archive]
    if bare:
        out.append(
            f"⚠️ *No archive of the log on {len(bare)} hosts:* "
            + etext(", ".join(bare), 500)
            + ": after the wipe there is no way back to the old log there."
        )
    return out


def _kills_lines(kills: KillsPreview) -> list[str]:
    if not kills.known:
        return [f"⚠️ The kills are not forecast: {etext(kills.why, 500)}"]
    out = [f"⚠️ *{etext(kills.summary, 500)}*"]
    if kills.by_role:
        out.append("By role: " + ", ".join(f"`{etext(r, 60)}` {n}" for r, n in kills.by_role[:10]))
    return out


def _review_lines(review: ReviewPreview) -> list[str]:
    if review.error:
        return [f"⚠️ *Listing failed:* {etext(review.error, 1000)}"]
    out = [f"*Staged tasks:* {review.count}"]
    for counts, label in (
        (review.by_status, "By status"),
        (review.by_role, "Top roles"),
        (review.by_job, "Top jobs"),
    ):
        if not counts:
            continue
        parts = [f"`{etext(k, 60)}` {n}" for k, n in counts[:TOP_N]]
        more = f" (+{len(counts) - TOP_N} more)" if len(counts) > TOP_N else ""
        out.append(f"*{label}:* " + ", ".join(parts) + more)
    for d in review.deletions:
        line = f"🗑️ *Deleted:* {d.removed} of {d.asked} tasks ({d.before} → {d.after})"
        if d.still_there:
            line += f"; ⚠️ still listed: {etext(', '.join(d.still_there[:5]), 400)}"
        if not d.ok:
            line += "; ⚠️ the delete command failed"
        out.append(line)
    if review.has_listing:
        out.append("_The full listing is attached to the thread._")
    else:
        out.append("_No tasks are staged: restoring this backup leaves no task running._")
    return out


def preview_lines(view: StepView) -> list[str]:
    """The previews under the commands: wipe sizes, kills, staged tasks, backup age."""
    out: list[str] = []
    if view.wipe is not None:
        out += _wipe_lines(view.wipe)
    if view.kills is not None:
        out += _kills_lines(view.kills)
    if view.review is not None:
        out += _review_lines(view.review)
    if view.backup is not None:
        out.append(backup_text(view.backup))
    return out


def _result_line(r: HostResult) -> str:
    mark = "✓" if r.ok else "✗"
    detail = f"exit {r.exit_status}" if r.exit_status is not None else "no exit status"
    err = f" · {etext(r.error, 200)}" if r.error else ""
    return f"{mark} `{etext(r.host, 80)}` {detail} · {r.duration:.2f}s{err}"


def _progress_lines(view: StepView) -> list[str]:
    lines = [_result_line(r) for r in view.results]
    return lines + [f"… `{etext(h, 80)}` running" for h in view.running_on]


def _output_of(r: HostResult) -> str:
    parts = [p for p in (r.stdout.rstrip("\n"), r.stderr.rstrip("\n")) if p]
    if len(parts) == 2:
        return f"{parts[0]}\n--- stderr ---\n{parts[1]}"
    return parts[0] if parts else ""


def output_text(sid: str, results: Mapping[str, HostResult]) -> str:
    """The full, unescaped output of every host: the file to attach when it was cut."""
    out: list[str] = []
    for r in results.values():
        status = f"exit {r.exit_status}" if r.exit_status is not None else "no exit status"
        out.append(f"===== {sid} · {r.host} · {status} · {r.duration:.2f}s")
        if r.error:
            out.append(f"error: {r.error}")
        out.append(_output_of(r))
    return "\n".join(out) + "\n"


def _size(blocks: list[dict[str, Any]]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False))


def action_blocks(view: StepView) -> list[dict[str, Any]]:
    """The view's actions as one actions block (the approve button bound to the plan)."""
    shown = [a for a in view.actions if a.button]
    if not shown:
        return []
    value = _value(view.rid, view.sid)
    btns = [
        action_button(a, _value(view.rid, view.sid, a.plan) if a.plan else value) for a in shown
    ]
    return [{"type": "actions", "block_id": f"act.{view.status}.{view.attempt}", "elements": btns}]


def _meta_block(view: StepView) -> dict[str, Any]:
    return context(
        [
            f"*{RISK_BADGE[view.risk]}*",
            f"{etext(view.phase, 80)}",
            f"status: *{etext(view.status, 30)}*"
            + (f" · attempt {view.attempt}" if view.attempt > 1 else "")
            + (f" · {view.waited}" if view.waited else ""),
            f"restore `{etext(view.rid, 80)}`",
        ],
        "card.meta",
    )


def _check_block(view: StepView) -> dict[str, Any]:
    ctx = [f"check: {etext(view.check, 300)}"]
    if view.suggest_skip:
        ctx.append("suggested: skip")
    if view.two_person:
        ctx.append("needs an approver other than the requester")
    return context(ctx, "card.check")


def _state_lines(view: StepView) -> list[str]:
    """Who did what, and what came out."""
    emoji = STATUS_EMOJI.get(view.status, "❔")
    info: list[str] = []
    if view.approved_by:
        info.append(f"approved by {mention(view.approved_by)}")
    if view.status == "skipped":
        who = mention(view.skipped_by) if view.skipped_by else "the plan"
        reason = f": {etext(view.reason, 500)}" if view.reason else ""
        info.append(f"⏭️ skipped by {who}{reason}")
    if view.summary and view.status in ("succeeded", "failed"):
        info.append(f"{emoji} {etext(view.summary, 1500)}")
    if view.error:
        info.append(f"error: {etext(view.error, 500)}")
    stop = view.interruption
    if stop is not None:
        if stop.appears_finished is None:
            verdict = "not checked yet"
        elif stop.appears_finished:
            verdict = "its check passed: it appears to have finished (*Mark done* if so)"
        else:
            verdict = "its check did not pass: it appears not to have finished (*Retry*)"
        info.append(
            "⚠️ The bot stopped while this step ran. "
            + verdict
            + (f"\ncheck: {etext(stop.check, 800)}" if stop.check else "")
        )
    return info


def _tails(
    view: StepView, blocks: list[dict[str, Any]], reserved: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], bool]:
    """Tails of output, failed hosts first, while the message budget lasts; and whether
    some output was cut."""
    out: list[dict[str, Any]] = []
    cut = False
    budget = _size(reserved) + 400
    for r in view.results:
        text = _output_of(r)
        if not text:
            continue
        room = MESSAGE_BUDGET - _size(blocks + out) - budget
        if len(blocks) + len(out) + len(reserved) + 2 > MAX_BLOCKS or room < 300:
            return out, True
        head = f"`{etext(r.host, 80)}` {'✓' if r.ok else '✗'} output"
        limit = min(TAIL_CHARS, room - 200, SECTION_TEXT - len(head) - 30)
        escaped = esc(text)
        tail = clip_tail(escaped, limit)
        if tail != escaped:
            cut = True
            head += " (tail)"
        block = section(head + "\n" + code_block([tail]), f"card.out.{len(out)}")
        if _size(blocks + out + [block] + reserved) + 400 > MESSAGE_BUDGET:
            return out, True  # JSON escapes made it larger than its text
        out.append(block)
    return out, cut


def _fit_plan(parts: list[dict[str, Any]], fixed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The leading plan parts that fit on a card with the `fixed` blocks and the note
    naming the plan file: within MAX_BLOCKS blocks and MESSAGE_BUDGET characters."""
    note = plan_file_note(PlanFile("x" * 80, "", "0" * 64))
    used, count = _size([*fixed, note]), len(fixed) + 1
    shown: list[dict[str, Any]] = []
    for part in parts:
        size = _size([part]) + 2
        if count + 1 > MAX_BLOCKS or used + size > MESSAGE_BUDGET:
            break
        shown.append(part)
        used, count = used + size, count + 1
    return shown


def _output_note() -> dict[str, Any]:
    return context(["The output was cut here: the full output is attached as a file."], "card.file")


def render_card(view: StepView) -> StepCard:
    """A step's view as a card, whether its output should also go out as a file, and
    the file of its whole plan when the card cannot hold it (`StepCard.plan_file`)."""
    if not view.known:
        text = clip(f"Unknown step {esc(view.sid)}", FALLBACK_TEXT)
        unknown = [section(f"❔ Unknown step `{etext(view.sid, 200)}`", "card.unknown")]
        return StepCard(text, unknown, False)
    emoji = STATUS_EMOJI.get(view.status, "❔")
    top: list[dict[str, Any]] = [
        header(f"{emoji} {view.sid} · {view.title}", "card.head"),
        _meta_block(view),
        section(esc(view.explain), "card.explain"),
        section(targets_line(view), "card.targets"),
    ]
    below: list[dict[str, Any]] = _digest_block(view)
    preview = preview_lines(view)
    if preview:
        body = _fit_lines(preview, SECTION_TEXT - 10, "… {n} more lines in the transcript")
        below.append(section(body, "card.preview"))
    below.append(_check_block(view))
    info = _state_lines(view)
    if info:
        below.append(section(clip("\n".join(info), 2000), "card.state"))
    needs_file = False
    ended = view.status in ("succeeded", "failed", "interrupted")
    if view.status == "running" or (view.results and ended):
        lines = _progress_lines(view)
        if lines:
            title = "*Progress:*" if view.status == "running" else "*Results:*"
            body = _fit_lines(lines, SECTION_TEXT - 20, "… and {n} more hosts")
            below.append(section(f"{title}\n{body}", "card.hosts"))
            needs_file = body.count("\n") + 1 < len(lines)
    acts = action_blocks(view)
    if view.choice is not None:
        acts.insert(0, backup_picker(view.rid, view.choice))
    parts, whole = plan_parts(view)
    # Room is kept for the note that the output is attached, should the output be cut.
    shown = _fit_plan(parts, top + below + acts + ([_output_note()] if ended else []))
    the_file = None if whole and len(shown) == len(parts) else plan_file(view)
    blocks = top + shown + ([plan_file_note(the_file)] if the_file else []) + below
    if ended and view.results:
        tails, cut = _tails(view, blocks, acts)
        blocks += tails
        if cut or needs_file:
            needs_file = True
            blocks.append(_output_note())
    blocks += acts
    text = clip(f"{esc(view.sid)} · {esc(view.title)}: {esc(view.status)}", FALLBACK_TEXT)
    return StepCard(text, blocks[:MAX_BLOCKS], needs_file, the_file)


def render_step(
    rec: RestoreRecord,
    cluster: Cluster,
    sid: str,
    *,
    progress: Mapping[str, HostResult] | None = None,
) -> StepCard:
    """The card of one step of the record's procedure (see `render_card`)."""
    return render_card(step_view(rec, procedure_of(rec), sid, cluster, results=progress))


# ---------------------------------------------------------------- thread lines


def action_line(
    actor_id: str, verb: str, sid: str, detail: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """One line for the thread: "✅ <@U1> approved `STEP`", refusals with 🚫."""
    refused = verb.startswith(("refused", "cannot", "could not", "not allowed"))
    emoji = "🚫" if refused else VERB_EMOJI.get(verb, "•")
    who = mention(actor_id)
    target = f" `{etext(sid, 200)}`" if sid else ""
    extra = f": {etext(detail, 2000)}" if detail else ""
    line = clip(f"{emoji} {who} {etext(verb, 100)}{target}{extra}", SECTION_TEXT)
    return clip(line, FALLBACK_TEXT), [section(line, "line")]


# ---------------------------------------------------------------- modals


def _title_of(sid: str) -> str:
    for procedure in PROCEDURES.values():
        try:
            return procedure.step(sid).title
        except KeyError:
            continue
    return sid


def skip_modal(rid: str, sid: str, title: str | None = None) -> dict[str, Any]:
    title = title or _title_of(sid)
    return {
        "type": "modal",
        "callback_id": "skip_reason",
        "private_metadata": _value(rid, sid),
        "title": _plain("Skip a step", MODAL_TITLE),
        "submit": _plain("Skip it", MODAL_TITLE),
        "close": _plain("Cancel", MODAL_TITLE),
        "blocks": [
            section(f"Skip `{etext(sid, 200)}`: {etext(title, 500)}?", "skip.what"),
            {
                "type": "input",
                "block_id": "reason",
                "label": _plain("Why skip it? (kept in the transcript)", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "reason",
                    "multiline": True,
                    "min_length": 3,
                    "max_length": 500,
                    "placeholder": _plain("e.g. the traffic block is not configured here", 150),
                },
            },
        ],
    }


OPTION_VALUE = 150


def backup_picker(rid: str, choice: BackupChoice) -> dict[str, Any]:
    """A select menu of the backups found, newest first, set to the chosen one."""
    options = []
    initial = None
    for b in choice.options:
        text = f"{b.name} · " + (f"{b.age / 3600:.1f} h" if b.age is not None else "age ?")
        text += f" · {b.holders} host" + ("s" if b.holders != 1 else "")
        option = {"text": _plain(text, 75), "value": b.name[:OPTION_VALUE]}
        options.append(option)
        if b.name == choice.chosen:
            initial = option
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": "choose_backup",
        "placeholder": _plain("Choose the backup", 150),
        "options": options,
    }
    if initial is not None:
        select["initial_option"] = initial
    return {"type": "actions", "block_id": f"backup.{rid[:200]}", "elements": [select]}


def delete_modal(rid: str, count: int, procedure: Procedure = ONLINE) -> dict[str, Any]:
    review = procedure.first(Role.REVIEW)
    return {
        "type": "modal",
        "callback_id": "delete_tasks",
        "private_metadata": _value(rid, review.id if review else ""),
        "title": _plain("Delete staged tasks", MODAL_TITLE),
        "submit": _plain("Delete", MODAL_TITLE),
        "close": _plain("Cancel", MODAL_TITLE),
        "blocks": [
            section(
                f"Delete tasks from the staged recovery of restore `{etext(rid, 200)}` "
                f"({count} tasks staged). They are not restored; the listing is printed "
                "again afterwards.",
                "delete.what",
            ),
            {
                "type": "input",
                "block_id": "ids",
                "label": _plain("Task ids, one a line or comma-separated", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "ids",
                    "multiline": True,
                    "max_length": 3000,
                    "placeholder": _plain("www-data-prod-hello-0-6c0f…", 150),
                },
            },
        ],
    }


def abort_modal(rid: str) -> dict[str, Any]:
    def option(text: str, value: str, desc: str) -> dict[str, Any]:
        return {"text": _plain(text, 75), "value": value, "description": _plain(desc, 75)}

    yes = option("Revert", "yes", "put back every file changed and start the schedulers")
    return {
        "type": "modal",
        "callback_id": "abort_restore",
        "private_metadata": json.dumps({"rid": rid[:900]}),
        "title": _plain("Abort the restore", MODAL_TITLE),
        "submit": _plain("Abort", MODAL_TITLE),
        "close": _plain("Keep going", MODAL_TITLE),
        "blocks": [
            section(
                f"Abort restore `{etext(rid, 200)}`? A running step is cancelled.", "abort.what"
            ),
            {
                "type": "input",
                "block_id": "revert",
                "label": _plain("Revert the changes made so far?", 2000),
                "element": {
                    "type": "radio_buttons",
                    "action_id": "revert",
                    "initial_option": yes,
                    "options": [
                        yes,
                        option(
                            "Leave as is", "no", "change nothing; the cluster stays as it is now"
                        ),
                    ],
                },
            },
        ],
    }


# ---------------------------------------------------------------- help


def help_text() -> str:
    return "\n".join(
        [
            "*/aurora-restore* walks the on-call team through restoring an Aurora scheduler.",
            "• `/aurora-restore &lt;cluster&gt; [backup-id]`: start a restore (newest backup unless one is named)",
            "• `/aurora-restore status`: the restores running now",
            "• `/aurora-restore abort [cluster]`: abort a restore (asks whether to revert)",
            "• `/aurora-restore export [restore-id]`: the transcript (Markdown, JSON, HTML) into the restore's thread",
            "• `/aurora-restore check &lt;cluster&gt;`: a read-only rehearsal against the cluster (changes nothing, takes no lock)",
            "• `/aurora-restore help`: this text",
            "Each step is approved with the buttons on its card; destructive steps need a second person.",
        ]
    )
