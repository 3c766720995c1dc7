"""The transcript of a restore, built from its record and append-only event log.

JSON schema: `runbook/transcript.schema.json` (`schema` = "aurora-restore/transcript/1";
a new version changes the name). Tamper evidence: every event of the log carries the
SHA-1 of the one before it plus itself (`hash = sha1(prev_hash + body)`), the export
carries the log and its final digest, and `verify()` checks both.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from runbook.procedure import ONLINE_PROCEDURE, get_step
from runbook.store import RestoreRecord, output_digest

SCHEMA = "aurora-restore/transcript/1"


def _ts(ms: Any) -> str | None:
    if not isinstance(ms, int | float):
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _secs(start: Any, end: Any) -> float | None:
    if isinstance(start, int | float) and isinstance(end, int | float) and end >= start:
        return round((end - start) / 1000, 3)
    return None


# Events whose text belongs in the record: what was chosen, deleted, refused, gone back.
DETAIL = {
    "backup_chosen": "reason",
    "deleting_tasks": "ids",
    "tasks_deleted": "summary",
    "rewound": "reason",
    "reset": "reason",
    "refused": "reason",
    "skipped": "reason",
}


def _has_detail(e: dict[str, Any]) -> bool:
    key = DETAIL.get(e["type"])
    return key is not None and bool(e.get(key))


def _detail(e: dict[str, Any]) -> str:
    value = e[DETAIL[e["type"]]]
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def build(
    rec: RestoreRecord, events: list[dict[str, Any]], outputs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    steps = []
    for step in ONLINE_PROCEDURE:
        st = rec.steps.get(step.id, {})
        in_plan = step.id in rec.meta["plan"]
        if not in_plan and st.get("reason") == "not needed":
            status = "not needed"
        else:
            status = st.get("status", "pending")
        evs = [e for e in events if e.get("step") == step.id]
        hosts = {
            key.split(":", 2)[2]: {"attempt": int(key.split(":", 2)[1]), **out}
            for key, out in outputs.items()
            if key.split(":", 1)[0] == step.id
        }
        first: dict[str, Any] = {}
        for e in evs:
            first.setdefault(e["type"], e.get("at"))
        begun = first.get("approved") or first.get("started") or first.get("retried")
        ended = next(
            (
                e.get("at")
                for e in reversed(evs)
                if e["type"] in ("succeeded", "failed", "skipped", "marked_done", "interrupted")
            ),
            None,
        )
        waiting_from = first.get("awaiting_approval")
        steps.append(
            {
                "id": step.id,
                "title": step.title,
                "phase": step.phase,
                "risk": step.risk.value,
                "status": status,
                "summary": st.get("summary", st.get("reason", "")),
                "check": step.check,
                # Lua's cjson writes an empty list as {}.
                "commands": st.get("commands") or [],
                "approved_by": st.get("approved_by"),
                "skipped_by": st.get("skipped_by"),
                "attempts": st.get("attempt", 0),
                "actors": sorted(
                    {e["actor"] for e in evs if e.get("actor") and e["actor"] != "bot"}
                ),
                "events": [
                    {
                        "type": e["type"],
                        "at": _ts(e.get("at")),
                        "actor": e.get("actor"),
                        **({"detail": _detail(e)} if _has_detail(e) else {}),
                    }
                    for e in evs
                ],
                "hosts": hosts,
                "awaiting_at": _ts(waiting_from),
                "started_at": _ts(begun),
                "ended_at": _ts(ended),
                "waiting_seconds": _secs(waiting_from, begun),
                "running_seconds": _secs(begun, ended),
            }
        )
    data = rec.data
    return {
        "schema": SCHEMA,
        "restore": rec.rid,
        "cluster": rec.meta["cluster"],
        "backup": data.get("backup"),
        "backup_age_seconds": data.get("backup_age"),
        "started_by": rec.meta.get("started_by"),
        "started_at": _ts(rec.meta.get("started_at")),
        "ended_at": _ts(events[-1].get("at")) if events else None,
        "outcome": rec.status,
        "leader": data.get("leader"),
        "reviewed_tasks": data.get("reviewed_count"),
        "leader_table": data.get("leader_table"),
        "preflight_leader_table": data.get("preflight_table"),
        "failover_leader_table": data.get("failover_table"),
        "review": {k: v for k, v in (data.get("review") or {}).items() if k != "listing"} or None,
        "backup_age_acknowledged_by": next(
            (
                e.get("actor")
                for e in events
                if e.get("step") == "prep.ack_backup" and e["type"] == "approved"
            ),
            None,
        ),
        "chain_digest": events[-1]["hash"] if events else None,
        "steps": steps,
        # The event log itself: the exact text each hash covers, so that the export can be
        # checked on its own (`aurora-restore verify-transcript`).
        "log": [{"body": e.get("raw", ""), "hash": e["hash"]} for e in events],
    }


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def to_markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# Restore {doc['restore']} of cluster `{doc['cluster']}`",
        "",
        f"- backup: `{doc['backup']}`"
        + (
            f" ({doc['backup_age_seconds'] / 3600:.1f} hours old)"
            if doc.get("backup_age_seconds")
            else ""
        ),
        f"- started by {doc['started_by']} at {doc['started_at']}; ended {doc['ended_at']}",
        f"- outcome: **{doc['outcome']}**",
        f"- event chain digest: `{doc['chain_digest']}`",
        "",
    ]
    for s in doc["steps"]:
        step = get_step(s["id"])
        lines += [
            f"## {s['id']} — {s['title']}",
            "",
            f"{s['status']} · {s['risk']} · check: {step.check}",
        ]
        who = []
        if s["approved_by"]:
            who.append(f"approved by {s['approved_by']}")
        if s["skipped_by"]:
            who.append(f"skipped by {s['skipped_by']}")
        if who:
            lines.append("; ".join(who))
        if s["summary"]:
            # The summary quotes what hosts said (log lines, outputs): kept inert.
            lines += ["", *fence(s["summary"])]
        notes = [e for e in s["events"] if e.get("detail")]
        if notes:
            lines.append("")
            lines += [
                f"- {e['at']} {e.get('actor') or 'bot'} {e['type'].replace('_', ' ')}: {e['detail']}"
                for e in notes
            ]
        for batch in s["commands"]:
            lines += ["", *fence("\n".join(f"[{h}] $ {c}" for h, c in batch.items()), "sh")]
        for host, out in sorted(s["hosts"].items()):
            lines += [
                "",
                f"**{host}**: exit {out.get('exit_status')} in {out.get('duration')}s"
                + (f" — {out['error']}" if out.get("error") else ""),
            ]
            tail = ((out.get("stdout") or "") + (out.get("stderr") or "")).strip()
            if tail:
                lines += fence(tail[-2000:])
        lines.append("")
    return "\n".join(lines)


def fence(text: str, info: str = "") -> list[str]:
    """A Markdown code fence around `text`, longer than any run of backticks inside it,
    so that nothing in host output ends it and turns live (CommonMark §4.5)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    bar = "`" * max(3, longest + 1)
    return [bar + info, text, bar]


def verify(doc: dict[str, Any], live_chain: list[str] | None = None) -> list[str]:
    """What is wrong with an export; empty when it is intact.

    Checks the hash chain of the exported log, its final digest, and that the steps'
    statuses and people agree with the log; with `live_chain` (the hashes in Redis, while
    the restore is kept) also that the log is the one Redis holds.
    """
    import hashlib

    problems: list[str] = []
    if doc.get("schema") != SCHEMA:
        problems.append(f"unknown schema {doc.get('schema')!r}")
    log = doc.get("log") or []
    prev = ""
    bodies: list[dict[str, Any]] = []
    for i, entry in enumerate(log):
        body = entry.get("body", "")
        digest = hashlib.sha1((prev + body).encode()).hexdigest()
        if digest != entry.get("hash"):
            problems.append(f"event {i + 1}: hash does not match its content (edited?)")
        try:
            parsed = json.loads(body)
        except ValueError:
            problems.append(f"event {i + 1}: not JSON")
            parsed = {}
        if parsed.get("prev", "") != prev:
            problems.append(f"event {i + 1}: does not follow the event before it")
        bodies.append(parsed)
        prev = str(entry.get("hash", ""))
    if (log[-1]["hash"] if log else None) != doc.get("chain_digest"):
        problems.append("chain_digest is not the digest of the log")
    for step in doc.get("steps", []):
        evs = [b for b in bodies if b.get("step") == step.get("id")]
        approved = [b.get("actor") for b in evs if b.get("type") == "approved"]
        if step.get("approved_by") and step["approved_by"] not in approved:
            problems.append(f"{step['id']}: approved_by {step['approved_by']!r} is not in the log")
        skipped = [b.get("actor") for b in evs if b.get("type") == "skipped"]
        if step.get("skipped_by") and step["skipped_by"] not in skipped:
            problems.append(f"{step['id']}: skipped_by {step['skipped_by']!r} is not in the log")
        for host, out in (step.get("hosts") or {}).items():
            recorded = next(
                (
                    b.get("output_sha256")
                    for b in reversed(evs)  # a host's last command is the output kept
                    if b.get("type") == "host_result"
                    and b.get("host") == host
                    and b.get("attempt") == out.get("attempt")
                ),
                None,
            )
            if recorded is not None and recorded != output_digest(out):
                problems.append(f"{step['id']} on {host}: the output is not the one the log holds")
        last = next((b["type"] for b in reversed(evs) if b.get("type") in _FINAL), None)
        if (
            step.get("status") in _FINAL.values()
            and last is not None
            and _FINAL[last] != step["status"]
        ):
            problems.append(
                f"{step['id']}: status {step['status']!r} but the log ends with {last!r}"
            )
    outcome = next((b["type"] for b in reversed(bodies) if b.get("type") in _OUTCOMES), None)
    if outcome is not None and _OUTCOMES[outcome] != doc.get("outcome"):
        problems.append(f"outcome {doc.get('outcome')!r} but the log says {_OUTCOMES[outcome]!r}")
    if live_chain is not None and [e.get("hash") for e in log] != live_chain:
        problems.append("the log differs from the one kept in Redis")
    return problems


_FINAL = {
    "succeeded": "succeeded",
    "failed": "failed",
    "skipped": "skipped",
    "marked_done": "succeeded",
    "interrupted": "interrupted",
    # Back to pending: going back (rewound, reset) or another backup chosen.
    "rewound": "pending",
    "reset": "pending",
    "backup_chosen": "pending",
}
_OUTCOMES = {
    "restore_succeeded": "succeeded",
    "restore_failed": "failed",
    "reverted": "reverted",
    "aborted": "aborted",
}
