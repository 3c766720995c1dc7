"""Block Kit payloads for the Slack front end: pure functions, no I/O.

Every function returns plain dicts (what `chat.postMessage`, `chat.update` and
`views.open` take) together with a fallback `text` where a message is built. They show
what the console (`bot.console`) prints, as a root message with the plan as a
checklist, one card per step, one line per action in the thread, and two modals.

Whatever the input (long host names, 50 schedulers, 10 KB of output, a review of
10,000 tasks), no payload breaks a Block Kit limit: text is escaped for mrkdwn first
and then cut with "…", counts are capped, and a card stays under `MESSAGE_BUDGET`
characters. When output had to be cut, `StepCard.needs_file` (from `render_step`) tells
the caller to attach the full output (`output_text`) as a file.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runbook import actions, approvals
from runbook.clusters import Cluster
from runbook.engine import backup_choice_open
from runbook.ports import HostResult
from runbook.procedure import ONLINE, Risk, Step, Targets
from runbook.redact import redact
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
_STEPS = {s.id: s for s in ONLINE}


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


def _destructive_confirm(step: Step, cluster: Cluster, verb: str) -> dict[str, Any] | None:
    """Every run of a destructive step asks to confirm: a retry and a Mark done too."""
    if step.risk is not Risk.DESTRUCTIVE:
        return None
    return _confirm(
        f"{verb} {step.id}?",
        f"DESTRUCTIVE: {step.title} on {step.targets.value} of {cluster.name}. "
        + ("The person who started the restore cannot do this." if cluster.two_person_rule else ""),
        f"Yes, {verb.lower()}",
    )


def _confirm(title: str, text: str, yes: str, no: str = "Cancel") -> dict[str, Any]:
    return {
        "title": _plain(title, CONFIRM_TITLE),
        "text": _md(etext(text, CONFIRM_TEXT)),
        "confirm": _plain(yes, CONFIRM_BUTTON),
        "deny": _plain(no, CONFIRM_BUTTON),
        "style": "danger",
    }


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


# ---------------------------------------------------------------- root message


def _step(sid: str) -> Step | None:
    return _STEPS.get(sid)


def backup_line(facts: Mapping[str, Any], cluster: Cluster, requested: str | None = None) -> str:
    """`*Backup:* `id` (0.2 h old)`, or a warning when too old or none was found."""
    backup = facts.get("backup")
    age = facts.get("backup_age")
    limit = cluster.max_backup_age_delta.total_seconds()
    if "backup" not in facts:
        wanted = f" (requested `{etext(requested, 200)}`)" if requested else ""
        return f"*Backup:* not chosen yet{wanted}: the preflight finds it"
    if not backup:
        return "⚠️ *Backup:* none was found: restoring is not possible without one"
    name = f"`{etext(backup, 200)}`"
    if not isinstance(age, int | float):
        return f"*Backup:* {name} (age unknown)"
    hours = f"{age / 3600:.1f} h old"
    if age > limit:
        return (
            f"⚠️ *Backup:* {name} is *{hours}*, older than the maximum of "
            f"{etext(cluster.max_backup_age, 20)}: every task started since will be killed"
        )
    return f"*Backup:* {name} ({hours})"


def plan_line(rec_steps: Mapping[str, Any], sid: str, current: str) -> str:
    state = rec_steps.get(sid) or {}
    status = str(state.get("status", "pending"))
    emoji = STATUS_EMOJI.get(status, "❔")
    step = _step(sid)
    title = etext(step.title, 70) if step else ""
    line = f"{emoji} `{etext(sid, 60)}` {title}"
    if step is not None and step.risk is Risk.DESTRUCTIVE:
        line += " 🔴"
    if status == "skipped" and state.get("reason"):
        line += f" _({etext(state['reason'], 40)})_"
    if sid == current and status not in ("succeeded", "skipped"):
        line += "  ◀"
    return clip(line, 300)


def root_message(rec: RestoreRecord, cluster: Cluster) -> tuple[str, list[dict[str, Any]]]:
    """The restore's root message: backup, who started it, status, plan checklist."""
    meta: Mapping[str, Any] = rec.meta
    name = str(meta.get("cluster") or cluster.name)
    status = str(rec.status)
    who = mention(str(meta.get("started_by", "")), meta.get("started_by_name"))
    started = ""
    at = meta.get("started_at")
    if isinstance(at, int | float) and at > 0:
        sec = int(at / 1000)
        started = f" <!date^{sec}^{{date_short_pretty}} {{time}}|at {sec}>"
    emoji = RESTORE_EMOJI.get(status, "❔")
    plan: list[str] = [str(s) for s in meta.get("plan", [])]
    done = sum(
        1 for s in plan if (rec.steps.get(s) or {}).get("status") in ("succeeded", "skipped")
    )
    summary = "\n".join(
        [
            backup_line(rec.data, cluster, meta.get("requested_backup")),
            f"*Started by:* {who}{started}",
            f"*Status:* {emoji} {etext(status, 40)} · {done}/{len(plan)} steps done"
            + (f" · now at `{etext(rec.current, 60)}`" if rec.current else ""),
        ]
    )
    blocks: list[dict[str, Any]] = [
        header(f"Aurora restore: {name}", "root.head"),
        section(summary, "root.summary"),
        context(
            [f"restore `{etext(rec.rid, 80)}` · {len(cluster.schedulers)} schedulers"], "root.id"
        ),
        divider("root.div"),
    ]
    lines = [plan_line(rec.steps, sid, rec.current) for sid in plan]
    chunks = _pack(lines) if lines else ["_empty plan_"]
    room = MAX_BLOCKS - len(blocks)
    kept: list[str] = []
    used = 0
    for chunk in chunks:
        if len(kept) >= room - 1 or used + len(chunk) > MESSAGE_BUDGET - 3000:
            kept.append(f"… {len(plan)} steps in all: the rest is in the transcript")
            break
        kept.append(chunk)
        used += len(chunk)
    chunks = kept
    for i, chunk in enumerate(chunks):
        blocks.append(section(chunk, f"root.plan.{i}"))
    text = clip(
        f"Aurora restore: {esc(name)} · {esc(status)} · {done}/{len(plan)} steps done",
        FALLBACK_TEXT,
    )
    return text, blocks


# ---------------------------------------------------------------- step card


@dataclass(frozen=True)
class StepCard:
    text: str
    blocks: list[dict[str, Any]]
    needs_file: bool  # output was cut: attach `output_text(...)` as a file


def targets_line(cluster: Cluster, step: Step, facts: Mapping[str, Any]) -> str:
    if step.targets is Targets.BOT:
        return "*Targets:* the bot itself (nothing runs on the schedulers)"
    if step.targets is Targets.LEADER:
        leader = facts.get("leader")
        who = f"`{etext(leader, 260)}`" if leader else "not known yet"
        return f"*Targets:* the leader: {who}"
    hosts = [s.host for s in cluster.schedulers]
    shown = ", ".join(f"`{etext(h, 80)}`" for h in hosts[:8])
    more = f" and {len(hosts) - 8} more" if len(hosts) > 8 else ""
    return clip(f"*Targets:* all {len(hosts)} schedulers: {shown}{more}", 1200)


def command_lines(cluster: Cluster, step: Step, facts: Mapping[str, Any]) -> list[str]:
    """`[hosts] $ command` lines, hosts with the same commands grouped (escaped)."""
    try:
        planned = actions.planned_commands(cluster, step, facts)
    except Exception as exc:  # a card must render even if the facts are odd
        return [esc(f"(commands not available: {type(exc).__name__}: {exc})")]
    groups: dict[tuple[str, ...], list[str]] = {}
    for host, cmds in planned.items():
        groups.setdefault(tuple(cmds), []).append(host)
    lines: list[str] = []
    for group, members in groups.items():
        if len(groups) == 1 and len(members) > 1:
            label = f"every target ({len(members)} hosts)"
        elif len(members) > 3:
            label = ", ".join(clip(h, 60) for h in members[:3]) + f" +{len(members) - 3}"
        else:
            label = ", ".join(clip(h, 60) for h in members)
        for c in group:
            lines.append(clip(esc(f"[{label}] $ {c}"), 1000))
    return lines


def _commands_block(lines: list[str], block_id: str) -> dict[str, Any]:
    if not lines:
        return section("_No commands on the schedulers: the bot does this itself._", block_id)
    overhead = len("*Commands:*\n```\n\n```") + 10
    body = _fit_lines(lines, SECTION_TEXT - overhead, "… {n} more lines in the transcript")
    return section("*Commands:*\n" + code_block([body]), block_id)


def waited(rec: RestoreRecord, sid: str) -> str:
    """How long a step has waited for approval, at the time the card is drawn."""
    since = dict(approvals.waiting_for(rec)).get(sid)
    if since is None:
        return "waiting for approval"
    return approvals.waited_text(since, int(time.time() * 1000))


MAX_DIFF_BLOCKS = 3


def plan_blocks(step: Step, facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rest of the plan approved (runbook.plan): each file edit as a unified diff
    (hosts with the same diff together), and the commands it only reads with."""
    plan = facts.get(f"plan:{step.id}")
    if not isinstance(plan, Mapping):
        return []
    out: list[dict[str, Any]] = []
    if plan.get("error"):
        out.append(
            section(
                f"⚠️ *The plan could not be rendered:* {etext(plan['error'], 1500)}", "card.plan"
            )
        )
        return out
    diffs: dict[str, list[str]] = {}
    for host, edits in (plan.get("files") or {}).items():
        for path, edit in edits.items():
            text = str(edit.get("diff") or f"{path}: no change\n")
            diffs.setdefault(text, []).append(str(host))
    for i, (text, hosts) in enumerate(diffs.items()):
        if i >= MAX_DIFF_BLOCKS:
            out.append(
                context([f"… {len(diffs) - i} more diffs in the transcript"], "card.diff.more")
            )
            break
        label = ", ".join(f"`{etext(h, 60)}`" for h in hosts[:6]) + (
            f" +{len(hosts) - 6}" if len(hosts) > 6 else ""
        )
        head = f"*File edit on {label}:*\n"
        body = _fit_lines(
            esc(redact(text)).splitlines(),
            SECTION_TEXT - len(head) - 20,
            "… {n} more lines in the transcript",
        )
        out.append(section(head + code_block([body]), f"card.diff.{i}"))
    reads = sorted({c for cs in (plan.get("reads") or {}).values() for c in cs})
    if reads:
        lines = [clip(esc(redact(c)), 500) for c in reads]
        body = _fit_lines(lines, SECTION_TEXT - 60, "… {n} more in the transcript")
        out.append(section("*It also reads, to check:*\n" + code_block([body]), "card.reads"))
    digest = plan.get("digest")
    if isinstance(digest, str):
        out.append(context([f"plan `{digest[:12]}`: an approval runs exactly this"], "card.digest"))
    return out


def preview_lines(step: Step, facts: Mapping[str, Any], cluster: Cluster) -> list[str]:
    """What the console prints under the commands: wipe sizes, staged tasks, backup age."""
    out: list[str] = []
    if step.id == "log.wipe":
        preview = facts.get("preview:log.wipe")
        if isinstance(preview, Mapping) and preview:
            files = sum(_num(v.get("files")) for v in preview.values() if isinstance(v, Mapping))
            size = sum(_num(v.get("bytes")) for v in preview.values() if isinstance(v, Mapping))
            out.append(f"*To delete:* {files} files, {_human_bytes(size)} on {len(preview)} hosts")
            for i, (host, info) in enumerate(preview.items()):
                if i >= MAX_HOST_LINES:
                    out.append(f"… and {len(preview) - i} more hosts")
                    break
                if isinstance(info, Mapping) and "error" not in info:
                    what = (
                        f"{_num(info.get('files'))} files, {_human_bytes(_num(info.get('bytes')))}"
                    )
                else:
                    err = info.get("error") if isinstance(info, Mapping) else info
                    what = f"⚠️ cannot tell: {etext(err, 200)}"
                if isinstance(info, Mapping) and not info.get("archive"):
                    what += " · ⚠️ *no archive*: the old log is gone for good"
                out.append(f"• `{etext(host, 80)}`: {what}")
            bare = [
                h for h, v in preview.items() if isinstance(v, Mapping) and not v.get("archive")
            ]
            if bare:
                out.append(
                    f"⚠️ *No archive of the log on {len(bare)} hosts:* "
                    + etext(", ".join(bare), 500)
                    + ": after the wipe there is no way back to the old log there."
                )
    elif step.fills_log:
        kills = facts.get("kills") or {}
        if kills.get("known"):
            out.append(f"⚠️ *{etext(kills.get('summary', ''), 500)}*")
            roles = kills.get("by_role") or {}
            if roles:
                out.append(
                    "By role: "
                    + ", ".join(f"`{etext(r, 60)}` {_num(n)}" for r, n in list(roles.items())[:10])
                )
        else:
            out.append(
                f"⚠️ The kills are not forecast: {etext(kills.get('why', 'no forecast'), 500)}"
            )
    elif step.id == "restore.review":
        review = facts.get("review")
        if isinstance(review, Mapping) and "error" in review:
            out.append(f"⚠️ *Listing failed:* {etext(review['error'], 1000)}")
        elif isinstance(review, Mapping) and isinstance(review.get("summary"), Mapping):
            summary: Mapping[str, Any] = review["summary"]
            out.append(f"*Staged tasks:* {_num(review.get('count'))}")
            for key, label in (("status", "By status"), ("role", "Top roles"), ("job", "Top jobs")):
                counts = summary.get(key)
                if not isinstance(counts, Mapping) or not counts:
                    continue
                top = sorted(counts.items(), key=lambda kv: -_num(kv[1]))
                parts = [f"`{etext(k, 60)}` {_num(n)}" for k, n in top[:TOP_N]]
                more = f" (+{len(top) - TOP_N} more)" if len(top) > TOP_N else ""
                out.append(f"*{label}:* " + ", ".join(parts) + more)
            for d in review.get("deletions") or []:
                if not isinstance(d, Mapping):
                    continue
                line = (
                    f"🗑️ *Deleted:* {len(d.get('removed') or [])} of {len(d.get('ids') or [])} "
                    f"tasks ({_num(d.get('before'))} → {_num(d.get('after'))})"
                )
                still = d.get("still_there") or []
                if still:
                    line += f"; ⚠️ still listed: {etext(', '.join(map(str, still[:5])), 400)}"
                if not d.get("ok", True):
                    line += "; ⚠️ the delete command failed"
                out.append(line)
            if review.get("listing"):
                out.append("_The full listing is attached to the thread._")
            else:
                out.append("_No tasks are staged: restoring this backup leaves no task running._")
    elif step.id == "prep.ack_backup":
        out.append(backup_line(facts, cluster))
    return out


def _result_line(r: HostResult) -> str:
    mark = "✓" if r.ok else "✗"
    detail = f"exit {r.exit_status}" if r.exit_status is not None else "no exit status"
    err = f" · {etext(r.error, 200)}" if r.error else ""
    return f"{mark} `{etext(r.host, 80)}` {detail} · {r.duration:.2f}s{err}"


def _progress_lines(results: Mapping[str, HostResult], expected: list[str]) -> list[str]:
    lines = [_result_line(r) for r in sorted(results.values(), key=lambda r: r.ok)]
    waiting = [h for h in expected if h not in results]
    return lines + [f"… `{etext(h, 80)}` running" for h in waiting]


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


def _action_blocks(
    rec: RestoreRecord, cluster: Cluster, step: Step, status: str, state: Mapping[str, Any]
) -> list[dict[str, Any]]:
    value = _value(str(rec.rid), step.id)
    attempt = _num(state.get("attempt"))
    bid = f"act.{status}.{attempt}"
    btns: list[dict[str, Any]] = []
    abort = button(
        "Abort",
        "abort",
        value,
        style="danger",
        confirm=_confirm(
            "Abort the restore?",
            f"This stops the restore of {cluster.name}. The next dialog asks whether to revert "
            "every change made so far.",
            "Abort",
        ),
    )
    if status == "awaiting":
        confirm = None
        if step.risk is Risk.DESTRUCTIVE:
            confirm = _confirm(
                f"Run {step.id}?",
                f"DESTRUCTIVE: {step.title} on {step.targets.value} of {cluster.name}. "
                "This cannot be undone. "
                + (
                    "The person who started the restore cannot approve it."
                    if cluster.two_person_rule
                    else ""
                ),
                "Yes, run it",
            )
        digest = (rec.data.get(f"plan:{step.id}") or {}).get("digest")
        approve_value = _value(str(rec.rid), step.id, digest if isinstance(digest, str) else None)
        btns.append(button("Approve", "approve", approve_value, style="primary", confirm=confirm))
        if step.skippable:
            btns.append(button("Skip…", "skip", value))
        review = rec.data.get("review")
        if step.id == "restore.review" and isinstance(review, Mapping) and review.get("count"):
            btns.append(button("Delete tasks…", "delete_tasks", value))
    elif status == "failed":
        if state.get("rewind"):
            target = str(state["rewind"])
            btns.append(
                button(
                    step.rewind_label or f"Back to {target}",
                    "rewind",
                    value,
                    style="primary",
                    confirm=_confirm(
                        "Stage the backup again?",
                        f"Goes back to {target}: the leader is found again, the backup placed "
                        f"on it and staged, the tasks reviewed, and {step.id} approved again. "
                        "Each step needs its approval.",
                        "Go back",
                    ),
                )
            )
        retry = "Re-check" if step.risk is Risk.READ_ONLY else "Retry"
        btns.append(
            button(
                retry,
                "retry",
                value,
                style=None if state.get("rewind") else "primary",
                confirm=_destructive_confirm(step, cluster, "Retry"),
            )
        )
        if step.skippable:
            btns.append(button("Skip…", "skip", value))
        btns.append(abort)
    elif status == "interrupted":
        btns.append(
            button(
                "Retry",
                "retry",
                value,
                style="primary",
                confirm=_destructive_confirm(step, cluster, "Retry"),
            )
        )
        # Done only where the step's check says it finished (Step.verify).
        if state.get("appears_finished"):
            btns.append(
                button(
                    "Mark done",
                    "mark_done",
                    value,
                    confirm=_destructive_confirm(step, cluster, "Mark done"),
                )
            )
        if step.skippable:
            btns.append(button("Skip…", "skip", value))
        btns.append(abort)
    if not btns:
        return []
    return [{"type": "actions", "block_id": bid, "elements": btns}]


def render_step(
    rec: RestoreRecord,
    cluster: Cluster,
    sid: str,
    *,
    progress: Mapping[str, HostResult] | None = None,
) -> StepCard:
    """The card of one step, and whether its output should also go out as a file."""
    step = _step(sid)
    state: Mapping[str, Any] = rec.steps.get(sid) or {}
    status = str(state.get("status", "pending"))
    if step is None:
        text = clip(f"Unknown step {esc(sid)}", FALLBACK_TEXT)
        return StepCard(
            text, [section(f"❔ Unknown step `{etext(sid, 200)}`", "card.unknown")], False
        )
    facts: Mapping[str, Any] = rec.data
    emoji = STATUS_EMOJI.get(status, "❔")
    attempt = _num(state.get("attempt"))
    blocks: list[dict[str, Any]] = [
        header(f"{emoji} {step.id} · {step.title}", "card.head"),
        context(
            [
                f"*{RISK_BADGE[step.risk]}*",
                f"{etext(step.phase, 80)}",
                f"status: *{etext(status, 30)}*"
                + (f" · attempt {attempt}" if attempt > 1 else "")
                + (f" · {waited(rec, step.id)}" if status == "awaiting" else ""),
                f"restore `{etext(rec.rid, 80)}`",
            ],
            "card.meta",
        ),
        section(esc(step.explain), "card.explain"),
        section(targets_line(cluster, step, facts), "card.targets"),
        _commands_block(command_lines(cluster, step, facts), "card.commands"),
    ]
    blocks += plan_blocks(step, facts)
    preview = preview_lines(step, facts, cluster)
    if preview:
        body = _fit_lines(preview, SECTION_TEXT - 10, "… {n} more lines in the transcript")
        blocks.append(section(body, "card.preview"))
    ctx = [f"check: {etext(step.check, 300)}"]
    if step.suggest_skip:
        ctx.append("suggested: skip")
    if step.risk is Risk.DESTRUCTIVE and cluster.two_person_rule:
        ctx.append("needs an approver other than the requester")
    blocks.append(context(ctx, "card.check"))

    # Who did what, and what came out.
    info: list[str] = []
    if state.get("approved_by"):
        info.append(f"approved by {mention(str(state['approved_by']))}")
    if status == "skipped":
        who = mention(str(state["skipped_by"])) if state.get("skipped_by") else "the plan"
        reason = f": {etext(state.get('reason'), 500)}" if state.get("reason") else ""
        info.append(f"⏭️ skipped by {who}{reason}")
    if state.get("summary") and status in ("succeeded", "failed"):
        info.append(f"{emoji} {etext(state['summary'], 1500)}")
    if state.get("error"):
        info.append(f"error: {etext(state['error'], 500)}")
    if status == "interrupted":
        check = state.get("check")
        if "appears_finished" in state:
            verdict = (
                "its check passed: it appears to have finished (*Mark done* if so)"
                if state.get("appears_finished")
                else "its check did not pass: it appears not to have finished (*Retry*)"
            )
        else:
            verdict = "not checked yet"
        info.append(
            "⚠️ The bot stopped while this step ran. "
            + verdict
            + (f"\ncheck: {etext(check, 800)}" if check else "")
        )
    if info:
        blocks.append(section(clip("\n".join(info), 2000), "card.state"))

    results: Mapping[str, HostResult] = progress or {}
    needs_file = False
    if status == "running" or (results and status in ("succeeded", "failed", "interrupted")):
        if step.targets is Targets.LEADER and facts.get("leader"):
            expected = [str(facts["leader"])]
        elif step.targets is Targets.BOT:
            expected = []
        else:
            expected = [s.host for s in cluster.schedulers]
        lines = _progress_lines(results, expected if status == "running" else [])
        if lines:
            title = "*Progress:*" if status == "running" else "*Results:*"
            body = _fit_lines(lines, SECTION_TEXT - 20, "… and {n} more hosts")
            blocks.append(section(f"{title}\n{body}", "card.hosts"))
            if body.count("\n") + 1 < len(lines):
                needs_file = True

    actions_blocks = _action_blocks(rec, cluster, step, status, state)
    if sid == "prep.preflight" and backup_choice_open(rec, ONLINE):
        picker = backup_picker(rec)
        if picker is not None:
            actions_blocks.insert(0, picker)
    if status in ("succeeded", "failed", "interrupted") and results:
        # Tails of output, failed hosts first, while the message budget lasts.
        reserved = _size(actions_blocks) + 400
        ordered = sorted(results.values(), key=lambda r: r.ok)
        shown = 0
        for r in ordered:
            out = _output_of(r)
            if not out:
                continue
            room = MESSAGE_BUDGET - _size(blocks) - reserved
            if len(blocks) + len(actions_blocks) + 2 > MAX_BLOCKS or room < 300:
                needs_file = True
                break
            head = f"`{etext(r.host, 80)}` {'✓' if r.ok else '✗'} output"
            limit = min(TAIL_CHARS, room - 200, SECTION_TEXT - len(head) - 30)
            escaped = esc(out)
            tail = clip_tail(escaped, limit)
            if tail != escaped:
                needs_file = True
                head += " (tail)"
            blocks.append(section(head + "\n" + code_block([tail]), f"card.out.{shown}"))
            shown += 1
        if needs_file:
            blocks.append(
                context(
                    ["The output was cut here: the full output is attached as a file."], "card.file"
                )
            )
    blocks += actions_blocks
    text = clip(f"{esc(step.id)} · {esc(step.title)}: {esc(status)}", FALLBACK_TEXT)
    return StepCard(text, blocks[:MAX_BLOCKS], needs_file)


# ---------------------------------------------------------------- thread lines


def action_line(
    actor_id: str, verb: str, sid: str, detail: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """One line for the thread: "✅ <@U1> approved `prep.stop`", refusals with 🚫."""
    refused = verb.startswith(("refused", "cannot", "could not", "not allowed"))
    emoji = "🚫" if refused else VERB_EMOJI.get(verb, "•")
    who = mention(actor_id)
    target = f" `{etext(sid, 200)}`" if sid else ""
    extra = f": {etext(detail, 2000)}" if detail else ""
    line = clip(f"{emoji} {who} {etext(verb, 100)}{target}{extra}", SECTION_TEXT)
    return clip(line, FALLBACK_TEXT), [section(line, "line")]


# ---------------------------------------------------------------- modals


def skip_modal(rid: str, sid: str) -> dict[str, Any]:
    step = _step(sid)
    title = step.title if step else sid
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


# Slack allows 100 options; 50 keep the card within MESSAGE_BUDGET, and hold every
# backup a scheduler keeps by default (-max_saved_backups=48) on one host.
MAX_OPTIONS = 50
OPTION_VALUE = 150


def backup_picker(rec: RestoreRecord) -> dict[str, Any] | None:
    """A select menu of the backups found, newest first, set to the chosen one."""
    backups = rec.data.get("backups")
    if not isinstance(backups, Mapping) or not backups:
        return None
    chosen = rec.data.get("backup")
    options = []
    initial = None
    names = sorted(backups, reverse=True)[:MAX_OPTIONS]
    if chosen in backups and chosen not in names:
        names = [*names[: MAX_OPTIONS - 1], chosen]  # the chosen one is always offered
    for name in names:
        age = actions.backup_age(str(name))
        holders = backups[name] if isinstance(backups[name], list) else []
        text = f"{name} · " + (f"{age / 3600:.1f} h" if age is not None else "age ?")
        text += f" · {len(holders)} host" + ("s" if len(holders) != 1 else "")
        option = {"text": _plain(text, 75), "value": str(name)[:OPTION_VALUE]}
        options.append(option)
        if name == chosen:
            initial = option
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": "choose_backup",
        "placeholder": _plain("Choose the backup", 150),
        "options": options,
    }
    if initial is not None:
        select["initial_option"] = initial
    return {"type": "actions", "block_id": f"backup.{str(rec.rid)[:200]}", "elements": [select]}


def delete_modal(rid: str, count: int) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "delete_tasks",
        "private_metadata": _value(rid, "restore.review"),
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


def usage_blocks(error: str | None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if error:
        blocks.append(section(f"🚫 {etext(error, 2000)}", "usage.error"))
    blocks.append(section(help_text(), "usage.help"))
    return blocks
