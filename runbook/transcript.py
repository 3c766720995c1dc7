"""The transcript of a restore, built from its record and append-only event log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from runbook.procedure import ONLINE_PROCEDURE, get_step
from runbook.store import RestoreRecord

SCHEMA = "aurora-restore/transcript/1"


def _ts(ms: Any) -> str | None:
    if not isinstance(ms, int | float):
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


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
        steps.append(
            {
                "id": step.id,
                "title": step.title,
                "phase": step.phase,
                "risk": step.risk.value,
                "status": status,
                "summary": st.get("summary", st.get("reason", "")),
                "check": step.check,
                "commands": st.get("commands", []),
                "approved_by": st.get("approved_by"),
                "skipped_by": st.get("skipped_by"),
                "attempts": st.get("attempt", 0),
                "actors": sorted(
                    {e["actor"] for e in evs if e.get("actor") and e["actor"] != "bot"}
                ),
                "events": [
                    {"type": e["type"], "at": _ts(e.get("at")), "actor": e.get("actor")}
                    for e in evs
                ],
                "hosts": hosts,
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
        "chain_digest": events[-1]["hash"] if events else None,
        "steps": steps,
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
            lines += ["", s["summary"]]
        for batch in s["commands"]:
            lines += ["", "```sh"] + [f"[{h}] $ {c}" for h, c in batch.items()] + ["```"]
        for host, out in sorted(s["hosts"].items()):
            lines += [
                "",
                f"**{host}**: exit {out.get('exit_status')} in {out.get('duration')}s"
                + (f" — {out['error']}" if out.get("error") else ""),
            ]
            tail = ((out.get("stdout") or "") + (out.get("stderr") or "")).strip()
            if tail:
                lines += ["```", tail[-2000:], "```"]
        lines.append("")
    return "\n".join(lines)
